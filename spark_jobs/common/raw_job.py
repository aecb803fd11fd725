"""The job framework of every raw dataset: one raw object in; its output tables, the
quarantine, metrics.json and quality.json out. A dataset's job module declares a `RawJob`
(its format, its pure transforms, its outputs); everything else happens here, once:

1. input checks (spark_jobs.common.raw_input): empty file, gzip magic vs name, the csv header;
   the object version the run is for (--input-etag), before the scan and after it;
2. one scan with line numbers, each line decoded in the declared encoding
   (spark_jobs.common.text) and parsed once, kept for every later query
   (spark_jobs.common.frames); blank lines skipped;
3. the DQDL rules measured over every data line as parsed (before dedupe and before
   quarantine, so doubled content and truncation stay visible), with metrics.json's null
   counts and min/max in the rules' single aggregation;
4. exact duplicate lines kept once (unless the job keeps them: `keep_duplicates`); each line
   judged once, the first reason wins:
   not valid text in the encoding, the dataset's parse reason, another day than the run's
   partition, a value a warehouse table would refuse (spark_jobs.common.outputs), then the
   first error-severity row-level rule it fails;
5. the writes (zstd parquet, no _SUCCESS) of each output and of the quarantine (when a
   line was refused), then
   metrics.json and quality.json; exit codes and the `JOB ERROR:` line (spark_jobs.common.entry).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.warehouse_limits import TableDefinition
from spark_jobs.common import outputs, text, warehouse
from spark_jobs.common.args import JobArgs, parse_args, split_partitions
from spark_jobs.common.entry import run_job
from spark_jobs.common.frames import materialize
from spark_jobs.common.outputs import GroupedOutput, LineOutput, Output
from spark_jobs.common.quality import QualityEngine, QualityReport
from spark_jobs.common.raw_input import check_input, header_lines, partitions, read_lines
from spark_jobs.common.session import run_concurrently
from spark_jobs.common.spark_metrics import RunMeter
from spark_jobs.common.storage import (
    ObjectInfo,
    ObjectVersion,
    Storage,
    head_s3_object,
    verify_input_version,
)

__all__ = ["GroupedOutput", "LineOutput", "RawJob", "check_input_version", "distinct_lines",
           "other_day_reason"]

SAMPLES, SAMPLE_CHARS = 5, 200  # metrics.json's quarantine_samples
# Past this many repeated line hashes, distinct_lines groups every line on its text (the
# broadcast table of repeated lines holds each one's text: ~30 MB at this bound).
REPEATED_HASHES_MAX = 200_000
_BOOKKEEPING = ("_line", "_copies")  # columns the framework passes through parse()
# A batch's partitions running at once (run_batch). A small day's run is ~30 short Spark jobs
# whose time is the driver's (planning, scheduling, py4j calls) more than the executors': one
# at a time leaves the cores idle. A few at once fill them; more only hold more partitions'
# shuffle files and plans in memory and queue on the driver's one Python interpreter.
# 4: twice local[2]'s cores, and with the backfill's 3 batches at once 12 threads on the warm
# local Spark; bench/bench_batch.py (31 real days, local[2]): 0.53 x the wall time of one at a
# time (docs/architecture.md, "Raw job framework").
PARTITION_WORKERS = 4


@dataclass(frozen=True)
class RawJob:
    """A raw dataset's job: what its code gives the framework (see /docs/architecture.md,
    "Raw job framework"). `outputs` is kept as given (not copied)."""

    dataset: str
    input_format: str  # the catalog's source.format: csv | jsonl | text
    parse: Callable[[DataFrame], DataFrame]
    typed_columns: tuple[str, ...]
    partition_reason: Callable[[str], Column]
    outputs: Mapping[str, Output]
    null_count_columns: tuple[str, ...] = ()
    range_columns: tuple[str, ...] = ()
    header: tuple[str, ...] = ()  # csv only: the catalog's source.header
    delimiter: str = ","  # csv only: the catalog's source.delimiter (the header check's)
    quarantine_rows: Callable[[DataFrame, str], DataFrame] | None = None
    # An exact copy of a line is a second delivery of one record in most sources, and is
    # loaded once; in some it is a second event (two identical requests in one second of an
    # access log), and every copy must load.
    keep_duplicates: bool = False
    # A snapshot (a reference table refreshed whole) has no date in its lines: its date is the
    # run's partition, which parse() cannot see. When set, every parsed line gets this column
    # holding the partition as a date, for the rules, partition_reason and the outputs.
    partition_column: str | None = None

    def __post_init__(self) -> None:
        skip = header_lines(self.input_format)  # refuses an unknown format
        if bool(skip) != bool(self.header):
            raise ConfigurationError(
                f"{self.dataset}: a {self.input_format} job "
                + ("declares its header" if skip else "has no header line"))
        if not skip and self.delimiter != ",":
            raise ConfigurationError(f"{self.dataset}: a {self.input_format} job has no "
                                     "fields to separate: declare no delimiter")
        if not self.outputs or not self.typed_columns:
            raise ConfigurationError(f"{self.dataset}: declare typed_columns and outputs")

    def run(self, spark: SparkSession, args: JobArgs) -> dict[str, Any]:
        """The whole job. Returns metrics.json's content (also written, with quality.json)."""
        return _Run(self, spark, args).run()

    def main(self, argv: list[str] | None = None) -> int:
        """The job's entry point (`main.main(argv)`): its exit code. Several `--input` groups
        are a batch: its partitions run in one Spark application (`run_batch`)."""
        groups = split_partitions(sys.argv[1:] if argv is None else argv)
        code, done = run_job(
            self.dataset, groups[0],
            lambda spark, args, cleanups: self.run_batch(spark, [args, *groups[1:]]),
            app_name=lambda a: f"{self.dataset}-{a.run_id}" + (
                f"-and-{len(groups) - 1}" if len(groups) > 1 else ""))
        for metrics in done or []:
            if "error" in metrics:
                print(f"{self.dataset} {metrics['run_id']}: refused: {metrics['error']}")
                continue
            print(f"{self.dataset} {metrics['run_id']}: read {metrics['lines_read']} lines, "
                  f"wrote {metrics['lines_written']}, quarantined "
                  f"{metrics['lines_quarantined']}, duplicates {metrics['duplicates']}; "
                  f"rules {metrics['quality']}")
        return code

    def run_batch(self, spark: SparkSession, partitions: list[JobArgs | list[str]]
                  ) -> list[dict[str, Any]]:
        """Each partition's run, in the partitions' order; a batch's run PARTITION_WORKERS at
        once, each in a session of its own (session.run_concurrently). A partition whose input
        is refused (InvalidInput: empty, not gzip, a wrong header, another object version...)
        fails alone: its metrics.json says why (`error`) and the others go on. When every
        partition is refused the job is refused (exit 2, as a run of one), writing nothing.
        Any other failure fails the job, once the partitions still running have stopped."""
        batch = [p if isinstance(p, JobArgs) else parse_args(p, self.dataset)
                 for p in partitions]
        if len(batch) == 1:
            return [self.run(spark, batch[0])]
        outcomes = run_concurrently(
            spark, [functools.partial(self.run, args=args) for args in batch],
            PARTITION_WORKERS, fails_alone=(InvalidInput,))
        refused = [str(o) for o in outcomes if isinstance(o, InvalidInput)]
        if len(refused) == len(batch):
            raise InvalidInput("every partition of the batch was refused: "
                               + "; ".join(refused))
        # an outcome is metrics.json's content or InvalidInput: anything else was raised
        return [self._refused(spark, args, o) if isinstance(o, InvalidInput)
                else cast("dict[str, Any]", o) for args, o in zip(batch, outcomes, strict=True)]

    def _refused(self, spark: SparkSession, args: JobArgs, error: InvalidInput
                 ) -> dict[str, Any]:
        """metrics.json of a refused partition: what it is and why it was refused."""
        metrics = {"run_id": args.run_id, "dataset": self.dataset,
                   "partition": args.partition, "input": args.input_object,
                   "error": str(error)}
        Storage(spark).write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
        return metrics


def check_input_version(args: JobArgs,
                        head: Callable[[str], ObjectVersion | None] | None = None) -> None:
    """When the run names its object version (--input-etag), refuse an input whose key holds
    another version by now: Spark reads the current object, not a version by id."""
    if args.input_etag is None:
        return
    verify_input_version(args.input_object,
                         ObjectVersion(args.input_etag, args.input_version_id),
                         head or head_s3_object)


def other_day_reason(column: str, label: str, partition: str) -> Column:
    """A dataset's partition_reason over its date column: NULL on the run's day, else
    "<label> <day> is not the run's partition <partition>"."""
    day = F.col(column)
    return F.when(day != F.lit(partition).cast("date"),
                  F.concat(F.lit(f"{label} "), day.cast("string"),
                           F.lit(f" is not the run's partition {partition}")))


def distinct_lines(lines: DataFrame) -> DataFrame:
    """One row per distinct line (`value`): the columns of its first copy (`_line`, its line
    number, the smallest) and how many copies it had (`_copies`).

    Most files hold no copy or a few, so the lines are not shuffled to find them: their 64-bit
    hashes are (8 bytes a line); the lines whose hash is seen more than once are grouped on
    their text (exact, whatever collides), and that small table, broadcast, tells each line
    whether it is a later copy. Past REPEATED_HASHES_MAX such hashes, every line is grouped on
    its text. Runs its Spark jobs here (a few, over the kept lines)."""
    hashed = F.xxhash64("value")
    repeated = materialize(lines.groupBy(hashed.alias("_hash")).count()
                           .where(F.col("count") > 1).select("_hash"))
    suspects = repeated.count()
    if suspects == 0:
        return lines.withColumn("_copies", F.lit(1).cast("long"))
    if suspects > REPEATED_HASHES_MAX:
        return _grouped_on_text(lines)
    firsts = materialize(
        lines.withColumn("_hash", hashed).join(F.broadcast(repeated), "_hash", "left_semi")
        .groupBy("value").agg(F.min("_line").alias("_first_line"),
                              F.count(F.lit(1)).alias("_n")))
    marked = lines.join(F.broadcast(firsts), "value", "left")
    return (marked.where(F.col("_first_line").isNull() | (F.col("_line") == F.col("_first_line")))
            .select(*lines.columns, F.coalesce("_n", F.lit(1)).cast("long").alias("_copies")))


def _grouped_on_text(lines: DataFrame) -> DataFrame:
    others = [c for c in lines.columns if c not in ("value", "_line")]
    grouped = lines.groupBy("value").agg(
        F.min("_line").alias("_line"),
        F.count(F.lit(1)).alias("_copies"),
        F.min_by(F.struct(*others), F.col("_line")).alias("_first"),
    )
    kept = {c: F.col("_first").getField(c).alias(c) for c in others}
    return grouped.select(*[kept.get(c, c) for c in lines.columns], "_copies")


def json_value(value: Any) -> Any:
    """A measured value as metrics.json and quality.json write it."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@dataclass(frozen=True)
class _Measured:
    """The data lines as read, and what the rules and the job measured over all of them."""

    lines: DataFrame  # read_lines', decoded and parsed: value, _line and parse()'s columns
    data_lines: int
    blank_lines: int
    report: QualityReport
    seen: dict[str, Any]  # the values of _Run.aggregates()


@dataclass(frozen=True)
class _Verdicts:
    """What became of the distinct lines: written, or quarantined and why."""

    written: int
    quarantine_reasons: dict[str, int]
    samples: list[dict[str, Any]]  # the first SAMPLES quarantined lines

    @property
    def quarantined(self) -> int:
        return sum(self.quarantine_reasons.values())


class _Run:
    """One run of a RawJob."""

    def __init__(self, job: RawJob, spark: SparkSession, args: JobArgs):
        self.job, self.spark, self.args = job, spark, args
        self.storage = Storage(spark)
        self.rules_file, self.engine = QualityEngine.from_rules_file(
            self.storage, args.rules, args.reference_time)

    def run(self) -> dict[str, Any]:
        job, args, started = self.job, self.args, time.monotonic()
        check_input_version(args)
        info = check_input(self.storage, args.input, job.input_format, job.header,
                           args.encoding, job.delimiter)
        tables = outputs.output_tables(self.spark, self._parse, job.outputs, args.run_id,
                                       warehouse.shipped_tables())
        meter = RunMeter(self.spark, f"{job.dataset} {args.run_id}")
        with meter.tracking():
            measured = self.measure(info)
            checked = self.judge(info, measured.lines, tables)
            verdicts = self.count_verdicts(checked, measured.data_lines)
            rows = self.write_outputs(checked, verdicts)
        # Again after the scan: an upload while the job read would mix two versions' lines.
        check_input_version(args)
        metrics = {
            **self.metrics(info, measured, verdicts, rows, meter.bytes_read()),
            "duration_seconds": round(time.monotonic() - started, 3),
            "spark_version": self.spark.version,
        }
        self.storage.write_text(args.quality, json.dumps(
            measured.report.as_dict(self.rules_file, args.reference_time), indent=2,
            default=json_value) + "\n")
        self.storage.write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
        return metrics

    def _parse(self, lines: DataFrame) -> DataFrame:
        """The dataset's parse(), holding it to the contract: every input column kept,
        `_reason` added."""
        parsed = self.job.parse(lines)
        lost = [c for c in lines.columns if c not in parsed.columns]
        if lost or "_reason" not in parsed.columns:
            raise ConfigurationError(
                f"{self.job.dataset}: parse() must keep its input's columns and add _reason "
                f"(lost: {lost or 'none'}; columns: {parsed.columns})")
        if self.job.partition_column is not None:
            parsed = parsed.withColumn(self.job.partition_column,
                                       F.lit(self.args.partition).cast("date"))
        return parsed

    def aggregates(self) -> dict[str, Column]:
        """What metrics.json reports about all data lines, measured in the rules' single agg."""
        out: dict[str, Column] = {"lines": F.count(F.lit(1))}
        for c in self.job.null_count_columns:
            out[f"null_{c}"] = F.count_if(F.col(c).isNull())
        for c in self.job.range_columns:
            out[f"min_{c}"] = F.min(c)
            out[f"max_{c}"] = F.max(c)
        return out

    def measure(self, info: ObjectInfo) -> _Measured:
        """Read the input once, each line decoded and parsed once (every later query reads
        that), and measure the rules (and metrics.json's figures) on every data line."""
        encoding = self.args.encoding
        lines, data_lines, blank_lines = read_lines(
            self.spark, info, header_lines(self.job.input_format),
            prepare=lambda scan: self._parse(text.decode_lines(scan, encoding)))
        report, seen = self.engine.measure(lines.select(*self.job.typed_columns),
                                           extra=self.aggregates())
        if seen["lines"] != data_lines:
            raise RuntimeError(f"read {data_lines} data lines but measured {seen['lines']}")
        return _Measured(lines, data_lines, blank_lines, report, seen)

    def judge(self, info: ObjectInfo, lines: DataFrame, tables: dict[str, TableDefinition]
              ) -> DataFrame:
        """One row per distinct line (per line with keep_duplicates), parsed, with `_reason`
        (NULL: accepted), `_source_line`, `_copies` and `_sample` (a refused line's text,
        clipped). The lines are judged once and kept (materialized) before the group totals
        are checked over them, so the counts and the writes share one shuffle and the lines
        are not judged again for the totals."""
        job, encoding = self.job, self.args.encoding
        typed = (lines.withColumn("_copies", F.lit(1).cast("long"))
                 if job.keep_duplicates else distinct_lines(lines))
        reasons = [reason for reason in (
            text.encoding_reason(encoding), F.col("_reason"),
            job.partition_reason(self.args.partition),
            outputs.line_limit_reason(job.outputs, tables),
            self.engine.rejection_reason()) if reason is not None]
        kept = materialize(typed.withColumn("_reason", F.coalesce(*reasons)),
                           partitions(self.spark, info), "_line")
        limited = outputs.with_group_limits(kept, job.outputs, tables)
        # A dataset with its own quarantine rows has its raw fields: the line's text is only
        # needed for the sample.
        dropped = {"_reason", *_BOOKKEEPING, *(("value",) if job.quarantine_rows else ())}
        sample = text.shown_text(F.col("value"), SAMPLE_CHARS)
        return limited.select(
            *[c for c in limited.columns if c not in dropped], "_reason",
            F.col("_line").alias("_source_line"), "_copies",
            F.when(F.col("_reason").isNotNull(), sample).alias("_sample"))

    def count_verdicts(self, checked: DataFrame, data_lines: int) -> _Verdicts:
        counts = checked.groupBy("_reason").agg(
            F.count(F.lit(1)).alias("lines"), F.sum("_copies").alias("copies")).collect()
        copies = sum(int(r["copies"]) for r in counts)
        if copies != data_lines:
            raise RuntimeError(f"dedupe lost lines: {copies} copies of {data_lines} lines")
        refused = any(r["_reason"] is not None for r in counts)
        samples = (checked.where(F.col("_reason").isNotNull()).orderBy("_source_line")
                   .limit(SAMPLES).select("_reason", "_source_line", "_sample").collect()
                   if refused else [])
        return _Verdicts(
            written=sum(int(r["lines"]) for r in counts if r["_reason"] is None),
            quarantine_reasons={r["_reason"]: int(r["lines"]) for r in counts
                                if r["_reason"] is not None},
            samples=[{"reason": r["_reason"], "line": int(r["_source_line"]),
                      "text": r["_sample"]} for r in samples],
        )

    def quarantine(self, rejected: DataFrame) -> DataFrame:
        """The quarantine's rows: the dataset's own, else the line's text, why and where."""
        if self.job.quarantine_rows is not None:
            return self.job.quarantine_rows(rejected, self.args.run_id)
        return rejected.select(F.col("value").alias("line"), "_reason",
                               F.col("_source_line").cast("long").alias("_source_line"),
                               F.lit(self.args.run_id).alias("run_id"))

    def write_outputs(self, checked: DataFrame, verdicts: _Verdicts) -> dict[str, int]:
        """Write every output and the quarantine; the rows of each output.

        When no line was refused there is no quarantine to write (most days): nothing is
        written there, unless an earlier attempt of the run left one, which an empty one
        replaces. Readers go by metrics.json's counts, never by listing the folder."""
        args, written = self.args, verdicts.written
        valid = checked.where(F.col("_reason").isNull())
        rows: dict[str, int] = {}
        for name, output in self.job.outputs.items():
            rows[name] = outputs.write_parquet(outputs.builder(output)(valid, args.run_id),
                                               args.output_uri(name), f"{args.run_id}-{name}")
            if isinstance(output, LineOutput) and rows[name] != written:
                raise RuntimeError(f"wrote {rows[name]} rows of {name}, expected {written}")
        if verdicts.quarantined or self.storage.exists(args.quarantine):
            outputs.write_parquet(self.quarantine(checked.where(F.col("_reason").isNotNull())),
                                  args.quarantine, f"{args.run_id}-quarantine")
        return rows

    def metrics(self, info: ObjectInfo, measured: _Measured, verdicts: _Verdicts,
                rows: dict[str, int], bytes_read: int | None) -> dict[str, Any]:
        """metrics.json's content, but for the run's duration and Spark version."""
        args, seen, job = self.args, measured.seen, self.job
        return {
            "run_id": args.run_id,
            "dataset": job.dataset,
            "partition": args.partition,
            "input": info.uri,
            "lines_read": measured.data_lines,
            "lines_written": verdicts.written,
            "lines_quarantined": verdicts.quarantined,
            "duplicates": measured.data_lines - verdicts.written - verdicts.quarantined,
            "blank_lines": measured.blank_lines,
            "quarantine_reasons": dict(sorted(verdicts.quarantine_reasons.items())),
            "quarantine_samples": verdicts.samples,
            "tables": {t: {"rows": rows[t], "uri": args.output_uri(t)} for t in job.outputs},
            "quarantine_uri": args.quarantine,
            # Over every data line as parsed (what the rules measured).
            "null_counts": {c: int(seen[f"null_{c}"]) for c in job.null_count_columns},
            "min": {c: json_value(seen[f"min_{c}"]) for c in job.range_columns},
            "max": {c: json_value(seen[f"max_{c}"]) for c in job.range_columns},
            "input_bytes": info.size,
            "bytes_read": bytes_read,
            "quality": _quality_summary(measured.report),
        }


def _quality_summary(report: QualityReport) -> dict[str, int]:
    outcomes = [r.outcome for r in report.results]
    return {o: outcomes.count(o) for o in ("pass", "fail", "deferred")}
