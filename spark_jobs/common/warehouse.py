"""What the warehouse tables accept, for the jobs that write their COPY input.

The limits come from the warehouse migrations (pipeline_core.warehouse_limits parses their
DDL), shipped with the job code: `warehouse/migrations/*.sql` beside `pipeline_core/` in a
checkout, or inside the zip (`--py-files spark_jobs.zip`) that `pipeline_core` was imported
from on EMR. No second copy of the DDL exists, and no job argument is needed: the code and the
table definitions of one code version travel together.

`value_checks` turns a column's definition into the conditions under which the table would
refuse a value, each with its quarantine reason ("description is 300 bytes, over varchar(256)");
`check_schema` refuses output whose columns do not match the table's (COPY ... FORMAT AS
PARQUET maps columns by position).
"""

from __future__ import annotations

import tempfile
import zipfile
import zipimport
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

import pipeline_core
from pipeline_core.errors import ConfigurationError
from pipeline_core.load_sql import DEFAULT_MIGRATIONS_DIR
from pipeline_core.warehouse_limits import (
    INTEGER_RANGES,
    ColumnDefinition,
    TableDefinition,
    WarehouseTables,
    load_table_definitions,
)

MIGRATIONS_PATH = "warehouse/migrations"  # relative to the folder or zip holding pipeline_core
Check = tuple[Column, Column]  # (the value is refused, why)


# ---------------------------------------------------------------------------------------------
# Where the definitions come from


def archive_tables(archive: Path, prefix: str = "") -> WarehouseTables:
    """The tables of the migrations inside a zip (`<prefix>warehouse/migrations/*.sql`)."""
    folder = PurePosixPath(prefix) / MIGRATIONS_PATH
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist()
                     if PurePosixPath(n).parent == folder and n.endswith(".sql")]
            if not names:
                raise ConfigurationError(
                    f"the job code {archive} holds no {folder}/*.sql: the warehouse migrations "
                    "define the limits of the tables the job writes; package them with the job")
            with tempfile.TemporaryDirectory(prefix="migrations-") as tmp:
                for name in names:
                    (Path(tmp) / PurePosixPath(name).name).write_bytes(zf.read(name))
                return load_table_definitions(tmp)
    except (OSError, zipfile.BadZipFile) as e:
        raise ConfigurationError(f"cannot read the job code {archive}: {e}") from e


def shipped_tables() -> WarehouseTables:
    """The tables of the migrations shipped with the running job code."""
    spec = pipeline_core.__spec__
    loader: object = spec.loader if spec is not None else None  # zipimporter: from a zip
    if isinstance(loader, zipimport.zipimporter):
        return archive_tables(Path(loader.archive), loader.prefix)
    if not DEFAULT_MIGRATIONS_DIR.is_dir():
        raise ConfigurationError(
            f"the warehouse migrations are not beside the job code ({DEFAULT_MIGRATIONS_DIR} "
            "does not exist): they define the limits of the tables the job writes")
    return load_table_definitions(DEFAULT_MIGRATIONS_DIR)


# ---------------------------------------------------------------------------------------------
# Values a column refuses


def _text(label: str, value: Column, column: ColumnDefinition) -> list[Check]:
    kind = column.type
    assert kind.length is not None
    checks: list[Check] = [
        (F.instr(value, "\u0000") > 0,
         F.lit(f"{label} contains a NUL character, which {kind} cannot hold")),
        (F.octet_length(value) > kind.length,
         F.concat(F.lit(f"{label} is "), F.octet_length(value).cast("string"),
                  F.lit(f" bytes, over {kind}"))),
    ]
    if kind.name == "char":
        checks.append((F.octet_length(value) != F.char_length(value),
                       F.lit(f"{label} has multi-byte characters, which {kind} cannot hold")))
    return checks


def _out_of_range(label: str, value: Column, column: ColumnDefinition) -> Column:
    return F.concat(F.lit(f"{label} "), value.cast("string"),
                    F.lit(f" is out of range for {column.type}"))


def _decimal(label: str, value: Column, column: ColumnDefinition) -> list[Check]:
    precision, scale = column.type.precision, column.type.scale
    assert precision is not None and scale is not None
    digits = precision - scale  # whole digits the column holds
    if digits >= 38:
        return []  # no Spark decimal exceeds it
    bound = F.lit("1" + "0" * digits).cast(f"decimal({digits + 1},0)")
    return [(F.abs(value) >= bound, _out_of_range(label, value, column))]


def _integer(label: str, value: Column, column: ColumnDefinition) -> list[Check]:
    low, high = INTEGER_RANGES[column.type.name]
    return [((value < F.lit(low)) | (value > F.lit(high)), _out_of_range(label, value, column))]


def value_checks(label: str, value: Column, column: ColumnDefinition) -> list[Check]:
    """Each way `column` would refuse `value`, in order, with its reason (naming `label` and
    the column's type); [] when its type has no limit this module checks."""
    checks: list[Check] = []
    if column.not_null:
        checks.append((value.isNull(), F.lit(f"{label} is missing, the column is NOT NULL")))
    kind = column.type.name
    if column.type.is_text:
        checks += _text(label, value, column)
    elif kind == "decimal":
        checks += _decimal(label, value, column)
    elif kind in INTEGER_RANGES:
        checks += _integer(label, value, column)
    return checks


def first_reason(checks: Sequence[Check]) -> Column | None:
    """The reason of the first check that holds (NULL when none does); None for no checks."""
    if not checks:
        return None
    (condition, reason), *rest = checks
    chain = F.when(condition, reason)
    for condition, reason in rest:
        chain = chain.when(condition, reason)
    return chain


# ---------------------------------------------------------------------------------------------
# Output columns against the table's


_SPARK_TYPES: dict[type[T.DataType], str] = {
    T.ShortType: "smallint", T.IntegerType: "integer", T.LongType: "bigint",
    T.FloatType: "real", T.DoubleType: "double precision", T.BooleanType: "boolean",
    T.DateType: "date", T.TimestampType: "timestamp", T.TimestampNTZType: "timestamp",
}


def _fits(dtype: T.DataType, column: ColumnDefinition) -> bool:
    kind = column.type
    if isinstance(dtype, T.StringType):
        return kind.is_text
    if isinstance(dtype, T.DecimalType):
        return (kind.name, kind.precision, kind.scale) == ("decimal", dtype.precision,
                                                           dtype.scale)
    expected = _SPARK_TYPES.get(type(dtype))
    return expected == kind.name or (expected == "timestamp" and kind.name == "timestamptz")


def check_schema(schema: T.StructType, table: TableDefinition) -> None:
    """ConfigurationError unless the output has the table's columns, in its order, each of a
    type that loads into the column (COPY FORMAT AS PARQUET maps columns by position)."""
    names = tuple(schema.fieldNames())
    if names != table.column_names:
        raise ConfigurationError(
            f"the job writes {table.name} as ({', '.join(names)}) but the warehouse migrations "
            f"define ({', '.join(table.column_names)}); COPY maps parquet columns by position")
    for field in schema.fields:
        column = table.column(field.name)
        if not _fits(field.dataType, column):
            raise ConfigurationError(
                f"the job writes {table.name}.{field.name} as {field.dataType.simpleString()}, "
                f"which does not load into {column.type}")
