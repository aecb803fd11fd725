"""TriggerDerived (pipeline_aws.derived_trigger): a pipeline execution that loaded upstream
partitions starts, per derived dataset waiting for that upstream, one execution per loaded
partition, named deterministically so that the same load delivered twice starts one."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pipeline_aws.contracts import ExecutionSucceeded
from pipeline_aws.derived_trigger import DerivedTrigger
from pipeline_core.catalog import load_catalog
from pipeline_core.derived import upstream_execution_name
from pipeline_core.errors import InvalidInput
from tests.support.aws import read_event

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:emr-pipelines-dev-pipeline"
RUN_ID = "online_retail-2010-12-01-3f2a9c1b7d10"


class FakeExecutions:
    """Step Functions' executions by name: a second StartExecution of a name is refused."""

    def __init__(self, outputs: dict[str, str] | None = None):
        self.started: dict[str, dict[str, Any]] = {}
        self.outputs = outputs or {}

    def output(self, execution_arn: str) -> str | None:
        return self.outputs.get(execution_arn)

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
        assert state_machine_arn == MACHINE
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


def _handle(event: dict[str, Any], executions: FakeExecutions) -> dict[str, Any]:
    trigger = DerivedTrigger(load_catalog(), executions, MACHINE)
    return trigger.handle(ExecutionSucceeded.parse(event))


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
