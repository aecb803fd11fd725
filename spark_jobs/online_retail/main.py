"""The online_retail job: one day of Online Retail CSV in; sales_line_items,
customer_daily_sales, quarantine, metrics.json and quality.json out.

    spark-submit spark_jobs/online_retail/main.py --input URI --output-root URI --quarantine URI
        --metrics URI --quality URI --rules URI --run-id ID --partition YYYY-MM-DD
        [--reference-time ISO-8601]

Exit codes: 0 done (the quality gate decides about the data later), 2 the input or the
arguments are refused, 3 the rules file is invalid; both print one `JOB ERROR: <reason>` line on
stderr. The input is scanned once (see spark_jobs.common.frames).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

if __name__ == "__main__" and __package__ in (None, ""):
    # spark-submit runs this file as a plain script. On EMR the packages come from
    # --py-files spark_jobs.zip; from a checkout they are in the repository root, which is
    # not on sys.path (only this file's folder is). Add it in that case only.
    _root = Path(__file__).resolve().parents[2]
    try:
        import spark_jobs  # noqa: F401
    except ImportError:
        if (_root / "spark_jobs" / "__init__.py").is_file():
            sys.path.insert(0, str(_root))

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from pipeline_core.dqdl import parse_ruleset
from pipeline_core.errors import ConfigurationError, InvalidInput
from spark_jobs.common.args import JobArgs, parse_args
from spark_jobs.common.frames import materialize
from spark_jobs.common.quality import QualityEngine, QualityReport
from spark_jobs.common.session import get_session
from spark_jobs.common.spark_internals import print_to_driver_stderr
from spark_jobs.common.spark_metrics import RunMeter
from spark_jobs.common.storage import ObjectInfo, Storage, java_error_message
from spark_jobs.online_retail import transforms

DATASET = "online_retail"
TABLES = ("sales_line_items", "customer_daily_sales")
HEAD_BYTES = 64 * 1024
PARTITION_TARGET_BYTES = 128 * 1024 * 1024
GZIP_RATIO = 6  # rough expansion of gzip'd CSV, only to size the partitions
NULL_COUNT_COLUMNS = ("invoice_no", "stock_code", "description", "quantity", "unit_price",
                      "invoice_ts", "customer_id", "country")
RANGE_COLUMNS = ("quantity", "unit_price", "invoice_ts", "order_date", "line_revenue")
EXIT_REFUSED, EXIT_CONFIGURATION = 2, 3


# ---------------------------------------------------------------------------------------------
# Input checks (driver side, before Spark reads anything)


def check_input(storage: Storage, uri: str) -> ObjectInfo:
    """Refuse an empty file, a .gz that is not gzip, or a wrong header (InvalidInput)."""
    info = storage.stat(uri)
    if info.size == 0:
        raise InvalidInput(f"input {uri} is empty (0 bytes)")
    gzip_name = uri.lower().endswith(".gz")
    magic = storage.read_head(uri, 2)
    if gzip_name and magic != b"\x1f\x8b":
        raise InvalidInput(f"input {uri} ends in .gz but is not gzip data "
                           f"(starts with {magic!r})")
    if not gzip_name and magic == b"\x1f\x8b":
        raise InvalidInput(f"input {uri} is gzip data but its name does not end in .gz")
    head = storage.read_head(uri, HEAD_BYTES, decompress=True)
    if not head.strip():
        raise InvalidInput(f"input {uri} is empty (no header line)")
    if b"\n" not in head and len(head) == HEAD_BYTES:
        raise InvalidInput(f"input {uri} has no line break in its first {HEAD_BYTES} bytes: "
                           "not a CSV file with a header")
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise InvalidInput(f"input {uri}: the header line is not UTF-8 text") from None
    found = next(csv.reader([text]), [])
    expected = list(transforms.HEADER)
    if found != expected:
        raise InvalidInput(f"input {uri} has a wrong header: {_header_difference(found, expected)}")
    return info


def _header_difference(found: list[str], expected: list[str]) -> str:
    if len(found) != len(expected):
        return (f"{len(found)} columns ({','.join(found)[:200]}), expected {len(expected)} "
                f"({','.join(expected)})")
    for i, (got, want) in enumerate(zip(found, expected, strict=True), start=1):
        if got != want:
            return f"column {i} is {got[:100]!r}, expected {want!r}"
    return "unreadable"


# ---------------------------------------------------------------------------------------------
# Reading: one scan, numbered lines


def _partitions(spark: SparkSession, info: ObjectInfo) -> int:
    estimate = info.size * (GZIP_RATIO if info.uri.lower().endswith(".gz") else 1)
    return max(spark.sparkContext.defaultParallelism,
               min(1000, math.ceil(estimate / PARTITION_TARGET_BYTES)))


def read_lines(spark: SparkSession, info: ObjectInfo) -> tuple[DataFrame, int, int]:
    """The data lines of the input (`value`, `_line` = 1-based line number in the file), read
    once; plus the number of data lines and of blank lines. The header (line 1) is dropped."""
    scan = spark.read.text(info.uri).select(
        "value",
        F.input_file_block_start().alias("_block"),
        F.monotonically_increasing_id().alias("_idx"),
    )
    try:
        staged = materialize(scan, _partitions(spark, info), "_idx")
        # Line numbers: lines before each split of the file, plus the position in the split
        # (monotonically_increasing_id counts rows within a split's partition).
        blocks = sorted(
            staged.groupBy("_block").agg(
                F.count(F.lit(1)).alias("n"), F.min("_idx").alias("first"),
                F.count_if(F.trim("value") == "").alias("blank"),
            ).collect(),
            key=lambda r: r["_block"],
        )
    except (Py4JJavaError, PySparkException) as e:
        raise InvalidInput(f"input {info.uri} cannot be read: {_spark_error(e)}") from e
    line = None
    before = 0
    for block in blocks:
        number = F.col("_idx") - F.lit(block["first"]) + F.lit(before + 1)
        line = number if line is None else F.when(F.col("_block") == block["_block"], number
                                                  ).otherwise(line)
        before += block["n"]
    if line is None:
        raise InvalidInput(f"input {info.uri} is empty")
    lines = staged.select("value", line.alias("_line")).where(
        (F.col("_line") > 1) & (F.trim("value") != ""))
    blank = sum(b["blank"] for b in blocks)  # line 1, the header, is never blank
    data_lines = before - 1 - blank
    if data_lines <= 0:
        raise InvalidInput(f"input {info.uri} has a header but no data lines")
    return lines, data_lines, blank


def _spark_error(error: Exception) -> str:
    if isinstance(error, Py4JJavaError):
        return java_error_message(error)
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# ---------------------------------------------------------------------------------------------
# The job


def _job_aggregates() -> dict[str, Column]:
    """What metrics.json reports about all data lines, measured in the rules' single agg."""
    out: dict[str, Column] = {"lines": F.count(F.lit(1))}
    for c in NULL_COUNT_COLUMNS:
        out[f"null_{c}"] = F.count_if(F.col(c).isNull())
    for c in RANGE_COLUMNS:
        out[f"min_{c}"] = F.min(c)
        out[f"max_{c}"] = F.max(c)
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _write_parquet(frame: DataFrame, uri: str, name: str) -> int:
    """Write zstd parquet (no _SUCCESS marker) and return the rows written."""
    observation = Observation(name)
    (frame.observe(observation, F.count(F.lit(1)).alias("rows"))
     .write.mode("overwrite")
     .option("compression", "zstd")
     .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
     .parquet(uri))
    return int(observation.get["rows"])


@dataclass(frozen=True)
class _Measured:
    """The data lines as read, and what the rules and the job measured over all of them."""

    lines: DataFrame
    data_lines: int
    blank_lines: int
    report: QualityReport
    seen: dict[str, Any]  # the values of _job_aggregates()


@dataclass(frozen=True)
class _Verdicts:
    """What became of the distinct lines: written, or quarantined and why."""

    written: int
    quarantine_reasons: dict[str, int]

    @property
    def quarantined(self) -> int:
        return sum(self.quarantine_reasons.values())


def _measure(spark: SparkSession, info: ObjectInfo, engine: QualityEngine) -> _Measured:
    """Read the input once and measure the rules (and metrics.json's figures) on every line."""
    lines, data_lines, blank_lines = read_lines(spark, info)
    typed = transforms.type_fields(transforms.split_fields(lines))
    # Rules see every data line as parsed: before duplicates are dropped and before
    # quarantine, so doubled content and truncation stay visible.
    report, seen = engine.measure(typed.select(*transforms.TYPED_COLUMNS),
                                  extra=_job_aggregates())
    if seen["lines"] != data_lines:
        raise RuntimeError(f"read {data_lines} data lines but measured {seen['lines']}")
    return _Measured(lines, data_lines, blank_lines, report, seen)


def _judge(spark: SparkSession, info: ObjectInfo, engine: QualityEngine, lines: DataFrame
           ) -> DataFrame:
    """One row per distinct line, typed, with `_reason` (NULL: accepted), `_source_line` and
    `_copies`; materialized, so the counts and the three writes share one shuffle."""
    # Exact duplicates count once; each distinct line is typed and judged once.
    distinct = materialize(transforms.distinct_lines(lines))
    reasons = [transforms.rejection_reason()]
    rule_reason = engine.rejection_reason()
    if rule_reason is not None:
        reasons.append(rule_reason)
    judged = (transforms.type_fields(transforms.split_fields(distinct))
              .withColumn("_reason", F.coalesce(*reasons))
              .select(*transforms.RAW_COLUMNS, *transforms.TYPED_COLUMNS, "_reason",
                      "_source_line", "_copies"))
    return materialize(judged, _partitions(spark, info), "_source_line")


def _count_verdicts(checked: DataFrame, data_lines: int) -> _Verdicts:
    counts = checked.groupBy("_reason").agg(
        F.count(F.lit(1)).alias("lines"), F.sum("_copies").alias("copies")).collect()
    copies = sum(int(r["copies"]) for r in counts)
    if copies != data_lines:
        raise RuntimeError(f"dedupe lost lines: {copies} copies of {data_lines} lines")
    return _Verdicts(
        written=sum(int(r["lines"]) for r in counts if r["_reason"] is None),
        quarantine_reasons={r["_reason"]: int(r["lines"]) for r in counts
                            if r["_reason"] is not None},
    )


def _write_outputs(checked: DataFrame, args: JobArgs, written: int) -> dict[str, int]:
    """Write both tables and the quarantine; the rows of each table."""
    valid = checked.where(F.col("_reason").isNull())
    rows = {
        "sales_line_items": _write_parquet(
            transforms.sales_line_items(valid, args.run_id),
            args.output_uri("sales_line_items"), f"{args.run_id}-items"),
        "customer_daily_sales": _write_parquet(
            transforms.customer_daily_sales(valid, args.run_id),
            args.output_uri("customer_daily_sales"), f"{args.run_id}-daily"),
    }
    if rows["sales_line_items"] != written:
        raise RuntimeError(f"wrote {rows['sales_line_items']} line items, expected {written}")
    _write_parquet(
        transforms.quarantine_rows(checked.where(F.col("_reason").isNotNull()), args.run_id),
        args.quarantine, f"{args.run_id}-quarantine")
    return rows


def _metrics(args: JobArgs, info: ObjectInfo, measured: _Measured, verdicts: _Verdicts,
             rows: dict[str, int], bytes_read: int | None) -> dict[str, Any]:
    """metrics.json's content, but for the run's duration and Spark version."""
    seen = measured.seen
    return {
        "run_id": args.run_id,
        "dataset": DATASET,
        "partition": args.partition,
        "input": info.uri,
        "lines_read": measured.data_lines,
        "lines_written": verdicts.written,
        "lines_quarantined": verdicts.quarantined,
        "duplicates": measured.data_lines - verdicts.written - verdicts.quarantined,
        "blank_lines": measured.blank_lines,
        "quarantine_reasons": dict(sorted(verdicts.quarantine_reasons.items())),
        "tables": {t: {"rows": rows[t], "uri": args.output_uri(t)} for t in TABLES},
        "quarantine_uri": args.quarantine,
        # Over every data line as parsed (what the rules measured).
        "null_counts": {c: int(seen[f"null_{c}"]) for c in NULL_COUNT_COLUMNS},
        "min": {c: _json_value(seen[f"min_{c}"]) for c in RANGE_COLUMNS},
        "max": {c: _json_value(seen[f"max_{c}"]) for c in RANGE_COLUMNS},
        "input_bytes": info.size,
        "bytes_read": bytes_read,
        "quality": _quality_summary(measured.report),
    }


def run(spark: SparkSession, args: JobArgs) -> dict[str, Any]:
    """The whole job. Returns metrics.json's content (also written, with quality.json)."""
    started = time.monotonic()
    storage = Storage(spark)
    rules_file = os.path.basename(args.rules.rstrip("/"))
    ruleset = parse_ruleset(storage.read_text(args.rules), source=rules_file)
    engine = QualityEngine(ruleset, args.reference_time)
    info = check_input(storage, args.input)
    meter = RunMeter(spark, f"{DATASET} {args.run_id}")

    with meter.tracking():
        measured = _measure(spark, info, engine)
        checked = _judge(spark, info, engine, measured.lines)
        verdicts = _count_verdicts(checked, measured.data_lines)
        rows = _write_outputs(checked, args, verdicts.written)

    metrics = {
        **_metrics(args, info, measured, verdicts, rows, meter.bytes_read()),
        "duration_seconds": round(time.monotonic() - started, 3),
        "spark_version": spark.version,
    }
    storage.write_text(args.quality, json.dumps(
        measured.report.as_dict(rules_file, args.reference_time), indent=2,
        default=_json_value) + "\n")
    storage.write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
    return metrics


def _quality_summary(report: QualityReport) -> dict[str, int]:
    outcomes = [r.outcome for r in report.results]
    return {o: outcomes.count(o) for o in ("pass", "fail", "deferred")}


def report_job_error(error: Exception) -> None:
    """One `JOB ERROR: <reason>` line on stderr.

    spark-submit's Python runner folds the Python process's stderr into its own stdout, so
    under spark-submit (a gateway port in the environment) the line also goes to the driver
    JVM's stderr, where EMR's stderr log and the caller look for it.
    """
    line = "JOB ERROR: " + " ".join(str(error).split())
    print(line, file=sys.stderr, flush=True)
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        try:
            print_to_driver_stderr(line)
        except Exception as e:  # the Python-side line is already out
            print(f"(could not also write the error to the JVM's stderr: {e})",
                  file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv, prog="online_retail")
    except InvalidInput as e:
        report_job_error(e)
        return EXIT_REFUSED
    spark, created = get_session(f"{DATASET}-{args.run_id}")
    try:
        metrics = run(spark, args)
    except InvalidInput as e:
        report_job_error(e)
        return EXIT_REFUSED
    except ConfigurationError as e:
        report_job_error(e)
        return EXIT_CONFIGURATION
    finally:
        if created:
            spark.stop()
    print(f"{DATASET} {args.run_id}: read {metrics['lines_read']} lines, wrote "
          f"{metrics['lines_written']}, quarantined {metrics['lines_quarantined']}, "
          f"duplicates {metrics['duplicates']}; rules {metrics['quality']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
