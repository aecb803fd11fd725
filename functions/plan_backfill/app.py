"""PlanBackfill: the backfill state machine's plan, batch and summary (pipeline_aws.backfill)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.backfill import Backfill, PlanBackfillSettings, parse_request
from pipeline_aws.backfill_aws import S3JsonStore, S3RawLister, SfnExecutions
from pipeline_aws.lazy import lazy_catalog
from pipeline_aws.ledger import RunLedger
from pipeline_aws.observability import build_observability

settings = PlanBackfillSettings.from_environ()
obs = build_observability("plan_backfill", settings.environment)
s3 = clients.client("s3")
backfill = Backfill(
    catalog=lazy_catalog(settings.catalog_dir).get,
    lister=S3RawLister(s3),
    store=S3JsonStore(s3),
    ledger=RunLedger(clients.table(settings.ledger_table)),
    executions=SfnExecutions(clients.client("stepfunctions")),
    raw_bucket=settings.raw_bucket,
    curated_bucket=settings.curated_bucket,
    pipeline_arn=settings.pipeline_state_machine_arn,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return backfill.handle(parse_request(event))
