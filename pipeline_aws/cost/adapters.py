"""AWS adapters for cost tracking: each turns ClientError codes into the pipeline's domain errors.

TransientError (throttling, 5xx) escapes so the state machine's Retry handles it; the tracker
turns the others into errors in the cost record, so one unreadable source never loses the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from pipeline_core.errors import ConfigurationError, InvalidInput, TransientError

_TRANSIENT = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "ProvisionedThroughputExceededException", "RequestTimeout",
    "InternalError", "InternalFailure", "InternalServerError", "InternalServerException",
    "ServiceUnavailable", "ServiceUnavailableException", "TransactionConflictException",
})
_NOT_FOUND = frozenset({
    "ResourceNotFoundException", "ExecutionDoesNotExist", "ParameterNotFound",
    "InvalidRequestException", "ValidationException", "InvalidArn",
})


def translate(what: str, error: ClientError) -> Exception:
    """The domain exception for a ClientError (TransientError, InvalidInput, ConfigurationError)."""
    err = error.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = f"{what} failed ({code}): {err.get('Message', '') or error}"
    if code in _TRANSIENT or (isinstance(status, int) and status >= 500):
        return TransientError(message)
    if code in _NOT_FOUND:
        return InvalidInput(message)
    return ConfigurationError(message)


def _call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except ClientError as e:
        raise translate(what, e) from e


def _paginate(what: str, client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    try:
        for page in client.get_paginator(operation).paginate(**kwargs):
            items.extend(page.get(key, []))
    except ClientError as e:
        raise translate(what, e) from e
    return items


class EmrServerlessReader:
    """emr-serverless:GetJobRun and GetApplication."""

    def __init__(self, client: Any):
        self._client = client

    def job_run(self, application_id: str, job_run_id: str) -> dict[str, Any]:
        return _call(f"GetJobRun {application_id}/{job_run_id}", self._client.get_job_run,
                     applicationId=application_id, jobRunId=job_run_id)["jobRun"]

    def architecture(self, application_id: str) -> str:
        app = _call(f"GetApplication {application_id}", self._client.get_application,
                    applicationId=application_id)["application"]
        return str(app.get("architecture", "X86_64"))  # the API's documented default


class EmrClusterReader:
    """elasticmapreduce:DescribeCluster, ListInstanceGroups|ListInstanceFleets, ListInstances."""

    def __init__(self, client: Any):
        self._client = client

    def collection_type(self, cluster_id: str) -> str:
        cluster = _call(f"DescribeCluster {cluster_id}", self._client.describe_cluster,
                        ClusterId=cluster_id)["Cluster"]
        return str(cluster.get("InstanceCollectionType", "INSTANCE_GROUP"))

    def instance_groups(self, cluster_id: str) -> list[dict[str, Any]]:
        return _paginate(f"ListInstanceGroups {cluster_id}", self._client, "list_instance_groups",
                         "InstanceGroups", ClusterId=cluster_id)

    def instance_fleets(self, cluster_id: str) -> list[dict[str, Any]]:
        return _paginate(f"ListInstanceFleets {cluster_id}", self._client, "list_instance_fleets",
                         "InstanceFleets", ClusterId=cluster_id)

    def instances(self, cluster_id: str) -> list[dict[str, Any]]:
        return _paginate(f"ListInstances {cluster_id}", self._client, "list_instances",
                         "Instances", ClusterId=cluster_id)


class ExecutionHistoryReader:
    """states:GetExecutionHistory of one execution, every page, without state data."""

    def __init__(self, client: Any):
        self._client = client

    def events(self, execution_arn: str) -> list[dict[str, Any]]:
        return _paginate(f"GetExecutionHistory {execution_arn}", self._client,
                         "get_execution_history", "events", executionArn=execution_arn,
                         includeExecutionData=False)


class SsmRateCardOverride:
    """The rate card override: a JSON document in the SSM parameter RATE_CARD_PARAMETER."""

    def __init__(self, client: Any, name: str):
        self._client = client
        self.name = name

    def load(self) -> dict[str, Any]:
        value = _call(f"GetParameter {self.name}", self._client.get_parameter,
                      Name=self.name, WithDecryption=True)["Parameter"]["Value"]
        try:
            data = json.loads(value)
        except json.JSONDecodeError as e:
            raise ConfigurationError(f"SSM parameter {self.name} is not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise ConfigurationError(f"SSM parameter {self.name} must hold a JSON object")
        return data


def to_dynamo(value: Any) -> Any:
    """Floats -> Decimal via str (the shortest repr, stored exactly), recursively."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


class LedgerCost:
    """The run ledger: writes a run's cost, reads what the dataset's runs cost this month."""

    INDEX = "by_dataset"

    def __init__(self, table: Any):
        self._table = table

    def record(self, run_id: str, cost: Mapping[str, Any], state_durations: Mapping[str, float],
               ended_at: str, execution_arn: str, updated_at: str) -> None:
        """UpdateItem on the cost attributes only; ended_at is kept when a writer set it first.

        Not conditional: when ResolveRun failed there is no item yet and the orchestration cost
        is still worth keeping (the item is then keyed by the execution name).
        """
        _call(f"recording the cost of run {run_id}", self._table.update_item,
              Key={"run_id": run_id},
              UpdateExpression=("SET #c = :c, state_durations = :d, updated_at = :u, "
                                "ended_at = if_not_exists(ended_at, :e), "
                                "execution_arn = if_not_exists(execution_arn, :x)"),
              ExpressionAttributeNames={"#c": "cost"},
              ExpressionAttributeValues={":c": to_dynamo(cost), ":d": to_dynamo(state_durations),
                                         ":u": updated_at, ":e": ended_at, ":x": execution_arn})

    def month_total(self, dataset: str, since: str, exclude_run_id: str) -> float:
        """Sum of cost.total_usd of the dataset's runs started at or after `since` (ISO)."""
        kwargs: dict[str, Any] = {
            "IndexName": self.INDEX,
            "KeyConditionExpression": "#d = :d AND started_at >= :s",
            "ExpressionAttributeNames": {"#d": "dataset", "#r": "run_id", "#c": "cost"},
            "ExpressionAttributeValues": {":d": dataset, ":s": since},
            "ProjectionExpression": "#r, #c.total_usd",
        }
        total = Decimal(0)
        while True:
            page = _call(f"summing this month's cost of {dataset}", self._table.query, **kwargs)
            for item in page.get("Items", []):
                if item.get("run_id") == exclude_run_id:
                    continue
                value = (item.get("cost") or {}).get("total_usd")
                if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
                    total += Decimal(str(value))
            if "LastEvaluatedKey" not in page:
                return float(total)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class SnsAlerts:
    """Budget alerts on the alert topic."""

    def __init__(self, client: Any, topic_arn: str):
        self._client = client
        self._topic_arn = topic_arn

    def publish(self, subject: str, message: str, attributes: Mapping[str, str]) -> None:
        _call(f"publishing a budget alert to {self._topic_arn}", self._client.publish,
              TopicArn=self._topic_arn, Subject=subject[:100], Message=message,
              MessageAttributes={k: {"DataType": "String", "StringValue": v}
                                 for k, v in attributes.items()})


class EmfCostMetrics:
    """RunCostUSD, VCpuHours, MemoryGBHours in EMF; dimensions stay low-cardinality."""

    def __init__(self, metrics: Any):
        self._metrics = metrics

    def publish(self, *, dataset: str, compute: str, environment: str, run_id: str,
                total_usd: float, vcpu_hours: float, memory_gb_hours: float) -> None:
        m = self._metrics
        m.add_dimension(name="dataset", value=dataset)
        m.add_dimension(name="compute", value=compute)
        m.add_dimension(name="environment", value=environment)
        m.add_metadata(key="run_id", value=run_id)
        m.add_metric(name="RunCostUSD", unit="None", value=total_usd)
        m.add_metric(name="VCpuHours", unit="None", value=vcpu_hours)
        m.add_metric(name="MemoryGBHours", unit="None", value=memory_gb_hours)
