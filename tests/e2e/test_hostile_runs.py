"""Faults and hostile deliveries through the real state machine on the shared local deployment
(moto + local Spark + PostgreSQL; tests/e2e/conftest.py). Each case checks what a person sees
(the ledger's failed state and cause, the alert), what the warehouse holds, that the input
object is exactly as delivered (bytes and version), and that a re-run afterwards recovers.

Faults are injected where the local runtime hands work out: a Lambda Task through the Step
Functions hook (local_runtime.sfn_hooks.STATE.invoke_lambda) answering with Lambda's error
shape on every attempt, so the state's Retry runs out and its Catch decides (Step Functions
developer guide, "Handling errors in Step Functions workflows",
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html); the Spark
job by killing its process; the warehouse by refusing the Data API's connections.

Every case uses its own days (2011-03-xx), so it never meets the other e2e tests' rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_expected import expected_day

from local_runtime import sfn_hooks
from local_runtime.cli import run_file
from local_runtime.runner import ledger_item, put_raw_object, run_execution

pytestmark = [pytest.mark.e2e, pytest.mark.hostile]
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
DAY1, DAY2 = SAMPLES / "2010-12-01.csv", SAMPLES / "2010-12-02.csv"
LAMBDA_RETRIES = 4  # MaxAttempts of every Lambda Task's Retry in statemachines/pipeline.asl.json


def _day_file(tmp_path: Path, day: str, source: Path = DAY1, extra: str = "") -> Path:
    """A real sample day moved to `day` (its timestamps rewritten), plus `extra` lines."""
    text = source.read_text().replace(source.stem, day)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{day}.csv"
    path.write_text(text + extra)
    return path


def _rows(q, day: str) -> tuple[int, int]:
    """(line items, customer days) the warehouse holds for `day`; (0, 0) before the first load
    of the session created the database and its tables (the pipeline migrates the warehouse
    on its first load)."""
    import psycopg

    try:
        if q("select to_regclass('analytics.customer_daily_sales')")[0][0] is None:
            return 0, 0
    except psycopg.OperationalError as e:
        if "does not exist" in str(e):
            return 0, 0
        raise
    items = q("select count(*) from analytics.sales_line_items where order_date = %s",
              (day,))[0][0]
    daily = q("select count(*) from analytics.customer_daily_sales where order_date = %s",
              (day,))[0][0]
    return items, daily


def _expected_rows(path: Path) -> tuple[int, int]:
    exp = expected_day(path)
    return exp["line_items"], len(exp["customers"])


def _input_as_delivered(deployment, key: str, body: bytes) -> None:
    """The raw object's only version holds the delivered bytes (nothing moved or rewrote it)."""
    s3 = deployment.client("s3")
    bucket = deployment.bucket("raw")
    versions = [v for v in s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
                if v["Key"] == key]
    latest = [v for v in versions if v["IsLatest"]]
    assert len(latest) == 1
    got = s3.get_object(Bucket=bucket, Key=key, VersionId=latest[0]["VersionId"])
    assert got["Body"].read() == body


def _failed_alert(res, state: str) -> dict[str, Any]:
    alerts = [a for a in res.alerts if f"failed at {state}" in (a["subject"] or "")]
    assert alerts, [a["subject"] for a in res.alerts]
    return alerts[0]


@contextlib.contextmanager
def failing_state(state: str, error: str = "TransientError") -> Iterator[list[str]]:
    """Every invocation of the Lambda Task `state` fails with `error` (the retries run out);
    yields the list of the failed attempts."""
    original = sfn_hooks.STATE.invoke_lambda
    attempts: list[str] = []

    def invoke(function: str, payload: Any) -> dict[str, Any]:
        if isinstance(payload, dict) and payload.get("state_name") == state:
            attempts.append(state)
            return {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion": "$LATEST",
                    "Payload": {"errorType": error,
                                "errorMessage": f"injected by test_hostile_runs at {state}",
                                "stackTrace": []}}
        return original(function, payload)

    sfn_hooks.STATE.invoke_lambda = invoke
    try:
        yield attempts
    finally:
        sfn_hooks.STATE.invoke_lambda = original


def _rerun_recovers(deployment, warehouse_db, path: Path, key: str, day: str) -> None:
    again = run_file(deployment, path, key, out=None, rerun=True)
    assert again.status == "SUCCEEDED", again.summary
    assert again.ledger["status"] == "SUCCEEDED"
    assert _rows(warehouse_db, day) == _expected_rows(path)


# -- a failure at each Lambda Task, retries exhausted ----------------------------------------------

# state -> (day, where the ledger says it failed). One Task before compute, one with a load
# statement in flight, one after the rows are in: each costs two Spark runs here, and the
# Retry/Catch routing of every Task is held cheaply in tests/statemachine.
TASK_FAULTS = {
    "ResolveRun": ("2011-03-01", "ResolveRun"),
    "AwaitLoad": ("2011-03-04", "AwaitLoad"),
    "RecordRun": ("2011-03-05", "RecordRun"),
}


@pytest.mark.parametrize("state", list(TASK_FAULTS))
def test_a_task_failing_on_every_attempt_fails_the_run_then_a_rerun_recovers(
        deployment, warehouse_db, tmp_path, state):
    day, failed_state = TASK_FAULTS[state]
    path = _day_file(tmp_path, day)
    key = f"online_retail/{day}.csv"
    with failing_state(state) as attempts:
        res = run_file(deployment, path, key, out=None)

    assert res.status == "FAILED", res.summary
    assert len(attempts) == 1 + LAMBDA_RETRIES  # the Retry ran out, then Catch took over
    ledger = res.ledger or ledger_item(deployment, res.execution_arn.rsplit(":", 1)[-1])
    assert ledger is not None and ledger["status"] == "FAILED"
    assert ledger["failure"]["state"] == failed_state
    assert ledger["failure"]["error"] == "TransientError"
    assert f"injected by test_hostile_runs at {state}" in ledger["failure"]["cause"]
    alert = _failed_alert(res, failed_state)
    assert "TransientError" in alert["subject"]
    if state in ("ResolveRun", "EvaluateQuality", "StartLoad"):
        assert _rows(warehouse_db, day) == (0, 0)  # nothing was loaded
    _input_as_delivered(deployment, key, path.read_bytes())
    _rerun_recovers(deployment, warehouse_db, path, key, day)


def test_a_failing_track_cost_does_not_fail_a_loaded_run(deployment, warehouse_db, tmp_path):
    """TrackCost's Catch goes on to Succeeded: the cost is a report, the data are loaded."""
    day = "2011-03-06"
    path = _day_file(tmp_path, day)
    with failing_state("TrackCost") as attempts:
        res = run_file(deployment, path, f"online_retail/{day}.csv", out=None)
    assert res.status == "SUCCEEDED", res.summary
    assert len(attempts) == 1 + LAMBDA_RETRIES
    assert res.ledger["status"] == "SUCCEEDED"
    assert _rows(warehouse_db, day) == _expected_rows(path)


# -- the job killed, the warehouse gone -----------------------------------------------------------


def _kill_the_job_when_it_runs(deployment, stop: threading.Event, after_s: float = 2.0
                               ) -> threading.Thread:
    """SIGKILL the Spark job's process group `after_s` seconds after it started (an OOM
    killer or a lost node does not ask first). The job runs on the cold path (a process of its
    own); killing the warm Spark server under a job is in test_warm_spark."""
    runner = deployment.spark_runner

    def watch() -> None:
        while not stop.is_set():
            with runner._lock:
                procs = list(runner._procs.values())
            if procs:
                time.sleep(after_s)
                for proc in procs:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True, name="kill-spark-job")
    thread.start()
    return thread


def test_the_spark_job_killed_mid_run_fails_the_run_then_a_rerun_recovers(
        deployment, warehouse_db, tmp_path, monkeypatch):
    day = "2011-03-07"
    path = _day_file(tmp_path, day)
    key = f"online_retail/{day}.csv"
    stop = threading.Event()
    monkeypatch.setattr(deployment.spark_runner, "mode", "cold")
    watcher = _kill_the_job_when_it_runs(deployment, stop)
    try:
        res = run_file(deployment, path, key, out=None)
    finally:
        stop.set()
        watcher.join(timeout=5)
        monkeypatch.undo()  # the re-run goes to the warm local Spark
    assert res.status == "FAILED", res.summary
    assert res.ledger["status"] == "FAILED"
    assert res.ledger["failure"]["state"] == "RunServerlessJob"
    assert re.search(r"SIGKILL|signal 9|ExitCode: -9", res.ledger["failure"]["cause"]), \
        res.ledger["failure"]["cause"]
    _failed_alert(res, "RunServerlessJob")
    assert _rows(warehouse_db, day) == (0, 0)
    _input_as_delivered(deployment, key, path.read_bytes())
    _rerun_recovers(deployment, warehouse_db, path, key, day)


def test_the_warehouse_gone_during_the_load_fails_the_run_then_a_rerun_recovers(
        deployment, warehouse_db, tmp_path, monkeypatch):
    """Connections to the warehouse are refused from the load on (the job has run): the run
    fails in the load states with a cause naming the connection, and loads nothing."""
    day = "2011-03-08"
    path = _day_file(tmp_path, day)
    key = f"online_retail/{day}.csv"
    data_api = deployment.data_api
    with monkeypatch.context() as m:
        m.setattr(data_api, "_database_url",
                  lambda database: f"postgresql://postgres@127.0.0.1:1/{database}")
        res = run_file(deployment, path, key, out=None)
    assert res.status == "FAILED", res.summary
    assert res.ledger["status"] == "FAILED"
    assert res.ledger["failure"]["state"] in ("StartLoad", "AwaitLoad", "LoadFailed")
    cause = res.ledger["failure"]["cause"]
    assert re.search(r"connect|Connection refused", cause, re.I), cause
    assert res.alerts
    assert _rows(warehouse_db, day) == (0, 0)
    _input_as_delivered(deployment, key, path.read_bytes())
    _rerun_recovers(deployment, warehouse_db, path, key, day)


# -- one object, two executions at once -----------------------------------------------------------


def test_two_executions_of_one_object_at_once_load_it_once(deployment, warehouse_db, tmp_path):
    day = "2011-03-09"
    path = _day_file(tmp_path, day, DAY2)
    key = f"online_retail/{day}.csv"
    put = put_raw_object(deployment, key, path.read_bytes())
    event = put.event()
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        results[name] = run_execution(deployment, event, name=f"twin-{name}-{uuid.uuid4().hex[:6]}")

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["SUCCEEDED", "SUCCEEDED"], [r.summary for r in results.values()]
    duplicates = [r for r in results.values() if (r.output.get("run") or {}).get("duplicate")]
    assert len(duplicates) == 1  # one ran, the other ended in DuplicateDelivery
    loaded = next(r for r in results.values() if r is not duplicates[0])
    assert loaded.ledger["status"] == "SUCCEEDED" and loaded.ledger["attempt"] == 1
    assert _rows(warehouse_db, day) == _expected_rows(path)
    _input_as_delivered(deployment, key, path.read_bytes())


# -- a stray line of the next day -----------------------------------------------------------------


def test_a_line_stamped_on_the_next_day_at_midnight_is_quarantined_and_that_day_untouched(
        deployment, warehouse_db, tmp_path):
    """2011-03-11 is loaded; then 2011-03-10 arrives with one line stamped 2011-03-11 00:00:00.
    That line is quarantined, 03-10 loads, and 03-11's rows (count, sums, run ids) stay."""
    later = _day_file(tmp_path, "2011-03-11", DAY2)
    first = run_file(deployment, later, "online_retail/2011-03-11.csv", out=None)
    assert first.status == "SUCCEEDED", first.summary

    def snapshot() -> list[tuple]:
        return warehouse_db(
            "select count(*), sum(line_revenue), min(run_id), max(run_id) "
            "from analytics.sales_line_items where order_date = '2011-03-11'") + warehouse_db(
            "select count(*), sum(revenue), min(run_id), max(run_id) "
            "from analytics.customer_daily_sales where order_date = '2011-03-11'")

    before = snapshot()
    stray = ("581999,22633,HAND WARMER UNION JACK,6,2011-03-11 00:00:00,1.85,17850.0,"
             "United Kingdom\n")
    day = _day_file(tmp_path, "2011-03-10", DAY1, extra=stray)
    res = run_file(deployment, day, "online_retail/2011-03-10.csv", out=None)
    metrics = json.loads(deployment.client("s3").get_object(
        Bucket=deployment.bucket("curated"),
        Key=res.output["run"]["metrics_uri"].split("/", 3)[3])["Body"].read())
    assert metrics["quarantine_reasons"].get(
        "order_date 2011-03-11 is not the run's partition 2011-03-10") == 1
    assert snapshot() == before
    assert warehouse_db("select count(*) from analytics.sales_line_items "
                        "where invoice_no = '581999'")[0][0] == 0
    _input_as_delivered(deployment, "online_retail/2011-03-10.csv", day.read_bytes())
    assert res.status == "SUCCEEDED", res.summary  # the rest of the day loads
    assert res.summary["lines"]["quarantined"] == 1
    clean = _day_file(tmp_path / "without-the-stray-line", "2011-03-10", DAY1)
    assert _rows(warehouse_db, "2011-03-10") == _expected_rows(clean)


# -- a day whose every line is quarantined ---------------------------------------------------------


def test_a_day_whose_every_line_is_quarantined_fails_the_gate_and_loads_nothing(
        deployment, warehouse_db, tmp_path):
    """Every data line of 2011-03-12 has a ninth field. The rules measure the parsed columns and
    pass; the outputs do not: tables of 0 rows fail the gate (quality.min_output_rows), with
    an alert naming the quarantine reason and sample lines."""
    source = _day_file(tmp_path / "clean", "2011-03-12")
    header, *lines = source.read_text().splitlines()
    day = tmp_path / "2011-03-12.csv"
    day.write_text("\n".join([header, *(f"{line},surplus" for line in lines if line)]) + "\n")
    key = "online_retail/2011-03-12.csv"

    res = run_file(deployment, day, key, out=None)

    assert res.status == "FAILED", res.summary
    assert (res.ledger["status"], res.ledger["failure"]["state"]) == ("FAILED",
                                                                      "EvaluateQuality")
    cause = res.ledger["failure"]["cause"]
    assert 'OutputRowCount "sales_line_items" >= 1' in cause, cause
    assert 'OutputRowCount "customer_daily_sales" >= 1' in cause, cause
    alert = str(res.alerts)
    assert "Data quality FAILED" in alert and "more fields than the header" in alert, alert
    assert "surplus" in alert  # a sample line
    assert _rows(warehouse_db, "2011-03-12") == (0, 0)
    _input_as_delivered(deployment, key, day.read_bytes())
