"""The SparkSession every job runs in, configured the same on EMR and on a laptop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pyspark.sql import SparkSession

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
