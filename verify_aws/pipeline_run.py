"""One run through the deployed pipeline: drop the sample, find the execution its Object Created
event started, wait for it, then check the rows Redshift holds and that no compute is left.

The execution is found, not started: the point is to prove that the bucket's EventBridge rule
starts the state machine. It is the execution that started after the upload whose input (the
S3 event) names the raw bucket and the key.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline_aws.ledger import LedgerPort
from pipeline_aws.redshift import RedshiftDataPort

# Executions are listed from a little before the upload: the client's clock may run ahead.
CLOCK_SKEW = timedelta(minutes=2)
# TERMINATING is not listed: such a cluster was told to stop (the ASL terminates request-response).
ACTIVE_CLUSTER_STATES = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
ACTIVE_JOB_RUN_STATES = ["SUBMITTED", "PENDING", "SCHEDULED", "RUNNING", "QUEUED", "CANCELLING"]
LOADED_TABLE = "sales_line_items"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}\Z")


@dataclass(frozen=True)
class Upload:
    bucket: str
    key: str
    since: datetime


@dataclass(frozen=True)
class Finished:
    execution_arn: str
    output: dict[str, Any]


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._end = clock() + seconds
        self.seconds = seconds

    def passed(self) -> bool:
        return self._clock() >= self._end


def upload_sample(s3: Any, bucket: str, sample: Path, key: str,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Upload:
    since = now() - CLOCK_SKEW
    s3.put_object(Bucket=bucket, Key=key, Body=sample.read_bytes(), ContentType="text/csv")
    return Upload(bucket, key, since)


def _recent(sfn: Any, machine: str, since: datetime) -> Iterator[str]:
    """Execution ARNs started at or after `since`, newest first (ListExecutions' order)."""
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
        for execution in page.get("executions", []):
            if execution["startDate"] < since:
                return
            yield str(execution["executionArn"])


def started_by(described: dict[str, Any], upload: Upload) -> bool:
    """Whether an execution's input is the Object Created event of the uploaded object."""
    try:
        detail = json.loads(described.get("input") or "{}").get("detail") or {}
    except (ValueError, AttributeError):
        return False
    if not isinstance(detail, dict):
        return False
    return ((detail.get("bucket") or {}).get("name") == upload.bucket
            and (detail.get("object") or {}).get("key") == upload.key)


def find_execution(sfn: Any, machine: str, upload: Upload, deadline: Deadline,
                   sleep: Callable[[float], None], poll: float) -> str:
    while True:
        for arn in _recent(sfn, machine, upload.since):
            if started_by(sfn.describe_execution(executionArn=arn), upload):
                return arn
        if deadline.passed():
            raise RuntimeError(f"no execution of {machine} started for s3://{upload.bucket}/"
                               f"{upload.key} within {deadline.seconds:.0f}s: is the raw "
                               "bucket's EventBridge rule enabled?")
        sleep(poll)


def wait_for(sfn: Any, arn: str, deadline: Deadline, sleep: Callable[[float], None],
             poll: float) -> Finished:
    """The execution's output once it SUCCEEDED; it is stopped when the deadline passes."""
    while True:
        described = sfn.describe_execution(executionArn=arn)
        status = described["status"]
        if status == "SUCCEEDED":
            return Finished(arn, json.loads(described.get("output") or "{}"))
        if status != "RUNNING":
            raise RuntimeError(f"execution {arn} ended {status}: {described.get('error', '?')}: "
                               f"{described.get('cause', '')}"[:1000])
        if deadline.passed():
            sfn.stop_execution(executionArn=arn, error="VerifyAwsTimeout",
                               cause=f"verify-aws gave up after {deadline.seconds:.0f}s")
            raise RuntimeError(f"execution {arn} still RUNNING after {deadline.seconds:.0f}s; "
                               "it was stopped")
        sleep(poll)


def run_id_of(finished: Finished) -> str:
    run = finished.output.get("run") or {}
    if run.get("duplicate"):
        raise RuntimeError(f"execution {finished.execution_arn} treated the sample as a "
                           "duplicate delivery and loaded nothing")
    run_id = str(run.get("run_id") or "")
    if not _SAFE_ID.match(run_id):
        raise RuntimeError(f"execution {finished.execution_arn} output has no usable run.run_id "
                           f"({run_id!r})")
    return run_id


def data_lines(sample: Path) -> int:
    """Lines after the header that are not blank: what the job reports as lines read."""
    lines = sample.read_bytes().splitlines()
    return sum(1 for line in lines[1:] if line.strip())


def count_sql(day: str, run_id: str) -> str:
    """The day's rows in the loaded table, and how many of them this run wrote."""
    if not _SAFE_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} is not a run id")
    datetime.strptime(day, "%Y-%m-%d")  # only a real date goes into the SQL
    return (f"SELECT count(*), sum(CASE WHEN run_id = '{run_id}' THEN 1 ELSE 0 END) "
            f"FROM analytics.{LOADED_TABLE} WHERE order_date = '{day}'")


def expected_rows(ledger: LedgerPort, run_id: str, sample: Path) -> int:
    """The rows the run says it wrote (its metrics, in the ledger), once the ledger agrees with
    itself and with the sample: lines read = the file's data lines, rows loaded = lines out."""
    item = ledger.get(run_id)
    if item is None:
        raise RuntimeError(f"run {run_id} is not in the ledger")
    if item.get("status") != "SUCCEEDED":
        raise RuntimeError(f"run {run_id} is {item.get('status')} in the ledger, not SUCCEEDED")
    lines = item.get("lines") or {}
    read = data_lines(sample)
    if lines.get("in") != read:
        raise RuntimeError(f"run {run_id} read {lines.get('in')} lines but {sample.name} has "
                           f"{read} data lines")
    written = lines.get("out")
    loaded = (item.get("rows_loaded") or {}).get(LOADED_TABLE)
    if not isinstance(written, int) or written <= 0:
        raise RuntimeError(f"run {run_id} wrote {written!r} lines: nothing to check")
    if loaded != written:
        raise RuntimeError(f"run {run_id} wrote {written} lines but recorded {loaded!r} rows "
                           f"loaded into {LOADED_TABLE}")
    return written


def check_rows(redshift: RedshiftDataPort, day: str, run_id: str, expected: int) -> str:
    """Redshift holds exactly the run's rows for the day (the load replaces the day)."""
    rows = redshift.query(count_sql(day, run_id), statement_name="verify-aws row count",
                          timeout_seconds=120)
    day_rows, run_rows = (int(v or 0) for v in rows[0]) if rows else (0, 0)
    if day_rows != expected or run_rows != expected:
        raise RuntimeError(f"analytics.{LOADED_TABLE} holds {day_rows} rows for {day} "
                           f"({run_rows} from run {run_id}); expected {expected}")
    return f"analytics.{LOADED_TABLE} holds {expected} rows for {day}, all from {run_id}"


def leftover_compute(emr: Any, emr_serverless: Any, stack: str, application_id: str
                     ) -> list[str]:
    """EMR clusters tagged with the stack and job runs of its application still running."""
    left: list[str] = []
    clusters = emr.get_paginator("list_clusters")
    for page in clusters.paginate(ClusterStates=ACTIVE_CLUSTER_STATES):
        for cluster in page.get("Clusters", []):
            described = emr.describe_cluster(ClusterId=cluster["Id"])["Cluster"]
            tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
            if tags.get("pipeline:app") == stack:
                left.append(f"EMR cluster {cluster['Id']} ({cluster['Status']['State']})")
    runs = emr_serverless.get_paginator("list_job_runs")
    for page in runs.paginate(applicationId=application_id, states=ACTIVE_JOB_RUN_STATES):
        for run in page.get("jobRuns", []):
            left.append(f"EMR Serverless job run {run['id']} ({run['state']})")
    return left
