"""RecordRun: the load finished; mark the run SUCCEEDED in the ledger; result at `$.record`."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.contracts import RecordRunRequest
from pipeline_aws.ledger import RunLedger
from pipeline_aws.observability import build_observability
from pipeline_aws.record import RunRecorder
from pipeline_aws.settings import RecordRunSettings

settings = RecordRunSettings.from_environ()
obs = build_observability("record_run", settings.environment)
recorder = RunRecorder(
    RunLedger(clients.table(settings.ledger_table)),
    logger=obs.logger,
    metrics=obs.metrics,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return recorder.record(RecordRunRequest.parse(event))
