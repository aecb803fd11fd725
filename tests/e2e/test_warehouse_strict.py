"""The local warehouse is as strict as Redshift where PostgreSQL's own rules would hide a bug
(local_runtime.warehouse.strict_ddl, applied to every CREATE TABLE the Data API stand-in runs).

- VARCHAR(n) counts bytes of UTF-8, not characters: "CHAR and VARCHAR data types are defined in
  terms of bytes, not characters ... a VARCHAR(12) column can contain 12 single-byte characters,
  6 two-byte characters, 4 three-byte characters, or 3 four-byte characters"; VARCHAR with no
  length and TEXT are VARCHAR(256), VARCHAR(MAX) is 65535 bytes (Amazon Redshift Database
  Developer Guide, "Character types":
  https://docs.aws.amazon.com/redshift/latest/dg/r_Character_types.html).
- NUL is refused: "If your data includes null terminators, also referred to as NUL (UTF-8 0000)
  or binary zero (0x000) ... If you don't use NULL AS, null terminators will cause your COPY to
  fail" ("Preparing your input data":
  https://docs.aws.amazon.com/redshift/latest/dg/t_preparing-input-data.html). PostgreSQL
  refuses NUL in text too (its own message, which the docs give no Redshift wording to match).
- Keys are not enforced: "Uniqueness, primary key, and foreign key constraints are informational
  only; they are not enforced by Amazon Redshift when you populate a table" ("Table
  constraints": https://docs.aws.amazon.com/redshift/latest/dg/t_Defining_constraints.html), so
  the local warehouse drops them and the product's own dedupe has to keep tables clean.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from local_runtime.cli import run_file
from local_runtime.redshift import translate_sql
from local_runtime.warehouse import strict_ddl, varchar_domain

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
DATABASE = "strict_checks"
ROLE = "arn:aws:iam::123456789012:role/copy"
TOO_LONG = "ERROR: value too long for type character varying(4)"


def _run(deployment, *sqls: str):
    engine = deployment.data_api
    st = engine.submit(list(sqls), batch=len(sqls) > 1, target={"Database": DATABASE})
    for _ in range(400):
        if st.status in ("FINISHED", "FAILED", "ABORTED"):
            return st
        time.sleep(0.05)
    raise AssertionError(f"statement {st.id} did not finish")


def _rows(deployment, sql: str) -> list[list[dict]]:
    st = _run(deployment, sql)
    assert st.status == "FINISHED", st.error
    return st.subs[0].records


@pytest.fixture(scope="module")
def strict_table(deployment):
    st = _run(deployment, "CREATE SCHEMA IF NOT EXISTS s",
              "DROP TABLE IF EXISTS s.names",
              "CREATE TABLE s.names (id integer PRIMARY KEY, name varchar(4) UNIQUE, "
              "note text, CONSTRAINT names_key UNIQUE (id, name)) DISTSTYLE ALL")
    assert st.status == "FINISHED", st.error
    return "s.names"


@pytest.mark.parametrize(("name", "fits"), [
    ("abcd", True),      # 4 bytes
    ("éé", True),        # 2 characters, 4 bytes
    ("😀", True),        # 1 character, 4 bytes
    ("ééé", False),      # 3 characters (PostgreSQL's varchar(4) takes them), 6 bytes
    ("a😀", False),      # 2 characters, 5 bytes
    ("abcde", False),    # 5 bytes
])
def test_varchar_counts_utf8_bytes_on_insert(deployment, strict_table, name, fits):
    st = _run(deployment, f"INSERT INTO {strict_table} (id, name) VALUES (1, '{name}')",
              f"DELETE FROM {strict_table}")
    if fits:
        assert st.status == "FINISHED", st.error
    else:
        assert (st.status, st.error) == ("FAILED", TOO_LONG)


def _put_parquet(deployment, key: str, table: pa.Table) -> str:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    bucket = deployment.bucket("curated")
    deployment.client("s3").put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    return f"s3://{bucket}/{key}"


def test_varchar_counts_utf8_bytes_on_copy_from_parquet(deployment, strict_table):
    """The product's load path: COPY into a staging table LIKE the target, then INSERT."""
    uri = _put_parquet(deployment, "strict/bytes/part-0.parquet", pa.table({
        "id": pa.array([1, 2], pa.int32()), "name": ["éé", "ééé"],
        "note": ["fits", "6 bytes in varchar(4)"]}))
    st = _run(deployment, "DROP TABLE IF EXISTS stage_names",
              f"CREATE TEMP TABLE stage_names (LIKE {strict_table})",
              f"COPY stage_names FROM '{uri}' IAM_ROLE '{ROLE}' FORMAT AS PARQUET",
              f"INSERT INTO {strict_table} SELECT * FROM stage_names")
    assert (st.status, st.error) == ("FAILED", TOO_LONG)
    assert [s.status for s in st.subs] == ["FINISHED", "FINISHED", "FAILED", "ABORTED"]
    assert _rows(deployment, f"SELECT count(*) FROM {strict_table}") == [[{"longValue": 0}]]


def test_text_and_varchar_without_length_are_256_bytes(deployment, strict_table):
    st = _run(deployment, f"INSERT INTO {strict_table} (id, note) VALUES (1, repeat('é', 128))",
              f"INSERT INTO {strict_table} (id, note) VALUES (2, repeat('é', 129))")
    assert (st.status, st.error) == ("FAILED",
                                     "ERROR: value too long for type character varying(256)")


def test_nul_is_refused_in_text(deployment, strict_table):
    st = _run(deployment, f"INSERT INTO {strict_table} (id, name) VALUES (1, chr(0))")
    assert st.status == "FAILED" and "null character not permitted" in st.error, st.error
    uri = _put_parquet(deployment, "strict/nul/part-0.parquet", pa.table({
        "id": pa.array([1], pa.int32()), "name": ["a\x00b"], "note": ["NUL inside"]}))
    st = _run(deployment, f"COPY {strict_table} FROM '{uri}' IAM_ROLE '{ROLE}' FORMAT AS PARQUET")
    assert st.status == "FAILED" and "NUL" in st.error, st.error


def test_keys_are_not_enforced(deployment, strict_table):
    st = _run(deployment, f"INSERT INTO {strict_table} (id, name) VALUES (7, 'same')",
              f"INSERT INTO {strict_table} (id, name) VALUES (7, 'same')")
    assert st.status == "FINISHED", st.error
    assert _rows(deployment, f"SELECT count(*) FROM {strict_table} WHERE id = 7") == [
        [{"longValue": 2}]]
    assert _rows(deployment, "SELECT count(*) FROM pg_indexes WHERE schemaname = 's' "
                 "AND tablename = 'names'") == [[{"longValue": 0}]]
    _run(deployment, f"DELETE FROM {strict_table}")


def test_what_the_translation_changes_and_leaves():
    sql, changed = strict_ddl(
        "CREATE TABLE t (a bigint PRIMARY KEY, b character varying(12) DEFAULT 'varchar(1) "
        "UNIQUE', c varchar(max) REFERENCES u (a), d nvarchar, "
        "CONSTRAINT \"t key\" UNIQUE (a, b), FOREIGN KEY (a) REFERENCES u(a))")
    assert sql.rsplit(";\n", 1)[1] == (
        f"CREATE TABLE t (a bigint, b {varchar_domain(12)} DEFAULT 'varchar(1) UNIQUE', "
        f"c {varchar_domain(65535)}, d {varchar_domain(256)})")
    assert len([c for c in changed if "not enforced" in c]) == 4
    # no VARCHAR: nothing to create first; statements that are not CREATE TABLE pass untouched
    assert strict_ddl("CREATE TABLE t (a int UNIQUE)") == (
        "CREATE TABLE t (a int)", ["column PRIMARY KEY/UNIQUE not enforced by Redshift: UNIQUE"])
    assert translate_sql("SELECT CAST(x AS varchar(3)) FROM t") == (
        "SELECT CAST(x AS varchar(3)) FROM t", [])


def test_the_migrated_tables_count_bytes_and_have_no_keys(deployment, warehouse_db, tmp_path):
    """The pipeline's own migrations, applied by a real load: every text column of the
    warehouse tables is a byte-counting domain, and no index enforces a key."""
    src = tmp_path / "2010-12-11.csv"
    src.write_bytes((SAMPLES / "2010-12-01.csv").read_bytes().replace(b"2010-12-01",
                                                                       b"2010-12-11"))
    res = run_file(deployment, src, "online_retail/2010-12-11.csv", out=None)
    assert res.status == "SUCCEEDED", res.summary
    columns = warehouse_db(
        "SELECT column_name, domain_name FROM information_schema.columns "
        "WHERE table_schema = 'analytics' AND table_name = 'sales_line_items' "
        "AND data_type = 'character varying' ORDER BY ordinal_position")
    assert ("description", "redshift_varchar_256") in columns
    assert all(domain and domain.startswith("redshift_varchar_") for _, domain in columns)
    assert warehouse_db("SELECT count(*) FROM pg_indexes WHERE schemaname = 'analytics'") == [(0,)]


def test_a_doubled_line_loads_once_without_any_key_to_stop_it(deployment, warehouse_db,
                                                               tmp_path):
    """No key constraint locally (none in Redshift): the job's own dedupe keeps the line once,
    and a re-run replaces the day instead of adding to it."""
    header, *lines = (SAMPLES / "2010-12-03.csv").read_text().splitlines()
    lines = [ln.replace("2010-12-03", "2010-12-10") for ln in lines]
    src = tmp_path / "2010-12-10.csv"
    src.write_text("\n".join([header, *lines, lines[5]]) + "\n")
    key = "online_retail/2010-12-10.csv"
    for rerun in (False, True):
        res = run_file(deployment, src, key, out=None, rerun=rerun)
        assert res.status == "SUCCEEDED", res.summary
        assert res.summary["lines"]["duplicates"] >= 1
        doubled = warehouse_db(
            "SELECT count(*) FROM (SELECT invoice_no, stock_code, description, quantity, "
            "unit_price, invoice_ts, customer_id, country FROM analytics.sales_line_items "
            "WHERE order_date = '2010-12-10' GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 "
            "HAVING count(*) > 1) d")
        assert doubled == [(0,)]
        per_customer = warehouse_db(
            "SELECT count(*) FROM (SELECT customer_id FROM analytics.customer_daily_sales "
            "WHERE order_date = '2010-12-10' GROUP BY customer_id HAVING count(*) > 1) d")
        assert per_customer == [(0,)]
