"""source.encoding in the catalog: the parser and datasets/schema.json agree on what a dataset may
declare, and the parser keeps the canonical name the job is given (--encoding)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pipeline_core.catalog import (
    DEFAULT_ENCODING,
    INPUT_ENCODINGS,
    canonical_encoding,
    load_catalog,
    parse_dataset,
)
from pipeline_core.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "datasets"


@pytest.fixture(scope="module")
def validator() -> Any:
    cls = jsonschema.Draft202012Validator
    schema = json.loads((CATALOG / "schema.json").read_text())
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture
def doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((CATALOG / "online_retail.yaml").read_text()))


def _with_encoding(doc: dict[str, Any], encoding: Any) -> dict[str, Any]:
    doc["source"]["encoding"] = encoding
    return doc


def test_online_retail_declares_utf8():
    assert load_catalog(CATALOG).get("online_retail").source.encoding == "utf-8"


def test_encoding_defaults_to_utf8(doc, validator):
    del doc["source"]["encoding"]
    assert list(validator.iter_errors(doc)) == []
    assert parse_dataset(doc).source.encoding == DEFAULT_ENCODING == "utf-8"


@pytest.mark.parametrize(("declared", "canonical"), [
    ("utf-8", "utf-8"), ("latin-1", "latin-1"), ("iso-8859-1", "latin-1"),
    ("cp1252", "cp1252"), ("windows-1252", "cp1252"),
])
def test_allowed_encodings_are_accepted_by_both(doc, validator, declared, canonical):
    _with_encoding(doc, declared)
    assert list(validator.iter_errors(doc)) == []
    assert parse_dataset(doc).source.encoding == canonical
    # The canonical name is also Python's codec for it.
    assert "é".encode(canonical).decode(canonical) == "é"


@pytest.mark.parametrize("declared", ["utf-16", "UTF-8", "ascii", "", "latin1 ", 8, None])
def test_other_encodings_are_refused_by_both(doc, validator, declared):
    _with_encoding(doc, declared)
    assert list(validator.iter_errors(doc)), f"schema accepted {declared!r}"
    with pytest.raises(ConfigurationError, match=r"^dataset\.source\.encoding: "):
        parse_dataset(doc)


def test_the_refusal_names_the_allowed_encodings(doc):
    with pytest.raises(ConfigurationError) as caught:
        parse_dataset(_with_encoding(doc, "utf-16"))
    assert str(caught.value) == (
        "dataset.source.encoding: 'utf-16' is not one of utf-8, latin-1, iso-8859-1, cp1252, "
        "windows-1252")


def test_schema_enum_lists_exactly_the_parser_spellings():
    schema = json.loads((CATALOG / "schema.json").read_text())
    enum = schema["properties"]["source"]["properties"]["encoding"]["enum"]
    assert enum == list(INPUT_ENCODINGS)
    assert set(INPUT_ENCODINGS.values()) == {"utf-8", "latin-1", "cp1252"}


def test_canonical_encoding_is_what_the_job_argument_uses():
    assert canonical_encoding("iso-8859-1") == "latin-1"
    with pytest.raises(ConfigurationError, match=r"^--encoding: 'ebcdic' is not one of "):
        canonical_encoding("ebcdic", "--encoding")
