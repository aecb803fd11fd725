"""spark_jobs.common.text (declared encodings) and spark_jobs.common.warehouse (what the tables
accept) on tiny frames."""

from __future__ import annotations

import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from spark_helpers import REPO

from pipeline_core.errors import ConfigurationError
from pipeline_core.warehouse_limits import (
    ColumnDefinition,
    ColumnType,
    load_table_definitions,
)
from spark_jobs.common import text, warehouse
from spark_jobs.common.frames import materialize
from spark_jobs.online_retail import transforms as tr

pytestmark = pytest.mark.spark


def raw_lines(spark, *lines: bytes):
    """Lines as the job reads them: each line's bytes, unchecked (binary)."""
    return spark.createDataFrame([(bytearray(b),) for b in lines], "value binary")


def _decoded(spark, encoding: str, *lines: bytes) -> list[tuple[str, str | None]]:
    frame = text.decode_lines(raw_lines(spark, *lines), encoding)
    reason = text.encoding_reason(encoding)
    checked = frame.select("value", (reason if reason is not None else F.lit(None))
                           .cast("string").alias("r"))
    return [(r["value"], r["r"]) for r in checked.collect()]


# ---------------------------------------------------------------------------------------------
# Encodings


def test_utf8_lines_stay_and_invalid_ones_are_refused(spark):
    got = _decoded(spark, "utf-8", "café,1".encode(), "café,2".encode("latin-1"),
                   b"\xef\xbb\xbfbom,3", b"cut \xe2\x82")
    assert got[0] == ("café,1", None)
    assert got[1][1] == got[3][1] == "line is not valid UTF-8 text"
    assert got[2] == ("\ufeffbom,3", None)  # a BOM inside the file is just a character


def test_latin1_decodes_every_byte(spark):
    got = _decoded(spark, "latin-1", "café,1".encode("latin-1"), b"\x80\xff")
    assert got == [("café,1", None), ("\x80ÿ", None)]
    assert text.encoding_reason("iso-8859-1") is None


def test_cp1252_decodes_windows_characters_and_refuses_undefined_bytes(spark):
    windows = "€5 \N{LEFT SINGLE QUOTATION MARK}quoted\N{RIGHT SINGLE QUOTATION MARK} " \
              "\N{EN DASH} café"
    line = windows.encode("cp1252")
    assert b"\x80" in line and b"\x91" in line and b"\xe9" in line
    got = _decoded(spark, "windows-1252", line, b"bad \x81 byte", b"\x9d")
    assert got[0] == (windows, None)
    reason = "line is not valid cp1252 (Windows-1252) text"
    assert [r for _, r in got[1:]] == [reason, reason]


def test_bytes_and_strings_survive_materialize(spark):
    """A line kept by frames.materialize keeps its bytes, as binary and as a string (internal
    rows: a java Row would pass strings through java.lang.String, which replaces bytes that
    are not UTF-8), so a line decoded before it is still refused after it."""
    raw = raw_lines(spark, b"caf\xe9,1")
    kept = text.decode_lines(materialize(raw, 1, "value"), "utf-8")
    assert kept.select(text.encoding_reason("utf-8")).first()[0] == (
        "line is not valid UTF-8 text")
    decoded = materialize(text.decode_lines(raw, "utf-8"), 1, "value")
    assert decoded.select(text.encoding_reason("utf-8"),
                          F.hex(F.col("value").cast("binary"))).first() == (
        "line is not valid UTF-8 text", "636166E92C31")


def test_unknown_encoding_is_a_programming_error(spark):
    with pytest.raises(ValueError, match="unsupported encoding 'utf-16'"):
        text.decode_lines(raw_lines(spark, b"x"), "utf-16")


def test_shown_text_is_clipped_valid_and_printable(spark):
    frame = raw_lines(spark, b"a" * 250, b"nul\x00 tab\t bell\x07 del\x7f", b"caf\xe9 ok")
    got = [r[0] for r in frame.select(text.shown_text(F.col("value"), 200)).collect()]
    assert got == ["a" * 200, "nul\ufffd tab\t bell\ufffd del\ufffd", "caf\ufffd ok"]


# ---------------------------------------------------------------------------------------------
# Values a column refuses


def _reasons(spark, dtype: str, values: list, column: ColumnDefinition) -> list[str | None]:
    frame = spark.createDataFrame([(v,) for v in values], f"v {dtype}")
    reason = warehouse.first_reason(warehouse.value_checks("v", F.col("v"), column))
    assert reason is not None
    return [r[0] for r in frame.select(reason).collect()]


def test_decimal_range(spark):
    column = ColumnDefinition("v", ColumnType("decimal", precision=5, scale=2))
    assert _reasons(spark, "decimal(10,3)", [Decimal("999.994"), Decimal("-999.99"),
                                             Decimal("1000.000"), Decimal("-1000.5"), None],
                    column) == [
        None, None, "v 1000.000 is out of range for decimal(5,2)",
        "v -1000.500 is out of range for decimal(5,2)", None]


def test_integer_ranges(spark):
    small = ColumnDefinition("v", ColumnType("smallint"))
    assert _reasons(spark, "int", [32767, -32768, 32768, -40000], small) == [
        None, None, "v 32768 is out of range for smallint", "v -40000 is out of range for smallint"]
    big = ColumnDefinition("v", ColumnType("bigint"))
    assert warehouse.value_checks("v", F.col("v"), big)  # checked, never true for a long
    assert _reasons(spark, "bigint", [2**63 - 1, -(2**63)], big) == [None, None]


def test_char_holds_single_byte_characters_only(spark):
    column = ColumnDefinition("v", ColumnType("char", 3), not_null=True)
    assert _reasons(spark, "string", ["abc", "é", "abcd", None, "a\x00"], column) == [
        None, "v has multi-byte characters, which char(3) cannot hold",
        "v is 4 bytes, over char(3)", "v is missing, the column is NOT NULL",
        "v contains a NUL character, which char(3) cannot hold"]


def test_types_without_limits_have_no_checks():
    for name in ("date", "timestamp", "boolean", "double precision", "super"):
        assert warehouse.value_checks("v", F.col("v"), ColumnDefinition("v", ColumnType(name))) \
            == []
    assert warehouse.first_reason([]) is None
    wide = ColumnDefinition("v", ColumnType("decimal", precision=38, scale=0))
    assert warehouse.value_checks("v", F.col("v"), wide) == []


# ---------------------------------------------------------------------------------------------
# Output columns against the table's


def _outputs(spark):
    empty = tr.type_fields(tr.split_fields(spark.createDataFrame([], "value string, _line long")))
    return (tr.sales_line_items(empty, "r1").schema,
            tr.customer_daily_sales(empty, "r1").schema)


def test_the_job_output_matches_the_migrations(spark):
    tables = load_table_definitions()
    items, daily = _outputs(spark)
    warehouse.check_schema(items, tables.table("analytics", "sales_line_items"))
    warehouse.check_schema(daily, tables.table("analytics", "customer_daily_sales"))


def test_a_schema_that_would_load_wrongly_is_refused(spark):
    table = load_table_definitions().table("analytics", "sales_line_items")
    items, _ = _outputs(spark)
    swapped = T.StructType([items.fields[1], items.fields[0], *items.fields[2:]])
    with pytest.raises(ConfigurationError, match="COPY maps parquet columns by position"):
        warehouse.check_schema(swapped, table)
    wrong = T.StructType([T.StructField(f.name, T.DecimalType(12, 2))
                          if f.name == "unit_price" else f for f in items.fields])
    with pytest.raises(ConfigurationError, match=r"writes analytics\.sales_line_items\."
                       r"unit_price as decimal\(12,2\), which does not load into decimal\(12,3\)"):
        warehouse.check_schema(wrong, table)
    as_long = T.StructType([T.StructField(f.name, T.LongType())
                            if f.name == "quantity" else f for f in items.fields])
    with pytest.raises(ConfigurationError, match="does not load into integer"):
        warehouse.check_schema(as_long, table)


# ---------------------------------------------------------------------------------------------
# Where the definitions come from


def _zip(path: Path, prefix: str = "", migrations: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{prefix}pipeline_core/__init__.py", "")
        if migrations:
            for sql in sorted((REPO / "warehouse" / "migrations").glob("*.sql")):
                zf.write(sql, f"{prefix}warehouse/migrations/{sql.name}")
            zf.writestr(f"{prefix}warehouse/migrations/notes/V009__ignored.sql", "bad")
    return path


def test_a_checkout_uses_its_own_migrations():
    assert warehouse.shipped_tables() == load_table_definitions()


def test_the_migrations_inside_the_job_zip(tmp_path):
    expected = load_table_definitions()
    assert warehouse.archive_tables(_zip(tmp_path / "a.zip")) == expected
    assert warehouse.archive_tables(_zip(tmp_path / "b.zip", "code/"), "code/") == expected


def test_a_zip_without_migrations_is_a_configuration_error(tmp_path):
    archive = _zip(tmp_path / "spark_jobs.zip", migrations=False)
    with pytest.raises(ConfigurationError, match=(
            r"holds no warehouse/migrations/\*\.sql: the warehouse migrations define the "
            r"limits of the tables the job writes; package them with the job")):
        warehouse.archive_tables(archive)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ConfigurationError, match="cannot read the job code"):
        warehouse.archive_tables(broken)
