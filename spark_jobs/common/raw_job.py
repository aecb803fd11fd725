"""The job framework of every raw dataset: raw objects in (one, or a batch: one per partition);
each partition's output tables, quarantine, metrics.json and quality.json out. A dataset's job
module declares a `RawJob` (its format, its pure transforms, its outputs); everything else
happens here, once:

1. input checks (spark_jobs.common.raw_input): empty file, gzip magic vs name, the csv header;
   the object version the run is for (--input-etag), before the scan and after it;
2. one scan of every input of the batch with line numbers, each line decoded in the declared
   encoding (spark_jobs.common.text) and parsed once, kept for every later query
   (spark_jobs.common.frames); blank lines skipped;
3. the DQDL rules measured over every data line as parsed, for each partition on its own
   (before dedupe and before quarantine, so doubled content and truncation stay visible), with
   metrics.json's null counts and min/max in the rules' single aggregation;
4. exact duplicate lines (within a partition) kept once (unless the job keeps them:
   `keep_duplicates`); each line judged once, the first reason wins:
   not valid text in the encoding, the dataset's parse reason, another day than its
   partition, a value a warehouse table would refuse (spark_jobs.common.outputs), then the
   first error-severity row-level rule it fails;
5. for each partition, the writes (zstd parquet, no _SUCCESS) of each output and of the
   quarantine (when a line was refused), then metrics.json and quality.json; exit codes and
   the `JOB ERROR:` line (spark_jobs.common.entry).

A batch is one pass, not one run per partition: steps 2-4 are the Spark jobs of one run,
grouped by partition (`_part`), whatever the batch's size; each CustomSql rule is one query
for all partitions (a small partition's rows read as one partition: no shuffle), and in the
product's batch layout each table is one write for all partitions
(spark_jobs.common.batch_writes); only a quarantine is written per partition. A small day's
run is planning and scheduling more than work, so this is what a batch saves
(bench/bench_batch.py, 31 real days in one warm Spark: 392 Spark jobs and 59 s when each
partition wrote and queried alone, 28 Spark jobs and 27-29 s now).
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

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.warehouse_limits import TableDefinition
from spark_jobs.common import batch_writes, outputs, text, warehouse
from spark_jobs.common.args import JobArgs, parse_args, split_partitions
from spark_jobs.common.entry import run_job
from spark_jobs.common.frames import materialize
from spark_jobs.common.outputs import GroupedOutput, LineOutput, Output
from spark_jobs.common.quality import QualityEngine, QualityReport
from spark_jobs.common.raw_input import (
    LineCounts,
    check_input,
    fits_one_partition,
    header_lines,
    no_data_reason,
    partitions,
    read_lines,
    unreadable,
)
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

SAMPLES, SAMPLE_CHARS = 5, 200  # metrics.json's quarantine_samples (per partition)
# Past this many repeated line hashes, distinct_lines groups every line on its text (the
# broadcast table of repeated lines holds each one's text: ~30 MB at this bound).
REPEATED_HASHES_MAX = 200_000
# Columns the framework adds to every parsed line of a pass: the partition's index in the pass,
# its day (a date) and the instant its rules measure against (now(), DataFreshness).
PART, PARTITION_DATE, REFERENCE_TIME = "_part", "_run_partition", "_run_reference_time"
_BOOKKEEPING = ("_line", "_copies", PART, PARTITION_DATE, REFERENCE_TIME)
# Partitions of a batch written at once. Each partition's writes are a few short Spark jobs
# whose time is the driver's (planning, scheduling) more than the executors': one at a time
# leaves the cores idle, a few at once fill them (bench/bench_batch.py).
WRITE_WORKERS = 4


@dataclass(frozen=True)
class RawJob:
    """A raw dataset's job: what its code gives the framework (see /docs/architecture.md,
    "Raw job framework"). `outputs` is kept as given (not copied).

    `partition_reason(day)` gets the line's partition as a date column. Each GroupedOutput's
    keys hold the line's day, which partition_reason pins to its partition: a group never
    spans two partitions of a batch."""

    dataset: str
    input_format: str  # the catalog's source.format: csv | jsonl | text
    parse: Callable[[DataFrame], DataFrame]
    typed_columns: tuple[str, ...]
    partition_reason: Callable[[Column], Column]
    outputs: Mapping[str, Output]
    null_count_columns: tuple[str, ...] = ()
    range_columns: tuple[str, ...] = ()
    header: tuple[str, ...] = ()  # csv only: the catalog's source.header
    delimiter: str = ","  # csv only: the catalog's source.delimiter (the header check's)
    # The quarantine's rows from the refused lines (`value`, parse()'s columns, `_reason`,
    # `_source_line`) and the run id; by default the line's text, why and where.
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
        """The job of one partition. Returns metrics.json's content (also written, with
        quality.json); InvalidInput when its input is refused."""
        [outcome] = self._outcomes(spark, [args])
        if isinstance(outcome, InvalidInput):
            raise outcome
        return outcome

    def main(self, argv: list[str] | None = None) -> int:
        """The job's entry point (`main.main(argv)`): its exit code. Several `--input` groups
        are a batch: its partitions run in one pass (`run_batch`)."""
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
        """Each partition's metrics.json content, in the partitions' order. A partition whose
        input is refused (InvalidInput: empty, not gzip, a wrong header, another object
        version...) fails alone: its metrics.json says why (`error`) and the others go on.
        When every partition is refused the job is refused (exit 2, as a run of one),
        writing nothing. Any other failure fails the job."""
        batch = [p if isinstance(p, JobArgs) else parse_args(p, self.dataset)
                 for p in partitions]
        outcomes = self._outcomes(spark, batch)
        refused = [o for o in outcomes if isinstance(o, InvalidInput)]
        if len(refused) == len(batch):
            raise refused[0] if len(batch) == 1 else InvalidInput(
                "every partition of the batch was refused: " + "; ".join(map(str, refused)))
        return [self._refused(spark, args, o) if isinstance(o, InvalidInput) else o
                for args, o in zip(batch, outcomes, strict=True)]

    def _outcomes(self, spark: SparkSession, batch: list[JobArgs]
                  ) -> list[dict[str, Any] | InvalidInput]:
        """Each partition's metrics.json content or why its input was refused. Partitions that
        share the rules file and the encoding run in one pass."""
        outcomes: dict[int, dict[str, Any] | InvalidInput] = {}
        passes: dict[tuple[str, str], list[_Part]] = {}
        storage = Storage(spark)
        for index, args in enumerate(batch):
            try:
                check_input_version(args)
                info = check_input(storage, args.input, self.input_format, self.header,
                                   args.encoding, self.delimiter)
            except InvalidInput as e:
                outcomes[index] = e
                continue
            passes.setdefault((args.rules, args.encoding), []).append(_Part(index, args, info))
        for parts in passes.values():
            outcomes.update(self._pass(spark, parts))
        return [outcomes[i] for i in range(len(batch))]

    def _pass(self, spark: SparkSession, parts: list[_Part]
              ) -> dict[int, dict[str, Any] | InvalidInput]:
        """One pass over `parts`. When the read fails on bytes that cannot be decoded, each
        input is read alone to find which: those are refused, and the others pass again."""
        try:
            return _Pass(self, spark, parts).run()
        except _Unreadable as e:
            if len(parts) == 1:
                return {parts[0].index: e.error}
            bad = {p.index: error for p in parts if (error := unreadable(spark, p.info))}
            if not bad:  # no file to blame: the job fails (and may be retried), none is refused
                raise RuntimeError(f"the batch's read failed, but every file reads alone: "
                                   f"{e.error}") from e
            return {**bad, **self._pass(spark, [p for p in parts if p.index not in bad])}

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


def other_day_reason(column: str, label: str, partition: Column) -> Column:
    """A dataset's partition_reason over its date column: NULL on the line's partition day
    (`partition`, a date column), else "<label> <day> is not the run's partition <day>"."""
    day = F.col(column)
    return F.when(day != partition,
                  F.concat(F.lit(f"{label} "), day.cast("string"),
                           F.lit(" is not the run's partition "), partition.cast("string")))


def distinct_lines(lines: DataFrame, by: tuple[str, ...] = ()) -> DataFrame:
    """One row per distinct line (`value`, within each group of the `by` columns: a batch's
    partition): the columns of its first copy (`_line`, its line number, the smallest) and how
    many copies it had (`_copies`).

    Most files hold no copy or a few, so the lines are not shuffled to find them: their 64-bit
    hashes are (8 bytes a line); the lines whose hash is seen more than once are grouped on
    their text (exact, whatever collides), and that small table, broadcast, tells each line
    whether it is a later copy. Past REPEATED_HASHES_MAX such hashes, every line is grouped on
    its text. Runs its Spark jobs here (a few, over the kept lines)."""
    hashed = F.xxhash64("value", *by)
    repeated = materialize(lines.groupBy(hashed.alias("_hash")).count()
                           .where(F.col("count") > 1).select("_hash"))
    suspects = repeated.count()
    if suspects == 0:
        return lines.withColumn("_copies", F.lit(1).cast("long"))
    if suspects > REPEATED_HASHES_MAX:
        return _grouped_on_text(lines, by)
    firsts = materialize(
        lines.withColumn("_hash", hashed).join(F.broadcast(repeated), "_hash", "left_semi")
        .groupBy("value", *by).agg(F.min("_line").alias("_first_line"),
                                   F.count(F.lit(1)).alias("_n")))
    marked = lines.join(F.broadcast(firsts), ["value", *by], "left")
    return (marked.where(F.col("_first_line").isNull() | (F.col("_line") == F.col("_first_line")))
            .select(*lines.columns, F.coalesce("_n", F.lit(1)).cast("long").alias("_copies")))


def _grouped_on_text(lines: DataFrame, by: tuple[str, ...]) -> DataFrame:
    others = [c for c in lines.columns if c not in ("value", "_line", *by)]
    grouped = lines.groupBy("value", *by).agg(
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
class _Part:
    """A partition of a pass: its position in the batch, its arguments, its checked input."""

    index: int
    args: JobArgs
    info: ObjectInfo


class _Unreadable(Exception):
    """The pass's read failed on bytes that cannot be decoded (which input's is not known)."""

    def __init__(self, error: InvalidInput):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Measured:
    """What the rules and the job measured over one partition's data lines."""

    counts: LineCounts
    report: QualityReport
    seen: dict[str, Any]  # the values of _Pass.aggregates()


@dataclass(frozen=True)
class _Verdicts:
    """What became of a partition's distinct lines: written, or quarantined and why."""

    written: int
    quarantine_reasons: dict[str, int]
    samples: list[dict[str, Any]]  # the first SAMPLES quarantined lines

    @property
    def quarantined(self) -> int:
        return sum(self.quarantine_reasons.values())


class _Pass:
    """One pass of a RawJob over one or more partitions (`_part`: their position here)."""

    def __init__(self, job: RawJob, spark: SparkSession, parts: list[_Part]):
        self.job, self.spark, self.parts = job, spark, parts
        self.storage = Storage(spark)
        first = parts[0].args
        self.encoding = first.encoding
        self.rules_file, self.engine = QualityEngine.from_rules_file(
            self.storage, first.rules, first.reference_time, REFERENCE_TIME)

    def run(self) -> dict[int, dict[str, Any] | InvalidInput]:
        job, started = self.job, time.monotonic()
        tables = outputs.output_tables(
            self.spark, lambda lines: self._parse(lines.withColumn(PART, F.lit(0))),
            job.outputs, self.parts[0].args.run_id, warehouse.shipped_tables())
        refused = {p: e for p, part in enumerate(self.parts)
                   if (e := outputs.run_id_problem(tables, part.args.run_id))}
        meter = RunMeter(self.spark, f"{job.dataset} {self.parts[0].args.run_id}"
                         + (f" and {len(self.parts) - 1} more" if len(self.parts) > 1 else ""))
        verdicts: dict[int, _Verdicts] = {}
        rows: dict[int, dict[str, int]] = {}
        with meter.tracking():
            lines, measured, refused = self.measure(refused)
            if measured:
                checked = self.judge(lines, tables)
                verdicts = self.count_verdicts(checked, measured)
                rows = self.write_all(checked, verdicts)
        batch = self._batch_figures(meter)
        outcomes: dict[int, dict[str, Any] | InvalidInput] = {
            self.parts[p].index: e for p, e in refused.items()}
        for p, figures in measured.items():
            part = self.parts[p]
            try:  # again after the scan: an upload while the job read would mix two versions
                check_input_version(part.args)
            except InvalidInput as e:
                outcomes[part.index] = e
                continue
            metrics = {**self.metrics(part, figures, verdicts[p], rows[p], batch),
                       "duration_seconds": round(time.monotonic() - started, 3),
                       "spark_version": self.spark.version}
            self.storage.write_text(part.args.quality, json.dumps(
                figures.report.as_dict(self.rules_file, part.args.reference_time), indent=2,
                default=json_value) + "\n")
            self.storage.write_text(part.args.metrics, json.dumps(metrics, indent=2) + "\n")
            outcomes[part.index] = metrics
        return outcomes

    def _batch_figures(self, meter: RunMeter) -> dict[str, Any]:
        """What Spark read in the pass, every file it scanned: per partition only in a pass
        of one."""
        return {"partitions": len(self.parts),
                "input_bytes": sum(part.info.size for part in self.parts),
                "bytes_read": meter.bytes_read()}

    def _parse(self, lines: DataFrame) -> DataFrame:
        """The dataset's parse(), holding it to the contract (every input column kept,
        `_reason` added), after the partition's day and reference time are added."""
        day = F.array(*[F.lit(p.args.partition).cast("date") for p in self.parts])
        instant = F.array(*[F.lit(p.args.reference_time) for p in self.parts])
        lines = lines.withColumns({PARTITION_DATE: F.element_at(day, F.col(PART) + 1),
                                   REFERENCE_TIME: F.element_at(instant, F.col(PART) + 1)})
        parsed = self.job.parse(lines)
        lost = [c for c in lines.columns if c not in parsed.columns]
        if lost or "_reason" not in parsed.columns:
            raise ConfigurationError(
                f"{self.job.dataset}: parse() must keep its input's columns and add _reason "
                f"(lost: {lost or 'none'}; columns: {parsed.columns})")
        if self.job.partition_column is not None:
            parsed = parsed.withColumn(self.job.partition_column, F.col(PARTITION_DATE))
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

    def measure(self, refused: dict[int, InvalidInput]
                ) -> tuple[DataFrame, dict[int, _Measured], dict[int, InvalidInput]]:
        """Read the inputs once, each line decoded and parsed once (every later query reads
        that), and measure the rules (and metrics.json's figures) on each partition's data
        lines. Returns the lines of the partitions that go on, what was measured of each, and
        the partitions refused (`refused` and those with no data line)."""
        skip = header_lines(self.job.input_format)
        try:
            lines, counts = read_lines(
                self.spark, [p.info for p in self.parts], skip,
                prepare=lambda scan: self._parse(text.decode_lines(scan, self.encoding)))
        except InvalidInput as e:
            raise _Unreadable(e) from e
        refused = {**refused, **{
            p: InvalidInput(reason) for p, part in enumerate(self.parts)
            if (reason := no_data_reason(part.info, counts[p], skip)) is not None}}
        kept = [p for p in range(len(self.parts)) if p not in refused]
        if len(kept) < len(self.parts):
            lines = lines.where(F.col(PART).isin(kept))
        typed = lines.select(*self.job.typed_columns, PART, REFERENCE_TIME)
        small = [p for p in kept if fits_one_partition(self.parts[p].info)]
        measured = self.engine.measure_each(typed, PART, extra=self.aggregates(),
                                            small=small) if kept else {}
        for p in kept:
            if p not in measured or measured[p][1]["lines"] != counts[p].data:
                raise RuntimeError(f"{self.parts[p].info.uri}: read {counts[p].data} data "
                                   f"lines but measured {measured.get(p, (0, {}))[1]}")
        return lines, {p: _Measured(counts[p], *measured[p]) for p in kept}, refused

    def judge(self, lines: DataFrame, tables: dict[str, TableDefinition]) -> DataFrame:
        """One row per distinct line of a partition (per line with keep_duplicates), parsed,
        with `_reason` (NULL: accepted), `_source_line`, `_copies` and `_sample` (a refused
        line's text, clipped). The lines are judged once and kept (materialized) before the
        group totals are checked over them, so the counts and the writes share one shuffle and
        the lines are not judged again for the totals."""
        job = self.job
        typed = (lines.withColumn("_copies", F.lit(1).cast("long"))
                 if job.keep_duplicates else distinct_lines(lines, by=(PART,)))
        reasons = [reason for reason in (
            text.encoding_reason(self.encoding), F.col("_reason"),
            job.partition_reason(F.col(PARTITION_DATE)),
            outputs.line_limit_reason(job.outputs, tables),
            self.engine.rejection_reason()) if reason is not None]
        kept = materialize(typed.withColumn("_reason", F.coalesce(*reasons)),
                           partitions(self.spark, [p.info for p in self.parts]), "_line")
        limited = outputs.with_group_limits(kept, job.outputs, tables)
        dropped = {"_reason", *_BOOKKEEPING}
        sample = text.shown_text(F.col("value"), SAMPLE_CHARS)
        return limited.select(
            *[c for c in limited.columns if c not in dropped], PART, "_reason",
            F.col("_line").alias("_source_line"), "_copies",
            F.when(F.col("_reason").isNotNull(), sample).alias("_sample"))

    def count_verdicts(self, checked: DataFrame, measured: Mapping[int, _Measured]
                       ) -> dict[int, _Verdicts]:
        """Each partition's verdicts: one Spark job for the counts, one for the samples (when
        a line was refused)."""
        counts = checked.groupBy(PART, "_reason").agg(
            F.count(F.lit(1)).alias("lines"), F.sum("_copies").alias("copies")).collect()
        for p, figures in measured.items():
            copies = sum(int(r["copies"]) for r in counts if r[PART] == p)
            if copies != figures.counts.data:
                raise RuntimeError(f"{self.parts[p].info.uri}: dedupe lost lines: {copies} "
                                   f"copies of {figures.counts.data} lines")
        samples = self._samples(checked) if any(
            r["_reason"] is not None for r in counts) else []
        return {p: _Verdicts(
            written=sum(int(r["lines"]) for r in counts if r[PART] == p and r["_reason"] is None),
            quarantine_reasons={r["_reason"]: int(r["lines"]) for r in counts
                                if r[PART] == p and r["_reason"] is not None},
            samples=[{"reason": r["_reason"], "line": int(r["_source_line"]),
                      "text": r["_sample"]} for r in samples if r[PART] == p],
        ) for p in measured}

    @staticmethod
    def _samples(checked: DataFrame) -> list[Any]:
        """The first SAMPLES refused lines of each partition, in line order."""
        first = Window.partitionBy(PART).orderBy("_source_line")
        return (checked.where(F.col("_reason").isNotNull())
                .select(PART, "_reason", "_source_line", "_sample",
                        F.row_number().over(first).alias("_n"))
                .where(F.col("_n") <= SAMPLES).orderBy(PART, "_source_line").collect())

    def quarantine(self, rejected: DataFrame, run_id: str) -> DataFrame:
        """The quarantine's rows: the dataset's own, else the line's text, why and where."""
        if self.job.quarantine_rows is not None:
            return self.job.quarantine_rows(rejected, run_id)
        return rejected.select(F.col("value").alias("line"), "_reason",
                               F.col("_source_line").cast("long").alias("_source_line"),
                               F.lit(run_id).alias("run_id"))

    def write_all(self, checked: DataFrame, verdicts: Mapping[int, _Verdicts]
                  ) -> dict[int, dict[str, int]]:
        """Every partition's writes: each output's rows. Each table in one Spark job for the
        whole batch where its layout allows (spark_jobs.common.batch_writes), else
        WRITE_WORKERS partitions at once; the quarantines of a partition each."""
        parts = list(verdicts)
        batch = batch_writes.layout([batch_writes.BatchPart(
            p, self.parts[p].args.partition, self.parts[p].args.run_id,
            {name: self.parts[p].args.output_uri(name) for name in self.job.outputs})
            for p in parts], self.job.outputs)
        tables = {} if batch is None else batch_writes.write_tables(
            checked.where(F.col("_reason").isNull()), PART, self.job.outputs, batch)
        for p, rows in tables.items():
            self._check_lines_written(rows, verdicts[p])
        written = run_concurrently(self.spark, [
            functools.partial(self._write_task, checked, p, verdicts[p], batch is None)
            for p in parts], WRITE_WORKERS)
        return {p: tables.get(p, cast("dict[str, int]", rows))
                for p, rows in zip(parts, written, strict=True)}

    def _write_task(self, checked: DataFrame, p: int, verdicts: _Verdicts, tables: bool,
                    _session: SparkSession) -> dict[str, int]:
        return self.write_outputs(checked, p, verdicts, tables=tables)

    def _check_lines_written(self, rows: Mapping[str, int], verdicts: _Verdicts) -> None:
        for name, output in self.job.outputs.items():
            if isinstance(output, LineOutput) and rows[name] != verdicts.written:
                raise RuntimeError(f"wrote {rows[name]} rows of {name}, expected "
                                   f"{verdicts.written}")

    def write_outputs(self, checked: DataFrame, p: int, verdicts: _Verdicts,
                      tables: bool = True) -> dict[str, int]:
        """Write every output (unless `tables` is False: written for the whole batch) and
        the quarantine of partition `p`; the rows of each output written here.

        When no line was refused there is no quarantine to write (most days): nothing is
        written there, unless an earlier attempt of the run left one, which an empty one
        replaces. Readers go by metrics.json's counts, never by listing the folder."""
        args = self.parts[p].args
        mine = checked.where(F.col(PART) == p)
        valid = mine.where(F.col("_reason").isNull())
        rows: dict[str, int] = {}
        for name, output in self.job.outputs.items() if tables else ():
            rows[name] = outputs.write_parquet(outputs.builder(output)(valid, args.run_id),
                                               args.output_uri(name), f"{args.run_id}-{name}")
        if rows:
            self._check_lines_written(rows, verdicts)
        if verdicts.quarantined or self.storage.exists(args.quarantine):
            outputs.write_parquet(
                self.quarantine(mine.where(F.col("_reason").isNotNull()), args.run_id),
                args.quarantine, f"{args.run_id}-quarantine")
        return rows

    def metrics(self, part: _Part, measured: _Measured, verdicts: _Verdicts,
                rows: dict[str, int], batch: dict[str, Any]) -> dict[str, Any]:
        """metrics.json's content, but for the run's duration and Spark version."""
        args, seen, job, info = part.args, measured.seen, self.job, part.info
        alone = batch["partitions"] == 1
        return {
            "run_id": args.run_id,
            "dataset": job.dataset,
            "partition": args.partition,
            "input": info.uri,
            "lines_read": measured.counts.data,
            "lines_written": verdicts.written,
            "lines_quarantined": verdicts.quarantined,
            "duplicates": measured.counts.data - verdicts.written - verdicts.quarantined,
            "blank_lines": measured.counts.blank,
            "quarantine_reasons": dict(sorted(verdicts.quarantine_reasons.items())),
            "quarantine_samples": verdicts.samples,
            "tables": {t: {"rows": rows[t], "uri": args.output_uri(t)} for t in job.outputs},
            "quarantine_uri": args.quarantine,
            # Over every data line as parsed (what the rules measured).
            "null_counts": {c: int(seen[f"null_{c}"]) for c in job.null_count_columns},
            "min": {c: json_value(seen[f"min_{c}"]) for c in job.range_columns},
            "max": {c: json_value(seen[f"max_{c}"]) for c in job.range_columns},
            "input_bytes": info.size,
            # Spark meters the pass, not each partition of a batch: see `batch`.
            "bytes_read": batch["bytes_read"] if alone else None,
            **({} if alone else {"batch": batch}),
            "quality": _quality_summary(measured.report),
        }


def _quality_summary(report: QualityReport) -> dict[str, int]:
    outcomes = [r.outcome for r in report.results]
    return {o: outcomes.count(o) for o in ("pass", "fail", "deferred")}
