"""Hooks into moto 5.2.5's Step Functions interpreter (private APIs: moto is pinned).

Every hook point used is listed in HOOK_POINTS; tests/e2e/test_hooks.py checks they exist, and
patch() refuses a point that is not listed.
- Lambda tasks: lambda_eval_utils._invoke_lambda_function -> the in-process handlers.
- Service integrations: state_task_factory.state_task_service_for -> our tasks for
  emr-serverless (startJobRun.sync, cancelJobRun), elasticmapreduce (createCluster.sync,
  addStep.sync, terminateCluster, ...) and states (startExecution.sync:2, with the request
  and result shapes Step Functions uses); everything else -> moto's own.
- aws-sdk:redshiftdata -> boto3 "redshift-data", errors named RedshiftData.*.
- aws-sdk tasks sign with the state machine's own access key (STATE.sdk_access_key, set by the
  local deployment; local_runtime.identity), so a stand-in sees the machine's role as the
  caller, never a function's.
- Time compression: Wait states, Retry intervals and a Task's TimeoutSeconds are multiplied by
  a factor (a TimeoutSeconds never below TIMEOUT_FLOOR_SECONDS, so a callback that arrives at
  once is not beaten by a timeout of zero); the .sync polling interval is shortened, and each
  check of an EMR Serverless job run, EMR step or nested execution first waits (at most
  sfn_services.SYNC_WAIT_SECONDS) for its end.
- lambda:invoke.waitForTaskToken is moto's own (its callback pool; SendTaskSuccess and
  SendTaskFailure through moto's Step Functions API end the task).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import threading
import time
import types
from collections.abc import Callable
from typing import Any

_ASL = "moto.stepfunctions.parser.asl.component."
_TASK = _ASL + "state.exec.state_task."
_SERVICE = _TASK + "service."
LAMBDA_INVOKE = _TASK + "lambda_eval_utils._invoke_lambda_function"
SERVICE_FACTORY = _TASK + "state_task_factory.state_task_service_for"
SERVICE_CALLBACK = _SERVICE + "state_task_service_callback.StateTaskServiceCallback"
# subclassed by local_runtime.sfn_services.StateTaskServiceSfnLocal (states:startExecution)
SERVICE_SFN = _SERVICE + "state_task_service_sfn.StateTaskServiceSfn"
SYNC_POLL_SECONDS = _SERVICE + "state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK"
BOTO_SERVICE_NAMES = _SERVICE + "state_task_service.StateTaskService." \
                                "_SERVICE_NAME_SFN_TO_BOTO_OVERRIDES"
SDK_ERROR_NAMES = _SERVICE + "state_task_service_aws_sdk._SERVICE_ERROR_NAMES"
SDK_EVAL = _SERVICE + "state_task_service_aws_sdk.StateTaskServiceAwsSdk._eval_service_task"
SDK_CLIENT = _SERVICE + "state_task_service_aws_sdk.boto_client_for"
WAIT_INTERVAL = _ASL + "state.wait.wait_function.wait_function.WaitFunction._wait_interval"
RETRY_CLOCK = _ASL + "common.retry.retrier_decl.time"
TIMEOUT_SECONDS = _ASL + "common.timeouts.timeout.TimeoutSeconds._eval_seconds"
TIMEOUT_FLOOR_SECONDS = 1.0
EMR_SERVERLESS = "moto.emrserverless.models.EMRServerlessBackend."
REDSHIFT_DATA_RESPONSES = "moto.redshiftdata.responses.RedshiftDataAPIServiceResponse"
EMR_RESPONSES = "moto.emr.responses.ElasticMapReduceResponse"
SEND_TASK_FAILURE = "moto.stepfunctions.responses.StepFunctionResponse.send_task_failure"
PARSER_BACKEND = "moto.stepfunctions.parser.models.StepFunctionsParserBackend"

HOOK_POINTS = [
    LAMBDA_INVOKE,
    SERVICE_FACTORY,
    SERVICE_CALLBACK,
    SERVICE_SFN,
    SERVICE_SFN + "._normalise_parameters",
    SERVICE_SFN + "._normalise_response",
    _SERVICE + "state_task_service.StateTaskService._to_boto_request",
    _SERVICE + "state_task_service.StateTaskService._from_boto_response",
    SYNC_POLL_SECONDS,
    BOTO_SERVICE_NAMES,
    SDK_ERROR_NAMES,
    SDK_EVAL,
    SDK_CLIENT,
    WAIT_INTERVAL,
    RETRY_CLOCK,
    TIMEOUT_SECONDS,
    _ASL + "common.error_name.failure_event.FailureEventException",
    _ASL + "common.error_name.custom_error_name.CustomErrorName",
    EMR_SERVERLESS + "start_job_run",
    EMR_SERVERLESS + "get_job_run",
    EMR_SERVERLESS + "cancel_job_run",
    REDSHIFT_DATA_RESPONSES,
    EMR_RESPONSES,
    SEND_TASK_FAILURE,
    PARSER_BACKEND + ".send_task_success",
    PARSER_BACKEND + ".send_task_failure",
]

_installed = False
_lock = threading.Lock()
STATE = types.SimpleNamespace(time_factor=0.01, invoke_lambda=None, runtime=None,
                              sdk_access_key=None)


def _owner(dotted: str) -> tuple[Any, str]:
    """The module or class that holds the hook point `dotted`, and the attribute's name."""
    parent, _, name = dotted.rpartition(".")
    parts = parent.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj, name
    raise ImportError(f"no module for the hook point {dotted}")


def current(dotted: str) -> Any:
    """What the hook point `dotted` holds now."""
    owner, name = _owner(dotted)
    return getattr(owner, name)


def patch(dotted: str, value: Any) -> None:
    """Replace the hook point `dotted`, which must be one of HOOK_POINTS."""
    if dotted not in HOOK_POINTS:
        raise ValueError(f"{dotted} is not in HOOK_POINTS (the smoke test would not guard it)")
    owner, name = _owner(dotted)
    setattr(owner, name, value)


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
    def _invoke(parameters: dict, region: str, state_credentials: Any) -> dict:
        payload = parameters.get("Payload")
        if isinstance(payload, bytes | bytearray):
            payload = json.loads(payload.decode("utf-8") or "null")
        return STATE.invoke_lambda(parameters["FunctionName"], payload)

    patch(LAMBDA_INVOKE, _invoke)


def _install_services() -> None:
    from local_runtime.sfn_services import (
        StateTaskServiceEmr,
        StateTaskServiceEmrServerless,
        StateTaskServiceSfnLocal,
    )

    original = current(SERVICE_FACTORY)

    def service_for(service_name: str):
        if service_name == "emr-serverless":
            return StateTaskServiceEmrServerless()
        if service_name == "elasticmapreduce":
            return StateTaskServiceEmr()
        if service_name == "states":
            return StateTaskServiceSfnLocal()
        return original(service_name)

    patch(SERVICE_FACTORY, service_for)
    current(BOTO_SERVICE_NAMES)["redshiftdata"] = "redshift-data"
    current(SDK_ERROR_NAMES)["redshiftdata"] = "RedshiftData"
    patch(SYNC_POLL_SECONDS, 0.05)
    _install_json_safe_sdk_results()
    _install_sdk_identity()


def _install_sdk_identity() -> None:
    """aws-sdk task clients sign with the state machine's key (moto's sign with a fixed one)."""
    original = current(SDK_CLIENT)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if STATE.sdk_access_key is None:
            return original(region=region, service=service, state_credentials=state_credentials)
        import boto3
        from botocore.config import Config

        from local_runtime.identity import LOCAL_SECRET_KEY

        # as moto's: no client-side validation or retries (the ASL's Retry decides)
        return boto3.client(service, region_name=region,
                            aws_access_key_id=STATE.sdk_access_key,
                            aws_secret_access_key=LOCAL_SECRET_KEY,
                            config=Config(parameter_validation=False,
                                          retries={"max_attempts": 0, "total_max_attempts": 1}))

    patch(SDK_CLIENT, boto_client_for)


def _install_json_safe_sdk_results() -> None:
    """aws-sdk task results carry botocore's datetimes; Step Functions hands the state JSON
    (timestamps as ISO strings), and moto's describe_execution cannot serialize datetimes."""
    original = current(SDK_EVAL)

    def _eval_service_task(self, env, *args, **kwargs):
        original(self, env, *args, **kwargs)
        if env.stack:
            env.stack[-1] = json.loads(json.dumps(
                env.stack[-1], default=lambda v: v.isoformat() if isinstance(
                    v, dt.datetime | dt.date) else str(v)))

    patch(SDK_EVAL, _eval_service_task)


def _install_time() -> None:
    real_sleep = time.sleep

    def scaled_sleep(seconds: float) -> None:
        real_sleep(max(0.0, float(seconds)) * STATE.time_factor)

    patch(RETRY_CLOCK, types.SimpleNamespace(sleep=scaled_sleep, time=time.time,
                                             monotonic=time.monotonic))

    def wait_interval(self, env, wait_seconds):
        seconds = max(0.0, float(wait_seconds)) * STATE.time_factor
        if seconds > 0:
            env.program_state_event.wait(seconds)

    patch(WAIT_INTERVAL, wait_interval)

    def timeout_seconds(self, env):
        if self.is_default_value():  # no TimeoutSeconds: moto's "forever" stays forever
            return self.timeout_seconds
        return max(TIMEOUT_FLOOR_SECONDS, self.timeout_seconds * STATE.time_factor)

    patch(TIMEOUT_SECONDS, timeout_seconds)
