"""CleanupExecution: after an execution ends ABORTED, TIMED_OUT or FAILED (EventBridge
"Step Functions Execution Status Change"), terminate its clusters and cancel its job runs.

Step Functions does not stop what a stopped or timed-out execution started; this does, and
records it on the run's ledger item.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws.cleanup import ExecutionCleanup
from pipeline_aws.contracts import ExecutionStatusChange
from pipeline_aws.observability import build_observability
from pipeline_aws.settings import CleanupExecutionSettings

settings = CleanupExecutionSettings.from_environ()
# The metrics' only dimension is the environment: no `service` dimension.
obs = build_observability("cleanup_execution", settings.environment,
                          correlation_id_path="detail.executionArn", service_dimension=False)
cleanup = ExecutionCleanup.from_settings(settings, metrics=obs.metrics, logger=obs.logger)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return cleanup.handle(ExecutionStatusChange.parse(event))
