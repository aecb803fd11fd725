"""The load statement's owner: StartLoad submits the run's load (`$.load`), DescribeLoad
describes it (`$.load_status`), CancelLoad cancels it (`$.load_cancel`); `operation` says which.

One function for all three because the Data API lets only the identity that submitted a
statement describe or cancel it.
"""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws.contracts import LoadStatementRequest
from pipeline_aws.load import LoadStatement
from pipeline_aws.observability import build_observability
from pipeline_aws.redshift import RedshiftData
from pipeline_aws.settings import StartLoadSettings
from pipeline_core.catalog import load_catalog
from pipeline_core.load_sql import load_migrations

settings = StartLoadSettings.from_environ()
obs = build_observability("load_statement", settings.environment)
redshift_client = boto3.client("redshift-data")
load_statement = LoadStatement(
    catalog=lambda: load_catalog(settings.catalog_dir),
    redshift=RedshiftData(redshift_client, settings.connection_kwargs()),
    migrations=lambda: load_migrations(settings.migrations_dir),
    copy_role_arn=settings.redshift_copy_role_arn,
    logger=obs.logger,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return load_statement.handle(LoadStatementRequest.parse(event))
