"""AdmitObjects: raw "Object Created" events from the burst queue -> batched pipeline executions
within each dataset's concurrency limit (pipeline_aws.admission)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline_aws import clients
from pipeline_aws.admission import Admission, AdmitObjectsSettings
from pipeline_aws.lazy import lazy_catalog
from pipeline_aws.observability import build_observability
from pipeline_aws.step_functions import SfnStarter

settings = AdmitObjectsSettings.from_environ()
obs = build_observability("admit_objects", settings.environment)
admission = Admission(
    catalog=lazy_catalog(settings.catalog_dir).get,
    starter=SfnStarter(clients.client("stepfunctions"), settings.pipeline_state_machine_arn),
    raw_bucket=settings.raw_bucket,
    logger=obs.logger,
)


@obs.instrument
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return admission.handle(event)
