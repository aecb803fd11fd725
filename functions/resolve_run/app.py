"""ResolveRun: trigger event -> run manifest at `$.run` (see docs/architecture.md)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.contracts import ResolveRunRequest
from pipeline_aws.lazy import lazy_catalog
from pipeline_aws.ledger import RunLedger
from pipeline_aws.observability import build_observability
from pipeline_aws.resolve import RunResolver
from pipeline_aws.s3_objects import S3Objects
from pipeline_aws.settings import ResolveRunSettings

settings = ResolveRunSettings.from_environ()
obs = build_observability("resolve_run", settings.environment)
resolver = RunResolver(
    settings=settings,
    catalog=lazy_catalog(settings.catalog_dir).get,
    objects=S3Objects(clients.client("s3")),
    ledger=RunLedger(clients.table(settings.ledger_table)),
    logger=obs.logger,
    metrics=obs.metrics,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolver.resolve(ResolveRunRequest.parse(event))
