"""A failing job ends with one `JOB ERROR: <cause>` line naming what happened (exit code 1),
whatever the cause: the JVM out of memory, a full disk, a Spark analysis error, a failed task,
the driver JVM killed (test_online_retail_job.py); and cleanup never hides that first error
(spark_jobs.common.entry)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from spark_helpers import SAMPLES, data_lines, write_lines

from spark_jobs.common import entry, outputs
from spark_jobs.common.outputs import GroupedOutput, LineOutput
from spark_jobs.online_retail import transforms


@pytest.fixture
def small_day(tmp_path: Path) -> Path:
    header, lines = data_lines(SAMPLES / "2010-12-01.csv")
    return write_lines(tmp_path / "2010-12-01.csv", header, lines[:40])


def _grouped(build) -> GroupedOutput:
    """online_retail's customer_daily_sales output with another builder."""
    declared = transforms.OUTPUTS["customer_daily_sales"]
    assert isinstance(declared, GroupedOutput)
    return GroupedOutput(build, declared.keys, declared.totals, declared.lines)


def _one_error(run) -> str:
    lines = run.error_lines()
    assert run.code == entry.EXIT_FAILED, run.stderr[-3000:]
    assert len(lines) == 1, run.stderr[-3000:]
    return lines[0]


def test_the_jvm_out_of_memory_is_named(run_job, small_day, monkeypatch):
    """A real java.lang.OutOfMemoryError from the driver JVM: an array over the VM's limit is
    refused at once, nothing is allocated, so the shared session survives it."""
    original = transforms.customer_daily_sales

    def allocate_too_much(frame, run_id):
        jvm = frame.sparkSession.sparkContext._jvm
        jvm.java.lang.reflect.Array.newInstance(jvm.java.lang.Long.TYPE, 2**31 - 1)
        return original(frame, run_id)

    monkeypatch.setitem(transforms.OUTPUTS, "customer_daily_sales",
                        _grouped(allocate_too_much))
    line = _one_error(run_job(small_day, "2010-12-01"))
    assert line == ("JOB ERROR: the Spark driver ran out of memory (java.lang.OutOfMemoryError: "
                    "Requested array size exceeds VM limit)")


def test_a_full_disk_names_the_file_it_was_writing(run_job, small_day, monkeypatch):
    def no_space(frame, uri, name):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), uri)

    monkeypatch.setattr(outputs, "write_parquet", no_space)
    run = run_job(small_day, "2010-12-01")
    line = _one_error(run)
    table_dir = f"{run.out}/sales_line_items/"
    assert line == f"JOB ERROR: disk full while writing {table_dir}: No space left on device"
    assert "Traceback (most recent call last)" in run.stderr  # the whole story stays in the log
    assert not (run.out / "metrics.json").exists()


def test_a_spark_analysis_error_is_named(run_job, small_day, monkeypatch):
    monkeypatch.setitem(transforms.OUTPUTS, "customer_daily_sales",
                        _grouped(lambda frame, run_id: frame.select("no_such_column")))
    line = _one_error(run_job(small_day, "2010-12-01"))
    assert line.startswith("JOB ERROR: Spark refused the query (AnalysisException: "
                           "[UNRESOLVED_COLUMN"), line
    assert "no_such_column" in line


def test_a_failed_task_names_the_error_inside_it(run_job, small_day, monkeypatch):
    original = transforms.sales_line_items

    @F.udf("boolean")
    def divide(quantity):
        return quantity // 0 == 0

    monkeypatch.setitem(transforms.OUTPUTS, "sales_line_items", LineOutput(
        lambda frame, run_id: original(frame, run_id).where(divide("quantity"))))
    line = _one_error(run_job(small_day, "2010-12-01"))
    assert line == ("JOB ERROR: a Python function in a Spark task failed (ZeroDivisionError: "
                    "integer division or modulo by zero)")


class _StopFails:
    """A session whose stop() fails, as it does once the JVM is gone."""

    def stop(self) -> None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")


def test_a_failing_cleanup_never_hides_the_first_error(capsys):
    def work(spark, args, cleanups):
        cleanups.append(lambda: (_ for _ in ()).throw(RuntimeError("temp dir is gone")))
        raise ValueError("the first error")

    code, result = entry.run_job("t", _ARGS, work, app_name=lambda a: "t",
                                 session=lambda name: (_StopFails(), True))
    err = capsys.readouterr().err
    assert (code, result) == (entry.EXIT_FAILED, None)
    assert [ln for ln in err.splitlines() if ln.startswith("JOB ERROR:")] == [
        "JOB ERROR: ValueError: the first error"]
    assert err.rstrip().splitlines()[-1].startswith("cleanup ")  # both cleanups ran, logged
    assert "failed (secondary error, the first one is reported above): RuntimeError: temp dir" \
        in err
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in err


def test_a_cleanup_failing_after_success_is_a_warning(capsys):
    code, result = entry.run_job("t", _ARGS, lambda spark, args, cleanups: {"ok": 1},
                                 app_name=lambda a: "t",
                                 session=lambda name: (_StopFails(), True))
    assert (code, result) == (entry.EXIT_OK, {"ok": 1})
    assert "failed (warning)" in capsys.readouterr().err


_ARGS = ["--input", "/x.csv", "--output-root", "/o/{table}/", "--quarantine", "/q/",
         "--metrics", "/m.json", "--quality", "/q.json", "--rules", "/r.dqdl", "--run-id", "r1",
         "--partition", "2010-12-01"]


# The driver JVM SIGKILLed mid-run needs a process of its own (the test session must live): it
# shares that process and its JVM with the checkout-script run, in test_online_retail_job.py::
# test_main_runs_as_a_script_from_a_checkout_and_a_killed_driver_jvm_is_named.
