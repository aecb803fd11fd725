"""Every use of PySpark's private API in the product, in one module.

PySpark has no public API for a few things the jobs need: the driver JVM's classes (Hadoop's
FileSystem and Java's regex engine), the session's Hadoop configuration, clearing a job group,
and reusing a shuffle's output across actions. Those go through underscore attributes that
PySpark may change in any release, so nothing else under `spark_jobs/` touches them (a test
greps for it) and `tests/spark/test_spark_internals.py` checks every attribute path below on a
live session: after a PySpark upgrade it fails naming the attribute that moved and the version
this module was verified against.

`INTERNALS` lists each private attribute path this module relies on and why; keep it in step
with the code (the guard test checks that every underscore name used here is listed, and that
every listed path has a check).
"""

from __future__ import annotations

from collections.abc import Iterable

from py4j.java_gateway import JavaObject, JVMView
from py4j.protocol import Py4JJavaError
from pyspark import SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import DataFrame, SparkSession

# The PySpark release the paths below were verified against (requirements-dev.txt's pin; the
# EMR release's Spark). Change it only after tests/spark/test_spark_internals.py passes on the
# new release.
PYSPARK_VERIFIED = "4.1.1"

INTERNALS: dict[str, str] = {
    "SparkContext._jvm": (
        "py4j view of the driver JVM's classes: Hadoop's FileSystem, Path and codecs for "
        "single-object I/O (Storage), java.util.regex to validate DQDL patterns with the regex "
        "engine Spark's rlike uses, java.lang.System.err for the JOB ERROR line"),
    "SparkContext._jsc.hadoopConfiguration()": (
        "the session's Hadoop configuration (EMRFS credentials, spark.hadoop.* settings) that "
        "FileSystem.get needs; public in Scala, reachable only through _jsc in Python"),
    "SparkContext._jsc.clearJobGroup()": (
        "PySpark can set a job group but not clear it; RunMeter restores a thread with no "
        "group after tagging a run's jobs"),
    "SparkContext._active_spark_context": (
        "the running context, if any, when reporting a job error (no session is at hand there)"),
    "pyspark.java_gateway.launch_gateway()": (
        "under spark-submit with no context yet (arguments refused before Spark started), "
        "connects to the submitter's gateway (PYSPARK_GATEWAY_PORT) to reach the driver's "
        "stderr"),
    "DataFrame._jdf.queryExecution().toRdd()": (
        "the Dataset's RDD of Spark's internal rows, a lazy val: every DataFrame built on it "
        "shares one lineage and so the shuffle files (frames.materialize reads the input "
        "once), with no conversion of each row to a java Row and back"),
    "DataFrame._jdf.schema()": "the Java schema to rebuild the frame over that RDD",
    "SparkSession._jsparkSession.internalCreateDataFrame(RDD, StructType, boolean)": (
        "wraps the RDD of internal rows back into a DataFrame (private[sql] in Scala, public "
        "in the bytecode): no Python round trip, and strings keep their bytes (a java Row "
        "would pass them through java.lang.String, turning bytes that are not UTF-8 into "
        "U+FFFD)"),
    "DataFrame(jdf, session)": "the Python DataFrame over that Java Dataset",
    "SparkContext._jsc.sc().listenerBus().waitUntilEmpty(long)": (
        "a barrier before reading the status store: every event posted so far (stage and job "
        "ends) has reached the AppStatusListener, so RunMeter reads final metrics, not a lag"),
    "SparkContext._jsc.sc().statusStore().stageData(int, boolean, List, boolean, double[])": (
        "every attempt of a stage with its inputBytes, read in the JVM from the store the UI "
        "and REST API serve (also with the UI off), never over HTTP"),
    "SparkContext._gateway.new_array": "the empty double[] of quantiles stageData takes",
}


def _context(spark: SparkSession) -> SparkContext:
    return spark.sparkContext


def jvm(spark: SparkSession) -> JVMView:
    """The driver JVM's classes, e.g. `jvm(spark).org.apache.hadoop.fs.Path(uri)`."""
    view = _context(spark)._jvm
    if view is None:
        raise RuntimeError("the Spark context has no JVM gateway (stopped?)")
    return view


def hadoop_configuration(spark: SparkSession) -> JavaObject:
    """The session's Hadoop `Configuration` (what Spark's own readers and writers use)."""
    return _context(spark)._jsc.hadoopConfiguration()


def compile_java_regex(spark: SparkSession, pattern: str) -> None:
    """Compile `pattern` with java.util.regex, as `rlike` will. An invalid pattern raises
    PySpark's IllegalArgumentException (a PySparkException converted from the JVM's
    PatternSyntaxException) or, unconverted, py4j's Py4JJavaError."""
    jvm(spark).java.util.regex.Pattern.compile(pattern)


def clear_job_group(spark: SparkSession) -> None:
    """Remove this thread's job group (and its description), as Scala's clearJobGroup does."""
    _context(spark)._jsc.clearJobGroup()


def print_to_driver_stderr(line: str) -> None:
    """Print `line` on the driver JVM's stderr: the running context's JVM, or else the gateway
    spark-submit started (only call this when PYSPARK_GATEWAY_PORT is set)."""
    context = SparkContext._active_spark_context
    if context is None:
        view = launch_gateway().jvm  # type: ignore[no-untyped-call]  # untyped in PySpark
    elif context._jvm is None:
        raise RuntimeError("the Spark context has no JVM gateway (stopped?)")
    else:
        view = context._jvm
    view.System.err.println(line)


def reuse_shuffle_output(df: DataFrame) -> DataFrame:
    """`df` rebuilt over its own RDD, so that every later action shares that RDD's lineage
    and, when `df` ends in a shuffle, skips the map side and reads the shuffle files.

    QueryExecution.toRdd is a lazy val: all frames built from it share one RDD. The rows
    stay Spark's internal rows (no java Row per row, strings byte for byte). With adaptive
    execution (on by default), asking for the RDD of a frame that ends in a shuffle runs
    that shuffle's map stage right here, not at the next action.
    """
    spark = df.sparkSession
    jdf = df._jdf
    reused = spark._jsparkSession.internalCreateDataFrame(
        jdf.queryExecution().toRdd(), jdf.schema(), False)
    return DataFrame(reused, spark)


def wait_for_listeners(spark: SparkSession, timeout_seconds: float) -> bool:
    """Wait until the listener bus has delivered every event posted so far; False on timeout."""
    bus = _context(spark)._jsc.sc().listenerBus()
    try:
        bus.waitUntilEmpty(int(timeout_seconds * 1000))
    except Py4JJavaError as e:
        if "TimeoutException" in str(e.java_exception.getClass().getName()):
            return False
        raise
    return True


def stage_input_bytes(spark: SparkSession, stage_ids: Iterable[int]) -> int:
    """Input bytes summed over every attempt of the stages (0 for a skipped or unknown one).
    The store and stageData's arguments are looked up once: a batch's pass has about a
    thousand stages, and each py4j call is a round trip."""
    context = _context(spark)
    view = jvm(spark)
    gateway = context._gateway
    if gateway is None:
        raise RuntimeError("the Spark context has no JVM gateway (stopped?)")
    store = context._jsc.sc().statusStore()
    no_statuses, no_quantiles = view.java.util.ArrayList(), gateway.new_array(view.double, 0)
    total = 0
    for stage_id in stage_ids:
        it = store.stageData(stage_id, False, no_statuses, False, no_quantiles).iterator()
        while it.hasNext():
            total += int(it.next().inputBytes())
    return total
