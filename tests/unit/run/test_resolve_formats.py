"""ResolveRun for datasets of every input format (csv, jsonl, text) in one toy catalog: an
object under any dataset's prefix runs that dataset, its start is checked as its format says,
a day is looked up under the key pattern's own suffixes, and a dataset without a schedule is
run by drops and manual runs only."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_aws.contracts import ResolveRunRequest
from pipeline_aws.resolve import RunResolver
from pipeline_aws.settings import ResolveRunSettings
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import InvalidInput, UnknownDataset
from tests.support.aws import object_created_event
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.s3_objects import FakeS3Objects
from tests.unit.run.conftest import NOW
from tests.unit.run.support import RAW, execution, write_catalog

ROW_JSON = b'{"trans_id": 695247, "account_id": 2378, "amount": "700.0"}\n'
LOG_LINE = (b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 '
            b'203023 "-" "Mozilla/5.0"\n')


def _dataset(name: str, fmt: str, ext: str, schedule: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "source": {"prefix": f"{name}/",
                   "key_pattern": rf"^{name}/(?P<partition>\d{{4}}-\d{{2}}-\d{{2}})"
                                  rf"\.{ext}(?:\.gz)?$",
                   "format": fmt},
        "job": {"name": name},
        "compute": {"mode": "serverless"},
        "quality": {"rules_file": f"{name}.dqdl"},
        "load": {"schema": "analytics", "tables": [
            {"name": f"{name}_rows", "replace_by": ["day"]},
            {"name": f"{name}_reference", "mode": "full_refresh",
             "snapshot_column": "as_of"}]},
    }
    if schedule is not None:
        doc["schedule"] = schedule
    return doc


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    directory = write_catalog(tmp_path / "datasets")
    for doc in (_dataset("bank", "jsonl", "jsonl", None),
                _dataset("weblog", "text", "log", {"date_offset_days": -1,
                                                   "timezone": "Europe/London"})):
        (directory / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        (directory / f"{doc['name']}.dqdl").write_text("Rules = [ RowCount > 0 ]\n")
    return directory


@pytest.fixture
def resolver(objects: FakeS3Objects, ledger: FakeLedger, env: dict[str, str]) -> RunResolver:
    return RunResolver(settings=ResolveRunSettings.from_environ(env),
                       catalog=load_catalog(env["CATALOG_DIR"]), objects=objects,
                       ledger=ledger, clock=lambda: NOW)


def _request(event: dict[str, Any], name: str = "exec-1") -> ResolveRunRequest:
    return ResolveRunRequest.parse({"event": event, "execution": execution(name),
                                    "state_name": "ResolveRun"})


@pytest.mark.parametrize(("key", "body", "dataset"), [
    ("bank/1995-03-24.jsonl", ROW_JSON, "bank"),
    ("bank/1995-03-24.jsonl.gz", gzip.compress(ROW_JSON, mtime=0), "bank"),
    ("weblog/2015-05-17.log", LOG_LINE, "weblog"),
    ("weblog/2015-05-17.log.gz", gzip.compress(LOG_LINE, mtime=0), "weblog"),
])
def test_an_object_under_a_dataset_prefix_runs_that_dataset(
        objects: FakeS3Objects, resolver: RunResolver, key: str, body: bytes,
        dataset: str) -> None:
    objects.put(RAW, key, body)
    manifest = resolver.resolve(_request(object_created_event(key, bucket=RAW)))
    assert manifest["dataset"] == dataset and manifest["input"]["key"] == key
    assert manifest["partition"] == key.split("/")[1][:10]
    assert set(manifest["outputs"]) == {f"{dataset}_rows", f"{dataset}_reference"}


@pytest.mark.parametrize(("key", "body", "message"), [
    ("bank/1995-03-24.jsonl", b"trans_id,amount\n1,2\n", "the first non-blank line is not JSON"),
    ("bank/1995-03-24.jsonl", b"[1]\n", "is a JSON list, not an object"),
    ("weblog/2015-05-17.log.gz", gzip.compress(b"", mtime=0), "holds no text"),
    ("weblog/2015-05-17.log", b"", r"is empty \(0 bytes\)"),
])
def test_an_object_is_checked_as_its_format_says(objects: FakeS3Objects, ledger: FakeLedger,
                                                 resolver: RunResolver, key: str, body: bytes,
                                                 message: str) -> None:
    objects.put(RAW, key, body)
    with pytest.raises(InvalidInput, match=message):
        resolver.resolve(_request(object_created_event(key, bucket=RAW)))
    assert ledger.items == {}, "nothing is registered for an input the job would refuse"


def test_a_key_of_another_suffix_under_the_prefix_is_named(objects: FakeS3Objects,
                                                           resolver: RunResolver) -> None:
    objects.put(RAW, "weblog/2015-05-17.csv", b"a\n")
    with pytest.raises(InvalidInput, match=r"under dataset 'weblog'.s prefix but does not match"):
        resolver.resolve(_request(object_created_event("weblog/2015-05-17.csv", bucket=RAW)))
    objects.put(RAW, "exports/2015-05-17.log", LOG_LINE)
    with pytest.raises(UnknownDataset, match="outside every dataset prefix"):
        resolver.resolve(_request(object_created_event("exports/2015-05-17.log", bucket=RAW)))


def test_a_scheduled_day_is_found_under_the_patterns_suffixes(objects: FakeS3Objects,
                                                              resolver: RunResolver) -> None:
    """06:00 in London on 18 May (05:00 UTC) processes the 17th: its .log.gz file."""
    objects.put(RAW, "weblog/2015-05-17.log.gz", gzip.compress(LOG_LINE, mtime=0))
    manifest = resolver.resolve(_request({"source": "pipeline.schedule", "dataset": "weblog",
                                          "scheduled_time": "2015-05-18T05:00:00Z"}))
    assert manifest["input"]["key"] == "weblog/2015-05-17.log.gz"
    assert manifest["partition"] == "2015-05-17"


def test_a_day_with_no_file_names_every_key_tried(resolver: RunResolver) -> None:
    with pytest.raises(InvalidInput, match=rf"none of s3://{RAW}/weblog/2015-05-17\.log, "
                                           rf"s3://{RAW}/weblog/2015-05-17\.log\.gz exists"):
        resolver.resolve(_request({"dataset": "weblog", "date": "2015-05-17"}))


def test_a_day_with_two_files_is_refused_naming_both(objects: FakeS3Objects,
                                                     resolver: RunResolver) -> None:
    objects.put(RAW, "weblog/2015-05-17.log", LOG_LINE)
    objects.put(RAW, "weblog/2015-05-17.log.gz", gzip.compress(LOG_LINE, mtime=0))
    with pytest.raises(InvalidInput, match=r"2015-05-17\.log and .*2015-05-17\.log\.gz exist"):
        resolver.resolve(_request({"dataset": "weblog", "date": "2015-05-17"}))


def test_a_dataset_without_a_schedule_refuses_a_scheduled_trigger(
        objects: FakeS3Objects, ledger: FakeLedger, resolver: RunResolver) -> None:
    objects.put(RAW, "bank/1995-03-24.jsonl", ROW_JSON)
    with pytest.raises(InvalidInput, match="dataset bank has no schedule in the catalog"):
        resolver.resolve(_request({"source": "pipeline.schedule", "dataset": "bank",
                                   "scheduled_time": "1995-03-25T06:00:00Z"}))
    assert ledger.items == {}
    manual = resolver.resolve(_request({"dataset": "bank", "date": "1995-03-24"}))
    assert manual["input"]["key"] == "bank/1995-03-24.jsonl"
