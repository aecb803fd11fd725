"""AutoTerminator: on a schedule, terminate idle EMR clusters tagged with this app.

The last safety net after TerminateCluster, cleanup_execution and the clusters' own
auto-termination policies; DRY_RUN=true only logs what it would do.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws.auto_terminate import AutoTerminator, Settings, parse_scheduled_event

settings = Settings.from_environ()
logger = Logger()
tracer = Tracer()
# service="" keeps powertools from adding a `service` dimension: environment is the only one.
metrics = Metrics(service="")
terminator = AutoTerminator.from_settings(settings, metrics=metrics, logger=logger)


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return terminator.run(parse_scheduled_event(event))
