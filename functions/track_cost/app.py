"""TrackCost / TrackCostOnFailure: what the run cost, at the end of every run.

Returns `{"total_usd", "components", "errors"}` at `$.cost`; the full record (usage, waste,
budget status) goes to the run's ledger item.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.alerts import AlertPublisher
from pipeline_aws.contracts import TrackCostRequest
from pipeline_aws.cost.adapters import (
    EmfCostMetrics,
    EmrServerlessReader,
    ExecutionHistoryReader,
    SsmRateCardOverride,
)
from pipeline_aws.cost.tracker import CostTracker, catalog_cost_limits
from pipeline_aws.emr import EmrClusters
from pipeline_aws.ledger import RunLedger
from pipeline_aws.observability import build_observability
from pipeline_aws.settings import TrackCostSettings

settings = TrackCostSettings.from_environ()
obs = build_observability("track_cost", settings.environment, correlation_id_path="execution.Id")
tracker = CostTracker(
    settings=settings,
    serverless=EmrServerlessReader(clients.client("emr-serverless")),
    clusters=EmrClusters(clients.client("emr")),
    history=ExecutionHistoryReader(clients.client("stepfunctions")),
    ledger=RunLedger(clients.table(settings.ledger_table)),
    alerts=AlertPublisher(clients.client("sns"), settings.alert_topic_arn),
    metrics=EmfCostMetrics(obs.metrics),
    cost_limits=catalog_cost_limits(settings.catalog_dir),
    override=(SsmRateCardOverride(clients.client("ssm"), settings.rate_card_parameter)
              if settings.rate_card_parameter else None),
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return tracker.track(TrackCostRequest.parse(event))
