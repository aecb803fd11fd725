"""EvaluateQuality: the data-quality gate between the Spark job and the load; result at
`$.quality`. The QualityGate Choice stops the load on "fail", with the summary as the cause."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.alerts import AlertPublisher
from pipeline_aws.contracts import EvaluateQualityRequest
from pipeline_aws.ledger import RunLedger
from pipeline_aws.observability import build_observability
from pipeline_aws.quality.adapters import EmfQualityMetrics, S3JsonReader, catalog_quality
from pipeline_aws.quality.gate import QualityGate
from pipeline_aws.quality.rules import DqdlRuleEngine
from pipeline_aws.settings import EvaluateQualitySettings

settings = EvaluateQualitySettings.from_environ()
obs = build_observability("evaluate_quality", settings.environment)
gate = QualityGate(
    reader=S3JsonReader(clients.client("s3")),
    ledger=RunLedger(clients.table(settings.ledger_table)),
    alerts=AlertPublisher(clients.client("sns"), settings.alert_topic_arn),
    metrics=EmfQualityMetrics(obs.metrics, settings.environment),
    engine=DqdlRuleEngine(),
    catalog_quality=catalog_quality(settings.catalog_dir),
    environment=settings.environment,
    logger=obs.logger,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return gate.evaluate(EvaluateQualityRequest.parse(event))
