"""The load statement's owner: StartLoad submits the run's load (`$.load`), AwaitLoad keeps its
task token and waits (`$.load_status`, sent by this function when the statement ends),
DescribeLoad describes it after a wait that ran out (`$.load_status`), CancelLoad cancels it
(`$.load_cancel`); `operation` says which. The statement's completion event (EventBridge,
source aws.redshift-data) reaches the same function, which ends AwaitLoad's task.

One function for all of them because the Data API lets only the identity that submitted a
statement describe or cancel it.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.lazy import lazy_catalog, lazy_migrations
from pipeline_aws.ledger import RunLedger
from pipeline_aws.load import LoadStatement
from pipeline_aws.observability import build_observability
from pipeline_aws.redshift import RedshiftData
from pipeline_aws.settings import StartLoadSettings
from pipeline_aws.task_tokens import TaskTokens

settings = StartLoadSettings.from_environ()
obs = build_observability("load_statement", settings.environment)
redshift_client = clients.client("redshift-data")
sfn_client = clients.client("stepfunctions")
load_statement = LoadStatement(
    catalog=lazy_catalog(settings.catalog_dir).get,
    redshift=RedshiftData(redshift_client, settings.connection_kwargs()),
    migrations=lazy_migrations(settings.migrations_dir).get,
    copy_role_arn=settings.redshift_copy_role_arn,
    app_name=settings.app_name,
    ledger=RunLedger(clients.table(settings.ledger_table)),
    tasks=TaskTokens(sfn_client),
    logger=obs.logger,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return load_statement.handle_event(event)
