"""Hooks into moto 5.2.5's Step Functions interpreter (private APIs: moto is pinned).

Every hook point used is listed in HOOK_POINTS; tests/e2e/test_hooks.py checks they exist.
- Lambda tasks: lambda_eval_utils._invoke_lambda_function -> the in-process handlers.
- Service integrations: state_task_factory.state_task_service_for -> our tasks for
  emr-serverless (startJobRun.sync, cancelJobRun) and elasticmapreduce (createCluster.sync,
  addStep.sync, terminateCluster, ...); everything else -> moto's own.
- aws-sdk:redshiftdata -> boto3 "redshift-data", errors named RedshiftData.*.
- Time compression: Wait states and Retry intervals are multiplied by a factor; the .sync
  polling interval is shortened.
"""

from __future__ import annotations

import logging
import threading
import time
import types
from collections.abc import Callable
from typing import Any

HOOK_POINTS = [
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils."
    "_invoke_lambda_function",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_factory."
    "state_task_service_for",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_callback.StateTaskServiceCallback",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service.StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_aws_sdk._SERVICE_ERROR_NAMES",
    "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function."
    "WaitFunction._wait_interval",
    "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl.time",
    "moto.stepfunctions.parser.asl.component.common.error_name.failure_event."
    "FailureEventException",
    "moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name."
    "CustomErrorName",
    "moto.emrserverless.models.EMRServerlessBackend.start_job_run",
    "moto.emrserverless.models.EMRServerlessBackend.cancel_job_run",
    "moto.redshiftdata.responses.RedshiftDataAPIServiceResponse",
]

_installed = False
_lock = threading.Lock()
STATE = types.SimpleNamespace(time_factor=0.01, invoke_lambda=None, runtime=None)


def quiet_moto_logging() -> None:
    for name in ("moto.stepfunctions.parser", "moto.stepfunctions", "moto"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def install(*, invoke_lambda: Callable[[str, Any], dict[str, Any]], runtime: Any,
            time_factor: float = 0.01) -> None:
    """Install the hooks (idempotent; the latest runtime/invoker/time factor win)."""
    global _installed
    STATE.invoke_lambda = invoke_lambda
    STATE.runtime = runtime
    STATE.time_factor = time_factor
    quiet_moto_logging()
    with _lock:
        if _installed:
            return
        _install_lambda()
        _install_services()
        _install_time()
        _installed = True


def _install_lambda() -> None:
    import json

    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    def _invoke(parameters: dict, region: str, state_credentials: Any) -> dict:
        payload = parameters.get("Payload")
        if isinstance(payload, bytes | bytearray):
            payload = json.loads(payload.decode("utf-8") or "null")
        return STATE.invoke_lambda(parameters["FunctionName"], payload)

    lambda_eval_utils._invoke_lambda_function = _invoke


def _install_services() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
        state_task_service_aws_sdk,
        state_task_service_callback,
    )

    from local_runtime.sfn_services import StateTaskServiceEmr, StateTaskServiceEmrServerless

    original = state_task_factory.state_task_service_for

    def service_for(service_name: str):
        if service_name == "emr-serverless":
            return StateTaskServiceEmrServerless()
        if service_name == "elasticmapreduce":
            return StateTaskServiceEmr()
        return original(service_name)

    state_task_factory.state_task_service_for = service_for
    state_task_service.StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES["redshiftdata"] = (
        "redshift-data")
    state_task_service_aws_sdk._SERVICE_ERROR_NAMES["redshiftdata"] = "RedshiftData"
    state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = 0.05
    _install_json_safe_sdk_results(state_task_service_aws_sdk.StateTaskServiceAwsSdk)


def _install_json_safe_sdk_results(cls: Any) -> None:
    """aws-sdk task results carry botocore's datetimes; Step Functions hands the state JSON
    (timestamps as ISO strings), and moto's describe_execution cannot serialize datetimes."""
    import datetime as dt
    import json

    original = cls._eval_service_task

    def _eval_service_task(self, env, *args, **kwargs):
        original(self, env, *args, **kwargs)
        if env.stack:
            env.stack[-1] = json.loads(json.dumps(
                env.stack[-1], default=lambda v: v.isoformat() if isinstance(
                    v, dt.datetime | dt.date) else str(v)))

    cls._eval_service_task = _eval_service_task


def _install_time() -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    real_sleep = time.sleep

    def scaled_sleep(seconds: float) -> None:
        real_sleep(max(0.0, float(seconds)) * STATE.time_factor)

    retrier_decl.time = types.SimpleNamespace(sleep=scaled_sleep, time=time.time,
                                              monotonic=time.monotonic)

    def wait_interval(self, env, wait_seconds):
        seconds = max(0.0, float(wait_seconds)) * STATE.time_factor
        if seconds > 0:
            env.program_state_event.wait(seconds)

    wait_function.WaitFunction._wait_interval = wait_interval
