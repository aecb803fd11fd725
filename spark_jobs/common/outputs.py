"""A raw job's output tables: how a dataset declares them, and the checks that keep every row
loadable.

A dataset's `OUTPUTS` maps each warehouse table (schema `analytics`) to its builder,
`build(accepted typed lines, run_id) -> the table's rows`, columns in the table's order. Wrap a
builder to say what kind of table it is, so the framework can quarantine the lines whose values
the table would refuse (limits from warehouse/migrations, spark_jobs.common.warehouse) instead
of the COPY failing the load or an ANSI cast failing the job:

* `LineOutput(build)`: one row per accepted line. Every column but `run_id` is a column of the
  parsed lines with the same name and value: each value is checked per line (reason named after
  the bare column: "description is 300 bytes, over varchar(256)").
* `GroupedOutput(build, keys, totals, lines, day)`: one row per group of accepted lines. The key
  columns (columns of the parsed lines and of the table) are checked per line among `lines()`
  (the lines that reach the table; all when None), named `<table>.<column>`; `totals(accepted)`
  gives each group's keys and exact values of the table's other columns (before any cast to the
  table's types), checked against the table: every line of a group that would not fit is
  quarantined with that reason.
* a bare builder: only its schema is checked (a value the table refuses fails the load).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, DataFrameWriter, Observation, SparkSession
from pyspark.sql import functions as F

from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.warehouse_limits import TableDefinition, WarehouseTables
from spark_jobs.common.frames import materialize
from spark_jobs.common.warehouse import Check, check_schema, first_reason, value_checks

SCHEMA = "analytics"  # the warehouse schema every raw job writes
# The run id a builder writes in its run_id column (as F.lit(run_id)): the run's, or a column
# holding each row's (a batch's partitions written at once: spark_jobs.common.batch_writes).
RunId = str | Column
Build = Callable[[DataFrame, RunId], DataFrame]


@dataclass(frozen=True)
class LineOutput:
    """A table with one row per accepted line (see the module's docstring)."""

    build: Build


@dataclass(frozen=True)
class GroupedOutput:
    """A table with one row per group of accepted lines (see the module's docstring)."""

    build: Build
    keys: tuple[str, ...]
    totals: Callable[[DataFrame], DataFrame] | None = None
    lines: Callable[[], Column] | None = None
    # The key holding the group's day (a date), which partition_reason pins to the line's
    # partition: a batch's rows of this table are then written in one job (batch_writes).
    day: str | None = None

    def __post_init__(self) -> None:
        if self.day is not None and self.day not in self.keys:
            raise ConfigurationError(f"the day {self.day!r} of a GroupedOutput must be one of "
                                     f"its keys {self.keys}")


Output = LineOutput | GroupedOutput | Build


def builder(output: Output) -> Build:
    """The function that builds an output's rows."""
    return output.build if isinstance(output, LineOutput | GroupedOutput) else output


def _checked_columns(table: TableDefinition, output: Output) -> tuple[str, ...]:
    """The columns of `table` whose values are checked on each parsed line."""
    if isinstance(output, LineOutput):
        return tuple(c for c in table.column_names if c != "run_id")
    if isinstance(output, GroupedOutput):
        return output.keys
    return ()


def output_tables(spark: SparkSession, parse: Callable[[DataFrame], DataFrame],
                  outputs: Mapping[str, Output], run_id: str, shipped: WarehouseTables
                  ) -> dict[str, TableDefinition]:
    """Each output's table definition, from the warehouse migrations. ConfigurationError when
    a builder's columns do not match its table, or a checked column is not one of the parsed
    lines' (`run_id`: any run id, to build the outputs' schemas)."""
    tables = {name: shipped.table(SCHEMA, name) for name in outputs}
    empty = parse(spark.createDataFrame([], "value string, _line long"))
    for name, output in outputs.items():
        table = tables[name]
        check_schema(builder(output)(empty, run_id).schema, table)
        missing = [c for c in _checked_columns(table, output) if c not in empty.columns]
        if missing:
            raise ConfigurationError(
                f"output {name} is checked per line, but the parsed lines have no column "
                f"{', '.join(missing)}: compute it in parse()")
    return tables


def run_id_problem(tables: Mapping[str, TableDefinition], run_id: str) -> InvalidInput | None:
    """Why `run_id` does not fit a table's run_id column (None when it fits every one)."""
    size = len(run_id.encode("utf-8"))
    for table in tables.values():
        kind = table.column("run_id").type
        if kind.length is not None and size > kind.length:
            return InvalidInput(f"--run-id is {size} bytes, over {table.name}.run_id {kind}")
    return None


def _line_checks(name: str, output: Output, table: TableDefinition) -> list[Check]:
    label = f"{name}." if isinstance(output, GroupedOutput) else ""
    scope = output.lines() if isinstance(output, GroupedOutput) and output.lines else None
    checks: list[Check] = []
    for column in _checked_columns(table, output):
        for condition, reason in value_checks(label + column, F.col(column),
                                              table.column(column)):
            checks.append((condition if scope is None else scope & condition, reason))
    return checks


def line_limit_reason(outputs: Mapping[str, Output], tables: Mapping[str, TableDefinition]
                      ) -> Column | None:
    """Why a parsed line holds a value one of its tables would refuse (too many bytes for a
    varchar, a NUL, a number out of a decimal's range, NULL in a NOT NULL column...), NULL
    when none; None when no output has a checked column with a limit."""
    return first_reason([check for name, output in outputs.items()
                         for check in _line_checks(name, output, tables[name])])


def group_limit_reasons(accepted: DataFrame, name: str, output: GroupedOutput,
                        table: TableDefinition) -> DataFrame | None:
    """The groups of `output` whose totals over `accepted` would not fit `table`: its keys and
    `_group_reason`; None when it declares no totals or no total can overflow."""
    if output.totals is None:
        return None
    columns = [c for c in table.column_names if c not in (*output.keys, "run_id")]
    reason = first_reason([check for column in columns for check in value_checks(
        f"{name}.{column}", F.col(column), table.column(column))])
    if reason is None:
        return None
    return (output.totals(accepted)
            .select(*output.keys, reason.alias("_group_reason"))
            .where(F.col("_group_reason").isNotNull()))


def with_group_limits(judged: DataFrame, outputs: Mapping[str, Output],
                      tables: Mapping[str, TableDefinition]) -> DataFrame:
    """`judged` (parsed lines with `_reason`) where every accepted line of a group whose
    totals would not fit its table is refused too (first output first). The groups' totals
    are computed here, once per output that has any that can overflow (a Spark job each)."""
    for name, output in outputs.items():
        if not isinstance(output, GroupedOutput):
            continue
        problems = group_limit_reasons(judged.where(F.col("_reason").isNull()), name, output,
                                       tables[name])
        if problems is None:
            continue
        # Null-safe on the keys: a group whose key is NULL (a nullable key column) must get
        # its reason too; an equi-join would drop it and let the cast fail the whole job.
        keys = list(output.keys)
        # Computed once for every later action over the result (usually no group at all).
        flagged = materialize(problems.select(*[F.col(k).alias(f"_group_{k}") for k in keys],
                                              "_group_reason"))
        same_group = [F.col(k).eqNullSafe(F.col(f"_group_{k}")) for k in keys]
        in_output = output.lines() if output.lines is not None else F.lit(True)
        judged = (judged.join(F.broadcast(flagged), same_group, "left")
                  .withColumn("_reason", F.coalesce(
                      F.col("_reason"), F.when(in_output, F.col("_group_reason"))))
                  .drop("_group_reason", *[f"_group_{k}" for k in keys]))
    return judged


def write_parquet(frame: DataFrame, uri: str, name: str) -> int:
    """Write zstd parquet (no _SUCCESS marker) and return the rows written."""
    observation = Observation(name)
    parquet_writer(frame.observe(observation, F.count(F.lit(1)).alias("rows"))).parquet(uri)
    return int(observation.get["rows"])


def parquet_writer(frame: DataFrame) -> DataFrameWriter:
    """How every output is written: overwriting its folder, zstd, no _SUCCESS marker."""
    return (frame.write.mode("overwrite")
            .option("compression", "zstd")
            .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false"))
