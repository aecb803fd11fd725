"""AWS adapters that only cost tracking uses; every call goes through `pipeline_aws.aws_call`,
so ClientErrors become the pipeline's domain errors the same way as everywhere else.

TransientError (throttling, 5xx) escapes so the state machine's Retry handles it; the tracker
turns the others into errors in the cost record, so one unreadable source never loses the rest.
The ledger (RunLedger), the clusters (pipeline_aws.emr.EmrClusters) and the alerts
(AlertPublisher) are the shared adapters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline_aws import aws_call, aws_pages
from pipeline_core.errors import ConfigurationError, InvalidInput, PipelineError

# A job run, execution or parameter that does not exist (or an id the API refuses): the
# request named something that is not there.
NOT_FOUND: Mapping[str, type[PipelineError]] = dict.fromkeys((
    "ResourceNotFoundException", "ExecutionDoesNotExist", "ParameterNotFound",
    "InvalidRequestException", "ValidationException", "InvalidArn",
), InvalidInput)


class EmrServerlessReader:
    """emr-serverless:GetJobRun and GetApplication."""

    def __init__(self, client: Any):
        self._client = client

    def job_run(self, application_id: str, job_run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = aws_call(
            f"GetJobRun {application_id}/{job_run_id}", self._client.get_job_run,
            codes=NOT_FOUND, applicationId=application_id, jobRunId=job_run_id)["jobRun"]
        return run

    def architecture(self, application_id: str) -> str:
        app = aws_call(f"GetApplication {application_id}", self._client.get_application,
                       codes=NOT_FOUND, applicationId=application_id)["application"]
        return str(app.get("architecture", "X86_64"))  # the API's documented default


class ExecutionHistoryReader:
    """states:GetExecutionHistory of one execution, every page, without state data."""

    def __init__(self, client: Any):
        self._client = client

    def events(self, execution_arn: str) -> list[dict[str, Any]]:
        return list(aws_pages(f"GetExecutionHistory {execution_arn}",
                              self._client.get_execution_history, "events", "nextToken",
                              codes=NOT_FOUND, executionArn=execution_arn,
                              includeExecutionData=False))


def override_document(name: str, value: str) -> dict[str, Any]:
    """The rate card override in parameter `name`: a JSON object, else a ConfigurationError."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError as e:
        raise ConfigurationError(f"SSM parameter {name} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigurationError(f"SSM parameter {name} must hold a JSON object")
    return data


class SsmRateCardOverride:
    """The rate card override: a JSON document in the SSM parameter RATE_CARD_PARAMETER."""

    def __init__(self, client: Any, name: str):
        self._client = client
        self.name = name

    def load(self) -> dict[str, Any]:
        value = aws_call(f"GetParameter {self.name}", self._client.get_parameter,
                         codes=NOT_FOUND, Name=self.name,
                         WithDecryption=True)["Parameter"]["Value"]
        return override_document(self.name, value)


class EmfCostMetrics:
    """RunCostUSD, VCpuHours, MemoryGBHours in EMF; dimensions stay low-cardinality (dataset,
    compute, and the environment, the Metrics' default dimension)."""

    def __init__(self, metrics: Any):
        self._metrics = metrics

    def publish(self, *, dataset: str, compute: str, run_id: str, total_usd: float,
                vcpu_hours: float, memory_gb_hours: float) -> None:
        m = self._metrics
        m.add_dimension(name="dataset", value=dataset)
        m.add_dimension(name="compute", value=compute)
        m.add_metadata(key="run_id", value=run_id)
        m.add_metric(name="RunCostUSD", unit="None", value=total_usd)
        m.add_metric(name="VCpuHours", unit="None", value=vcpu_hours)
        m.add_metric(name="MemoryGBHours", unit="None", value=memory_gb_hours)
