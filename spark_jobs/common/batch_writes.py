"""A batch's output tables, each written for every partition of the batch in ONE Spark job.

A partition's writes are a few small Spark jobs whose time is the driver's (planning,
scheduling, committing), so a month of days written one at a time costs more than the rest
of the batch (bench/bench_batch.py). When the batch's outputs lie where one partitioned write
puts them, each table is one `partitionBy("partition")` write under the batch's prefix:

    <table prefix>/batch=<batch run id>/partition=<partition>/part-*.parquet

(pipeline_aws.resolve.RunPaths: a batch's partition has one run, so no run level). Each row
goes to its partition's folder by its run id: a LineOutput's rows get theirs from the line's
partition, a GroupedOutput's from its `day` key, which partition_reason pins to the line's
partition (so a group never spans two partitions). A row whose run id names no partition of
the batch fails the job: it would be a day the batch does not own.

Nothing else changes: the same builders, files, row counts and checks as one write per
partition. `layout` says when this applies; otherwise the job writes each partition alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from spark_jobs.common import outputs
from spark_jobs.common.outputs import GroupedOutput, LineOutput, Output

PARTITION_DIR = "partition"  # the folder level under batch=<id>/ (a column while writing)
# A value Spark writes as a folder name unchanged (it escapes others: ':', '=', '%'...).
_PLAIN = re.compile(r"^[A-Za-z0-9._-]+\Z")
_BATCH_BASE = re.compile(r"^.+/batch=[A-Za-z0-9._-]+/\Z")


@dataclass(frozen=True)
class BatchPart:
    """A partition of the batch being written: its index in the pass (the `_part` column)."""

    index: int
    partition: str
    run_id: str
    output_uris: Mapping[str, str]  # table -> its folder for this partition


@dataclass(frozen=True)
class BatchLayout:
    parts: tuple[BatchPart, ...]
    bases: Mapping[str, str]  # table -> .../batch=<id>/ (every partition's folder is under it)


def layout(parts: Sequence[BatchPart], tables: Mapping[str, Output]) -> BatchLayout | None:
    """The batch's layout when each table can be written for every partition at once: two
    partitions or more, each table's folder `<one base per table>partition=<partition>/`
    with `<base>` ending in `batch=<id>/`, partitions and run ids distinct and plain, and every
    output one whose rows can be told apart by partition (a LineOutput, a GroupedOutput with
    its `day`). None otherwise."""
    if len(parts) < 2 or not all(_routable(output) for output in tables.values()):
        return None
    if len({p.partition for p in parts}) < len(parts) or len({p.run_id for p in parts}) < len(
            parts) or not all(_PLAIN.match(p.partition) for p in parts):
        return None
    bases: dict[str, str] = {}
    for table in tables:
        found = set()
        for part in parts:
            uri, folder = part.output_uris[table], f"{PARTITION_DIR}={part.partition}/"
            if not uri.endswith(folder):
                return None
            found.add(uri[:-len(folder)])
        if len(found) != 1 or not _BATCH_BASE.match(base := found.pop()):
            return None
        bases[table] = base
    if len(set(bases.values())) < len(bases):
        return None
    return BatchLayout(tuple(parts), bases)


def _routable(output: Output) -> bool:
    return isinstance(output, LineOutput) or (isinstance(output, GroupedOutput)
                                              and output.day is not None)


def write_tables(valid: DataFrame, part_column: str, tables: Mapping[str, Output],
                 batch: BatchLayout) -> dict[int, dict[str, int]]:
    """Each table's rows for every partition of `batch`, from `valid` (the accepted lines of
    every partition, `part_column` holding each one's index), one Spark job a table; the
    rows written by partition index and table. A partition with no row of a table gets an
    empty file in its folder, as a write of its own would."""
    rows: dict[int, dict[str, int]] = {part.index: {} for part in batch.parts}
    for name, output in tables.items():
        built = outputs.builder(output)(valid, _run_ids(output, part_column, batch.parts))
        if PARTITION_DIR in built.columns:
            raise RuntimeError(f"{name} has a column {PARTITION_DIR!r}: its batch folders "
                               "would be ambiguous")
        counted = _write(built, name, batch)
        for part in batch.parts:
            rows[part.index][name] = counted[part.index]
            if counted[part.index] == 0:
                outputs.write_parquet(
                    outputs.builder(output)(valid.limit(0), F.lit(part.run_id)),
                    part.output_uris[name], f"{part.run_id}-{name}")
    return rows


def _run_ids(output: Output, part_column: str, parts: Sequence[BatchPart]) -> Column:
    """Each row's run id: its line's partition's (LineOutput), its group's day's
    (GroupedOutput); NULL for a day of no partition of the batch."""
    if isinstance(output, GroupedOutput):
        assert output.day is not None
        by_day = F.create_map(*chain.from_iterable(
            (F.lit(p.partition).cast("date"), F.lit(p.run_id)) for p in parts))
        return F.element_at(by_day, F.col(output.day))
    by_index = F.create_map(*chain.from_iterable(
        (F.lit(p.index).cast("long"), F.lit(p.run_id)) for p in parts))
    return F.element_at(by_index, F.col(part_column).cast("long"))


def _write(built: DataFrame, name: str, batch: BatchLayout) -> dict[int, int]:
    """One partitioned write of a table's rows (every partition's folder replaced: the
    batch's prefix is overwritten whole); the rows of each partition."""
    folder = F.element_at(F.create_map(*chain.from_iterable(
        (F.lit(p.run_id), F.lit(p.partition)) for p in batch.parts)), F.col("run_id"))
    observation = Observation(f"batch-{name}")
    counts = [F.count_if(F.col(PARTITION_DIR) == F.lit(p.partition)).alias(f"_rows{p.index}")
              for p in batch.parts]
    routed = (built.withColumn(PARTITION_DIR, folder)
              .observe(observation, F.count_if(F.col(PARTITION_DIR).isNull()).alias("_lost"),
                       *counts)
              .where(F.col(PARTITION_DIR).isNotNull()))
    (outputs.parquet_writer(routed).option("partitionOverwriteMode", "static")
     .partitionBy(PARTITION_DIR).parquet(batch.bases[name]))
    seen = observation.get
    if seen["_lost"]:
        raise RuntimeError(f"{seen['_lost']} rows of {name} belong to no partition of the "
                           "batch (their day is not one of its partitions)")
    return {p.index: int(seen[f"_rows{p.index}"]) for p in batch.parts}
