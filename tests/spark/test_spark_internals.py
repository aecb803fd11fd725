"""The PySpark internals the jobs rely on still exist and behave; nothing else uses any.

spark_jobs/common/spark_internals.py is the only module that may touch PySpark's private API.
After a PySpark upgrade, a failure here names the attribute path that moved and the release the
module was verified against: fix spark_internals.py (and only it), then move PYSPARK_VERIFIED.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyspark
import pytest
from py4j.protocol import Py4JJavaError
from pyspark import SparkContext
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType
from spark_helpers import REPO

from spark_jobs.common import spark_internals as internals
from spark_jobs.common.spark_metrics import RunMeter

pytestmark = pytest.mark.spark

MODULE = REPO / "spark_jobs" / "common" / "spark_internals.py"


def _broken(path: str, problem: str) -> str:
    return (f"PySpark internal `{path}` {problem}. spark_jobs/common/spark_internals.py was "
            f"verified against pyspark {internals.PYSPARK_VERIFIED}; this is pyspark "
            f"{pyspark.__version__}. It is used for: {internals.INTERNALS[path]}")


# ---------------------------------------------------------------------------------------------
# One check per attribute path in INTERNALS: the raw path on a live session, then the
# spark_internals function that wraps it.


def _tiny(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "n INT, s STRING")


def _check_jvm(spark: SparkSession, tmp_path: Path) -> None:
    view = spark.sparkContext._jvm
    assert view is not None, "SparkContext._jvm is None on a running context"
    assert view.java.util.regex.Pattern.compile("a+").matcher("aaa").matches()
    assert internals.jvm(spark).org.apache.hadoop.fs.Path("file:///tmp/x.csv").getName() == (
        "x.csv")
    internals.compile_java_regex(spark, "[A-Z]{2}[0-9]+")
    with pytest.raises((PySparkException, Py4JJavaError), match="Unclosed group"):
        internals.compile_java_regex(spark, "(unclosed")


def _check_hadoop_configuration(spark: SparkSession, tmp_path: Path) -> None:
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    assert conf.getClass().getName() == "org.apache.hadoop.conf.Configuration"
    wrapped = internals.hadoop_configuration(spark)
    # The session's one configuration, not a copy: what Spark's readers use.
    key = "spark_internals.guard.probe"
    wrapped.set(key, "yes")
    try:
        assert conf.get(key) == "yes"
    finally:
        wrapped.unset(key)


def _check_clear_job_group(spark: SparkSession, tmp_path: Path) -> None:
    sc = spark.sparkContext
    previous = sc.getLocalProperty("spark.jobGroup.id")
    sc.setJobGroup("spark-internals-guard", "guard test")
    internals.clear_job_group(spark)
    assert sc.getLocalProperty("spark.jobGroup.id") is None
    assert sc.getLocalProperty("spark.job.description") is None
    if previous is not None:
        sc.setJobGroup(previous, "")


def _check_active_context(spark: SparkSession, tmp_path: Path) -> None:
    assert SparkContext._active_spark_context is spark.sparkContext
    internals.print_to_driver_stderr("spark_internals guard: a line on the driver's stderr")


def _check_launch_gateway(spark: SparkSession, tmp_path: Path) -> None:
    """With no context yet, under spark-submit: the gateway the submitter started is reached
    through PYSPARK_GATEWAY_PORT and the line lands on the driver JVM's stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARK_HOME")}
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    done = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
         str(REPO / "spark_jobs" / "online_retail" / "main.py"), "--run-id", "guard"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    jvm_lines = [line for line in done.stderr.splitlines() if line.startswith("JOB ERROR:")]
    assert len(jvm_lines) == 1 and "bad job arguments" in jvm_lines[0], done.stderr[-3000:]
    assert "could not also write the error" not in done.stdout + done.stderr


def _check_to_rdd(spark: SparkSession, tmp_path: Path) -> None:
    jdf = _tiny(spark)._jdf
    # A lazy val: the same RDD on every call, which is what lets actions share the shuffle.
    assert jdf.queryExecution().toRdd().id() == jdf.queryExecution().toRdd().id()
    # And so the input of a reused shuffle is read once, however many actions follow.
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"line {i}\n" for i in range(200)))
    meter = RunMeter(spark, "spark_internals guard")
    with meter.tracking():
        reused = internals.reuse_shuffle_output(
            spark.read.text(str(source)).repartition(2, "value"))
        assert reused.count() == 200
        assert reused.where(F.col("value").endswith("7")).count() == 20
    read = meter.bytes_read()
    size = source.stat().st_size
    assert read is not None and size <= read < 2 * size, (read, size)


def _check_jdf_schema(spark: SparkSession, tmp_path: Path) -> None:
    df = _tiny(spark)
    assert StructType.fromJson(json.loads(df._jdf.schema().json())) == df.schema


def _check_internal_create_data_frame(spark: SparkSession, tmp_path: Path) -> None:
    jdf = _tiny(spark)._jdf
    rebuilt = spark._jsparkSession.internalCreateDataFrame(
        jdf.queryExecution().toRdd(), jdf.schema(), False)
    assert rebuilt.count() == 3
    # Internal rows: a string that is not valid UTF-8 keeps its bytes (a java Row would not).
    odd = spark.createDataFrame([(b"caf\xe9",)], "b BINARY").select(
        F.col("b").cast("string").alias("s"))
    kept = internals.reuse_shuffle_output(odd.repartition(1, "s"))
    assert kept.select(F.hex(F.col("s").cast("binary"))).first()[0] == "636166E9"


def _check_data_frame_constructor(spark: SparkSession, tmp_path: Path) -> None:
    df = _tiny(spark)
    wrapped = DataFrame(df._jdf, spark)
    assert isinstance(wrapped, DataFrame)
    assert wrapped.sparkSession is spark
    reused = internals.reuse_shuffle_output(df)
    assert reused.schema == df.schema
    assert sorted(reused.collect()) == sorted(df.collect())


def _check_wait_for_listeners(spark: SparkSession, tmp_path: Path) -> None:
    bus = spark.sparkContext._jsc.sc().listenerBus()
    bus.waitUntilEmpty(10_000)  # returns (void) once drained; raises TimeoutException if not
    assert internals.wait_for_listeners(spark, 10) is True


def _check_stage_data(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "bytes.txt"
    source.write_text("z\n" * 5000)
    meter = RunMeter(spark, "spark_internals guard: stage data")
    with meter.tracking():
        spark.read.text(str(source)).count()
    internals.wait_for_listeners(spark, 10)
    stage_ids = meter.stage_ids()
    assert stage_ids, "statusTracker knows no stage of a job that ran"
    per_stage = [internals.stage_input_bytes(spark, [s]) for s in stage_ids]
    assert sum(per_stage) == source.stat().st_size, per_stage
    assert internals.stage_input_bytes(spark, sorted(stage_ids)) == sum(per_stage)
    assert internals.stage_input_bytes(spark, [10**9]) == 0  # an unknown stage reads nothing


def _check_new_array(spark: SparkSession, tmp_path: Path) -> None:
    gateway = spark.sparkContext._gateway
    assert gateway is not None
    array = gateway.new_array(spark.sparkContext._jvm.double, 0)
    assert len(array) == 0


CHECKS: dict[str, Callable[[SparkSession, Path], None]] = {
    "SparkContext._jvm": _check_jvm,
    "SparkContext._jsc.hadoopConfiguration()": _check_hadoop_configuration,
    "SparkContext._jsc.clearJobGroup()": _check_clear_job_group,
    "SparkContext._active_spark_context": _check_active_context,
    "pyspark.java_gateway.launch_gateway()": _check_launch_gateway,
    "DataFrame._jdf.queryExecution().toRdd()": _check_to_rdd,
    "DataFrame._jdf.schema()": _check_jdf_schema,
    "SparkSession._jsparkSession.internalCreateDataFrame(RDD, StructType, boolean)": (
        _check_internal_create_data_frame),
    "DataFrame(jdf, session)": _check_data_frame_constructor,
    "SparkContext._jsc.sc().listenerBus().waitUntilEmpty(long)": _check_wait_for_listeners,
    "SparkContext._jsc.sc().statusStore().stageData(int, boolean, List, boolean, double[])":
        _check_stage_data,
    "SparkContext._gateway.new_array": _check_new_array,
}


@pytest.mark.parametrize("path", list(CHECKS))
def test_internal_still_exists_and_behaves(spark, tmp_path, path):
    try:
        CHECKS[path](spark, tmp_path)
    except Exception as e:  # AttributeError, Py4JError, AssertionError, ...
        pytest.fail(_broken(path, f"is gone or changed ({type(e).__name__}: {e})"))


def test_every_internal_is_listed_and_checked():
    assert set(CHECKS) == set(internals.INTERNALS), (
        "spark_internals.INTERNALS and this file's CHECKS must list the same attribute paths")
    used = _private_attributes(ast.parse(MODULE.read_text()))
    unlisted = sorted(name for name in used
                      if not any(name in path for path in internals.INTERNALS))
    assert unlisted == [], f"spark_internals.py uses {unlisted} without listing them in INTERNALS"


def test_verified_version_is_the_pinned_one():
    pins = re.findall(r"^pyspark==(\S+)", (REPO / "requirements-dev.txt").read_text(), re.M)
    assert pins == [internals.PYSPARK_VERIFIED], (
        f"pyspark is pinned to {pins} but spark_internals.py was verified against "
        f"{internals.PYSPARK_VERIFIED}: run this file on the new pin, fix what it names, then "
        "move PYSPARK_VERIFIED")
    assert pyspark.__version__ == internals.PYSPARK_VERIFIED, (
        f"installed pyspark {pyspark.__version__} is not the pinned "
        f"{internals.PYSPARK_VERIFIED}: reinstall requirements-dev.txt")


# ---------------------------------------------------------------------------------------------
# Nothing else under spark_jobs touches PySpark internals

_JAVA_HANDLE = re.compile(r"\._j\w*")  # _jdf, _jvm, _jsc, _jsparkSession, _jrdd, _jconf, ...
_INTERNAL_MODULES = ("pyspark.java_gateway", "pyspark.sql.classic")


def _private_attributes(tree: ast.AST) -> set[str]:
    """Underscore attributes read from anything but `self` / `cls`."""
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))}


def _internal_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyspark"):
            module = node.module or ""
            names = [a.name for a in node.names]
            if module.startswith(_INTERNAL_MODULES) or any(n.startswith("_") for n in names):
                found.append(f"from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith(
                _INTERNAL_MODULES)]
    return found


def _private_uses(source: str) -> list[str]:
    """What in `source` reaches into PySpark's internals (empty: nothing)."""
    found = [f"line {n}: {line.strip()}" for n, line in enumerate(source.splitlines(), 1)
             if _JAVA_HANDLE.search(line)]
    tree = ast.parse(source)
    found += [f"private attribute .{name}" for name in sorted(_private_attributes(tree))]
    found += _internal_imports(tree)
    found += [f"line {node.lineno}: DataFrame(...) (the constructor is internal)"
              for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "DataFrame"]
    return found


@pytest.mark.parametrize("snippet", [
    "df._jdf.javaRDD()",
    "spark.sparkContext._jvm.java.lang.System",
    "x = sc._jsc",
    "ctx = SparkContext._active_spark_context",
    "frame._sc.uiWebUrl",
    "from pyspark.java_gateway import launch_gateway",
    "import pyspark.java_gateway",
    "from pyspark.sql.classic.dataframe import DataFrame",
    "from pyspark.sql.session import _something",
    "DataFrame(jdf, spark)",
])
def test_the_scan_finds_internals(snippet):
    assert _private_uses(snippet), snippet


def test_the_scan_passes_own_attributes_and_public_api():
    assert _private_uses(
        "self._sc = spark.sparkContext\nself._sc.setJobGroup(self.group, 'x')\n"
        "from pyspark.sql import DataFrame\nspark.createDataFrame([], 'a INT')\n") == []


def test_only_spark_internals_touches_pyspark_internals():
    files = sorted(p for p in (REPO / "spark_jobs").rglob("*.py") if p != MODULE)
    assert len(files) >= 10
    offenders = {str(p.relative_to(REPO)): uses for p in files
                 if (uses := _private_uses(p.read_text(encoding="utf-8")))}
    assert offenders == {}, (
        f"PySpark internals used outside {MODULE.relative_to(REPO)} (add a typed function "
        f"there, with why, and a check in this file): {offenders}")
    assert _private_uses(MODULE.read_text()), "the scan must see spark_internals.py's own uses"
