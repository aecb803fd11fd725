"""CleanupExecution: after an execution ends ABORTED, TIMED_OUT or FAILED (EventBridge
"Step Functions Execution Status Change"), terminate its clusters and cancel its job runs.

Step Functions does not stop what a stopped or timed-out execution started; this does, and
records it on the run's ledger item.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws.cleanup import CleanupSettings, ExecutionCleanup, parse_status_change

settings = CleanupSettings.from_environ()
logger = Logger()
tracer = Tracer()
# service="" keeps powertools from adding a `service` dimension: environment is the only one.
metrics = Metrics(service="")
cleanup = ExecutionCleanup.from_settings(settings, metrics=metrics, logger=logger)


@logger.inject_lambda_context(correlation_id_path="detail.executionArn")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return cleanup.handle(parse_status_change(event))
