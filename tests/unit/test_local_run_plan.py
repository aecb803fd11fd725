"""The local runtime's `run` on a toy catalog of csv, jsonl and text datasets: an object under
any dataset's prefix runs that dataset, a scheduled day's file is found under the key pattern's
own suffixes, and a dataset without a schedule is refused a --schedule run with what to do."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_runtime import cli
from local_runtime.stack import LocalRuntimeError


def _dataset(name: str, fmt: str, ext: str, schedule: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "source": {"prefix": f"{name}/",
                   "key_pattern": rf"^{name}/(?P<partition>\d{{4}}-\d{{2}}-\d{{2}})"
                                  rf"\.{ext}(?:\.gz)?$",
                   "format": fmt},
        "job": {"name": name},
        "compute": {"mode": "serverless"},
        "quality": {"rules_file": f"{name}.dqdl"},
        "load": {"schema": "analytics",
                 "tables": [{"name": f"{name}_rows", "mode": "full_refresh",
                             "snapshot_column": "as_of"}]},
    }
    if fmt == "csv":
        doc["source"]["header"] = ["a", "b"]
    if schedule:
        doc["schedule"] = {"timezone": "Europe/London"}
    return doc


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose datasets/ holds three toy datasets and whose sample_data/ one day."""
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    for doc in (_dataset("shop", "csv", "csv", True), _dataset("bank", "jsonl", "jsonl", False),
                _dataset("weblog", "text", "log", True)):
        (datasets / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
        (datasets / f"{doc['name']}.dqdl").write_text("Rules = [ RowCount > 0 ]\n")
    (tmp_path / "sample_data" / "weblog").mkdir(parents=True)
    (tmp_path / "sample_data" / "weblog" / "2015-05-17.log.gz").write_bytes(
        gzip.compress(b"line\n", mtime=0))
    monkeypatch.setattr(cli, "REPO", tmp_path)
    monkeypatch.setattr(cli, "SAMPLE_DIR", tmp_path / "sample_data")
    return tmp_path


def _args(**given: Any) -> argparse.Namespace:
    base = {"schedule": None, "date": None, "file": None, "key": None, "compute": None,
            "rerun": False}
    return argparse.Namespace(**{**base, **given})


@pytest.mark.parametrize("key", ["shop/2019-10-01.csv", "bank/1995-03-24.jsonl.gz",
                                 "weblog/2015-05-17.log"])
def test_an_object_under_any_dataset_prefix_is_a_run(repo: Path, key: str) -> None:
    file = repo / "day"
    file.write_bytes(b"x\n")
    assert cli.plan_run(_args(file=file, key=key)).key == key


@pytest.mark.parametrize(("key", "message"), [
    ("exports/2015-05-17.log", "is outside every dataset prefix"),
    ("weblog/2015-05-17.csv", "does not match its key pattern"),
])
def test_an_object_no_dataset_takes_is_refused(repo: Path, key: str, message: str) -> None:
    file = repo / "day"
    file.write_bytes(b"x\n")
    with pytest.raises(LocalRuntimeError, match=message):
        cli.plan_run(_args(file=file, key=key))


def test_a_scheduled_day_takes_its_sample_under_the_patterns_suffixes(repo: Path) -> None:
    plan = cli.plan_run(_args(schedule="weblog", date="2015-05-17"))
    assert plan.key == "weblog/2015-05-17.log.gz" and plan.file.name == "2015-05-17.log.gz"
    with pytest.raises(LocalRuntimeError, match=r"no sample file for weblog 2015-05-18 .*\.log"):
        cli.plan_run(_args(schedule="weblog", date="2015-05-18"))


def test_a_scheduled_file_keeps_its_own_suffix(repo: Path) -> None:
    plain, other = repo / "x.log", repo / "x.txt"
    plain.write_bytes(b"line\n")
    other.write_bytes(b"line\n")
    assert cli.plan_run(_args(schedule="weblog", date="2015-05-17", file=plain)).key == \
        "weblog/2015-05-17.log"
    with pytest.raises(LocalRuntimeError, match=r"x\.txt does not end with a suffix of weblog"):
        cli.plan_run(_args(schedule="weblog", date="2015-05-17", file=other))


def test_a_dataset_without_a_schedule_is_refused_a_scheduled_run(repo: Path) -> None:
    with pytest.raises(LocalRuntimeError,
                       match=r"dataset bank has no schedule .* --key bank/1995-03-24\.jsonl"):
        cli.plan_run(_args(schedule="bank", date="1995-03-24"))


def _derived(repo: Path) -> None:
    doc = _dataset("shop_trends", "csv", "csv", True)
    del doc["source"]
    doc["derived"] = {"inputs": [{"dataset": "shop", "table": "shop_rows"}],
                      "after_upstream_loads": True}
    (repo / "datasets" / "shop_trends.yaml").write_text(yaml.safe_dump(doc))
    (repo / "datasets" / "shop_trends.dqdl").write_text("Rules = [ RowCount > 0 ]\n")


def test_a_derived_dataset_s_scheduled_day_has_no_file(repo: Path) -> None:
    """`run --schedule NAME --date D` of a derived dataset: its run reads the upstream days
    already loaded, so there is nothing to upload."""
    _derived(repo)
    plan = cli.plan_run(_args(schedule="shop_trends", date="2019-10-01"))
    assert (plan.file, plan.key, plan.dataset, plan.date) == (
        None, None, "shop_trends", "2019-10-01")
    file = repo / "day"
    file.write_bytes(b"x\n")
    with pytest.raises(LocalRuntimeError, match=r"shop_trends is derived \(from shop\): it has "
                       r"no file"):
        cli.plan_run(_args(schedule="shop_trends", date="2019-10-01", file=file))
