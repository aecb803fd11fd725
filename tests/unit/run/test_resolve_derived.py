"""ResolveRun for a derived dataset (pipeline_aws.resolve, pipeline_aws.derived_inputs): the
inputs are the upstream partitions the ledger has as loaded in the catalog's range, written
as the run's inputs.json; the same inputs are the same run (a duplicate); no loaded partition
is a clear refusal; a dataset with a model gets the current model and the promotion rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_aws.contracts import ResolveRunRequest, RunManifest
from pipeline_aws.resolve import RunResolver
from pipeline_aws.settings import ResolveRunSettings
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import InvalidInput
from tests.support.aws import REPO
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.s3_objects import FakeS3Objects
from tests.unit.run.conftest import NOW
from tests.unit.run.support import CURATED, execution

SCHEDULED = {"source": "pipeline.schedule", "dataset": "sales_trends",
             "scheduled_time": "2011-01-31T12:00:00Z"}  # offset -1: as_of 2011-01-30


def _catalog(directory: Path, model: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("online_retail", "sales_trends"):
        for suffix in (".yaml", ".dqdl"):
            (directory / f"{name}{suffix}").write_text(
                (REPO / "datasets" / f"{name}{suffix}").read_text())
    if model is not None:
        doc = yaml.safe_load((directory / "sales_trends.yaml").read_text())
        doc["derived"]["model"] = model
        (directory / "sales_trends.yaml").write_text(yaml.safe_dump(doc))
    return directory


def _loaded(ledger: FakeLedger, day: str, run_id: str | None = None,
            started: str = "2026-11-20T10:00:00Z", dataset: str = "online_retail",
            status: str = "SUCCEEDED", **extra: Any) -> str:
    run_id = run_id or f"{dataset}-{day}-0123456789ab"
    ledger.put({"run_id": run_id, "dataset": dataset, "partition": day, "status": status,
                "started_at": started, "outputs": {
                    "sales_line_items": f"s3://{CURATED}/online_retail/sales_line_items/"
                                        f"partition={day}/run_id={run_id}/",
                    "customer_daily_sales": f"s3://{CURATED}/x/{day}/"}, **extra})
    return run_id


def _resolver(tmp_path: Path, env: dict[str, str], objects: FakeS3Objects,
              ledger: FakeLedger, model: dict[str, Any] | None = None) -> RunResolver:
    return RunResolver(settings=ResolveRunSettings.from_environ(env),
                       catalog=load_catalog(_catalog(tmp_path / "cat", model)),
                       objects=objects, ledger=ledger, clock=lambda: NOW)


def _request(event: dict[str, Any], name: str = "exec-1") -> ResolveRunRequest:
    return ResolveRunRequest.parse({"event": event, "execution": execution(name)})


def _args(manifest: dict[str, Any]) -> dict[str, str]:
    args = manifest["job"]["arguments"]
    return dict(zip(args[::2], args[1::2], strict=True))


def test_a_scheduled_run_reads_the_loaded_partitions_of_its_range(
        tmp_path: Path, env: dict[str, str], objects: FakeS3Objects,
        ledger: FakeLedger) -> None:
    for day in ("2010-12-31", "2011-01-01", "2011-01-30", "2011-01-31"):
        _loaded(ledger, day)
    _loaded(ledger, "2011-01-02", status="FAILED")  # not loaded: not an input
    manifest = _resolver(tmp_path, env, objects, ledger).resolve(_request(SCHEDULED))
    RunManifest.model_validate(manifest)
    assert manifest["partition"] == "2011-01-30" and not manifest["duplicate"]
    assert manifest["trigger"] == "schedule"
    assert manifest["run_id"].startswith("sales_trends-2011-01-30-")
    key = f"_runs/sales_trends/{manifest['run_id']}/inputs.json"
    assert manifest["input"]["bucket"] == CURATED and manifest["input"]["key"] == key
    document = json.loads(objects.objects[(CURATED, key)])
    assert [f["partition"] for f in document["tables"]["online_retail.sales_line_items"]] == [
        "2011-01-01", "2011-01-30"]
    args = _args(manifest)
    assert args["--input"] == f"s3://{CURATED}/{key}"
    assert args["--input-etag"] == manifest["input"]["etag"]
    assert args["--partition"] == "2011-01-30" and "--encoding" not in args
    assert manifest["job"]["entry_point"].endswith("/spark_jobs/sales_trends/main.py")
    assert ledger.get(manifest["run_id"])["status"] == "RUNNING"  # type: ignore[index]


def test_the_same_inputs_again_are_a_duplicate_and_a_reload_is_a_new_run(
        tmp_path: Path, env: dict[str, str], objects: FakeS3Objects,
        ledger: FakeLedger) -> None:
    _loaded(ledger, "2011-01-30")
    resolver = _resolver(tmp_path, env, objects, ledger)
    first = resolver.resolve(_request(SCHEDULED))
    again = resolver.resolve(_request(SCHEDULED, "exec-2"))
    assert again["duplicate"] and again["run_id"] == first["run_id"]
    ledger.update(first["run_id"], {"status": "SUCCEEDED"})
    # The day is loaded again (a newer upload): its inputs changed, so a new run.
    _loaded(ledger, "2011-01-30", "online_retail-2011-01-30-ffffffffffff",
            started="2026-11-21T09:00:00Z")
    reloaded = resolver.resolve(_request(SCHEDULED, "exec-3"))
    assert not reloaded["duplicate"] and reloaded["run_id"] != first["run_id"]


def test_an_upstream_trigger_runs_its_day(tmp_path: Path, env: dict[str, str],
                                         objects: FakeS3Objects, ledger: FakeLedger) -> None:
    run_id = _loaded(ledger, "2011-01-04")
    event = {"source": "pipeline.upstream", "dataset": "sales_trends", "as_of": "2011-01-04",
             "upstream": {"dataset": "online_retail", "partition": "2011-01-04",
                          "run_id": run_id}}
    manifest = _resolver(tmp_path, env, objects, ledger).resolve(_request(event))
    assert manifest["trigger"] == "upstream" and manifest["partition"] == "2011-01-04"
    assert ledger.get(manifest["run_id"])["trigger"] == "upstream"  # type: ignore[index]
    wrong = {**event, "upstream": {**event["upstream"], "dataset": "web_logs"}}
    with pytest.raises(InvalidInput, match="does not read web_logs"):
        _resolver(tmp_path, env, objects, ledger).resolve(_request(wrong, "exec-9"))


def test_an_upstream_batch_runs_once_over_its_days(tmp_path: Path, env: dict[str, str],
                                                  objects: FakeS3Objects,
                                                  ledger: FakeLedger) -> None:
    """An upstream batch's one run (`from_day`): it reads the 29 days before its first day
    too, writes (and its load replaces) each day from `from_day` to as_of, and the same
    trigger again is a duplicate."""
    for day in ("2010-12-02", "2010-12-03", "2011-01-01", "2011-01-31"):
        _loaded(ledger, day)
    event = {"source": "pipeline.upstream", "dataset": "sales_trends", "as_of": "2011-01-31",
             "from_day": "2011-01-01",
             "upstream": {"dataset": "online_retail", "partition": "2011-01-01..2011-01-31",
                          "run_id": "online_retail-batch-0123456789ab"}}
    resolver = _resolver(tmp_path, env, objects, ledger)
    manifest = resolver.resolve(_request(event))
    run = RunManifest.model_validate(manifest)
    assert run.partition == "2011-01-31" and run.from_day == "2011-01-01"
    assert run.partitions[0].days[0] == "2011-01-01" and len(run.partitions[0].days) == 31
    assert _args(manifest)["--from-day"] == "2011-01-01"
    document = json.loads(objects.objects[(CURATED, manifest["input"]["key"])])
    assert [f["partition"] for f in document["tables"]["online_retail.sales_line_items"]] == [
        "2010-12-03", "2011-01-01", "2011-01-31"]
    assert ledger.get(manifest["run_id"])["from_day"] == "2011-01-01"  # type: ignore[index]
    single = resolver.resolve(_request({**event, "from_day": None}, "exec-2"))
    assert single["run_id"] != manifest["run_id"] and single["from_day"] is None
    assert resolver.resolve(_request(event, "exec-3"))["duplicate"]


def test_a_range_run_is_for_rows_per_day_datasets_only(
        tmp_path: Path, env: dict[str, str], objects: FakeS3Objects,
        ledger: FakeLedger) -> None:
    _loaded(ledger, "2011-01-31")
    cat = _catalog(tmp_path / "cat")
    doc = yaml.safe_load((cat / "sales_trends.yaml").read_text())
    doc["derived"]["rows_per_day"] = False
    (cat / "sales_trends.yaml").write_text(yaml.safe_dump(doc))
    resolver = RunResolver(settings=ResolveRunSettings.from_environ(env),
                           catalog=load_catalog(cat), objects=objects, ledger=ledger,
                           clock=lambda: NOW)
    event = {"source": "pipeline.upstream", "dataset": "sales_trends", "as_of": "2011-01-31",
             "from_day": "2011-01-01",
             "upstream": {"dataset": "online_retail", "partition": "2011-01-01..2011-01-31",
                          "run_id": "online_retail-batch-0123456789ab"}}
    with pytest.raises(InvalidInput, match="not rows per day"):
        resolver.resolve(_request(event))
    with pytest.raises(InvalidInput, match="from_day 2011-02-01 must be before as_of"):
        _request({**event, "from_day": "2011-02-01"})


def test_no_loaded_partition_is_refused_before_any_ledger_item(
        tmp_path: Path, env: dict[str, str], objects: FakeS3Objects,
        ledger: FakeLedger) -> None:
    _loaded(ledger, "2010-12-01")  # outside the 30 days
    with pytest.raises(InvalidInput, match="online_retail has no loaded partition from "
                       "2011-01-01 to 2011-01-30"):
        _resolver(tmp_path, env, objects, ledger).resolve(_request(SCHEDULED))
    assert [i for i in ledger.items.values() if i["dataset"] == "sales_trends"] == []
    assert not objects.objects


def test_a_manual_day_run_of_a_derived_dataset(tmp_path: Path, env: dict[str, str],
                                              objects: FakeS3Objects,
                                              ledger: FakeLedger) -> None:
    _loaded(ledger, "2011-01-10")
    manifest = _resolver(tmp_path, env, objects, ledger).resolve(
        _request({"dataset": "sales_trends", "date": "2011-01-10"}))
    assert manifest["trigger"] == "manual" and manifest["partition"] == "2011-01-10"


MODEL = {"metric": "silhouette", "tolerance": 0.05, "retrain_days": 7}


def test_a_model_dataset_gets_its_current_model_and_promotion_rule(
        tmp_path: Path, env: dict[str, str], objects: FakeS3Objects,
        ledger: FakeLedger) -> None:
    _loaded(ledger, "2011-01-30")
    path = f"s3://{CURATED}/models/sales_trends/sales_trends-2011-01-26-aaa/"
    ledger.put({"run_id": "sales_trends-2011-01-26-aaa", "dataset": "sales_trends",
                "partition": "2011-01-26", "status": "SUCCEEDED",
                "started_at": "2026-11-19T10:00:00Z",
                "model": {"promoted": True, "path": path, "trained_as_of": "2011-01-26"}})
    ledger.put({"run_id": "sales_trends-2011-01-27-bbb", "dataset": "sales_trends",
                "partition": "2011-01-27", "status": "SUCCEEDED",
                "started_at": "2026-11-20T10:00:00Z",
                "model": {"promoted": False, "path": "s3://x/not-promoted/",
                          "trained_as_of": "2011-01-27"}})
    manifest = _resolver(tmp_path, env, objects, ledger, MODEL).resolve(_request(SCHEDULED))
    args = _args(manifest)
    assert args["--current-model"] == path
    assert args["--train"] == "false"  # trained 4 days before as_of, retrain_days 7
    assert args["--model-root"] == f"s3://{CURATED}/models/sales_trends/"
    assert (args["--promotion-metric"], args["--promotion-direction"],
            args["--promotion-tolerance"]) == ("silhouette", "higher_is_better", "0.05")
