"""AutoTerminator: on a schedule, terminate idle EMR clusters tagged with this app.

The last safety net after TerminateCluster, cleanup_execution and the clusters' own
auto-termination policies; DRY_RUN=true only logs what it would do.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws.auto_terminate import AutoTerminator
from pipeline_aws.contracts import ScheduledEvent
from pipeline_aws.observability import build_observability
from pipeline_aws.settings import AutoTerminatorSettings

settings = AutoTerminatorSettings.from_environ()
# The metrics' only dimension is the environment: no `service` dimension.
obs = build_observability("auto_terminator", settings.environment, correlation_id_path="id",
                          service_dimension=False)
terminator = AutoTerminator.from_settings(settings, metrics=obs.metrics, logger=obs.logger)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return terminator.run(ScheduledEvent.parse(event))
