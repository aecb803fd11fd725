"""A Spark job that fails in the local runtime leaves one line in the ledger and the alert saying
what happened and where the logs are; the input object stays as it was and a re-run recovers.

The job runs in its own process (local_runtime.spark's cold path, LOCAL_RUNTIME_SPARK=cold): the
fault, a full disk when it writes its quality report, is put into that process by a
`sitecustomize` module on its PYTHONPATH, the only way in from outside; the re-run goes back to
the warm local Spark. Everything after the fault (the job's JOB ERROR line, GetJobRun's
stateDetails, the state machine's Catch, HandleFailure) is the real code path.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from local_runtime.cli import run_file

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
DISK_FULL = textwrap.dedent("""
    import errno, os, sys
    if sys.argv and sys.argv[0].endswith("main.py"):  # the job's driver, not a Python worker
        from spark_jobs.common import storage

        def no_space(self, uri, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), uri)

        storage.Storage.write_text = no_space
""")


def _fill_the_disk(deployment, tmp_path, monkeypatch) -> None:
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(DISK_FULL)
    runner = deployment.spark_runner
    monkeypatch.setattr(runner, "mode", "cold")  # a process of its own, to put the fault in
    path = os.pathsep.join(p for p in (str(inject), runner.base_env.get("PYTHONPATH")) if p)
    monkeypatch.setitem(runner.extra_env, "PYTHONPATH", path)


def _raw(deployment, key):
    return deployment.client("s3").get_object(Bucket=deployment.bucket("raw"),
                                              Key=key)["Body"].read()


def test_a_full_disk_is_one_line_in_the_ledger_and_the_alert_then_a_rerun_recovers(
        deployment, warehouse_db, tmp_path, monkeypatch):
    src = tmp_path / "2010-12-15.csv"
    body = (SAMPLES / "2010-12-01.csv").read_bytes().replace(b"2010-12-01", b"2010-12-15")
    src.write_bytes(body)
    key = "online_retail/2010-12-15.csv"

    _fill_the_disk(deployment, tmp_path, monkeypatch)
    res = run_file(deployment, src, key, out=None)
    assert res.status == "FAILED", res.summary
    failure = res.ledger["failure"]
    assert (res.ledger["status"], failure["state"]) == ("FAILED", "RunServerlessJob")
    cause = failure["cause"]
    assert "\n" not in cause
    assert cause.startswith("disk full while writing "), cause
    assert "quality.json: No space left on device; logs: " in cause, cause
    logs = Path(cause.rsplit("; logs: ", 1)[1])
    assert logs == Path(failure["logs"]) and logs.name == "stderr.log" and logs.is_file()
    assert "JOB ERROR: disk full while writing" in logs.read_text()
    alert_text = str(res.alerts)
    assert cause in alert_text
    assert "Traceback" not in alert_text and "\tat " not in alert_text
    assert _raw(deployment, key) == body

    monkeypatch.undo()  # the disk has room again
    again = run_file(deployment, src, key, out=None, rerun=True)
    assert again.status == "SUCCEEDED", again.summary
    assert warehouse_db("select count(*) from analytics.sales_line_items "
                        "where order_date = '2010-12-15'")[0][0] > 0
    assert _raw(deployment, key) == body


def test_the_stand_ins_state_details_are_worded_as_emr_serverless_words_them(tmp_path):
    """GetJobRun's stateDetails of a failed job: "Job execution failed, please check complete
    logs in configured logging destination. ExitCode: 1. Last few exceptions: ..." (EMR
    Serverless API Reference, "JobRun":
    https://docs.aws.amazon.com/emr-serverless/latest/APIReference/API_JobRun.html); locally
    the destination is the job's stderr file."""
    from local_runtime.spark import failure_details
    from pipeline_core.failure_causes import classify_text

    log = tmp_path / "stderr.log"
    log.write_text("Traceback (most recent call last):\n  File \"main.py\", line 1\n"
                   "py4j.protocol.Py4JJavaError: An error occurred while calling o87.parquet.\n"
                   ": java.lang.OutOfMemoryError: Java heap space\n"
                   "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n")
    details = failure_details(1, log)
    assert details.startswith(f"Job execution failed, please check complete logs in {log}. "
                              "ExitCode: 1. Last few exceptions: py4j.protocol.Py4JJavaError")
    found = classify_text(details)
    assert (found.line, found.logs) == (
        "the Spark driver ran out of memory (java.lang.OutOfMemoryError: Java heap space)",
        str(log))

    log.write_text("some output\nJOB ERROR: input x is empty (0 bytes)\nlater noise\n")
    assert failure_details(2, log).endswith("Last few exceptions: JOB ERROR: input x is empty "
                                            "(0 bytes)")
    log.write_text("")
    killed = classify_text(failure_details(-9, log))
    assert killed.category == "driver_lost" and "SIGKILL" in killed.line
