"""StartLoad: the load SQL (pure), the migration files, LoadStatement.submit on FakeRedshiftData,
and the SQL's meaning on a real PostgreSQL. The events/start_load files run through the handler
(with the Data API stubbed) in tests/unit/functions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline_aws.contracts import LoadStatementRequest
from pipeline_aws.load import LoadStatement
from pipeline_core.catalog import TableLoad, load_catalog
from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.load_sql import (
    Migration,
    applied_versions_sql,
    build_load_batch,
    ensure_meta_sqls,
    load_migrations,
    split_statements,
)
from tests.support.aws import REPO, read_event
from tests.support.fakes.redshift_data import FakeRedshiftData
from tests.unit.run.conftest import NOW
from tests.unit.run.support import RUN_ENV

ROLE = RUN_ENV["REDSHIFT_COPY_ROLE_ARN"]
DAY = "2010-12-01"
OUT = "s3://emr-pipelines-dev-curated/online_retail/{t}/partition=2010-12-01/run_id=r1/"
TABLES = (TableLoad("sales_line_items", replace_by=("order_date",)),
          TableLoad("customer_daily_sales", merge_keys=("order_date", "customer_id"),
                    replace_by=("order_date",)))
OUTPUTS = {t.name: OUT.format(t=t.name) for t in TABLES}
# Every migration in warehouse/migrations: its statements, then the statement recording it.
MIGRATIONS = load_migrations()
MIGRATION_SQLS = sum(len(m.statements) + 1 for m in MIGRATIONS)


# -- pure SQL building ------------------------------------------------------------------------


def test_split_statements_respects_quotes_and_comments() -> None:
    sql = ("-- a comment; with a semicolon\nCREATE TABLE a (x varchar(3) DEFAULT ';');\n"
           "/* block; */ INSERT INTO a VALUES ('it''s;');\n\n;")
    assert split_statements(sql) == ["CREATE TABLE a (x varchar(3) DEFAULT ';')",
                                     "INSERT INTO a VALUES ('it''s;')"]
    with pytest.raises(ConfigurationError, match="unterminated"):
        split_statements("SELECT 'oops")


def test_the_real_migrations_load_in_order() -> None:
    migrations = load_migrations()
    assert migrations[0].version == 1 and migrations[0].name == "analytics_online_retail"
    text = " ".join(migrations[0].statements)
    assert "GETDATE" not in text.upper() and "IDENTITY" not in text.upper()
    assert len(migrations[0].statements) == 3


def test_migration_names_and_gaps_are_checked(tmp_path: Path) -> None:
    (tmp_path / "V001__a.sql").write_text("SELECT 1;")
    (tmp_path / "V003__c.sql").write_text("SELECT 3;")
    with pytest.raises(ConfigurationError, match="V003 where V002 was expected"):
        load_migrations(tmp_path)
    (tmp_path / "V003__c.sql").unlink()
    (tmp_path / "v2-bad.sql").write_text("SELECT 2;")
    with pytest.raises(ConfigurationError, match=r"v2-bad\.sql"):
        load_migrations(tmp_path)


def test_batch_layout_and_insert_indexes() -> None:
    migration = Migration(1, "m", ("CREATE SCHEMA IF NOT EXISTS analytics",))
    batch = build_load_batch(schema="analytics", tables=TABLES, outputs=OUTPUTS,
                             copy_role_arn=ROLE, pending=[migration], run_id="r1",
                             applied_at="2026-11-21T10:14:00Z", partitions=[DAY])
    assert batch.migrations == ["V001__m"]
    assert batch.insert_index == {"sales_line_items": 6, "customer_daily_sales": 11}
    sqls = batch.sqls
    assert sqls[1] == ("INSERT INTO pipeline_meta.schema_migrations (version, name, applied_at, "
                       "run_id) VALUES (1, 'm', CAST('2026-11-21 10:14:00' AS timestamp), 'r1')")
    assert sqls[2] == "DROP TABLE IF EXISTS stage_sales_line_items"
    assert sqls[3] == "CREATE TEMP TABLE stage_sales_line_items (LIKE analytics.sales_line_items)"
    assert sqls[4] == (f"COPY stage_sales_line_items FROM '{OUTPUTS['sales_line_items']}part-' "
                       f"IAM_ROLE '{ROLE}' FORMAT AS PARQUET")
    # The run's partition is named, never read from the staged rows (a stray row of another day
    # must neither delete that day nor be added to it).
    assert sqls[5] == "DELETE FROM analytics.sales_line_items WHERE order_date IN ('2010-12-01')"
    assert sqls[6] == ("INSERT INTO analytics.sales_line_items SELECT * FROM "
                       "stage_sales_line_items WHERE order_date IN ('2010-12-01')")
    assert sqls[11].startswith("INSERT INTO analytics.customer_daily_sales")


REFERENCE = TableLoad("stores", mode="full_refresh", snapshot_column="as_of")
REF_OUT = "s3://emr-pipelines-dev-curated/shop/stores/partition=2010-12-01/run_id=r1/"


def test_a_full_refresh_table_deletes_every_row_then_inserts_every_staged_row() -> None:
    """Never TRUNCATE: "TRUNCATE - Amazon Redshift"
    (https://docs.aws.amazon.com/redshift/latest/dg/r_TRUNCATE.html) says TRUNCATE commits the
    transaction in which it is run, so it cannot be rolled back and would commit the rest of
    the batch with it; the load is one transaction (one BatchExecuteStatement)."""
    batch = build_load_batch(schema="analytics", tables=[*TABLES, REFERENCE],
                             outputs={**OUTPUTS, "stores": REF_OUT}, copy_role_arn=ROLE,
                             pending=[], run_id="r1", applied_at="2026-11-21T10:14:00Z",
                             partitions=[DAY])
    newer = "SELECT 1 FROM analytics.stores AS newer WHERE newer.as_of > '2010-12-01'"
    assert batch.sqls[-6:] == [
        "DROP TABLE IF EXISTS stage_stores",
        "CREATE TEMP TABLE stage_stores (LIKE analytics.stores)",
        f"COPY stage_stores FROM '{REF_OUT}part-' IAM_ROLE '{ROLE}' FORMAT AS PARQUET",
        # the stale-snapshot check, then the guarded DELETE and INSERT
        "SELECT as_of FROM analytics.stores WHERE as_of > '2010-12-01' LIMIT 1",
        f"DELETE FROM analytics.stores WHERE NOT EXISTS ({newer})",
        "INSERT INTO analytics.stores SELECT * FROM stage_stores WHERE as_of = '2010-12-01' "
        f"AND NOT EXISTS ({newer})"]
    assert batch.insert_index == {"sales_line_items": 4, "customer_daily_sales": 9, "stores": 15}
    assert batch.snapshot_checks == {"stores": 13}
    assert not any(re.search(r"\bTRUNCATE\b", sql, re.I) for sql in batch.sqls)
    # the facts of the same batch still replace only the run's day
    assert batch.sqls[3].endswith("WHERE order_date IN ('2010-12-01')")


@pytest.mark.parametrize(("table", "message"), [
    (TableLoad("t", merge_keys=("order_date", "customer_id")), "replace_by names the one column"),
    (TableLoad("t", replace_by=("d",), mode="full_refresh"), "takes no replace_by or merge_keys"),
    (TableLoad("t", merge_keys=("k",), mode="full_refresh"), "takes no replace_by or merge_keys"),
    (TableLoad("t", replace_by=("d",), mode="append"), "unknown load mode 'append'"),
    (TableLoad("t", mode="full_refresh"), "a full_refresh table needs its snapshot_column"),
])
def test_a_table_load_outside_the_two_modes_is_refused(table: TableLoad, message: str) -> None:
    """A replace_partitions table needs its partition column (there is no upsert by merge
    keys: a load replaces the run's partitions or the whole table)."""
    with pytest.raises(ConfigurationError, match=message):
        build_load_batch(schema="analytics", tables=[table], outputs={"t": OUT},
                         copy_role_arn=ROLE, pending=[], run_id="r1",
                         applied_at="2026-11-21T10:14:00Z", partitions=[DAY])


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"schema": "analytics; drop"}, ConfigurationError, "not a safe SQL identifier"),
    ({"tables": [TableLoad("select", replace_by=("d",))]}, ConfigurationError, "not a safe"),
    ({"tables": [TableLoad("t", replace_by=("order date",))], "outputs": {"t": OUT}},
     ConfigurationError, "not a safe"),
    ({"outputs": {"sales_line_items": OUT}}, InvalidInput, "no output for table"),
    ({"outputs": {**OUTPUTS, "sales_line_items": "s3://b/x' IAM_ROLE 'y/"}}, None, None),
    ({"outputs": {**OUTPUTS, "sales_line_items": "/tmp/x/"}}, InvalidInput, "s3:// prefix"),
    ({"copy_role_arn": "arn:aws:iam::123456789012:user/me"}, ConfigurationError, "IAM role"),
    ({"schema": "analytics\n"}, ConfigurationError, "not a safe SQL identifier"),
    ({"partitions": []}, InvalidInput, "names no partition"),
    ({"partitions": ["2010-12-01\\' OR 1=1 --"]}, ConfigurationError, "backslash"),
    ({"tables": [TableLoad("t", replace_by=("order_date", "customer_id"))],
      "outputs": {"t": OUT}}, ConfigurationError, "the one column that holds the run's"),
])
def test_bad_names_and_uris_never_reach_sql(kwargs, error, message) -> None:
    args: dict[str, Any] = {"schema": "analytics", "tables": TABLES, "outputs": OUTPUTS,
                            "copy_role_arn": ROLE, "pending": [], "run_id": "r1",
                            "applied_at": "2026-11-21T10:14:00Z", "partitions": [DAY], **kwargs}
    if error is None:  # a quote in a URI is escaped, not interpreted
        batch = build_load_batch(**args)
        assert "FROM 's3://b/x'' IAM_ROLE ''y/part-'" in batch.sqls[2]
        return
    with pytest.raises(error, match=message):
        build_load_batch(**args)


# -- LoadStatement.submit, on FakeRedshiftData ------------------------------------------------


@pytest.fixture
def starter(redshift: FakeRedshiftData, env: dict[str, str]) -> LoadStatement:
    return LoadStatement(catalog=load_catalog(env["CATALOG_DIR"]), redshift=redshift,
                         migrations=load_migrations, app_name="emr-pipelines-dev",
                         copy_role_arn=ROLE, clock=lambda: NOW)


def load_request(name: str = "serverless_pass.json") -> LoadStatementRequest:
    return LoadStatementRequest.parse(read_event("start_load", name))


@pytest.mark.parametrize("name", ["serverless_pass.json", "serverless_warn.json"])
def test_the_schema_is_brought_up_to_date_and_the_load_submitted_as_one_batch(
        starter: LoadStatement, redshift: FakeRedshiftData, name: str) -> None:
    request = load_request(name)
    run = request.run

    result = starter.handle(request)

    ensure, applied, load = redshift.statements
    assert ensure.sqls == ensure_meta_sqls() and applied.sqls == [applied_versions_sql()]
    first = MIGRATION_SQLS  # the first statement after the migrations
    assert result == {"statement_id": load.id,
                      "tables": {"sales_line_items": first + 4,
                                 "customer_daily_sales": first + 9},
                      "migrations_applied": [m.label for m in MIGRATIONS], "load_try": 1,
                      "snapshot_checks": {}}  # no full_refresh table
    assert result["migrations_applied"][0] == "V001__analytics_online_retail"
    assert load.token == f"{run.run_id}-load-a1-r1" and load.status == "STARTED"  # not waited
    # the completion event's rule and handler find the run by it (pipeline_aws.load)
    assert load.name == f"emr-pipelines-dev-load/{run.run_id}/try-1" and load.with_event
    assert load.sqls[first + 3] == ("DELETE FROM analytics.sales_line_items "
                                    "WHERE order_date IN ('2010-12-01')")
    assert load.sqls[first + 4] == ("INSERT INTO analytics.sales_line_items SELECT * FROM "
                                    "stage_sales_line_items WHERE order_date IN ('2010-12-01')")
    assert f"FROM '{run.outputs['customer_daily_sales']}part-'" in load.sqls[first + 7]
    assert any("CAST('2026-11-21 10:00:00' AS timestamp)" in sql for sql in load.sqls)


def test_applied_migrations_are_not_repeated(starter: LoadStatement,
                                             redshift: FakeRedshiftData) -> None:
    redshift.rows[applied_versions_sql()] = [[m.version] for m in MIGRATIONS]
    result = starter.handle(load_request())
    assert result["migrations_applied"] == []
    assert result["tables"] == {"sales_line_items": 4, "customer_daily_sales": 9}


def test_a_retried_start_submits_the_same_load(starter: LoadStatement,
                                               redshift: FakeRedshiftData) -> None:
    first = starter.handle(load_request())
    again = starter.handle(load_request())
    assert again["statement_id"] == first["statement_id"]


def test_a_run_without_an_output_for_a_table_is_refused(starter: LoadStatement,
                                                        redshift: FakeRedshiftData) -> None:
    event = read_event("start_load", "serverless_pass.json")
    del event["state"]["run"]["outputs"]["customer_daily_sales"]
    with pytest.raises(InvalidInput, match=r"no output for table\(s\) \['customer_daily_sales'\]"):
        starter.handle(LoadStatementRequest.parse(event))
    assert redshift.statements == []  # refused before anything reached Redshift


def test_a_failed_bookkeeping_statement_stops_the_load(starter: LoadStatement,
                                                       redshift: FakeRedshiftData) -> None:
    redshift.fail_when["pipeline_meta"] = ("FAILED", "permission denied for schema pipeline_meta")
    with pytest.raises(ConfigurationError, match="permission denied"):
        starter.handle(load_request())
    assert len(redshift.statements) == 1


def test_a_bookkeeping_table_created_concurrently_is_checked_again(
        starter: LoadStatement, redshift: FakeRedshiftData, monkeypatch) -> None:
    """Two loads on a fresh warehouse: the loser's CREATE ... IF NOT EXISTS collides with the
    winner's (PostgreSQL: a duplicate key in its catalog); running it again sees the table."""
    collided: list[bool] = []
    real_run = redshift.run

    def run_once_colliding(sqls, **kwargs):
        if not collided:
            collided.append(True)
            raise ConfigurationError('Redshift statement x failed: ERROR: duplicate key value '
                                     'violates unique constraint "pg_namespace_nspname_index"')
        return real_run(sqls, **kwargs)

    monkeypatch.setattr(redshift, "run", run_once_colliding)
    result = starter.handle(load_request())
    assert collided and result["load_try"] == 1
    assert redshift.statements[0].sqls == ensure_meta_sqls()


# -- the SQL's meaning, on PostgreSQL ---------------------------------------------------------

_REDSHIFT_ONLY = re.compile(
    r"\s+ENCODE\s+\w+|\bDISTSTYLE\s+\w+|\bDISTKEY\s*\([^)]*\)|\b(?:COMPOUND\s+)?SORTKEY\s*\([^)]*\)",
    re.IGNORECASE)


def portable(sql: str) -> str:
    """What the local runtime does to Redshift DDL: drop the physical-design clauses."""
    return _REDSHIFT_ONLY.sub("", sql)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pgserver = pytest.importorskip("pgserver")
    psycopg = pytest.importorskip("psycopg")
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        yield conn


def run_batch(conn: Any, sqls: list[str]) -> list[int]:
    """One transaction, like BatchExecuteStatement; COPY is replaced by the rows the test gives."""
    counts = []
    with conn.transaction(), conn.cursor() as cur:
        for sql in sqls:
            cur.execute(sql)
            counts.append(cur.rowcount)
    return counts


def test_migration_and_load_replace_a_day_on_postgres(postgres) -> None:
    conn = postgres
    migrations = load_migrations()
    run_batch(conn, ensure_meta_sqls())
    run_batch(conn, ensure_meta_sqls())  # safe to repeat
    batch = build_load_batch(schema="analytics", tables=TABLES, outputs=OUTPUTS,
                             copy_role_arn=ROLE, pending=migrations, run_id="r1",
                             applied_at="2026-11-21T10:14:00Z", partitions=[DAY])
    sqls = [portable(s) for s in batch.sqls]
    rows = {
        "sales_line_items": [
            "('536365','85123A','HEART',6,2.55,'2010-12-01 08:26','2010-12-01','17850','UK',"
            "false,15.3,'r1')",
            "('C536379','D','Discount',-1,27.5,'2010-12-01 09:41','2010-12-01','14527','UK',"
            "true,-27.5,'r1')"],
        "customer_daily_sales": [
            "('2010-12-01','17850',1,6,15.30,0,'2010-12-01 08:26','2010-12-01 08:26','r1')"],
    }

    def with_rows(statements: list[str], day_rows: dict[str, list[str]]) -> list[str]:
        out = []
        for sql in statements:
            match = re.match(r"COPY (stage_(\w+)) FROM", sql)
            out.append(f"INSERT INTO {match[1]} VALUES {', '.join(day_rows[match[2]])}"
                       if match else sql)
        return out

    # Yesterday's row must survive a load of 2010-12-01.
    run_batch(conn, [portable(s) for s in migrations[0].statements])
    conn.execute("INSERT INTO analytics.sales_line_items VALUES ('1','x','old',1,1,"
                 "'2010-11-30 10:00','2010-11-30','1','UK',false,1,'r0')")
    counts = run_batch(conn, with_rows(sqls, rows))
    assert counts[batch.insert_index["sales_line_items"]] == 2
    assert counts[batch.insert_index["customer_daily_sales"]] == 1

    # A re-run of the day replaces its rows instead of adding to them; no migration is pending.
    applied = [r[0] for r in conn.execute(applied_versions_sql()).fetchall()]
    assert applied == [m.version for m in migrations]
    rerun = build_load_batch(schema="analytics", tables=TABLES, outputs=OUTPUTS,
                             copy_role_arn=ROLE, pending=[], run_id="r1-r2",
                             applied_at="2026-11-21T11:00:00Z", partitions=[DAY])
    run_batch(conn, with_rows([portable(s) for s in rerun.sqls],
                              {"sales_line_items": rows["sales_line_items"][:1],
                               "customer_daily_sales": rows["customer_daily_sales"]}))
    by_day = conn.execute("SELECT order_date::text, count(*) FROM analytics.sales_line_items "
                          "GROUP BY 1 ORDER BY 1").fetchall()
    assert by_day == [("2010-11-30", 1), ("2010-12-01", 1)]
    assert conn.execute("SELECT count(*) FROM analytics.customer_daily_sales").fetchone() == (1,)

    # Column order is the Spark job's (COPY ... PARQUET maps by position).
    columns = [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'analytics' "
        "AND table_name = 'customer_daily_sales' ORDER BY ordinal_position").fetchall()]
    assert columns == ["order_date", "customer_id", "orders", "units", "revenue",
                       "returned_value", "first_purchase_ts", "last_purchase_ts", "run_id"]


_DAYS = ("2010-11-30", "2010-12-01", "2010-12-02")


def _line(day: str, n: int, run_id: str) -> str:
    return (f"('{n}','x','d',1,1,'{day} 10:00','{day}','{n % 7}','UK',false,1,'{run_id}')")


# The midnight case: the next day is in the warehouse and one of its lines is in this day's
# file; the old replace (DELETE ... USING stage) deleted the whole next day.
@example(existing=["2010-12-02", "2010-12-02"], staged=["2010-12-01", "2010-12-02"])
@example(existing=[], staged=["2010-11-30"])
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(existing=st.lists(st.sampled_from(_DAYS), max_size=8),
       staged=st.lists(st.sampled_from(_DAYS), max_size=8))
def test_a_load_never_changes_rows_of_other_partitions(postgres, existing, staged) -> None:
    """Whatever the staged rows hold (the midnight case: a line of the next day in this day's
    file), the warehouse's other days are exactly as before, and the run's day holds exactly
    the staged rows of that day."""
    conn = postgres
    run_batch(conn, [portable(s) for s in load_migrations()[0].statements])
    table = TableLoad("sales_line_items", replace_by=("order_date",))
    batch = build_load_batch(schema="analytics", tables=[table], outputs=OUTPUTS,
                             copy_role_arn=ROLE, pending=[], run_id="r9",
                             applied_at="2026-11-21T10:14:00Z", partitions=[DAY])
    staged_rows = ", ".join(_line(day, i, "r9") for i, day in enumerate(staged))
    sqls = [(f"INSERT INTO stage_sales_line_items VALUES {staged_rows}" if staged else
             "SELECT 1") if sql.startswith("COPY ") else portable(sql) for sql in batch.sqls]
    snapshot = ("SELECT order_date::text, invoice_no, run_id FROM analytics.sales_line_items "
                "ORDER BY 1, 2, 3")
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM analytics.sales_line_items")
        for i, day in enumerate(existing):
            conn.execute(f"INSERT INTO analytics.sales_line_items VALUES {_line(day, i, 'old')}")
        before = conn.execute(snapshot).fetchall()
        run_batch(conn, sqls)
        after = conn.execute(snapshot).fetchall()
    assert [r for r in after if r[0] != DAY] == [r for r in before if r[0] != DAY]
    assert sorted(r[1] for r in after if r[0] == DAY) == sorted(
        str(i) for i, day in enumerate(staged) if day == DAY)
    assert all(r[2] == "r9" for r in after if r[0] == DAY)


def _mixed_batch(conn: Any, stores: list[str], lines: list[str], run_id: str,
                 fail_after_refresh: bool = False) -> None:
    """One load of the day's facts and the whole reference table, in one transaction."""
    batch = build_load_batch(schema="analytics", tables=[TABLES[0], REFERENCE],
                             outputs={"sales_line_items": OUTPUTS["sales_line_items"],
                                      "stores": REF_OUT},
                             copy_role_arn=ROLE, pending=[], run_id=run_id,
                             applied_at="2026-11-21T10:14:00Z", partitions=[DAY])
    staged = {"sales_line_items": lines, "stores": stores}
    sqls = []
    for sql in batch.sqls:
        match = re.match(r"COPY (stage_(\w+)) FROM", sql)
        sqls.append((f"INSERT INTO {match[1]} VALUES {', '.join(staged[match[2]])}"
                     if staged[match[2]] else "SELECT 1") if match else portable(sql))
    if fail_after_refresh:
        sqls.append("SELECT * FROM a_table_that_does_not_exist")
    run_batch(conn, sqls)


def test_a_mixed_batch_refreshes_the_reference_table_and_replaces_the_day(postgres) -> None:
    """Facts replaced by partition and a reference table refreshed whole, in one transaction:
    a redelivered load leaves the same rows, and a batch that fails after the refresh leaves
    the reference table as it was (DELETE rolls back; TRUNCATE would not on Redshift)."""
    conn = postgres
    run_batch(conn, [portable(s) for s in load_migrations()[0].statements])
    conn.execute("CREATE TABLE IF NOT EXISTS analytics.stores "
                 "(store_id integer, city varchar(20), as_of date, run_id varchar(128))")
    snapshot = ("SELECT 'store', store_id::text, run_id FROM analytics.stores UNION ALL "
                "SELECT order_date::text, invoice_no, run_id FROM analytics.sales_line_items "
                "ORDER BY 1, 2")
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM analytics.sales_line_items")
        conn.execute("INSERT INTO analytics.stores VALUES (9, 'Closed', '2010-11-30', 'r0')")
        conn.execute(f"INSERT INTO analytics.sales_line_items VALUES "
                     f"{_line('2010-11-30', 7, 'r0')}")
        stores = [f"(1, 'Leeds', '{DAY}', 'r1')", f"(2, 'York', '{DAY}', 'r1')"]
        lines = [_line(DAY, 1, "r1"), _line(DAY, 2, "r1")]
        _mixed_batch(conn, stores, lines, "r1")
        first = conn.execute(snapshot).fetchall()
        assert first == [("2010-11-30", "7", "r0"), ("2010-12-01", "1", "r1"),
                         ("2010-12-01", "2", "r1"), ("store", "1", "r1"), ("store", "2", "r1")]
        _mixed_batch(conn, stores, lines, "r1")  # the same load delivered again
        assert conn.execute(snapshot).fetchall() == first
        with pytest.raises(Exception, match="a_table_that_does_not_exist"):
            _mixed_batch(conn, [f"(3, 'Hull', '{DAY}', 'r2')"], [_line(DAY, 5, "r2")], "r2",
                         fail_after_refresh=True)
        assert conn.execute(snapshot).fetchall() == first


def _refresh(conn: Any, snapshot: str, stores: list[str], run_id: str) -> list[int]:
    """One full refresh of analytics.stores with the snapshot of `snapshot`; each statement's
    row count (cursor.rowcount: a SELECT's rows, as the Data API's ResultRows)."""
    batch = build_load_batch(schema="analytics", tables=[REFERENCE], outputs={"stores": REF_OUT},
                             copy_role_arn=ROLE, pending=[], run_id=run_id,
                             applied_at="2026-11-21T10:14:00Z", partitions=[snapshot])
    sqls = [f"INSERT INTO stage_stores VALUES {', '.join(stores)}" if sql.startswith("COPY")
            else portable(sql) for sql in batch.sqls]
    return run_batch(conn, sqls)


def test_an_older_snapshot_never_replaces_a_newer_one(postgres) -> None:
    """A redelivered or late old snapshot leaves the table as it is, in the same transaction
    as its check, whose row count says the run was stale ("SubStatementData - Amazon Redshift
    Data API", https://docs.aws.amazon.com/redshift-data/latest/APIReference/
    API_SubStatementData.html: ResultRows is "either the number of rows returned from the SQL
    statement or the number of rows affected"). The same snapshot again replaces itself."""
    conn = postgres
    conn.execute("CREATE SCHEMA IF NOT EXISTS analytics")
    conn.execute("CREATE TABLE IF NOT EXISTS analytics.stores "
                 "(store_id integer, city varchar(20), as_of date, run_id varchar(128))")
    check = build_load_batch(schema="analytics", tables=[REFERENCE], outputs={"stores": REF_OUT},
                             copy_role_arn=ROLE, pending=[], run_id="x",
                             applied_at="2026-11-21T10:14:00Z",
                             partitions=[DAY]).snapshot_checks["stores"]
    table = "SELECT store_id, city, as_of::text, run_id FROM analytics.stores ORDER BY 1"
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM analytics.stores")
        newer = ["(1, 'Leeds', '2010-12-02', 'new')", "(2, 'York', '2010-12-02', 'new')"]
        counts = _refresh(conn, "2010-12-02", newer, "new")
        assert counts[check:] == [0, 0, 2]  # not stale: nothing deleted, two inserted
        loaded = conn.execute(table).fetchall()
        assert loaded == [(1, "Leeds", "2010-12-02", "new"), (2, "York", "2010-12-02", "new")]
        # the older snapshot, delivered after it: nothing changes, and the check says why
        counts = _refresh(conn, DAY, [f"(7, 'Hull', '{DAY}', 'old')"], "old")
        assert counts[check:] == [1, 0, 0]
        assert conn.execute(table).fetchall() == loaded
        # the same snapshot again (a re-run): replaced, not stale
        counts = _refresh(conn, "2010-12-02", newer[:1], "again")
        assert counts[check:] == [0, 2, 1]
        assert conn.execute(table).fetchall() == [(1, "Leeds", "2010-12-02", "new")]


def test_a_reference_table_refreshes_from_one_snapshot_only() -> None:
    with pytest.raises(InvalidInput, match="refreshed whole from one snapshot, but the load "
                                           "names 2 partitions"):
        build_load_batch(schema="analytics", tables=[REFERENCE], outputs={"stores": REF_OUT},
                         copy_role_arn=ROLE, pending=[], run_id="r1",
                         applied_at="2026-11-21T10:14:00Z", partitions=[DAY, "2010-12-02"])


def test_a_failing_statement_rolls_back_the_whole_batch(postgres) -> None:
    conn = postgres
    run_batch(conn, ensure_meta_sqls())
    before = conn.execute("SELECT count(*) FROM pipeline_meta.schema_migrations").fetchone()
    with pytest.raises(Exception, match="does_not_exist"):
        run_batch(conn, ["INSERT INTO pipeline_meta.schema_migrations VALUES "
                         "(99, 'x', now(), 'r')", "SELECT * FROM does_not_exist"])
    after = conn.execute("SELECT count(*) FROM pipeline_meta.schema_migrations").fetchone()
    assert before == after


def test_migration_files_exist_in_the_layer_path() -> None:
    assert (REPO / "layers" / "common" / "warehouse" / "migrations" /
            "V001__analytics_online_retail.sql").is_file()
