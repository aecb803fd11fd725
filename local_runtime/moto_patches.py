"""Patches of moto's emr-serverless backend and redshift-data responses (moto 5.2.5).

- EMRServerlessBackend.start_job_run really runs the job (local Spark subprocess, see spark.py);
  get_job_run then shows SUBMITTED -> RUNNING -> SUCCESS | FAILED | CANCELLED with stateDetails,
  startedAt/endedAt, totalExecutionDurationSeconds, and the total and billed resource utilization
  of the workers EMR Serverless would allocate for the job's Spark settings, for as long as the
  local job ran (pipeline_aws.cost.workers: AWS's defaults, one-minute minimum per worker);
  Spark settings no worker can satisfy are refused with a ValidationException;
  cancel_job_run cancels the job (SparkRunner.cancel: its Spark job group on the warm local
  Spark, the process group on the cold path).
- EMR on EC2: the instances of instance-fleet clusters and their lifetimes (emr_fleets).
- StepFunctionResponse.send_task_failure passes the request's `cause` on (moto 5.2.5 drops it,
  and the task's failure would reach the Catch without the cause SendTaskFailure sent).
- SendTaskSuccess / SendTaskFailure on the parser backend answer as the Step Functions API
  Reference says: TaskTimedOut when "the task associated with the token has already been
  closed" (its outcome taken, its task or execution ended), InvalidToken for a token no
  execution issued. moto 5.2.5 takes a closed token again, and raises its errors without a
  message (a TypeError instead of the error).
- RedshiftDataAPIServiceResponse: execute/batchExecute/describe/getStatementResult/cancel go to
  the DataApiEngine (PostgreSQL), each with the caller's aws:userid (local_runtime.identity,
  from the request's access key): a statement is the submitter's alone. To another caller
  DescribeStatement, GetStatementResult and CancelStatement answer ResourceNotFoundException
  ("Query does not exist."), the error those actions document for an unknown statement id.
The hook points are in sfn_hooks.HOOK_POINTS, with the interpreter's.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

from moto.emrserverless.exceptions import ValidationException as ServerlessValidationException
from moto.redshiftdata.exceptions import ResourceNotFoundException, ValidationException

from local_runtime import emr_fleets
from local_runtime.identity import PRINCIPALS
from local_runtime.sfn_hooks import (
    EMR_SERVERLESS,
    PARSER_BACKEND,
    REDSHIFT_DATA_RESPONSES,
    SEND_TASK_FAILURE,
    current,
    patch,
)
from local_runtime.spark import JobResult, parse_submit_parameters
from pipeline_aws.cost.workers import (
    WorkerConfigurationError,
    WorkerPlan,
    job_run_utilization,
    plan_workers,
    spark_properties,
)

# the job runner (SparkRunner) and the Data API engine (DataApiEngine), or a test's stand-ins
STATE: dict[str, Any] = {"runner": None, "engine": None}
_installed = False
_lock = threading.Lock()
_local_runs: dict[str, Any] = {}  # job run id -> its JobResult, for the runs started here
_worker_plans: dict[str, WorkerPlan] = {}  # job run id -> the workers AWS would allocate


def install(runner: Any, engine: Any) -> None:
    global _installed
    STATE["runner"] = runner
    STATE["engine"] = engine
    with _lock:
        if _installed:
            return
        _patch_emr_serverless()
        _patch_redshift_data()
        _patch_send_task_failure()
        _patch_task_tokens()
        emr_fleets.install()
        _installed = True


# -- EMR Serverless ------------------------------------------------------------------------------

def _show_result(job_run: Any, res: Any) -> None:
    """Copy the local run's state and measurements onto moto's job run."""
    job_run.state = "CANCELLED" if res.state == "CANCELLING" else res.state
    job_run.state_details = res.details or None
    if res.started_at:
        job_run.started_at = datetime.fromtimestamp(res.started_at, tz=UTC)
        if res.ended_at:
            job_run.ended_at = datetime.fromtimestamp(res.ended_at, tz=UTC)
        job_run.updated_at = datetime.fromtimestamp(res.ended_at or time.time(), tz=UTC)
    job_run.total_execution_duration_seconds = round(res.wall_seconds)
    _show_utilization(job_run, res)


def _show_utilization(job_run: Any, res: Any) -> None:
    """What AWS reports for the run's workers: nothing until they start, then the total and the
    billed utilization for the time they have run (final once the job ends)."""
    plan = _worker_plans.get(job_run.id)
    if plan is None or not res.started_at:
        job_run.total_resource_utilization = None
        job_run.billed_resource_utilization = None
        return
    total, billed = job_run_utilization(plan, res.wall_seconds)
    job_run.total_resource_utilization = total
    job_run.billed_resource_utilization = billed


def worker_plan(request: dict[str, Any]) -> WorkerPlan:
    """The workers for a StartJobRun request's sparkSubmitParameters; settings no EMR Serverless
    worker can satisfy are a ValidationException, as a request AWS refuses."""
    driver = (request.get("job_driver") or {}).get("sparkSubmit") or {}
    try:
        return plan_workers(spark_properties(driver.get("sparkSubmitParameters")))
    except WorkerConfigurationError as e:
        raise ServerlessValidationException(str(e)) from None


def _start_local_run(job_run: Any, request: dict[str, Any], application: Any = None) -> None:
    runner = STATE["runner"]
    driver = (request.get("job_driver") or {}).get("sparkSubmit") or {}
    conf, py_files = parse_submit_parameters(driver.get("sparkSubmitParameters"))
    result = JobResult()
    _local_runs[job_run.id] = result
    job_run.state = "SUBMITTED"
    job_run.tags = request.get("tags") or {}
    if runner is None:
        result.details, result.state = "no local Spark runner installed", "FAILED"
        result.finished.set()
        return
    need = capacity_need(_worker_plans[job_run.id]) if job_run.id in _worker_plans else None
    gate = _gate(application)

    def run() -> None:
        result.state = "RUNNING"
        timeout = (request.get("execution_timeout_minutes") or 720) * 60
        try:
            runner.run(job_run.id, driver.get("entryPoint", ""),
                       list(driver.get("entryPointArguments") or []),
                       py_files=py_files, conf=conf, result=result, timeout_s=timeout)
        except Exception as e:
            result.details, result.state = f"local runner error: {e}", "FAILED"
            result.ended_at = time.time()

    def work() -> None:
        try:
            if need is None:
                run()
            elif gate.acquire(job_run.id, need, result):
                try:
                    run()
                finally:
                    gate.release(job_run.id)
        finally:
            result.finished.set()

    threading.Thread(target=work, daemon=True, name=f"emr-job-{job_run.id}").start()


def await_local_run(job_run_id: str, seconds: float) -> None:
    """Wait at most `seconds` for a job run started here to end (no wait for one that has
    ended, or that was not started here)."""
    result = _local_runs.get(job_run_id)
    if result is not None:
        result.finished.wait(seconds)


# -- the application's maximum capacity ------------------------------------------------------------

_UNITS = {"vcpu": "cpu", "gb": "memory"}


def parse_capacity(maximum: Any) -> dict[str, float] | None:
    """An application's maximumCapacity ({"cpu": "32 vCPU", "memory": "128 GB", "disk":
    "500 GB"}) as numbers; None when it sets none (no cap)."""
    if not maximum:
        return None
    out = {}
    for key in ("cpu", "memory", "disk"):
        text = str((maximum.get(key) if isinstance(maximum, dict) else None) or "").strip()
        if not text:
            continue
        number = text.split()[0]
        try:
            out[key] = float(number)
        except ValueError:
            raise ServerlessValidationException(
                f"maximumCapacity.{key} {text!r} is not a number with a unit") from None
    return out or None


def capacity_need(plan: WorkerPlan) -> dict[str, float]:
    """What a job run's initial workers take of the application's capacity."""
    workers = plan.workers()
    return {"cpu": float(sum(w.vcpu for w in workers)),
            "memory": float(sum(w.memory_gb for w in workers)),
            "disk": float(sum(w.storage_gb for w in workers))}


class CapacityGate:
    """An EMR Serverless application's maximum capacity ("Understanding application behavior
    in EMR Serverless", Maximum capacity): a job run whose workers do not fit beside the running
    ones waits (state SCHEDULED, "Job run states") until enough of them end; one that could never
    fit fails at once, saying so."""

    def __init__(self, maximum: dict[str, float] | None):
        self.maximum = maximum
        self.used: dict[str, dict[str, float]] = {}
        self.peak_jobs = 0
        self._cond = threading.Condition()

    def _fits(self, need: dict[str, float]) -> bool:
        assert self.maximum is not None
        return all(sum(u.get(k, 0.0) for u in self.used.values()) + need.get(k, 0.0) <= cap
                   for k, cap in self.maximum.items())

    def acquire(self, job_id: str, need: dict[str, float], result: Any) -> bool:
        """True once the job's workers fit; False when it was cancelled or never can fit."""
        if self.maximum is None:
            return True
        too_big = [f"{k} {need.get(k, 0):g} > {cap:g}" for k, cap in self.maximum.items()
                   if need.get(k, 0.0) > cap]
        if too_big:
            result.details = ("the job run's initial workers exceed the application's maximum "
                              f"capacity: {', '.join(too_big)}")
            result.state = "FAILED"
            return False
        with self._cond:
            result.state = "SCHEDULED"
            while not self._fits(need):
                self._cond.wait(0.2)
                if result.state != "SCHEDULED":  # cancelled while it waited
                    return False
            self.used[job_id] = need
            self.peak_jobs = max(self.peak_jobs, len(self.used))
        return True

    def release(self, job_id: str) -> None:
        with self._cond:
            self.used.pop(job_id, None)
            self._cond.notify_all()


GATES: dict[str, CapacityGate] = {}


def _gate(application: Any) -> CapacityGate:
    key = getattr(application, "id", None) or "default"
    with _lock:
        if key not in GATES:
            GATES[key] = CapacityGate(parse_capacity(getattr(application, "maximum_capacity",
                                                             None)))
        return GATES[key]


def _patch_emr_serverless() -> None:
    original_start = current(EMR_SERVERLESS + "start_job_run")
    original_get = current(EMR_SERVERLESS + "get_job_run")
    original_cancel = current(EMR_SERVERLESS + "cancel_job_run")

    def start_job_run(self, **kwargs: Any):
        plan = worker_plan(kwargs)
        job_run = original_start(self, **kwargs)
        _worker_plans[job_run.id] = plan
        _start_local_run(job_run, kwargs, self.applications.get(kwargs.get("application_id")))
        return job_run

    def get_job_run(self, application_id: str, job_run_id: str):
        job_run = original_get(self, application_id, job_run_id)
        if job_run.id in _local_runs:
            _show_result(job_run, _local_runs[job_run.id])
        return job_run

    def cancel_job_run(self, application_id: str, job_run_id: str):
        job_run = original_get(self, application_id, job_run_id)
        out = original_cancel(self, application_id, job_run_id)
        res = _local_runs.get(job_run.id)
        if res is not None and res.state in ("SUBMITTED", "SCHEDULED", "RUNNING"):
            res.state = "CANCELLING"
            STATE["runner"].cancel(job_run_id)
            if res.started_at is None:
                res.state = "CANCELLED"
        return out

    patch(EMR_SERVERLESS + "start_job_run", start_job_run)
    patch(EMR_SERVERLESS + "get_job_run", get_job_run)
    patch(EMR_SERVERLESS + "cancel_job_run", cancel_job_run)


# -- Redshift Data API: the response handlers (`self` is moto's response object) ------------------

def _engine() -> Any:
    engine = STATE["engine"]
    if engine is None:
        raise ValidationException("the local warehouse is not running")
    return engine


def _target(response: Any) -> dict[str, Any]:
    out = {}
    for key in ("ClusterIdentifier", "WorkgroupName", "Database", "DbUser", "SecretArn"):
        v = response._get_param(key)
        if v:
            out[key] = v
    return out


def _submitted(st: Any) -> tuple[int, dict[str, str], str]:
    return 200, {}, json.dumps({"Id": st.id, "CreatedAt": st.created_at, **st.target})


def caller(response: Any) -> str:
    """The aws:userid of the principal that signed the request."""
    return PRINCIPALS.user_id(response.get_access_key())


def _statement(response: Any) -> tuple[Any, Any]:
    """(statement, sub-statement or None) for the request's Id, if the caller submitted it."""
    try:
        return _engine().get(response._get_param("Id"), caller(response))
    except KeyError:
        raise ResourceNotFoundException() from None


def principal_arn(response: Any) -> str:
    """The ARN of the principal that signed the request (a function's role session)."""
    found = PRINCIPALS.principal(response.get_access_key())
    if found is None:
        return f"arn:aws:iam::123456789012:user/{response.get_access_key()}"
    account = found.role_arn.split(":")[4]
    role = found.role_arn.rsplit("/", 1)[-1]
    session = found.user_id.split(":", 1)[-1]
    return f"arn:aws:sts::{account}:assumed-role/{role}/{session}"


def _naming(response: Any) -> dict[str, Any]:
    """StatementName and WithEvent of a request, and who sent it (for the event)."""
    return {"name": response._get_param("StatementName"),
            "with_event": bool(response._get_param("WithEvent")),
            "principal": principal_arn(response)}


def execute_statement(self: Any) -> tuple[int, dict[str, str], str]:
    sql = self._get_param("Sql")
    if not sql:
        raise ValidationException("Sql must not be empty")
    return _submitted(_engine().submit([sql], batch=False, target=_target(self),
                                       parameters=self._get_param("Parameters"),
                                       owner=caller(self), **_naming(self)))


def batch_execute_statement(self: Any) -> tuple[int, dict[str, str], str]:
    sqls = self._get_param("Sqls") or []
    if not sqls:
        raise ValidationException("Sqls must contain at least one statement")
    return _submitted(_engine().submit(list(sqls), batch=True, target=_target(self),
                                       owner=caller(self), token=self._get_param("ClientToken"),
                                       **_naming(self)))


def describe_statement(self: Any) -> tuple[int, dict[str, str], str]:
    st, sub = _statement(self)
    return 200, {}, json.dumps(sub.describe() if sub else st.describe())


def get_statement_result(self: Any) -> tuple[int, dict[str, str], str]:
    st, sub = _statement(self)
    if sub is None:
        if st.batch:
            raise ValidationException(
                "Query does not have result. Please check query status with "
                "DescribeStatement API (for a batch, pass the sub-statement id <id>:<n>).")
        sub = st.subs[0]
    if st.status != "FINISHED":
        raise ValidationException(f"Query does not have result. Query status: {st.status}")
    if not sub.has_result_set:
        raise ValidationException("Query does not have result. Please check query status "
                                  "with DescribeStatement API.")
    return 200, {}, json.dumps({"ColumnMetadata": sub.columns, "Records": sub.records,
                                "TotalNumRows": len(sub.records)})


def cancel_statement(self: Any) -> tuple[int, dict[str, str], str]:
    try:
        _engine().cancel(self._get_param("Id"), caller(self))
    except KeyError:
        raise ResourceNotFoundException() from None
    except ValueError as e:
        raise ValidationException(str(e)) from None
    return 200, {}, json.dumps({"Status": True})


def set_version_id(bucket: str, key: str, version_id: str, restored: str) -> None:
    """Give the object version `version_id` of bucket/key the id `restored` (a version an
    earlier process uploaded; S3 never lets a client choose one, the local runtime restores
    it)."""
    from moto.s3.models import s3_backends

    from local_runtime.cfn import ACCOUNT_ID

    fake_bucket = s3_backends[ACCOUNT_ID]["aws"].get_bucket(bucket)
    for version in fake_bucket.keys.getlist(key):
        if version.version_id == version_id:
            version._version_id = restored
            return
    raise LookupError(f"s3://{bucket}/{key} has no version {version_id}")


def _patch_redshift_data() -> None:
    responses = current(REDSHIFT_DATA_RESPONSES)
    for handler in (execute_statement, batch_execute_statement, describe_statement,
                    get_statement_result, cancel_statement):
        setattr(responses, handler.__name__, handler)


def _patch_send_task_failure() -> None:
    from moto.core.responses import EmptyResult

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"),
            cause=self._get_param("cause"))
        return EmptyResult()

    patch(SEND_TASK_FAILURE, send_task_failure)


def _callback(backend: Any, token: str) -> Any:
    """The open callback endpoint of `token`; TaskTimedOut / InvalidToken as AWS answers."""
    from moto.stepfunctions.parser.api import ExecutionStatus, InvalidToken, TaskTimedOut

    for execution in backend._get_executions():
        worker = getattr(execution, "exec_worker", None)
        endpoint = worker.env.callback_pool_manager.get(token) if worker else None
        if endpoint is None:
            continue
        # its outcome taken, or its task ended (which sets the event: interrupt_all)
        if (execution.status != ExecutionStatus.RUNNING or endpoint.get_outcome() is not None
                or endpoint._notify_event.is_set()):
            raise TaskTimedOut("Task Timed Out: the task of this token is closed",
                               exception_type="TaskTimedOut")
        return endpoint
    raise InvalidToken()


def _patch_task_tokens() -> None:
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackOutcomeFailure,
        CallbackOutcomeSuccess,
    )

    def send_task_success(self: Any, task_token: str, outcome: str) -> None:
        _callback(self, task_token).notify(
            CallbackOutcomeSuccess(callback_id=task_token, output=outcome))

    def send_task_failure(self: Any, task_token: str, error: Any = None, cause: Any = None
                          ) -> None:
        _callback(self, task_token).notify(
            CallbackOutcomeFailure(callback_id=task_token, error=error, cause=cause))

    patch(PARSER_BACKEND + ".send_task_success", send_task_success)
    patch(PARSER_BACKEND + ".send_task_failure", send_task_failure)
