"""A job's entry point: arguments, session, the work, exit code, and one line saying why it failed.

Exit codes: 0 done, 1 the job failed (out of memory, disk full, the driver JVM gone, a Spark
error...), 2 the input or the arguments are refused, 3 the rules file or the warehouse
migrations shipped with the job code are invalid. Every failure ends with one `JOB ERROR: <cause>`
line on stderr (pipeline_core.failure_causes: the same classifier HandleFailure applies to what
EMR reports), after the full traceback for whoever reads the logs.

Cleanup (spark.stop(), the cleanups a job registers) runs whatever happened, and never hides the
first error: a cleanup that fails after a failure is logged as secondary; after a success it is
logged as a warning and the job still succeeds (its outputs are complete).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import TypeVar

from pyspark.sql import SparkSession

from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.failure_causes import JOB_ERROR, classify_exception, one_line
from spark_jobs.common.args import JobArgs, parse_args
from spark_jobs.common.session import get_session
from spark_jobs.common.spark_internals import print_to_driver_stderr

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_CONFIGURATION = 0, 1, 2, 3
T = TypeVar("T")
Cleanup = Callable[[], object]


def report_job_error(error: Exception | str) -> None:
    """One `JOB ERROR: <reason>` line on stderr.

    spark-submit's Python runner folds the Python process's stderr into its own stdout, so
    under spark-submit (a gateway port in the environment) the line also goes to the driver
    JVM's stderr, where EMR's stderr log and the caller look for it.
    """
    line = f"{JOB_ERROR} {one_line(str(error), 2000)}"
    print(line, file=sys.stderr, flush=True)
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        try:
            print_to_driver_stderr(line)
        except Exception as e:  # the Python-side line is already out (a dead JVM, say)
            print(f"(could not also write the error to the JVM's stderr: "
                  f"{classify_exception(e).line})", file=sys.stderr)


def _failed(error: Exception) -> int:
    """Report an error of the work: refused input (2), bad shipped config (3), else (1)."""
    if isinstance(error, InvalidInput):
        report_job_error(error)
        return EXIT_REFUSED
    if isinstance(error, ConfigurationError):
        report_job_error(error)
        return EXIT_CONFIGURATION
    traceback.print_exception(error, file=sys.stderr)
    report_job_error(classify_exception(error).line)
    return EXIT_FAILED


def run_cleanups(cleanups: list[Cleanup], failed: bool) -> None:
    """Run every cleanup, last registered first; their errors are logged, never raised."""
    for cleanup in reversed(cleanups):
        try:
            cleanup()
        except Exception as e:
            role = "secondary error, the first one is reported above" if failed else "warning"
            print(f"cleanup {getattr(cleanup, '__qualname__', cleanup)!s} failed "
                  f"({role}): {classify_exception(e).line}", file=sys.stderr, flush=True)


def run_job(prog: str, argv: list[str], work: Callable[[SparkSession, JobArgs, list[Cleanup]], T],
            *, app_name: Callable[[JobArgs], str],
            session: Callable[[str], tuple[SparkSession, bool]] = get_session
            ) -> tuple[int, T | None]:
    """Parse `argv`, open a session and run `work(spark, args, cleanups)`.

    Returns (exit code, what `work` returned or None). `work` may append cleanups (called after
    it, also when it fails); a session this call created is stopped last.
    """
    try:
        args = parse_args(argv, prog=prog)
    except InvalidInput as e:
        report_job_error(e)
        return EXIT_REFUSED, None
    return run_job_with(lambda spark, cleanups: work(spark, args, cleanups),
                        app_name=app_name(args), session=session)


def run_job_with(work: Callable[[SparkSession, list[Cleanup]], T], *, app_name: str,
                 session: Callable[[str], tuple[SparkSession, bool]] = get_session
                 ) -> tuple[int, T | None]:
    """`run_job` for arguments the caller parsed (a derived job's own): open a session, run
    `work(spark, cleanups)`, clean up; (exit code, what `work` returned or None)."""
    cleanups: list[Cleanup] = []
    try:
        spark, created = session(app_name)
    except Exception as e:  # no JVM: Java missing, or the gateway died while starting
        return _failed(e), None
    if created:
        cleanups.append(spark.stop)
    try:
        result = work(spark, cleanups)
    except Exception as e:
        code = _failed(e)
        run_cleanups(cleanups, failed=True)
        return code, None
    except BaseException:  # KeyboardInterrupt, SystemExit: stop, then let it go on
        run_cleanups(cleanups, failed=True)
        raise
    run_cleanups(cleanups, failed=False)
    return EXIT_OK, result
