"""functions/resolve_run on the real catalog (datasets/): each dataset's Object Created sample
in events/resolve_run (`<dataset>_*.json`) runs that dataset, with its sample day from
sample_data/<dataset>/ in the raw bucket. Iterates over the catalog: a new dataset's events are
exercised as soon as they exist."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import pytest

from pipeline_core.catalog import load_catalog
from tests.support.aws import REPO, event_files, read_event

CATALOG = load_catalog(REPO / "datasets")


def dataset_events() -> list[tuple[str, str]]:
    """(dataset, event file) for every events/resolve_run/<dataset>_*.json of the catalog."""
    return [(name, f) for f in event_files("resolve_run") for name in sorted(CATALOG.datasets)
            if f.startswith(f"{name}_")]


@pytest.fixture
def catalog_dir() -> Path:
    return REPO / "datasets"


def _sample(key: str) -> bytes:
    """The sample day the key names: its own file, or the plain file gzipped for a `.gz` key."""
    dataset, name = key.split("/", 1)
    path = REPO / "sample_data" / dataset / name
    if path.is_file():
        return path.read_bytes()
    plain = path.with_name(name.removesuffix(".gz"))
    assert name.endswith(".gz") and plain.is_file(), f"no sample_data file for {key}"
    return gzip.compress(plain.read_bytes(), mtime=0)


@pytest.mark.parametrize(("dataset", "name"), dataset_events())
def test_a_dataset_s_object_created_event_runs_that_dataset(
        aws: Any, load_handler: Any, context: Any, dataset: str, name: str) -> None:
    event = read_event("resolve_run", name)
    obj = event["event"]["detail"]["object"]
    body = _sample(obj["key"])
    assert obj["etag"] == hashlib.md5(body).hexdigest(), (
        f"{name}: its etag is not the MD5 of the sample day it names (S3's ETag of a "
        "single-part upload)")
    aws.put_raw(obj["key"], body)
    manifest = load_handler("resolve_run").lambda_handler(event, context)
    assert manifest["dataset"] == dataset and manifest["duplicate"] is False
    assert manifest["input"]["key"] == obj["key"]
    assert CATALOG.get(dataset).partition_for_key(obj["key"]) == manifest["partition"]
    assert set(manifest["outputs"]) == {t.name for t in CATALOG.get(dataset).load.tables}
    # the catalog's job.arguments reach the job (bank_reference's --table names its file)
    arguments = manifest["job"]["arguments"]
    for option, value in CATALOG.get(dataset).job.arguments.items():
        assert arguments[arguments.index(f"--{option}") + 1] == value
