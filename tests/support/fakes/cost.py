"""In-memory versions of the readers only cost tracking uses (pipeline_aws.cost.adapters):
EMR Serverless job runs and applications, execution histories, the rate card override."""

from __future__ import annotations

import copy
from typing import Any

from pipeline_aws.cost.adapters import override_document
from pipeline_aws.cost.tracker import HistoryPort, RateCardOverridePort, ServerlessPort
from pipeline_core.errors import InvalidInput


class FakeServerless:
    """`job_runs[(application_id, job_run_id)]` = a GetJobRun `jobRun`; `architectures[app]`;
    `fail[operation]` = an exception that call raises."""

    def __init__(self) -> None:
        self.job_runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.architectures: dict[str, str] = {}
        self.fail: dict[str, Exception] = {}
        self.calls: list[str] = []

    def job_run(self, application_id: str, job_run_id: str) -> dict[str, Any]:
        self.calls.append("job_run")
        if "job_run" in self.fail:
            raise self.fail["job_run"]
        if (application_id, job_run_id) not in self.job_runs:
            raise InvalidInput(f"GetJobRun {application_id}/{job_run_id} failed "
                               "(ResourceNotFoundException): job run not found")
        return copy.deepcopy(self.job_runs[(application_id, job_run_id)])

    def architecture(self, application_id: str) -> str:
        self.calls.append("architecture")
        if application_id not in self.architectures:
            raise InvalidInput(f"GetApplication {application_id} failed "
                               "(ResourceNotFoundException): application not found")
        return self.architectures[application_id]


class FakeHistory:
    """`histories[execution_arn]` = its GetExecutionHistory events, oldest first."""

    def __init__(self) -> None:
        self.histories: dict[str, list[dict[str, Any]]] = {}

    def events(self, execution_arn: str) -> list[dict[str, Any]]:
        if execution_arn not in self.histories:
            raise InvalidInput(f"GetExecutionHistory {execution_arn} failed "
                               "(ExecutionDoesNotExist): execution not found")
        return copy.deepcopy(self.histories[execution_arn])


class FakeRateCardOverride:
    """The SSM parameter's value (None: the parameter does not exist)."""

    def __init__(self, name: str, value: str | None):
        self.name = name
        self.value = value

    def load(self) -> dict[str, Any]:
        if self.value is None:
            raise InvalidInput(f"GetParameter {self.name} failed (ParameterNotFound): ")
        return override_document(self.name, self.value)


def _conforms(serverless: FakeServerless, history: FakeHistory, override: FakeRateCardOverride
              ) -> tuple[ServerlessPort, HistoryPort, RateCardOverridePort]:
    return serverless, history, override  # mypy: the fakes implement the ports
