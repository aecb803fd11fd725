"""One place that builds powertools Logger, Tracer and Metrics for a function.

Every log line of a run carries the Step Functions execution ARN as its correlation id (or the
EventBridge event id for functions an EventBridge rule invokes), so one CloudWatch Logs Insights
query on `correlation_id` shows a run across all its functions.
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

    def instrument(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a handler: correlation id and context in logs, an X-Ray segment, EMF flush."""
        wrapped = self.metrics.log_metrics(handler)
        wrapped = self.tracer.capture_lambda_handler(wrapped)
        return self.logger.inject_lambda_context(
            correlation_id_path=CORRELATION_ID_PATH, clear_state=True
        )(wrapped)


def build_observability(service: str, environment: str | None = None) -> Observability:
    """Logger/Tracer/Metrics named after the function, unless POWERTOOLS_SERVICE_NAME is set."""
    name = os.environ.get("POWERTOOLS_SERVICE_NAME") or service
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    metrics = Metrics(namespace=namespace, service=name)
    if environment:
        metrics.set_default_dimensions(environment=environment)
    return Observability(Logger(service=name), Tracer(service=name), metrics)
