"""TrackCost / TrackCostOnFailure: what the run cost, at the end of every run.

Returns `{"total_usd", "components", "errors"}` at `$.cost`; the full record (usage, waste,
budget status) goes to the run's ledger item.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws.cost.adapters import (
    EmfCostMetrics,
    EmrClusterReader,
    EmrServerlessReader,
    ExecutionHistoryReader,
    LedgerCost,
    SnsAlerts,
    SsmRateCardOverride,
)
from pipeline_aws.cost.tracker import CostTracker, Settings, catalog_cost_limits, parse_request

settings = Settings.from_environ()
logger = Logger()
tracer = Tracer()
metrics = Metrics()

tracker = CostTracker(
    settings=settings,
    serverless=EmrServerlessReader(boto3.client("emr-serverless")),
    clusters=EmrClusterReader(boto3.client("emr")),
    history=ExecutionHistoryReader(boto3.client("stepfunctions")),
    ledger=LedgerCost(boto3.resource("dynamodb").Table(settings.ledger_table)),
    alerts=SnsAlerts(boto3.client("sns"), settings.alert_topic_arn),
    metrics=EmfCostMetrics(metrics),
    cost_limits=catalog_cost_limits(settings.catalog_dir),
    override=(SsmRateCardOverride(boto3.client("ssm"), settings.rate_card_parameter)
              if settings.rate_card_parameter else None),
)


@logger.inject_lambda_context(correlation_id_path="execution.Id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return tracker.track(parse_request(event))
