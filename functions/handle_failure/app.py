"""HandleFailure: stop what the run started on EMR, ledger FAILED, alert; `$.failure_summary`."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.alerts import AlertPublisher
from pipeline_aws.contracts import HandleFailureRequest
from pipeline_aws.failure import FailureHandler, default_cleaner
from pipeline_aws.lazy import lazy_catalog
from pipeline_aws.ledger import RunLedger
from pipeline_aws.observability import build_observability
from pipeline_aws.settings import HandleFailureSettings

settings = HandleFailureSettings.from_environ()
obs = build_observability("handle_failure", settings.environment)
handler = FailureHandler(
    settings=settings,
    ledger=RunLedger(clients.table(settings.ledger_table)),
    alerts=AlertPublisher(clients.client("sns"), settings.alert_topic_arn),
    cleaner=default_cleaner(settings),
    catalog=lazy_catalog(settings.catalog_dir).get,
    logger=obs.logger,
    metrics=obs.metrics,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handler.handle(HandleFailureRequest.parse(event))
