"""One place that builds powertools Logger, Tracer and Metrics for a function.

Every log line of a run carries the Step Functions execution ARN as its correlation id (or the
EventBridge event id for functions an EventBridge rule invokes), so one CloudWatch Logs Insights
query on `correlation_id` shows a run across all its functions. Metrics carry the environment as
a default dimension, set once here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

# JMESPath: the execution ARN when the state machine invokes us, else the EventBridge event id.
CORRELATION_ID_PATH = "execution.Id || id"
DEFAULT_NAMESPACE = "EmrPipelines"


@dataclass(frozen=True)
class Observability:
    logger: Logger
    tracer: Tracer
    metrics: Metrics
    correlation_id_path: str = CORRELATION_ID_PATH

    def instrument(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a handler: correlation id and context in logs, an X-Ray segment, EMF flush."""
        wrapped = self.metrics.log_metrics(handler)
        wrapped = self.tracer.capture_lambda_handler(wrapped)
        return self.logger.inject_lambda_context(
            correlation_id_path=self.correlation_id_path, clear_state=True
        )(wrapped)


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
    return Observability(Logger(service=name), Tracer(service=name), metrics,
                         correlation_id_path)
