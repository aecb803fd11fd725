"""TriggerDerived: after a pipeline execution SUCCEEDED (EventBridge "Step Functions Execution
Status Change"), start the runs of the derived datasets that wait for its loads
(pipeline_aws.derived_trigger says why an event rule and not a pipeline state)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.contracts import ExecutionSucceeded
from pipeline_aws.derived_trigger import DerivedTrigger
from pipeline_aws.lazy import lazy_catalog
from pipeline_aws.observability import build_observability
from pipeline_aws.settings import TriggerDerivedSettings
from pipeline_aws.step_functions import SfnStarter

settings = TriggerDerivedSettings.from_environ()
obs = build_observability("trigger_derived", settings.environment,
                          correlation_id_path="detail.executionArn", service_dimension=False)
trigger = DerivedTrigger(
    catalog=lazy_catalog(settings.catalog_dir).get,
    executions=SfnStarter(clients.client("stepfunctions"), settings.pipeline_state_machine_arn),
    logger=obs.logger,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return trigger.handle(ExecutionSucceeded.parse(event))
