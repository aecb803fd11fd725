"""The online_retail job: one day of Online Retail CSV in; sales_line_items,
customer_daily_sales, quarantine, metrics.json and quality.json out.

    spark-submit spark_jobs/online_retail/main.py --input URI --output-root URI --quarantine URI
        --metrics URI --quality URI --rules URI --run-id ID --partition YYYY-MM-DD
        [--reference-time ISO-8601] [--encoding utf-8|latin-1|cp1252]
        [--input-etag ETAG [--input-version-id ID]] [--input-source s3://...]

Exit codes (spark_jobs.common.entry): 0 done (the quality gate decides about the data later),
1 the job failed (out of memory, disk full, the driver JVM gone, a Spark error), 2 the input or
the arguments are refused (also an input whose object is no longer the version named by
--input-etag and --input-version-id, checked before the scan and after it), 3 the rules file
or the warehouse migrations shipped with the job code are invalid; each failure prints one
`JOB ERROR: <cause>` line on stderr. The input is scanned once (see spark_jobs.common.frames).

A line is quarantined, never loaded, when it does not parse, fails a row-level rule, is not
valid text in the declared encoding, belongs to another day than `--partition`, or holds a
value its warehouse table would refuse (limits from warehouse/migrations, see
spark_jobs.common.warehouse): nothing a COPY would refuse reaches the tables.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import time
from collections.abc import Callable
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

from pipeline_core import csv_header
from pipeline_core.dqdl import parse_ruleset
from pipeline_core.errors import InvalidInput
from pipeline_core.warehouse_limits import TableDefinition, WarehouseTables
from spark_jobs.common import text, warehouse
from spark_jobs.common.args import JobArgs
from spark_jobs.common.entry import Cleanup, run_job
from spark_jobs.common.frames import materialize
from spark_jobs.common.quality import QualityEngine, QualityReport
from spark_jobs.common.spark_metrics import RunMeter
from spark_jobs.common.storage import (
    ObjectInfo,
    ObjectVersion,
    Storage,
    head_s3_object,
    java_error_message,
    verify_input_version,
)
from spark_jobs.online_retail import transforms

DATASET = "online_retail"
TABLES = ("sales_line_items", "customer_daily_sales")
HEAD_BYTES = 64 * 1024
PARTITION_TARGET_BYTES = 128 * 1024 * 1024
GZIP_RATIO = 6  # rough expansion of gzip'd CSV, only to size the partitions
NULL_COUNT_COLUMNS = ("invoice_no", "stock_code", "description", "quantity", "unit_price",
                      "invoice_ts", "customer_id", "country")
RANGE_COLUMNS = ("quantity", "unit_price", "invoice_ts", "order_date", "line_revenue")
SAMPLES, SAMPLE_CHARS = 5, 200  # metrics.json's quarantine_samples


# ---------------------------------------------------------------------------------------------
# Input checks (driver side, before Spark reads anything)


def check_input(storage: Storage, uri: str, encoding: str = "utf-8") -> ObjectInfo:
    """Refuse an empty file, a .gz that is not gzip, or a wrong header (InvalidInput); the
    header rule is ResolveRun's too (pipeline_core.csv_header)."""
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
    csv_header.check_header(head, transforms.HEADER, encoding=encoding,
                            complete=len(head) < HEAD_BYTES, where=f"input {uri}")
    return info


def check_input_version(args: JobArgs,
                        head: Callable[[str], ObjectVersion | None] | None = None) -> None:
    """When the run names its object version (--input-etag), refuse an input whose key holds
    another version by now: Spark reads the current object, not a version by id."""
    if args.input_etag is None:
        return
    verify_input_version(args.input_object,
                         ObjectVersion(args.input_etag, args.input_version_id),
                         head or head_s3_object)


# ---------------------------------------------------------------------------------------------
# Reading: one scan, numbered lines


def _partitions(spark: SparkSession, info: ObjectInfo) -> int:
    estimate = info.size * (GZIP_RATIO if info.uri.lower().endswith(".gz") else 1)
    return max(spark.sparkContext.defaultParallelism,
               min(1000, math.ceil(estimate / PARTITION_TARGET_BYTES)))


def read_lines(spark: SparkSession, info: ObjectInfo) -> tuple[DataFrame, int, int]:
    """The data lines of the input (`value`: the line's bytes, not yet decoded; `_line`:
    1-based line number in the file), read once; plus the number of data lines and of blank
    lines. The header (line 1) is dropped.

    The bytes stay binary until text.decode_lines: a frame rebuilt over its RDD
    (frames.materialize) passes strings through java.lang.String, which would turn bytes
    that are not UTF-8 into U+FFFD before the job could tell."""
    blank = F.trim(F.col("value").cast("string")) == ""
    scan = spark.read.text(info.uri).select(
        F.col("value").cast("binary").alias("value"),
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
                F.count_if(blank).alias("blank"),
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
    lines = staged.select("value", line.alias("_line")).where((F.col("_line") > 1) & ~blank)
    blanks = sum(b["blank"] for b in blocks)  # line 1, the header, is never blank
    data_lines = before - 1 - blanks
    if data_lines <= 0:
        raise InvalidInput(f"input {info.uri} has a header but no data lines")
    return lines, data_lines, blanks


def _spark_error(error: Exception) -> str:
    if isinstance(error, Py4JJavaError):
        return java_error_message(error)
    message = str(error).strip().splitlines()
    return message[0] if message else type(error).__name__


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

    lines: DataFrame  # read_lines': the bytes of each line, not decoded
    data_lines: int
    blank_lines: int
    report: QualityReport
    seen: dict[str, Any]  # the values of _job_aggregates()


@dataclass(frozen=True)
class _Verdicts:
    """What became of the distinct lines: written, or quarantined and why."""

    written: int
    quarantine_reasons: dict[str, int]
    samples: list[dict[str, Any]]  # the first SAMPLES quarantined lines

    @property
    def quarantined(self) -> int:
        return sum(self.quarantine_reasons.values())


def _measure(spark: SparkSession, info: ObjectInfo, engine: QualityEngine, encoding: str
             ) -> _Measured:
    """Read the input once and measure the rules (and metrics.json's figures) on every line."""
    lines, data_lines, blank_lines = read_lines(spark, info)
    decoded = text.decode_lines(lines, encoding)
    typed = transforms.type_fields(transforms.split_fields(decoded))
    # Rules see every data line as parsed: before duplicates are dropped and before
    # quarantine, so doubled content and truncation stay visible.
    report, seen = engine.measure(typed.select(*transforms.TYPED_COLUMNS),
                                  extra=_job_aggregates())
    if seen["lines"] != data_lines:
        raise RuntimeError(f"read {data_lines} data lines but measured {seen['lines']}")
    return _Measured(lines, data_lines, blank_lines, report, seen)


def _warehouse_tables(spark: SparkSession, run_id: str, shipped: WarehouseTables
                      ) -> dict[str, TableDefinition]:
    """The definitions of the tables the job writes, from the warehouse migrations; a
    ConfigurationError if the job's output does not match them, InvalidInput if the run id
    does not fit them."""
    tables = {t: shipped.table(transforms.SCHEMA, t) for t in TABLES}
    empty = transforms.type_fields(transforms.split_fields(
        spark.createDataFrame([], "value string, _line long")))
    warehouse.check_schema(transforms.sales_line_items(empty, run_id).schema,
                           tables["sales_line_items"])
    warehouse.check_schema(transforms.customer_daily_sales(empty, run_id).schema,
                           tables["customer_daily_sales"])
    for table in tables.values():
        kind = table.column("run_id").type
        size = len(run_id.encode("utf-8"))
        if kind.length is not None and size > kind.length:
            raise InvalidInput(f"--run-id is {size} bytes, over {table.name}.run_id {kind}")
    return tables


def _judge(spark: SparkSession, info: ObjectInfo, engine: QualityEngine, lines: DataFrame,
           args: JobArgs, tables: dict[str, TableDefinition]) -> DataFrame:
    """One row per distinct line, typed, with `_reason` (NULL: accepted), `_source_line`,
    `_copies` and `_sample` (a refused line's text, clipped); materialized, so the counts and
    the three writes share one shuffle."""
    # Exact duplicates count once; each distinct line is typed and judged once. The first
    # reason wins: the text itself, the job's parsing, the run's day, the warehouse's limits,
    # then the row-level rules.
    distinct = text.decode_lines(materialize(transforms.distinct_lines(lines)), args.encoding)
    reasons = [reason for reason in (
        text.encoding_reason(args.encoding), transforms.rejection_reason(),
        transforms.partition_reason(args.partition), transforms.load_limit_reason(tables),
        engine.rejection_reason()) if reason is not None]
    typed = (transforms.type_fields(transforms.split_fields(distinct))
             .withColumn("_reason", F.coalesce(*reasons)))
    sample = text.shown_text(F.col("value"), SAMPLE_CHARS)
    judged = (transforms.with_daily_limits(typed, tables["customer_daily_sales"])
              .select(*transforms.RAW_COLUMNS, *transforms.TYPED_COLUMNS, "_reason",
                      "_source_line", "_copies",
                      F.when(F.col("_reason").isNotNull(), sample).alias("_sample")))
    return materialize(judged, _partitions(spark, info), "_source_line")


def _count_verdicts(checked: DataFrame, data_lines: int) -> _Verdicts:
    counts = checked.groupBy("_reason").agg(
        F.count(F.lit(1)).alias("lines"), F.sum("_copies").alias("copies")).collect()
    copies = sum(int(r["copies"]) for r in counts)
    if copies != data_lines:
        raise RuntimeError(f"dedupe lost lines: {copies} copies of {data_lines} lines")
    samples = (checked.where(F.col("_reason").isNotNull()).orderBy("_source_line")
               .limit(SAMPLES).select("_reason", "_source_line", "_sample").collect())
    return _Verdicts(
        written=sum(int(r["lines"]) for r in counts if r["_reason"] is None),
        quarantine_reasons={r["_reason"]: int(r["lines"]) for r in counts
                            if r["_reason"] is not None},
        samples=[{"reason": r["_reason"], "line": int(r["_source_line"]), "text": r["_sample"]}
                 for r in samples],
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
        "quarantine_samples": verdicts.samples,
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
    check_input_version(args)
    info = check_input(storage, args.input, args.encoding)
    tables = _warehouse_tables(spark, args.run_id, warehouse.shipped_tables())
    meter = RunMeter(spark, f"{DATASET} {args.run_id}")

    with meter.tracking():
        measured = _measure(spark, info, engine, args.encoding)
        checked = _judge(spark, info, engine, measured.lines, args, tables)
        verdicts = _count_verdicts(checked, measured.data_lines)
        rows = _write_outputs(checked, args, verdicts.written)
    # Again after the scan: an upload while the job read would mix two versions' lines.
    check_input_version(args)

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


def _work(spark: SparkSession, args: JobArgs, cleanups: list[Cleanup]) -> dict[str, Any]:
    return run(spark, args)


def main(argv: list[str] | None = None) -> int:
    code, metrics = run_job("online_retail", sys.argv[1:] if argv is None else argv, _work,
                            app_name=lambda args: f"{DATASET}-{args.run_id}")
    if metrics is not None:
        print(f"{DATASET} {metrics['run_id']}: read {metrics['lines_read']} lines, wrote "
              f"{metrics['lines_written']}, quarantined {metrics['lines_quarantined']}, "
              f"duplicates {metrics['duplicates']}; rules {metrics['quality']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
