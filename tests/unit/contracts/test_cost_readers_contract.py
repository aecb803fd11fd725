"""The cost readers' contract: FakeServerless / FakeHistory / FakeRateCardOverride and
EmrServerlessReader / ExecutionHistoryReader / SsmRateCardOverride on moto."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

import pytest

from pipeline_aws.cost.adapters import (
    EmrServerlessReader,
    ExecutionHistoryReader,
    SsmRateCardOverride,
)
from pipeline_aws.cost.tracker import HistoryPort, RateCardOverridePort, ServerlessPort
from pipeline_core.errors import ConfigurationError, InvalidInput
from tests.support.aws import ACCOUNT, APP, STATE_MACHINE, execution_arn
from tests.support.fakes.cost import FakeHistory, FakeRateCardOverride, FakeServerless
from tests.unit.contracts.conftest import NOW, SIDES, client, fake_or_real
from tests.unit.contracts.moto_emr import MotoEmr

PARAMETER = "/emr-pipelines/dev/rate-card"


class Readers(Protocol):
    serverless: ServerlessPort
    history: HistoryPort

    def job_run(self, state: str) -> tuple[str, str]: ...
    def execution(self) -> str: ...
    def override(self, value: str | None) -> RateCardOverridePort: ...


class FakeReaders:
    def __init__(self) -> None:
        self.serverless = self._serverless = FakeServerless()
        self.history = self._history = FakeHistory()

    def job_run(self, state: str) -> tuple[str, str]:
        app, job = "00fakeapp0000001", f"00fakerun{len(self._serverless.job_runs):07d}"
        self._serverless.architectures[app] = "X86_64"  # EMR's default architecture
        self._serverless.job_runs[(app, job)] = {"applicationId": app, "jobRunId": job,
                                                 "state": state}
        return app, job

    def execution(self) -> str:
        arn = execution_arn("e-1")
        self._history.histories[arn] = [
            {"id": 1, "type": "ExecutionStarted", "timestamp": NOW},
            {"id": 2, "previousEventId": 1, "type": "PassStateEntered", "timestamp": NOW}]
        return arn

    def override(self, value: str | None) -> RateCardOverridePort:
        return FakeRateCardOverride(PARAMETER, value)


class MotoReaders:
    def __init__(self) -> None:
        self._emr = MotoEmr.create(client("emr"),
                                   client("emr-serverless"))
        self._sfn = client("stepfunctions")
        self._ssm = client("ssm")
        self.serverless = EmrServerlessReader(self._emr.serverless)
        self.history = ExecutionHistoryReader(self._sfn)

    def job_run(self, state: str) -> tuple[str, str]:
        return self._emr.application_id, self._emr.job_run({"pipeline:app": APP}, state)

    def execution(self) -> str:
        machine = self._sfn.create_state_machine(
            name=STATE_MACHINE, roleArn=f"arn:aws:iam::{ACCOUNT}:role/{APP}-states",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass",
                                                                     "End": True}}}))
        arn: str = self._sfn.start_execution(stateMachineArn=machine["stateMachineArn"],
                                             name="e-1")["executionArn"]
        return arn

    def override(self, value: str | None) -> RateCardOverridePort:
        if value is not None:
            self._ssm.put_parameter(Name=PARAMETER, Type="String", Value=value)
        return SsmRateCardOverride(self._ssm, PARAMETER)


@pytest.fixture(params=SIDES)
def readers(request: pytest.FixtureRequest) -> Readers:
    return fake_or_real(request, FakeReaders, MotoReaders)


def test_a_job_run_is_read_with_its_ids_and_state(readers: Readers) -> None:
    app, job = readers.job_run("SUCCESS")
    run = readers.serverless.job_run(app, job)
    assert (run["applicationId"], run["jobRunId"], run["state"]) == (app, job, "SUCCESS")
    with pytest.raises(InvalidInput, match="ResourceNotFoundException"):
        readers.serverless.job_run(app, "00nosuchrun00000")


def test_an_application_without_an_architecture_runs_x86(readers: Readers) -> None:
    app, _ = readers.job_run("SUCCESS")
    assert readers.serverless.architecture(app) == "X86_64"
    with pytest.raises(InvalidInput, match="ResourceNotFoundException"):
        readers.serverless.architecture("00nosuchapp00000")


def test_the_history_is_every_event_in_order(readers: Readers) -> None:
    events: list[dict[str, Any]] = readers.history.events(readers.execution())
    assert events[0]["type"] == "ExecutionStarted"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(isinstance(e["timestamp"], datetime) for e in events)
    with pytest.raises(InvalidInput, match="ExecutionDoesNotExist"):
        readers.history.events(execution_arn("no-such-execution"))


def test_the_override_is_a_json_object(readers: Readers) -> None:
    assert readers.override('{"regions": {}}').load() == {"regions": {}}


def test_a_missing_override_is_invalid_input(readers: Readers) -> None:
    with pytest.raises(InvalidInput, match="ParameterNotFound"):
        readers.override(None).load()


@pytest.mark.parametrize("value", ["{not json", "[1, 2]"])
def test_a_malformed_override_is_a_configuration_error(readers: Readers, value: str) -> None:
    with pytest.raises(ConfigurationError, match=PARAMETER):
        readers.override(value).load()
