"""One place that builds powertools Logger, Tracer and Metrics for a function.

Every log line of a run carries the Step Functions execution ARN as its correlation id (or the
EventBridge event id for functions an EventBridge rule invokes), so one CloudWatch Logs Insights
query on `correlation_id` shows a run across all its functions. Metrics carry the environment as
a default dimension, set once here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

# JMESPath: the execution ARN when the state machine invokes us, else the EventBridge event id.
CORRELATION_ID_PATH = "execution.Id || id"
DEFAULT_NAMESPACE = "EmrPipelines"
# What the X-Ray SDK patches when tracing is on: every call our functions make goes through
# botocore. Patching all its supported libraries (powertools' default) imports each one found
# (requests, httpx, sqlite3, database drivers...) at cold start, and http.client under botocore.
TRACED_MODULES = ("botocore",)


@dataclass(frozen=True)
class Observability:
    logger: Logger
    tracer: Tracer | None  # None when tracing is off: see tracing_enabled
    metrics: Metrics
    correlation_id_path: str = CORRELATION_ID_PATH

    def instrument(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a handler: correlation id and context in logs, an X-Ray segment, EMF flush."""
        wrapped = self.metrics.log_metrics(handler)
        if self.tracer is not None:
            wrapped = self.tracer.capture_lambda_handler(wrapped)
        return self.logger.inject_lambda_context(
            correlation_id_path=self.correlation_id_path, clear_state=True
        )(wrapped)


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """powertools' own rule (Tracer._is_tracer_disabled), with its own constants: off when
    POWERTOOLS_TRACE_DISABLED is truthy, outside Lambda, or under SAM/Chalice local.

    Deciding it before building a Tracer matters for cold starts: powertools' Tracer imports
    aws_xray_sdk (150-340 ms here) even when it is disabled.
    """
    if resolve_truthy_env_var_choice(env=environ.get(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(environ.get(constants.LAMBDA_TASK_ROOT_ENV))
    emulated = environ.get(constants.SAM_LOCAL_ENV) or environ.get(constants.CHALICE_LOCAL_ENV)
    return in_lambda and not emulated


def build_observability(service: str, environment: str | None = None, *,
                        correlation_id_path: str = CORRELATION_ID_PATH,
                        service_dimension: bool = True) -> Observability:
    """Logger/Tracer/Metrics named after the function, unless POWERTOOLS_SERVICE_NAME is set.

    `environment` becomes the metrics' default dimension. `service_dimension=False` keeps
    powertools from adding a `service` dimension (for metrics whose only dimension is the
    environment); `correlation_id_path` says where in the event the correlation id is.
    """
    name = os.environ.get("POWERTOOLS_SERVICE_NAME") or service
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    # powertools adds a `service` dimension unless the service is "" (not None: that means
    # "read POWERTOOLS_SERVICE_NAME").
    metrics = Metrics(namespace=namespace, service=name if service_dimension else "")
    if environment:
        metrics.set_default_dimensions(environment=environment)
    tracer = None
    if tracing_enabled():
        from aws_lambda_powertools import Tracer

        tracer = Tracer(service=name, patch_modules=TRACED_MODULES)
    return Observability(Logger(service=name), tracer, metrics, correlation_id_path)
