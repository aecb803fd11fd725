"""spark_jobs.common: arguments, locations, single-object I/O, the input-bytes meter."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from py4j.protocol import Py4JError, Py4JJavaError

from pipeline_core.errors import InvalidInput
from spark_jobs.common import spark_metrics
from spark_jobs.common.args import parse_args
from spark_jobs.common.spark_metrics import RunMeter
from spark_jobs.common.storage import Storage, to_uri

pytestmark = pytest.mark.spark

BASE = ["--input", "s3://raw/online_retail/2011-12-01.csv",
        "--output-root", "s3://cur/online_retail/{table}/partition=2011-12-01/run_id=r1/",
        "--quarantine", "s3://cur/quarantine/", "--metrics", "s3://cur/m.json",
        "--quality", "s3://cur/q.json", "--rules", "s3://art/online_retail.dqdl",
        "--run-id", "online_retail-2011-12-01-3f2a9c1b7d10", "--partition", "2011-12-01"]


def _with(**changes: str) -> list[str]:
    argv = list(BASE)
    for name, value in changes.items():
        argv[argv.index("--" + name.replace("_", "-")) + 1] = value
    return argv


def test_contract_arguments():
    args = parse_args(BASE)
    assert args.output_uri("sales_line_items") == (
        "s3://cur/online_retail/sales_line_items/partition=2011-12-01/run_id=r1/")
    # DataFreshness measures against the end of the partition day unless told otherwise.
    assert args.reference_time == dt.datetime(2011, 12, 2, tzinfo=dt.UTC)
    explicit = parse_args([*BASE, "--reference-time", "2011-12-01T18:00:00+01:00"])
    assert explicit.reference_time == dt.datetime(2011, 12, 1, 17, tzinfo=dt.UTC)
    assert parse_args([*BASE, "--reference-time", "2011-12-01T18:00:00Z"]).reference_time == (
        dt.datetime(2011, 12, 1, 18, tzinfo=dt.UTC))


def test_encoding_argument_defaults_to_utf8_and_is_canonical():
    assert parse_args(BASE).encoding == "utf-8"
    assert parse_args([*BASE, "--encoding", "iso-8859-1"]).encoding == "latin-1"
    assert parse_args([*BASE, "--encoding", "windows-1252"]).encoding == "cp1252"


@pytest.mark.parametrize(("argv", "problem"), [
    (_with(output_root="s3://cur/out/"), "--output-root must contain {table}"),
    (_with(input="s3://raw/online_retail/*.csv"), "must name one object, not a pattern"),
    (_with(run_id="a b"), "--run-id 'a b' must be"),
    (_with(partition="2011-02-30"), "is not a real date"),
    (_with(partition="yesterday"), "is not a date written YYYY-MM-DD"),
    ([*BASE, "--reference-time", "noon"], "--reference-time 'noon' is not ISO-8601"),
    (BASE[:-2], "bad job arguments: the following arguments are required: --partition"),
    ([*BASE, "--colour", "red"], "bad job arguments: unrecognized arguments: --colour red"),
    ([*BASE, "--encoding", "utf-16"], "--encoding: 'utf-16' is not one of utf-8, latin-1, "),
])
def test_bad_arguments(argv, problem):
    with pytest.raises(InvalidInput, match=re.escape(problem)):
        parse_args(argv)


def test_locations():
    assert to_uri("s3://bucket/key.csv") == "s3://bucket/key.csv"
    assert to_uri("/tmp/x.csv") == "file:///tmp/x.csv"
    assert to_uri("/tmp/out/") == "file:///tmp/out/"
    assert to_uri("rel/x.csv") == f"file://{Path.cwd() / 'rel' / 'x.csv'}"


def test_single_object_io(spark, tmp_path):
    storage = Storage(spark)
    target = tmp_path / "sub" / "metrics.json"
    storage.write_text(str(target), '{"a": "é"}\n')
    assert target.read_text(encoding="utf-8") == '{"a": "é"}\n'
    assert not list(tmp_path.rglob("*.crc"))  # no checksum side files on a laptop
    assert storage.read_text(str(target)) == '{"a": "é"}\n'
    assert storage.stat(str(target)).size == len('{"a": "é"}\n'.encode())
    assert storage.read_head(str(target), 4) == b'{"a"'
    with pytest.raises(InvalidInput, match="does not exist"):
        storage.stat(str(tmp_path / "missing.csv"))
    with pytest.raises(InvalidInput, match="is a directory, not one object"):
        storage.stat(str(tmp_path))
    big = tmp_path / "big.dqdl"
    big.write_bytes(b"#" * 2000)
    with pytest.raises(InvalidInput, match="expected a small text file"):
        storage.read_text(str(big), limit=1000)


class _FailingFileSystem:
    """A Hadoop FileSystem stand-in whose every call throws the given Java exception."""

    def __init__(self, spark, java_class: str, message: str):
        cls = spark._jvm
        for part in java_class.split("."):
            cls = getattr(cls, part)
        self.error = Py4JJavaError(message, cls(message))

    def getFileStatus(self, path):
        raise self.error

    def open(self, path):
        raise self.error


@pytest.mark.parametrize(("java_class", "refused"), [
    ("java.io.IOException", False),  # a storage failure (network, throttling): the run's own
    ("java.nio.file.AccessDeniedException", False),  # the role, not the object
    ("java.util.zip.ZipException", True),  # the object's bytes
    ("java.io.EOFException", True),  # a truncated compressed object
])
def test_only_an_objects_own_bytes_make_it_invalid_input(spark, tmp_path, monkeypatch,
                                                         java_class, refused):
    """InvalidInput refuses the object for good (exit 2, never retried): a storage error that
    a retry may mend is an OSError (the run fails, exit 1)."""
    storage = Storage(spark)
    failing = _FailingFileSystem(spark, java_class, "it broke")
    monkeypatch.setattr(storage, "_fs_path", lambda uri: (failing, uri))
    with pytest.raises(InvalidInput if refused else OSError, match="it broke"):
        storage.read_head("s3://raw/x.csv", 2)
    with pytest.raises(OSError, match=r"cannot read s3://raw/x\.csv: .*it broke"):
        storage.stat("s3://raw/x.csv")  # no bytes read: only a missing object is refused


def test_meter_counts_only_its_own_jobs(spark, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("x\n" * 1000)
    spark.read.text(str(path)).count()  # outside the meter: not counted
    meter = RunMeter(spark, "test")
    with meter.tracking():
        spark.read.text(str(path)).count()
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None
    assert meter.bytes_read() == path.stat().st_size


def test_meter_needs_no_ui(spark, tmp_path):
    """Bytes come from the driver's status store, not the UI's REST API (which timed out or
    answered null under load): a session without a UI still measures."""
    path = tmp_path / "lines.txt"
    path.write_text("y\n" * 500)
    meter = RunMeter(spark, "test")
    with meter.tracking():
        spark.read.text(str(path)).count()
        spark.read.text(str(path)).count()  # two jobs, both counted
    assert meter.bytes_read() == 2 * path.stat().st_size
    assert "urllib" not in (Path(spark_metrics.__file__).read_text())


def test_meter_says_unknown_rather_than_guessing(spark, monkeypatch):
    meter = RunMeter(spark, "test")
    monkeypatch.setattr(spark_metrics, "wait_for_listeners", lambda spark, timeout: False)
    assert meter.bytes_read() is None

    def store_gone(spark, stage_ids):
        raise Py4JError("An error occurred while calling o42.statusStore")

    monkeypatch.undo()
    monkeypatch.setattr(spark_metrics, "stage_input_bytes", store_gone)
    with meter.tracking():
        spark.range(3).count()
    assert meter.bytes_read() is None


def test_meter_of_a_run_that_ran_nothing_reads_nothing(spark):
    assert RunMeter(spark, "test").bytes_read() == 0
