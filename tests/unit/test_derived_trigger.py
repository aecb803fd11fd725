"""TriggerDerived (pipeline_aws.derived_trigger): a pipeline execution that loaded upstream
partitions starts, per derived dataset waiting for that upstream, ONE execution covering them
(a batch of 31 days is one sales_trends run writing the 31 days, not 31 runs), named
deterministically so that the same loads delivered twice start one."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from pipeline_aws.contracts import ExecutionSucceeded
from pipeline_aws.derived_trigger import DerivedTrigger
from pipeline_core.catalog import Catalog, load_catalog
from pipeline_core.derived import MAX_RANGE_DAYS, upstream_execution_name
from pipeline_core.errors import InvalidInput
from tests.support.aws import read_event

RUN_ID = "online_retail-2010-12-01-3f2a9c1b7d10"


class FakeExecutions:
    """Step Functions' executions by name: a second StartExecution of a name is refused."""

    def __init__(self, outputs: dict[str, str] | None = None):
        self.started: dict[str, dict[str, Any]] = {}
        self.outputs = outputs or {}

    def output(self, execution_arn: str) -> str | None:
        return self.outputs.get(execution_arn)

    def start(self, name: str, payload: dict[str, Any]) -> str:
        if name in self.started:
            return "exists"
        self.started[name] = payload
        return "started"


def _event(mutate: Any = None) -> dict[str, Any]:
    event = read_event("trigger_derived", "succeeded.json")
    if mutate:
        output = json.loads(event["detail"]["output"])
        mutate(output)
        event["detail"]["output"] = json.dumps(output)
    return event


def _handle(event: dict[str, Any], executions: FakeExecutions,
            catalog: Catalog | None = None) -> dict[str, Any]:
    trigger = DerivedTrigger(catalog or load_catalog(), executions)
    return trigger.handle(ExecutionSucceeded.parse(event))


BATCH_RUN_ID = "online_retail-batch-0123456789ab"


def _part_run_id(day: str) -> str:
    return f"online_retail-{day}-{day.replace('-', '')}0000"


def _batch(days: list[str], failed: tuple[str, ...] = ()) -> Any:
    """Turns the event's run into a batch execution over `days`, the gate failing `failed`."""
    def mutate(output: dict[str, Any]) -> None:
        run = output["run"]
        template = {k: run[k] for k in ("input", "outputs", "quarantine_uri", "metrics_uri",
                                        "quality_uri")}
        run["partitions"] = [{**template, "run_id": _part_run_id(d), "partition": d}
                             for d in days]
        run.update(run_id=BATCH_RUN_ID, partition=f"{days[0]}..{days[-1]}", trigger="batch",
                   batch_id="b1", input=None, outputs={}, quarantine_uri=None,
                   metrics_uri=None, quality_uri=None)
        output["quality"] = {"verdict": "warn" if failed else "pass", "partitions": {
            d: {"run_id": _part_run_id(d), "verdict": "fail" if d in failed else "pass"}
            for d in days}}
    return mutate


def _days(first: str, count: int) -> list[str]:
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def _with_ml_after_loads(catalog: Catalog) -> Catalog:
    """The catalog with customer_value also started by online_retail's loads (a snapshot
    dataset: not rows_per_day)."""
    value = catalog.get("customer_value")
    derived = dataclasses.replace(value.derived, after_upstream_loads=True)  # type: ignore[arg-type]
    datasets = {**catalog.datasets, "customer_value": dataclasses.replace(value, derived=derived)}
    return dataclasses.replace(catalog, datasets=datasets)


def test_a_loaded_day_starts_its_derived_run_once() -> None:
    executions = FakeExecutions()
    first = _handle(_event(), executions)
    name = upstream_execution_name("sales_trends", "2010-12-01", RUN_ID)
    assert first["started"] == [{"name": name, "dataset": "sales_trends",
                                 "as_of": "2010-12-01", "result": "started"}]
    assert executions.started[name] == {
        "source": "pipeline.upstream", "dataset": "sales_trends", "as_of": "2010-12-01",
        "upstream": {"dataset": "online_retail", "partition": "2010-12-01", "run_id": RUN_ID}}
    again = _handle(_event(), executions)  # EventBridge delivered the event twice
    assert [s["result"] for s in again["started"]] == ["exists"]
    assert len(executions.started) == 1


def test_a_duplicate_or_a_failed_partition_starts_nothing() -> None:
    def duplicate(output: dict[str, Any]) -> None:
        output["run"]["duplicate"] = True

    def failed(output: dict[str, Any]) -> None:
        output["quality"]["partitions"]["2010-12-01"]["verdict"] = "fail"

    for mutate in (duplicate, failed):
        executions = FakeExecutions()
        assert _handle(_event(mutate), executions)["started"] == []


def test_a_dataset_nobody_waits_for_starts_nothing() -> None:
    def web_logs(output: dict[str, Any]) -> None:
        output["run"]["dataset"] = "web_logs"

    assert _handle(_event(web_logs), FakeExecutions())["started"] == []


def test_the_output_is_read_when_the_event_did_not_carry_it() -> None:
    event = _event()
    arn = event["detail"]["executionArn"]
    executions = FakeExecutions({arn: event["detail"].pop("output")})
    event["detail"]["outputDetails"] = {"included": False}
    assert len(_handle(event, executions)["started"]) == 1


def test_an_ignored_event_or_a_bad_output() -> None:
    event = _event()
    event["detail"]["output"] = json.dumps({"ignored": True, "reason": "folder marker"})
    assert _handle(event, FakeExecutions())["started"] == []
    bad = copy.deepcopy(event)
    bad["detail"]["output"] = "not json"
    with pytest.raises(InvalidInput, match="its output is not JSON"):
        _handle(bad, FakeExecutions())


def test_a_batch_starts_one_run_per_derived_dataset_covering_its_loaded_days() -> None:
    """A 31-day backfill batch (one day failed the gate): sales_trends (rows_per_day) gets one
    run from the first loaded day to the last; customer_value (a snapshot) one run as of the
    newest day. A redelivered event starts nothing."""
    days = _days("2011-01-01", 31)
    executions = FakeExecutions()
    catalog = _with_ml_after_loads(load_catalog())
    answer = _handle(_event(_batch(days, failed=("2011-01-31",))), executions, catalog)
    loaded_ids = [_part_run_id(d) for d in days[:-1]]
    trends = upstream_execution_name("sales_trends", "2011-01-30", loaded_ids)
    value = upstream_execution_name("customer_value", "2011-01-30", loaded_ids)
    assert answer["started"] == [
        {"name": value, "dataset": "customer_value", "as_of": "2011-01-30",
         "result": "started"},
        {"name": trends, "dataset": "sales_trends", "as_of": "2011-01-30",
         "from_day": "2011-01-01", "result": "started"}]
    upstream = {"dataset": "online_retail", "partition": "2011-01-01..2011-01-30",
                "run_id": BATCH_RUN_ID}
    assert executions.started == {
        trends: {"source": "pipeline.upstream", "dataset": "sales_trends",
                 "as_of": "2011-01-30", "from_day": "2011-01-01", "upstream": upstream},
        value: {"source": "pipeline.upstream", "dataset": "customer_value",
                "as_of": "2011-01-30", "upstream": upstream}}
    again = _handle(_event(_batch(days, failed=("2011-01-31",))), executions, catalog)
    assert [s["result"] for s in again["started"]] == ["exists", "exists"]
    assert len(executions.started) == 2


def test_a_batch_with_one_loaded_day_starts_that_days_single_run() -> None:
    """The single-day behaviour holds when a batch loaded one day: the same name and input as
    that day's own execution would start."""
    executions = FakeExecutions()
    _handle(_event(_batch(["2011-01-01", "2011-01-02"], failed=("2011-01-02",))), executions)
    name = upstream_execution_name("sales_trends", "2011-01-01", _part_run_id("2011-01-01"))
    assert executions.started == {name: {
        "source": "pipeline.upstream", "dataset": "sales_trends", "as_of": "2011-01-01",
        "upstream": {"dataset": "online_retail", "partition": "2011-01-01",
                     "run_id": _part_run_id("2011-01-01")}}}


def test_loaded_days_spanning_more_than_a_run_may_write_start_one_run_per_span() -> None:
    """A run writes at most MAX_RANGE_DAYS days (its load names each): days further apart
    start one run per span, each from its first day."""
    days = ["2010-01-01", "2010-06-01", "2011-01-01", "2011-01-02", "2011-01-05"]
    assert MAX_RANGE_DAYS == 366  # 2010-01-01 to 2011-01-01 are 366 days, to 01-02 367
    answer = _handle(_event(_batch(days)), FakeExecutions())
    assert [(s.get("from_day"), s["as_of"]) for s in answer["started"]] == [
        ("2010-01-01", "2011-01-01"), ("2011-01-02", "2011-01-05")]
