"""The SparkSession every job runs in, configured the same on EMR and on a laptop; and the
sessions of work that runs concurrently in one Spark application (a batch's partitions)."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Generic, TypeVar, cast

from pyspark import InheritableThread
from pyspark.sql import SparkSession

T = TypeVar("T")
# How often a caller waiting for its concurrent tasks wakes: a cancel raised in its thread
# (the warm local Spark's) is only delivered between waits, and a failed task's siblings get
# their new Spark jobs cancelled at this pace.
_WAIT_SECONDS = 0.2

# SQL settings a job relies on; set at runtime too, because a job may be handed a session that
# someone else built (tests, the local runtime).
RUNTIME_CONF = {
    # Timestamps in the raw files carry no zone: read and write them as UTC wall-clock, never
    # in whatever zone the machine happens to be in.
    "spark.sql.session.timeZone": "UTC",
    # Redshift COPY and most readers expect INT64 microseconds, not legacy INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
}
# Settings only honoured when the session is created.
STARTUP_CONF = {
    # COPY reads every object under an output prefix: no _SUCCESS markers in there.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
}


# A session handed to the jobs of this thread by whoever runs them in a shared Spark (the local
# runtime's warm Spark: one SparkContext, a new session per job). PySpark's own "active
# session" is one per process in Python, so concurrent jobs would see each other's.
_PROVIDED: ContextVar[SparkSession | None] = ContextVar("provided_session", default=None)


@contextmanager
def provided_session(spark: SparkSession) -> Iterator[SparkSession]:
    """Within this block get_session returns `spark` (created=False: the job never stops it)."""
    token = _PROVIDED.set(spark)
    try:
        yield spark
    finally:
        _PROVIDED.reset(token)


def configure(spark: SparkSession) -> SparkSession:
    for key, value in RUNTIME_CONF.items():
        spark.conf.set(key, value)
    return spark


def get_session(app_name: str) -> tuple[SparkSession, bool]:
    """The active session if there is one (tests, local runtime), else a new one.

    Returns (session, created): only the code that created a session may stop it.
    """
    provided = _PROVIDED.get()
    if provided is not None:
        return configure(provided), False
    active = SparkSession.getActiveSession()
    if active is not None:
        return configure(active), False
    builder = SparkSession.builder.appName(app_name)
    for key, value in {**STARTUP_CONF, **RUNTIME_CONF}.items():
        builder = builder.config(key, value)
    return configure(builder.getOrCreate()), True


def new_session(spark: SparkSession) -> SparkSession:
    """A session of its own on `spark`'s context (own temporary views, functions and SQL conf)
    holding `spark`'s SQL conf: newSession() starts from the context's conf only, so what was
    set on `spark` at runtime (RUNTIME_CONF, a caller's settings) is copied over."""
    session = spark.newSession()
    fresh = session.conf.getAll
    for key, value in spark.conf.getAll.items():
        if fresh.get(key) != value:
            session.conf.set(key, value)
    return session


def run_concurrently(spark: SparkSession, tasks: Sequence[Callable[[SparkSession], T]],
                     workers: int, fails_alone: tuple[type[Exception], ...] = ()
                     ) -> list[T | Exception]:
    """Each task called with a `new_session` of `spark`, at most `workers` at once, on threads
    that keep the caller's Spark job group and tags (pyspark.InheritableThread: cancelling the
    caller's group or tag reaches their Spark jobs) and its context variables (the warm local
    Spark sends a job's output and temporary files where its context says).

    Returns each task's result, in the tasks' order; a task raising one of `fails_alone` fails
    alone (its exception is its result). Any other exception stops the rest: no task starts
    any more, the running ones get their Spark jobs cancelled, and it is raised once every
    thread has ended (none is left writing after this returns); so is an exception raised in
    the caller's thread while it waits (KeyboardInterrupt, the warm Spark's cancel)."""
    if workers < 1:
        raise ValueError(f"run_concurrently needs at least one worker, not {workers}")
    return _Concurrent(spark, tasks, fails_alone).run(min(workers, len(tasks)))


class _Concurrent(Generic[T]):
    """One run_concurrently call: its tasks, their outcomes and the first failure."""

    def __init__(self, spark: SparkSession, tasks: Sequence[Callable[[SparkSession], T]],
                 fails_alone: tuple[type[Exception], ...]):
        self.spark, self.tasks, self.fails_alone = spark, tasks, fails_alone
        self.outcomes: list[T | Exception | None] = [None] * len(tasks)
        self.failure: BaseException | None = None
        self.tag = f"concurrent-{uuid.uuid4().hex[:12]}"  # every Spark job of these threads
        self._lock = threading.Lock()
        self._pending = iter(range(len(tasks)))

    def run(self, workers: int) -> list[T | Exception]:
        threads = [InheritableThread(target=contextvars.copy_context().run, args=(self._work,),
                                     name=f"{self.tag}-{n}", daemon=True)
                   for n in range(workers)]
        try:
            for thread in threads:
                thread.start()
            self._wait(threads)
        except BaseException as e:
            self._fail(e)
            self._wait(threads)
            raise
        if self.failure is not None:
            raise self.failure
        return cast("list[T | Exception]", self.outcomes)  # every task ran: none is None

    def _work(self) -> None:
        context = self.spark.sparkContext
        context.addJobTag(self.tag)  # a thread's local property: its own jobs only
        try:
            while (index := self._take()) is not None:
                try:
                    self.outcomes[index] = self.tasks[index](new_session(self.spark))
                except self.fails_alone as e:
                    self.outcomes[index] = e
                except BaseException as e:
                    self._fail(e)
        finally:
            with contextlib.suppress(Exception):
                context.removeJobTag(self.tag)

    def _take(self) -> int | None:
        with self._lock:
            return None if self.failure is not None else next(self._pending, None)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            self.failure = self.failure or error

    def _wait(self, threads: list[InheritableThread]) -> None:
        """Until every thread ended; once something failed, cancelling their Spark jobs."""
        while any(thread.is_alive() for thread in threads):
            if self.failure is not None:
                with contextlib.suppress(Exception):  # a stopped context has no jobs left
                    self.spark.sparkContext.cancelJobsWithTag(self.tag)
            for thread in threads:
                thread.join(_WAIT_SECONDS)
