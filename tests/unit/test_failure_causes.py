"""pipeline_core.failure_causes: a failed Spark job's cause in one line, from the texts EMR and
the job leave (JVM and Python traces, EMR Serverless stateDetails, an EMR step's
FailureDetails), and HandleFailure's use of it (pipeline_aws.failure).

EMR Serverless: GetJobRun's `stateDetails` of a failed job reads "Job execution failed, please
check complete logs in configured logging destination. ExitCode: 1. Last few exceptions: ..."
(EMR Serverless API Reference, "JobRun":
https://docs.aws.amazon.com/emr-serverless/latest/APIReference/API_JobRun.html).
EMR on EC2: a failed step's `FailureDetails` has Reason, Message ("text from an error log that
describes the root cause") and LogFile ("the path to the log file where the step failure root
cause was originally recorded") (Amazon EMR API Reference, "FailureDetails":
https://docs.aws.amazon.com/emr/latest/APIReference/API_FailureDetails.html).
"""

from __future__ import annotations

import errno
import json

import pytest

from pipeline_aws.failure import failure_of, job_cause, located
from pipeline_core import failure_causes as fc
from pipeline_core.failure_causes import classify_exception, classify_text

DRIVER_OOM = """\
26/11/21 10:05:12 INFO DAGScheduler: Job 4 finished: collectToPython at \
NativeMethodAccessorImpl.java:0
26/11/21 10:05:40 ERROR Utils: Uncaught exception in thread driver-heartbeater
Traceback (most recent call last):
  File "/tmp/spark-5b1f/main.py", line 446, in <module>
    sys.exit(main())
  File "/tmp/spark-5b1f/spark_jobs.zip/spark_jobs/online_retail/main.py", line 300, in \
_count_verdicts
  File "/usr/lib/spark/python/lib/py4j-0.10.9.9-src.zip/py4j/protocol.py", line 327, in \
get_return_value
py4j.protocol.Py4JJavaError: An error occurred while calling o212.collectToPython.
: java.lang.OutOfMemoryError: Java heap space
\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)
\tat java.base/java.io.ByteArrayOutputStream.ensureCapacity(ByteArrayOutputStream.java:100)
\tat org.apache.spark.sql.execution.SparkPlan.executeCollect(SparkPlan.scala:456)
"""

EXECUTOR_OOM = """\
py4j.protocol.Py4JJavaError: An error occurred while calling o301.parquet.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 7 in stage 4.0 failed \
4 times, most recent failure: Lost task 7.3 in stage 4.0 (TID 42) (ip-10-0-1-5.ec2.internal \
executor 3): java.lang.OutOfMemoryError: GC overhead limit exceeded
\tat java.base/java.util.HashMap.resize(HashMap.java:702)
Driver stacktrace:
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2856)
"""

YARN_MEMORY = """\
org.apache.spark.SparkException: Job aborted due to stage failure: Task 2 in stage 1.0 failed 4 \
times, most recent failure: Lost task 2.3 in stage 1.0 (TID 9) (ip-10-0-1-7 executor 5): \
ExecutorLostFailure (executor 5 exited caused by one of the running tasks) Reason: Container \
killed by YARN for exceeding memory limits. 5.5 GB of 5.5 GB physical memory used. Consider \
boosting spark.yarn.executor.memoryOverhead.
"""

SHUFFLE_DISK_FULL = """\
Caused by: org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage \
2.0 failed 4 times, most recent failure: Lost task 3.3 in stage 2.0 (TID 17) (ip-10-0-1-12 \
executor 2): java.io.FileNotFoundException: \
/mnt/yarn/usercache/hadoop/appcache/application_1700000000000_0001/blockmgr-3a1c/0c/\
shuffle_0_5_0.data.8f2e (No space left on device)
\tat java.base/java.io.FileOutputStream.open0(Native Method)
"""

GATEWAY_GONE = """\
ERROR:root:Exception while sending command.
Traceback (most recent call last):
  File "/usr/lib/spark/python/lib/py4j-0.10.9.9-src.zip/py4j/clientserver.py", line 516, in \
send_command
    raise Py4JNetworkError("Answer from Java side is empty")
py4j.protocol.Py4JNetworkError: Answer from Java side is empty
During handling of the above exception, another exception occurred:
ConnectionRefusedError: [Errno 111] Connection refused
"""

PYTHON_UDF = """\
org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 1.0 failed 1 \
times, most recent failure: Lost task 0.0 in stage 1.0 (TID 1) (localhost executor driver): \
org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File "/tmp/spark-5b1f/spark_jobs.zip/spark_jobs/online_retail/transforms.py", line 88, in parse
ZeroDivisionError: division by zero
\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(\
PythonRunner.scala:581)
"""

ANALYSIS = """\
Traceback (most recent call last):
  File "/tmp/spark-5b1f/main.py", line 446, in <module>
pyspark.errors.exceptions.captured.AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A \
column, variable, or function parameter with name `nope` cannot be resolved. Did you mean one \
of the following? [`id`]. SQLSTATE: 42703;
'Project ['nope]
+- Range (0, 3, step=1, splits=Some(1))
"""

RUNTIME = ("pyspark.errors.exceptions.captured.SparkRuntimeException: [USER_RAISED_EXCEPTION] "
           "boom SQLSTATE: P0001")


@pytest.mark.parametrize(("text", "category", "line"), [
    (DRIVER_OOM, fc.OUT_OF_MEMORY,
     "the Spark driver ran out of memory (java.lang.OutOfMemoryError: Java heap space)"),
    (EXECUTOR_OOM, fc.OUT_OF_MEMORY,
     "a Spark executor ran out of memory (java.lang.OutOfMemoryError: GC overhead limit "
     "exceeded)"),
    (YARN_MEMORY, fc.OUT_OF_MEMORY,
     "a Spark executor ran out of memory (Container killed by YARN for exceeding memory limits. "
     "5.5 GB of 5.5 GB physical memory used. Consider boosting "
     "spark.yarn.executor.memoryOverhead.)"),
    (SHUFFLE_DISK_FULL, fc.DISK_FULL,
     "disk full while writing /mnt/yarn/usercache/hadoop/appcache/application_1700000000000_0001/"
     "blockmgr-3a1c/0c/shuffle_0_5_0.data.8f2e: No space left on device"),
    (GATEWAY_GONE, fc.DRIVER_LOST,
     "the Spark driver JVM is gone (killed or crashed): Answer from Java side is empty"),
    (PYTHON_UDF, fc.TASK_FAILED,
     "a Spark task failed 1 time(s) in stage 1.0: ZeroDivisionError: division by zero"),
    (ANALYSIS, fc.ANALYSIS,
     "Spark refused the query (AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, "
     "variable, or function parameter with name `nope` cannot be resolved. Did you mean one of "
     "the following? [`id`]. SQLSTATE: 42703;)"),
    (RUNTIME, fc.SPARK_ERROR,
     "Spark failed (SparkRuntimeException: [USER_RAISED_EXCEPTION] boom SQLSTATE: P0001)"),
])
def test_each_cause_is_one_line_naming_what_happened(text, category, line):
    found = classify_text(text)
    assert (found.category, found.line) == (category, line)
    assert "\n" not in found.line and "\tat " not in found.line
    # the job prints its classified cause as its JOB ERROR line: read back, it is kept as is
    assert classify_text(f"some log line\nJOB ERROR: {found.line}\n") == found


def test_emr_serverless_state_details_quote_the_job_error_and_name_no_logs():
    details = ("Job execution failed, please check complete logs in configured logging "
               "destination. ExitCode: 1. Last few exceptions: JOB ERROR: input "
               "s3://raw/online_retail/2010-12-01.csv.gz ends in .gz but is not gzip data")
    found = classify_text(details)
    assert found == fc.FailureCause(
        fc.JOB_ERROR_CATEGORY, "JOB ERROR: input s3://raw/online_retail/2010-12-01.csv.gz ends "
        "in .gz but is not gzip data", None)


def test_state_details_of_a_killed_job_and_of_a_silent_one():
    killed = classify_text("Job execution failed, please check complete logs in configured "
                           "logging destination. ExitCode: 137. Last few exceptions: ")
    assert killed.category == fc.DRIVER_LOST and "SIGKILL" in killed.line
    silent = classify_text("Job execution failed, please check complete logs in /w/stderr.log. "
                           "ExitCode: 1. Last few exceptions: ")
    assert silent == fc.FailureCause(
        fc.OTHER, "the job failed with exit code 1 and reported no exception", "/w/stderr.log")


def test_the_local_stand_in_names_its_log_file():
    found = classify_text("Job execution failed, please check complete logs in "
                          "/work/.local/jobs/00f1/stderr.log. ExitCode: -9. Last few "
                          "exceptions: killed by signal SIGKILL")
    assert found.logs == "/work/.local/jobs/00f1/stderr.log"
    assert found.category == fc.DRIVER_LOST
    assert found.line.startswith("the job's processes were killed (SIGKILL")


def test_unknown_text_keeps_its_deepest_exception_or_first_line():
    trace = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
             "RuntimeError: dedupe lost lines: 3 copies of 4 lines\n")
    assert classify_text(trace) == fc.FailureCause(
        fc.OTHER, "RuntimeError: dedupe lost lines: 3 copies of 4 lines")
    assert classify_text("something odd\nmore").line == "something odd"
    assert classify_text("").line == "no details given"
    assert len(classify_text("x" * 5000).line) == fc.LINE_MAX


def test_exceptions_python_side():
    enospc = OSError(errno.ENOSPC, "No space left on device", "/data/out/metrics.json")
    assert classify_exception(enospc) == fc.FailureCause(
        fc.DISK_FULL, "disk full while writing /data/out/metrics.json: No space left on device")
    # the JVM gone: py4j's network error, then the refused reconnect that hides it
    try:
        try:
            raise ConnectionError("Answer from Java side is empty")
        except ConnectionError:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused") from None
    except ConnectionRefusedError as refused:
        hidden = refused
    assert classify_exception(hidden).category == fc.OTHER  # `from None` keeps no context
    try:
        try:
            raise ConnectionError("Answer from Java side is empty")
        except ConnectionError:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")  # noqa: B904
    except ConnectionRefusedError as refused:
        chained = refused
    assert classify_exception(chained).category == fc.DRIVER_LOST
    assert classify_exception(MemoryError()).category == fc.OUT_OF_MEMORY
    assert classify_exception(ValueError("bad")).line == "ValueError: bad"


class _Unprintable(Exception):
    def __str__(self) -> str:  # py4j's error asks a dead JVM for its text
        raise ConnectionRefusedError("Connection refused")


def test_an_exception_whose_text_cannot_be_read_still_classifies():
    assert classify_exception(_Unprintable()).line.endswith("_Unprintable")


# -- HandleFailure (pipeline_aws.failure): the same classifier on what EMR reported ---------------

def _state(name: str, cause: str, **extra: object) -> dict[str, object]:
    return {"failure": {name: {"Error": "States.TaskFailed", "Cause": cause}}, **extra}


def test_serverless_state_details_become_one_line_with_the_log_uri():
    cause = json.dumps({"ApplicationId": "00fo1", "JobRunId": "00fo2", "State": "FAILED",
                        "StateDetails": "Job execution failed, please check complete logs in "
                        "configured logging destination. ExitCode: 1. Last few exceptions: "
                        + DRIVER_OOM})
    state = _state("RunServerlessJob", cause, job_run={"application_id": "00fo1",
                                                        "job_run_id": "00fo2"})
    failure, logs = located(state, failure_of(state, "HandleFailure"), "artifacts")
    assert logs == "s3://artifacts/logs/emr-serverless/applications/00fo1/jobs/00fo2/"
    assert failure.cause == ("the Spark driver ran out of memory (java.lang.OutOfMemoryError: "
                             f"Java heap space); logs: {logs}")


def test_a_step_failure_names_emr_log_file():
    cause = json.dumps({"Step": {"Id": "s-1", "Status": {"State": "FAILED", "FailureDetails": {
        "Reason": "Unknown Error.", "Message": SHUFFLE_DISK_FULL,
        "LogFile": "s3://artifacts/logs/emr/j-2AB/steps/s-1/stderr.gz"}}}})
    line, logs = job_cause(cause)
    assert logs == "s3://artifacts/logs/emr/j-2AB/steps/s-1/stderr.gz"
    assert line.startswith("disk full while writing /mnt/yarn/") and "\n" not in line
    failure, where = located(_state("RunClusterStep", cause), failure_of(
        _state("RunClusterStep", cause), None), "artifacts")
    assert where == logs and failure.cause == f"{line}; logs: {logs}"


def test_the_local_stand_ins_text_cause_names_the_local_log():
    cause = ("Job execution failed, please check complete logs in /w/jobs/00f1/stderr.log. "
             "ExitCode: 1. Last few exceptions: JOB ERROR: disk full while writing "
             "/w/jobs/00f1/out/metrics.json: No space left on device")
    failure, logs = located(_state("RunServerlessJob", cause), failure_of(
        _state("RunServerlessJob", cause), None), "artifacts")
    assert logs == "/w/jobs/00f1/stderr.log"
    assert failure.cause == ("disk full while writing /w/jobs/00f1/out/metrics.json: No space "
                             "left on device; logs: /w/jobs/00f1/stderr.log")


def test_causes_of_other_states_are_not_reclassified():
    state = {"failure": {"EvaluateQuality": {"Error": "QualityGateFailed",
                                             "Cause": "Rule 3 failed: Uniqueness \"a\" > 0.99"}}}
    failure, _ = located(state, failure_of(state, None), "artifacts")
    assert failure.cause == "Rule 3 failed: Uniqueness \"a\" > 0.99"
