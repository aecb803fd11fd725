"""pipeline_core.warehouse_limits: column types and limits read from the migrations' DDL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_core.catalog import load_catalog
from pipeline_core.errors import ConfigurationError
from pipeline_core.load_sql import DEFAULT_MIGRATIONS_DIR, split_statements
from pipeline_core.warehouse_limits import (
    ColumnDefinition,
    ColumnType,
    load_table_definitions,
    parse_statements,
)

REPO = Path(__file__).resolve().parents[2]


def _table(sql: str, name: str = "s.t"):
    schema, _, table = name.rpartition(".")
    return parse_statements(split_statements(sql)).table(schema, table)


def _types(sql: str, name: str = "s.t") -> dict[str, str]:
    return {c: str(t) for c, t in _table(sql, name).limits().items()}


# ---------------------------------------------------------------------------------------------
# The real migrations


def test_the_real_tables_and_their_limits():
    tables = load_table_definitions()
    items = tables.table("analytics", "sales_line_items")
    assert {c: str(t) for c, t in items.limits().items()} == {
        "invoice_no": "varchar(20)", "stock_code": "varchar(32)",
        "description": "varchar(256)", "quantity": "integer", "unit_price": "decimal(12,3)",
        "invoice_ts": "timestamp", "order_date": "date", "customer_id": "varchar(16)",
        "country": "varchar(64)", "is_cancellation": "boolean",
        "line_revenue": "decimal(18,3)", "run_id": "varchar(128)"}
    daily = tables.table("analytics", "customer_daily_sales")
    assert daily.column_names == (
        "order_date", "customer_id", "orders", "units", "revenue", "returned_value",
        "first_purchase_ts", "last_purchase_ts", "run_id")
    assert daily.column("revenue") == ColumnDefinition(
        "revenue", ColumnType("decimal", precision=14, scale=2))
    assert daily.column("customer_id").type == ColumnType("varchar", 16)
    assert not any(c.not_null for c in items.columns)
    assert {"analytics.customer_daily_sales", "analytics.sales_line_items"} <= set(tables.tables)


def test_every_catalog_table_is_created_by_a_migration():
    """A load COPYs into `<load.schema>.<table>` of every catalog table: each must exist."""
    tables = load_table_definitions()
    for dataset in load_catalog(REPO / "datasets").datasets.values():
        for table in dataset.load.tables:
            name = f"{dataset.load.schema}.{table.name}"
            assert name in tables.tables, (f"datasets/{dataset.name}.yaml loads {name}, which "
                                           "no warehouse/migrations file creates")


def test_the_default_directory_is_the_repository_migrations():
    assert DEFAULT_MIGRATIONS_DIR == REPO / "warehouse" / "migrations"
    assert load_table_definitions(DEFAULT_MIGRATIONS_DIR) == load_table_definitions()


def test_the_parser_needs_neither_pyspark_nor_boto3():
    code = ("import sys, pipeline_core.warehouse_limits as w; w.load_table_definitions(); "
            "bad = [m for m in ('pyspark', 'boto3', 'botocore', 'yaml') if m in sys.modules]; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------
# Types: Redshift's spellings and defaults


def test_text_types_count_bytes_with_redshift_defaults():
    assert _types("""CREATE TABLE s.t (
        a varchar(10), b VARCHAR, c varchar(max), d character varying(20), e nvarchar(5),
        f text, g char(3), h character, i nchar(2), j bpchar, k "char"(4) )""") == {
        "a": "varchar(10)", "b": "varchar(256)", "c": "varchar(65535)", "d": "varchar(20)",
        "e": "varchar(5)", "f": "varchar(256)", "g": "char(3)", "h": "char(1)",
        "i": "char(2)", "j": "char(256)", "k": "char(4)"}


def test_numeric_and_other_types():
    assert _types("""create table s.t (
        a decimal(12,3), b numeric, c numeric(10), d int, e int4, f integer, g int2,
        h smallint, i int8, j bigint, k real, l float4, m float8, n float,
        o double precision, p bool, q boolean, r date, s timestamp,
        t timestamp without time zone, u timestamptz, v timestamp with time zone,
        w time, x super, y varbyte(16))""") == {
        "a": "decimal(12,3)", "b": "decimal(18,0)", "c": "decimal(10,0)", "d": "integer",
        "e": "integer", "f": "integer", "g": "smallint", "h": "smallint", "i": "bigint",
        "j": "bigint", "k": "real", "l": "real", "m": "double precision",
        "n": "double precision", "o": "double precision", "p": "boolean", "q": "boolean",
        "r": "date", "s": "timestamp", "t": "timestamp", "u": "timestamptz",
        "v": "timestamptz", "w": "time", "x": "super", "y": "varbyte"}


def test_column_type_text_and_kind():
    assert str(ColumnType("varchar", 256)) == "varchar(256)"
    assert str(ColumnType("decimal", precision=14, scale=2)) == "decimal(14,2)"
    assert str(ColumnType("integer")) == "integer"
    assert ColumnType("char", 1).is_text and not ColumnType("date").is_text


@pytest.mark.parametrize(("ddl", "message"), [
    ("a decimal(40,2)", "decimal(40,2) is not a valid decimal type"),
    ("a decimal(5,6)", "decimal(5,6) is not a valid decimal type"),
    ("a varchar(ten)", "type argument 'ten' is not a whole number"),
    ("a encode zstd", "column 'a' has no type"),
])
def test_malformed_types_are_refused(ddl, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        _table(f"CREATE TABLE s.t ({ddl})")


# ---------------------------------------------------------------------------------------------
# CREATE TABLE


def test_attributes_comments_quotes_and_case():
    table = _table("""
        -- a comment; with a semicolon
        CREATE TABLE IF NOT EXISTS "Sales"."Items" (
            "Invoice_No" VARCHAR(20) NOT NULL ENCODE zstd,   /* inline, comment */
            qty INTEGER DEFAULT 0 ENCODE az64,
            id BIGINT IDENTITY(1, 1),
            code CHAR(2) COLLATE case_insensitive,
            note VARCHAR(300) DEFAULT 'a, b; (c)' NULL,
            day DATE DISTKEY SORTKEY,
            PRIMARY KEY (id),
            UNIQUE (code),
            FOREIGN KEY (code) REFERENCES other (code)
        ) DISTSTYLE KEY DISTKEY (day) SORTKEY (day);""", "sales.items")
    assert table.name == "sales.items"
    assert {c.name: (str(c.type), c.not_null) for c in table.columns} == {
        "invoice_no": ("varchar(20)", True), "qty": ("integer", False),
        "id": ("bigint", True), "code": ("char(2)", False), "note": ("varchar(300)", False),
        "day": ("date", False)}


def test_inline_and_named_primary_keys_are_not_null():
    table = _table("create table s.t (a int primary key, b int, c int, "
                   "constraint pk primary key (b, c))")
    assert [c.not_null for c in table.columns] == [True, True, True]


def test_if_not_exists_keeps_the_first_definition_and_a_second_create_is_refused():
    sql = "create table if not exists s.t (a int); create table if not exists s.t (b text);"
    assert _types(sql) == {"a": "integer"}
    with pytest.raises(ConfigurationError, match=r"table s\.t is created twice"):
        _types("create table s.t (a int); create table s.t (b text)")


def test_temp_tables_views_and_other_statements_are_not_tables():
    tables = parse_statements(split_statements("""
        CREATE SCHEMA IF NOT EXISTS s;
        CREATE TEMP TABLE stage (a int);
        CREATE TEMPORARY TABLE stage2 (LIKE s.x);
        CREATE VIEW s.v AS SELECT 1;
        GRANT SELECT ON ALL TABLES IN SCHEMA s TO GROUP readers;
        INSERT INTO s.t VALUES (1);
        CREATE TABLE s.t (a int);"""))
    assert list(tables.tables) == ["s.t"]


def test_like_copies_the_columns():
    sql = ("create table s.a (x varchar(3) not null, y int); "
           "create table s.b (like s.a including defaults, z date)")
    assert _types(sql, "s.b") == {"x": "varchar(3)", "y": "integer", "z": "date"}
    assert _table(sql, "s.b").column("x").not_null


def test_a_table_made_by_create_table_as_has_no_known_columns():
    tables = parse_statements(["create table s.t as select 1 as a"])
    with pytest.raises(ConfigurationError, match="made by CREATE TABLE AS"):
        tables.table("s", "t")


def test_asking_for_an_unknown_table_or_column_names_what_exists():
    tables = parse_statements(["create table s.t (a int, b int)"])
    with pytest.raises(ConfigurationError,
                       match=r"define no table s.u \(tables: s.t\)"):
        tables.table("s", "u")
    with pytest.raises(ConfigurationError, match=r"has no column 'c' \(columns: a, b\)"):
        tables.table("s", "t").column("c")


def test_a_column_defined_twice_is_refused():
    with pytest.raises(ConfigurationError, match="a column is defined twice"):
        _table("create table s.t (a int, A text)")


# ---------------------------------------------------------------------------------------------
# Later migrations change the tables


def test_alter_table_statements_are_replayed_in_order():
    sql = """
        create table s.t (a varchar(10), b int, c date, d text);
        alter table s.t alter column a type varchar(40);
        alter table s.t add column e decimal(9,2) not null;
        alter table s.t add f smallint;
        alter table s.t drop column b;
        alter table s.t drop c cascade;
        alter table s.t rename column d to note;
        alter table s.t add constraint u unique (a);
        alter table s.t add primary key (a);
        alter table s.t drop constraint u;
        alter table s.t alter column a encode zstd;
        alter table s.t alter distkey a;
        alter table s.t alter sortkey (a);
        alter table s.t alter diststyle even;
        alter table s.t alter encode auto;
        alter table s.t owner to someone;
        alter table s.other add column z int;
    """
    table = _table(sql)
    assert {c.name: str(c.type) for c in table.columns} == {
        "a": "varchar(40)", "note": "varchar(256)", "e": "decimal(9,2)", "f": "smallint"}
    assert table.column("e").not_null and not table.column("a").not_null


def test_rename_and_drop_table():
    tables = parse_statements(split_statements("""
        create table s.t (a int); alter table s.t rename to u;
        create table s.x (b int); create table s.y (c int);
        drop table if exists s.x, s.y cascade; drop table s.never;"""))
    assert list(tables.tables) == ["s.u"]
    assert tables.table("s", "u").name == "s.u"


def test_adding_an_existing_column_is_refused():
    with pytest.raises(ConfigurationError, match="already has a column a"):
        _table("create table s.t (a int); alter table s.t add column a text")


def test_migration_files_are_read_in_version_order(tmp_path):
    (tmp_path / "V001__create.sql").write_text(
        "CREATE SCHEMA IF NOT EXISTS s;\nCREATE TABLE s.t (description varchar(256));\n")
    (tmp_path / "V002__wider.sql").write_text(
        "-- descriptions grew\nALTER TABLE s.t ALTER COLUMN description TYPE varchar(512);\n")
    tables = load_table_definitions(tmp_path)
    assert str(tables.table("s", "t").column("description").type) == "varchar(512)"
    (tmp_path / "V004__gap.sql").write_text("select 1;")
    with pytest.raises(ConfigurationError, match="without gaps"):
        load_table_definitions(tmp_path)
