"""spark_jobs.common.session.run_concurrently: the threads a batch's partitions run on. Each task
has its own session (temporary views apart, the caller's SQL conf), keeps the caller's job
group and tags (a cancel by them reaches its Spark jobs), and a failure, or an exception in the
caller while it waits, stops every other task before it is raised."""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pipeline_core.errors import InvalidInput
from spark_jobs.common.session import run_concurrently
from spark_jobs.common.spark_internals import clear_job_group

pytestmark = pytest.mark.spark

LONG_QUERY = "select count(*) from range(0, 1000000000000, 1, 2)"  # ~15 min on 2 cores


class Interrupted(BaseException):
    """Raised in a caller's thread from outside, as the warm local Spark's cancel does."""


def _no_worker_left() -> None:
    left = [t.name for t in threading.enumerate() if t.name.startswith("concurrent-")]
    assert not left, f"threads still running after run_concurrently ended: {left}"


def _no_spark_job_left(spark: SparkSession) -> None:
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + 30
    while tracker.getActiveJobsIds() and time.monotonic() < deadline:  # cancel is asynchronous
        time.sleep(0.1)
    assert not tracker.getActiveJobsIds()


def test_each_task_has_its_own_temp_views_and_the_callers_sql_conf(spark) -> None:
    both_registered = threading.Barrier(2, timeout=120)

    def task(rows: int) -> Any:
        def run(session: SparkSession) -> tuple[int, str]:
            session.range(rows).createOrReplaceTempView("primary")
            both_registered.wait()  # each view exists while the other task reads its own
            seen = session.sql("select count(*) from primary").collect()[0][0]
            return seen, session.conf.get("spark.sql.session.timeZone")

        return run

    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")
    try:
        outcomes = run_concurrently(spark, [task(3), task(5)], workers=2)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert outcomes == [(3, "Asia/Tokyo"), (5, "Asia/Tokyo")]
    assert not spark.catalog.tableExists("primary")  # nor in the caller's session


def test_tasks_keep_the_callers_job_group_and_tags(spark) -> None:
    context = spark.sparkContext

    def task(session: SparkSession) -> tuple[str | None, set[str]]:
        return context.getLocalProperty("spark.jobGroup.id"), set(context.getJobTags())

    context.setJobGroup("the-callers-group", "a caller")
    context.addJobTag("the-callers-tag")
    try:
        [(group, tags)] = run_concurrently(spark, [task], workers=1)
    finally:
        context.removeJobTag("the-callers-tag")
        clear_job_group(spark)
    assert group == "the-callers-group"
    assert "the-callers-tag" in tags


def test_results_come_in_the_tasks_order_and_a_refused_task_fails_alone(spark) -> None:
    def task(n: int) -> Any:
        def run(session: SparkSession) -> int:
            if n == 2:
                raise InvalidInput("task 2 refused")
            time.sleep(0.05 * (5 - n))  # the later tasks end first
            return n

        return run

    outcomes = run_concurrently(spark, [task(n) for n in range(5)], workers=3,
                                fails_alone=(InvalidInput,))
    assert outcomes[:2] == [0, 1] and outcomes[3:] == [3, 4]
    assert isinstance(outcomes[2], InvalidInput) and str(outcomes[2]) == "task 2 refused"
    _no_worker_left()


def test_a_failure_cancels_the_running_tasks_and_starts_no_more(spark) -> None:
    long_started, ran, long_ended = threading.Event(), [], []

    def long(session: SparkSession) -> None:
        long_started.set()
        try:
            session.sql(LONG_QUERY).collect()
        except Exception as e:
            long_ended.append(e)
            raise

    def failing(session: SparkSession) -> None:
        assert long_started.wait(120)
        time.sleep(1)  # the long query's tasks are running
        raise RuntimeError("a partition crashed")

    def never(session: SparkSession) -> None:
        ran.append("the queued task")

    with pytest.raises(RuntimeError, match="a partition crashed"):
        run_concurrently(spark, [long, failing, never], workers=2)
    assert ran == []
    assert long_ended and "cancel" in str(long_ended[0]).lower()  # not left to run to its end
    _no_worker_left()
    _no_spark_job_left(spark)


def test_an_exception_in_the_waiting_caller_stops_every_task_first(spark) -> None:
    """The warm local Spark's cancel: the job's tag cancelled, an exception raised in its
    thread; the tasks' Spark jobs carry the tag, and the caller waits for them."""
    context, started, raised = spark.sparkContext, threading.Event(), []

    def long(session: SparkSession) -> None:
        started.set()
        session.sql(LONG_QUERY).collect()

    def caller() -> None:
        context.addJobTag("the-job")
        try:
            run_concurrently(spark, [long, long], workers=2)
        except BaseException as e:
            raised.append(e)
            _no_worker_left()  # checked before the caller goes on
        finally:
            context.removeJobTag("the-job")

    thread = threading.Thread(target=caller)
    thread.start()
    assert started.wait(120)
    time.sleep(1)
    context.cancelJobsWithTag("the-job")
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                               ctypes.py_object(Interrupted))
    thread.join(timeout=120)
    assert not thread.is_alive(), "the caller did not end: the long queries were not cancelled"
    assert [type(e) for e in raised] == [Interrupted]
    _no_spark_job_left(spark)


def test_no_worker_is_refused_by_name(spark) -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        run_concurrently(spark, [lambda s: 1], workers=0)
