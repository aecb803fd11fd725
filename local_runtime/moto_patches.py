"""Patches of moto's emr-serverless backend and redshift-data responses (moto 5.2.5).

- EMRServerlessBackend.start_job_run really runs the job (local Spark subprocess, see spark.py);
  get_job_run then shows SUBMITTED -> RUNNING -> SUCCESS | FAILED | CANCELLED with stateDetails,
  startedAt/endedAt, totalExecutionDurationSeconds and measured resource utilization;
  cancel_job_run kills the process.
- RedshiftDataAPIServiceResponse: execute/batchExecute/describe/getStatementResult/cancel go to
  the DataApiEngine (PostgreSQL).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC
from typing import Any

from local_runtime.spark import JobResult, parse_submit_parameters

STATE: dict[str, Any] = {"runner": None, "engine": None}
_installed = False
_lock = threading.Lock()


def install(runner: Any, engine: Any) -> None:
    global _installed
    STATE["runner"] = runner
    STATE["engine"] = engine
    with _lock:
        if _installed:
            return
        _patch_emr_serverless()
        _patch_redshift_data()
        _installed = True


# -- EMR Serverless ------------------------------------------------------------------------------

def _refresh(job_run: Any) -> None:
    res: JobResult = job_run._local_result
    state = res.state
    job_run.state = "CANCELLED" if state == "CANCELLING" else state
    job_run.state_details = res.details or None
    now = time.time()
    if res.started_at:
        from datetime import datetime

        job_run.started_at = datetime.fromtimestamp(res.started_at, tz=UTC)
        if res.ended_at:
            job_run.ended_at = datetime.fromtimestamp(res.ended_at, tz=UTC)
        job_run.updated_at = datetime.fromtimestamp(res.ended_at or now, tz=UTC)
    job_run.total_execution_duration_seconds = round(res.wall_seconds)
    util = res.utilization()
    job_run.total_resource_utilization = util
    job_run.billed_resource_utilization = util


def _patch_emr_serverless() -> None:
    from moto.emrserverless import models

    original_start = models.EMRServerlessBackend.start_job_run
    original_get = models.EMRServerlessBackend.get_job_run
    original_cancel = models.EMRServerlessBackend.cancel_job_run

    def start_job_run(self, **kwargs: Any):
        job_run = original_start(self, **kwargs)
        runner = STATE["runner"]
        driver = (kwargs.get("job_driver") or {}).get("sparkSubmit") or {}
        conf, py_files = parse_submit_parameters(driver.get("sparkSubmitParameters"))
        result = JobResult()
        job_run._local_result = result
        job_run.state = "SUBMITTED"
        job_run.tags = kwargs.get("tags") or {}

        def work() -> None:
            result.state = "RUNNING"
            timeout = (kwargs.get("execution_timeout_minutes") or 720) * 60
            try:
                runner.run(job_run.id, driver.get("entryPoint", ""),
                           list(driver.get("entryPointArguments") or []),
                           py_files=py_files, conf=conf, result=result, timeout_s=timeout)
            except Exception as e:
                result.state, result.details = "FAILED", f"local runner error: {e}"
                result.ended_at = time.time()

        if runner is None:
            result.state, result.details = "FAILED", "no local Spark runner installed"
        else:
            threading.Thread(target=work, daemon=True, name=f"emr-job-{job_run.id}").start()
        return job_run

    def get_job_run(self, application_id: str, job_run_id: str):
        job_run = original_get(self, application_id, job_run_id)
        if hasattr(job_run, "_local_result"):
            _refresh(job_run)
        return job_run

    def cancel_job_run(self, application_id: str, job_run_id: str):
        job_run = original_get(self, application_id, job_run_id)
        out = original_cancel(self, application_id, job_run_id)
        res = getattr(job_run, "_local_result", None)
        if res is not None and res.state in ("SUBMITTED", "RUNNING"):
            res.state = "CANCELLING"
            STATE["runner"].cancel(job_run_id)
            if res.started_at is None:
                res.state = "CANCELLED"
        return out

    models.EMRServerlessBackend.start_job_run = start_job_run
    models.EMRServerlessBackend.get_job_run = get_job_run
    models.EMRServerlessBackend.cancel_job_run = cancel_job_run


# -- Redshift Data API ---------------------------------------------------------------------------

def _patch_redshift_data() -> None:
    from moto.redshiftdata import responses
    from moto.redshiftdata.exceptions import ResourceNotFoundException, ValidationException

    def _engine():
        engine = STATE["engine"]
        if engine is None:
            raise ValidationException("the local warehouse is not running")
        return engine

    def _target(self) -> dict[str, Any]:
        out = {}
        for key in ("ClusterIdentifier", "WorkgroupName", "Database", "DbUser", "SecretArn"):
            v = self._get_param(key)
            if v:
                out[key] = v
        return out

    def _submitted(st) -> str:
        body = {"Id": st.id, "CreatedAt": st.created_at, **st.target}
        return json.dumps(body)

    def execute_statement(self):
        sql = self._get_param("Sql")
        if not sql:
            raise ValidationException("Sql must not be empty")
        st = _engine().submit([sql], batch=False, target=_target(self),
                              parameters=self._get_param("Parameters"))
        return 200, {}, _submitted(st)

    def batch_execute_statement(self):
        sqls = self._get_param("Sqls") or []
        if not sqls:
            raise ValidationException("Sqls must contain at least one statement")
        st = _engine().submit(list(sqls), batch=True, target=_target(self))
        return 200, {}, _submitted(st)

    def describe_statement(self):
        sid = self._get_param("Id")
        try:
            st, sub = _engine().get(sid)
        except KeyError:
            raise ResourceNotFoundException() from None
        return 200, {}, json.dumps(sub.describe() if sub else st.describe())

    def get_statement_result(self):
        sid = self._get_param("Id")
        try:
            st, sub = _engine().get(sid)
        except KeyError:
            raise ResourceNotFoundException() from None
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

    def cancel_statement(self):
        sid = self._get_param("Id")
        try:
            _engine().cancel(sid)
        except KeyError:
            raise ResourceNotFoundException() from None
        except ValueError as e:
            raise ValidationException(str(e)) from None
        return 200, {}, json.dumps({"Status": True})

    cls = responses.RedshiftDataAPIServiceResponse
    cls.execute_statement = execute_statement
    cls.batch_execute_statement = batch_execute_statement
    cls.describe_statement = describe_statement
    cls.get_statement_result = get_statement_result
    cls.cancel_statement = cancel_statement
