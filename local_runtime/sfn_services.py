"""Step Functions service integrations for EMR Serverless and EMR on EC2 (moto interpreter).

Errors:
- emr-serverless startJobRun.sync: a job run that ends FAILED or CANCELLED fails the task with
  `EMRServerless.JobRunFailed` (cause: the job's stateDetails, with the log tail).
- elasticmapreduce addStep.sync: a FAILED/CANCELLED step fails with `States.TaskFailed`, cause
  the DescribeStep JSON (as Step Functions does); createCluster.sync: a cluster that ends
  TERMINATED_WITH_ERRORS fails with `States.TaskFailed`.
- AWS API errors are named `EMRServerless.<Code>` / `EMR.<Code>` (what the ASL Retry matches).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any, Final, cast

from botocore.exceptions import ClientError
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (  # noqa: E501
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

# A .sync task's check waits this long for the local job or step to end before it asks for
# its state: the end is seen at once, and the state is asked twice a second, not 20 times.
SYNC_WAIT_SECONDS: Final = 0.5
_PATTERNS: Final = {ResourceCondition(ResourceCondition.Sync),
                    ResourceCondition(ResourceCondition.WaitForTaskToken)}
SERVERLESS_FAILED = "EMRServerless.JobRunFailed"
TASK_FAILED = "States.TaskFailed"
# what one action does: (task, env, boto3 client, parameters) -> the task's output
Action = Callable[[Any, Any, Any, dict[str, Any]], dict[str, Any]]


class _EmrTaskBase(StateTaskServiceCallback):
    """A task whose actions are in `_actions`: lower-cased API action -> function."""

    _service = "elasticmapreduce"
    _error_prefix = "EMR"
    _boto_service = "emr"
    _actions: dict[str, Action] = {}

    def __init__(self):
        super().__init__(supported_integration_patterns=_PATTERNS)

    def _get_supported_parameters(self) -> set[str] | None:  # any parameter is passed on
        return set()

    def _validate_service_integration_is_supported(self) -> None:
        return None

    def _client(self, resource_runtime_part: Any, state_credentials: Any) -> Any:
        return boto_client_for(service=self._boto_service, region=resource_runtime_part.region,
                               state_credentials=state_credentials)

    def _fail(self, env: Any, error: str, cause: str) -> FailureEventException:
        error_name = (StatesErrorName.from_name(error) if error.startswith("States.")
                      else CustomErrorName(error))
        # moto's EventDetails declares every key required; its own code passes one, as here
        details = cast(EventDetails, {"taskFailedEventDetails": TaskFailedEventDetails(
            error=error, cause=cause, resource=self._get_sfn_resource(),
            resourceType=self._get_sfn_resource_type())})
        return FailureEventException(failure_event=FailureEvent(
            env=env, error_name=error_name, event_type=HistoryEventType.TaskFailed,
            event_details=details))

    def _from_error(self, env: Any, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            code = ex.response["Error"].get("Code", "Exception")
            return self._fail(env, f"{self._error_prefix}.{code}",
                              ex.response["Error"].get("Message", str(ex))).failure_event
        return super()._from_error(env=env, ex=ex)

    def _action(self) -> str:
        return self.resource.api_action.split(".")[0].lower()

    def _eval_service_task(self, env, resource_runtime_part, normalised_parameters,
                           state_credentials):
        action = self._actions.get(self._action())
        if action is None:
            raise self._fail(env, "States.Runtime",
                             f"{self._service}:{self.resource.api_action} is not supported "
                             "locally")
        client = self._client(resource_runtime_part, state_credentials)
        env.stack.append(action(self, env, client, dict(normalised_parameters)))


# -- EMR Serverless --------------------------------------------------------------------------------

def _start_job_run(task: Any, env: Any, client: Any, params: dict[str, Any]) -> dict[str, Any]:
    task._to_boto_request(params, client.meta.service_model.operation_model(
        "StartJobRun").input_shape)
    resp = client.start_job_run(**params)
    return {"ApplicationId": resp["applicationId"], "JobRunId": resp["jobRunId"],
            "Arn": resp["arn"]}


def _cancel_job_run(task: Any, env: Any, client: Any, params: dict[str, Any]) -> dict[str, Any]:
    task._to_boto_request(params, client.meta.service_model.operation_model(
        "CancelJobRun").input_shape)
    resp = client.cancel_job_run(**params)
    return {"ApplicationId": resp["applicationId"], "JobRunId": resp["jobRunId"]}


class StateTaskServiceEmrServerless(_EmrTaskBase):
    _service = "emr-serverless"
    _error_prefix = "EMRServerless"
    _boto_service = "emr-serverless"
    _actions = {"startjobrun": _start_job_run, "canceljobrun": _cancel_job_run}

    def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters,
                             state_credentials) -> Callable[[], Any] | None:
        started = env.stack.pop()
        if self._action() != "startjobrun":
            return lambda: started
        client = self._client(resource_runtime_part, state_credentials)

        def resolve() -> Any:
            from local_runtime.moto_patches import await_local_run

            await_local_run(started["JobRunId"], SYNC_WAIT_SECONDS)
            run = client.get_job_run(applicationId=started["ApplicationId"],
                                     jobRunId=started["JobRunId"])["jobRun"]
            state = run["state"]
            if state == "SUCCESS":
                return started
            if state in ("FAILED", "CANCELLED"):
                raise self._fail(env, SERVERLESS_FAILED,
                                 run.get("stateDetails") or f"Job run {state}")
            return None

        return resolve


# -- EMR on EC2 ------------------------------------------------------------------------------------

def _create_cluster(task: Any, env: Any, client: Any, params: dict[str, Any]) -> dict[str, Any]:
    resp = client.run_job_flow(**params)
    return {"ClusterId": resp["JobFlowId"], "ClusterArn": resp.get("ClusterArn", "")}


def _add_step(task: Any, env: Any, client: Any, params: dict[str, Any]) -> dict[str, Any]:
    resp = client.add_job_flow_steps(JobFlowId=params["ClusterId"], Steps=[params["Step"]])
    step_id = resp["StepIds"][0]
    _runtime().start_cluster_step(params["ClusterId"], step_id, params["Step"])
    return {"StepId": step_id}


def _terminate_cluster(task: Any, env: Any, client: Any, params: dict[str, Any]
                       ) -> dict[str, Any]:
    client.terminate_job_flows(JobFlowIds=[params["ClusterId"]])
    return {}


def _cancel_step(task: Any, env: Any, client: Any, params: dict[str, Any]) -> dict[str, Any]:
    _runtime().cancel_cluster_step(params["ClusterId"], params["StepId"])
    return {}


def _set_termination_protection(task: Any, env: Any, client: Any, params: dict[str, Any]
                                ) -> dict[str, Any]:
    client.set_termination_protection(JobFlowIds=[params["ClusterId"]],
                                      TerminationProtected=params["TerminationProtected"])
    return {}


class StateTaskServiceEmr(_EmrTaskBase):
    """createCluster(.sync), addStep(.sync), terminateCluster, and a few more EMR actions."""

    _actions = {"createcluster": _create_cluster, "addstep": _add_step,
                "terminatecluster": _terminate_cluster, "cancelstep": _cancel_step,
                "setclusterterminationprotection": _set_termination_protection}

    def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters,
                             state_credentials) -> Callable[[], Any] | None:
        out = env.stack.pop()
        client = self._client(resource_runtime_part, state_credentials)
        action = self._action()
        if action == "createcluster":
            return lambda: self._cluster_ready(env, client, out)
        if action == "addstep":
            cluster_id = normalised_parameters["ClusterId"]
            return lambda: self._step_done(env, client, cluster_id, out)
        return lambda: out

    def _cluster_ready(self, env: Any, client: Any, out: dict[str, Any]) -> Any:
        state = client.describe_cluster(ClusterId=out["ClusterId"])["Cluster"]["Status"]
        if state["State"] in ("WAITING", "RUNNING"):
            return out
        if state["State"] in ("TERMINATED", "TERMINATED_WITH_ERRORS"):
            raise self._fail(env, TASK_FAILED, json.dumps(
                {"Cluster": {"Id": out["ClusterId"], "Status": state}}, default=str))
        return None

    def _step_done(self, env: Any, client: Any, cluster_id: str, out: dict[str, Any]) -> Any:
        await_step = getattr(_runtime(), "await_step", None)  # a test's stand-in may have none
        if await_step is not None:
            await_step(out["StepId"], SYNC_WAIT_SECONDS)
        step = client.describe_step(ClusterId=cluster_id, StepId=out["StepId"])["Step"]
        state = step["Status"]["State"]
        if state == "COMPLETED":
            return out
        if state in ("FAILED", "CANCELLED", "INTERRUPTED"):
            result = _runtime().step_result(out["StepId"])
            if result is not None:
                step["Status"]["FailureDetails"] = {
                    "Reason": "Step failed", "Message": result.details[-4000:],
                    "LogFile": str(result.work_dir or "")}
            raise self._fail(env, TASK_FAILED, json.dumps({"Step": step}, default=str))
        return None


# -- Step Functions (nested executions) -----------------------------------------------------------

class StateTaskServiceSfnLocal(StateTaskServiceSfn):
    """states:startExecution(.sync, .sync:2) as Step Functions does it. moto 5.2.5's own task
    leaves its request and result as they are (its normalisers are no-ops): boto3 then cannot
    serialize `StateMachineArn`, and the result keeps boto3's `executionArn`, `status` and
    datetimes where Step Functions returns `ExecutionArn`, `Status`, `Output` and JSON."""

    def _operation(self, service_action_name: str | None) -> Any:
        import botocore.session

        action = self._get_boto_service_action(service_action_name)
        model = botocore.session.get_session().get_service_model("stepfunctions")
        return model.operation_model("".join(p.capitalize() for p in action.split("_")))

    def _normalise_parameters(self, parameters, boto_service_name=None,
                              service_action_name=None) -> None:
        super()._normalise_parameters(parameters, boto_service_name, service_action_name)
        if service_action_name is None:
            self._to_boto_request(parameters, self._operation(None).input_shape)

    # moto's resolver builders pop StartExecution's result off the stack: its ARN is read first
    def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters,
                             state_credentials) -> Callable[[], Any] | None:
        arn = env.stack[-1]["ExecutionArn"]
        return _paced(arn, super()._build_sync_resolver(
            env, resource_runtime_part, normalised_parameters, state_credentials))

    def _build_sync2_resolver(self, env, resource_runtime_part, normalised_parameters,
                              state_credentials) -> Callable[[], Any] | None:
        arn = env.stack[-1]["ExecutionArn"]
        return _paced(arn, super()._build_sync2_resolver(
            env, resource_runtime_part, normalised_parameters, state_credentials))

    def _normalise_response(self, response, boto_service_name=None,
                            service_action_name=None) -> None:
        if not isinstance(response, dict):
            return
        for key, value in list(response.items()):
            if isinstance(value, dt.datetime | dt.date):
                response[key] = value.isoformat()
        self._from_boto_response(response, self._operation(service_action_name).output_shape)


def _paced(execution_arn: str, resolve: Callable[[], Any] | None) -> Callable[[], Any] | None:
    """A nested execution's .sync check that first waits (in this process, reading no API) up
    to SYNC_WAIT_SECONDS for the execution to end: DescribeExecution is asked twice a second,
    not 20 times (a backfill's batches spent a fifth of the local runtime's CPU on it)."""
    if resolve is None:
        return None

    def paced() -> Any:
        _await_execution(execution_arn, SYNC_WAIT_SECONDS)
        return resolve()

    return paced


def _await_execution(execution_arn: str, seconds: float) -> None:
    """Wait at most `seconds` while the execution (of this process's Step Functions) runs."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.responses import get_backend

    parts = execution_arn.split(":")  # arn:aws:states:<region>:<account>:execution:...
    try:
        execution = get_backend(parts[4], parts[3]).describe_execution(execution_arn)
    except Exception:  # the API call that follows reports what is wrong
        return
    deadline = time.monotonic() + seconds
    while (getattr(execution, "exec_status", None) == ExecutionStatus.RUNNING
           and time.monotonic() < deadline):
        time.sleep(0.05)


def _runtime() -> Any:
    """What runs cluster steps: the LocalDeployment (or a test's stand-in)."""
    from local_runtime.sfn_hooks import STATE

    if STATE.runtime is None:
        raise RuntimeError("the local runtime is not installed")
    return STATE.runtime
