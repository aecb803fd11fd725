"""StartLoad: apply pending migrations and submit this run's load; result at `$.load`."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws.contracts import StartLoadRequest
from pipeline_aws.load import LoadStarter
from pipeline_aws.observability import build_observability
from pipeline_aws.redshift import RedshiftData
from pipeline_aws.settings import StartLoadSettings
from pipeline_core.catalog import load_catalog
from pipeline_core.load_sql import load_migrations

settings = StartLoadSettings.from_environ()
obs = build_observability("start_load", settings.environment)
redshift_client = boto3.client("redshift-data")
starter = LoadStarter(
    catalog=lambda: load_catalog(settings.catalog_dir),
    redshift=RedshiftData(redshift_client, settings.connection_kwargs()),
    migrations=lambda: load_migrations(settings.migrations_dir),
    copy_role_arn=settings.redshift_copy_role_arn,
    logger=obs.logger,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return starter.start(StartLoadRequest.parse(event))
