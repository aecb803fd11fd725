"""online_retail transforms on tiny inline frames."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import Column, Row
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from spark_jobs.common import raw_job
from spark_jobs.common.outputs import SCHEMA, GroupedOutput, line_limit_reason, with_group_limits
from spark_jobs.common.raw_job import distinct_lines
from spark_jobs.online_retail import transforms as tr

pytestmark = pytest.mark.spark


def day(text: str) -> Column:
    """A partition day as partition_reason gets it: a date column."""
    return F.to_date(F.lit(text))


def lines_frame(spark, *lines: str):
    return spark.createDataFrame([(v, i + 2) for i, v in enumerate(lines)],
                                 "value string, _line long")


def typed(spark, *lines: str):
    frame = tr.type_fields(tr.split_fields(lines_frame(spark, *lines)))
    return frame.withColumn("_reason", tr.rejection_reason())


def test_header_matches_the_catalog():
    from pipeline_core.catalog import load_catalog

    assert load_catalog().get("online_retail").source.header == tr.HEADER


def test_split_fields_follows_csv_quoting(spark):
    frame = tr.split_fields(lines_frame(
        spark,
        '536381,82567,"AIRLINE LOUNGE,METAL SIGN",2,2010-12-01 09:41:00,2.1,15311.0,UK',
        '536477,22041,"RECORD FRAME 7"" SINGLE SIZE ",48,2010-12-01 12:27:00,2.1,16210.0,UK',
        "1,2,3,4,5,6,7,8,nine,ten",
        "536365,85123A,WHITE HANG",
    ))
    expected = [
        ("536381", "82567", "AIRLINE LOUNGE,METAL SIGN", "2", "2010-12-01 09:41:00", "2.1",
         "15311.0", "UK", None),
        ("536477", "22041", 'RECORD FRAME 7" SINGLE SIZE ', "48", "2010-12-01 12:27:00", "2.1",
         "16210.0", "UK", None),
        ("1", "2", "3", "4", "5", "6", "7", "8", "nine"),
        ("536365", "85123A", "WHITE HANG", None, None, None, None, None, None),
    ]
    assertDataFrameEqual(frame.select(*tr.RAW_COLUMNS, tr.EXTRA_FIELD),
                         spark.createDataFrame(expected, frame.select(
                             *tr.RAW_COLUMNS, tr.EXTRA_FIELD).schema))


def test_type_fields_and_job_reasons(spark):
    frame = typed(
        spark,
        "536365,85123A,WHITE HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom",
        "536544,90214D, ,1,2010-12-01 14:32:00,0.001,,United Kingdom",
        "536366,22633,HAND WARMER,six,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
        "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.8.5,17850.0,United Kingdom",
        "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.855,17850.0,United Kingdom",
        "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.8555,17850.0,United Kingdom",
        "A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,-11062.06,,United Kingdom",
        "536366,22633,HAND WARMER,6,01/12/2010 08:28,1.85,17850.0,United Kingdom",
        " ,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
        "536366,,HAND WARMER,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
        "536366,22633,HAND,WARMER,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
        "536366,22633,HAND WARMER,2000000000,2010-12-01 08:28:00,999999999.999,1,UK",
        "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1234567890123.5,1,UK",
    )
    got = frame.select("invoice_no", "stock_code", "description", "quantity", "unit_price",
                       "invoice_ts", "order_date", "customer_id", "country", "is_cancellation",
                       "line_revenue", "_reason")
    ts = dt.datetime(2010, 12, 1, 8, 28)
    d = dt.date(2010, 12, 1)
    uk = "United Kingdom"
    expected = [
        ("536365", "85123A", "WHITE HEART", 6, Decimal("2.550"), dt.datetime(2010, 12, 1, 8, 26),
         d, "17850", uk, False, Decimal("15.300"), None),
        ("C536379", "D", "Discount", -1, Decimal("27.500"), dt.datetime(2010, 12, 1, 9, 41), d,
         "14527", uk, True, Decimal("-27.500"), None),
        ("536544", "90214D", None, 1, Decimal("0.001"), dt.datetime(2010, 12, 1, 14, 32), d,
         None, uk, False, Decimal("0.001"), None),
        ("536366", "22633", "HAND WARMER", None, Decimal("1.850"), ts, d, "17850", uk, False,
         None, tr.BAD_QUANTITY),
        ("536366", "22633", "HAND WARMER", 6, None, ts, d, "17850", uk, False, None,
         tr.BAD_PRICE),
        ("536366", "22633", "HAND WARMER", 6, Decimal("1.855"), ts, d, "17850", uk, False,
         Decimal("11.130"), None),
        ("536366", "22633", "HAND WARMER", 6, Decimal("1.856"), ts, d, "17850", uk, False,
         Decimal("11.136"), tr.PRICE_TOO_PRECISE),
        ("A563185", "B", "Adjust bad debt", 1, Decimal("-11062.060"),
         dt.datetime(2011, 8, 12, 14, 50), dt.date(2011, 8, 12), None, uk, False,
         Decimal("-11062.060"), tr.NEGATIVE_PRICE),
        ("536366", "22633", "HAND WARMER", 6, Decimal("1.850"), None, None, "17850", uk, False,
         Decimal("11.100"), tr.BAD_TIMESTAMP),
        (None, "22633", "HAND WARMER", 6, Decimal("1.850"), ts, d, "17850", uk, None,
         Decimal("11.100"), tr.NO_INVOICE),
        ("536366", None, "HAND WARMER", 6, Decimal("1.850"), ts, d, "17850", uk, False,
         Decimal("11.100"), tr.NO_STOCK_CODE),
        ("536366", "22633", "HAND", None, None, None, None, "1.85", "17850.0", False, None,
         tr.MORE_FIELDS),
        ("536366", "22633", "HAND WARMER", 2000000000, Decimal("999999999.999"), ts, d, "1",
         "UK", False, None, tr.REVENUE_OVERFLOW),
        ("536366", "22633", "HAND WARMER", 6, None, ts, d, "1", "UK", False, None,
         tr.BAD_PRICE),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, got.schema))


def test_type_fields_types(spark):
    frame = typed(spark, "536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850.0,UK")
    types = dict(frame.select(*tr.TYPED_COLUMNS).dtypes)
    assert types == {
        "invoice_no": "string", "stock_code": "string", "description": "string",
        "quantity": "int", "unit_price": "decimal(12,3)", "invoice_ts": "timestamp",
        "order_date": "date", "customer_id": "string", "country": "string",
        "is_cancellation": "boolean", "line_revenue": "decimal(18,3)",
    }


@pytest.mark.parametrize("repeated_max", [1_000_000, 1, 0])
def test_distinct_lines_keep_the_first_copy(spark, monkeypatch, repeated_max):
    """The same lines whichever way they are found: only the repeated hashes grouped on the
    text (a broadcast of them), or every line grouped on its text (past the bound)."""
    monkeypatch.setattr(raw_job, "REPEATED_HASHES_MAX", repeated_max)
    lines = spark.createDataFrame(
        [("a", 2, "a@2"), ("b", 3, "b@3"), ("a", 4, "a@4"), ("c", 6, "c@6"), ("a", 5, "a@5"),
         ("c", 7, "c@7")],
        "value string, _line long, parsed string")
    assertDataFrameEqual(
        distinct_lines(lines),
        spark.createDataFrame([("a", 2, "a@2", 3), ("b", 3, "b@3", 1), ("c", 6, "c@6", 2)],
                              "value string, _line long, parsed string, _copies long"))


def test_distinct_lines_of_unrepeated_lines_are_the_lines(spark):
    lines = spark.createDataFrame([("a", 1), ("b", 2)], "value string, _line long")
    assertDataFrameEqual(distinct_lines(lines),
                         spark.createDataFrame([("a", 1, 1), ("b", 2, 1)],
                                               "value string, _line long, _copies long"))


def _items(spark, rows):
    schema = T.StructType([
        T.StructField("invoice_no", T.StringType()),
        T.StructField("quantity", T.IntegerType()),
        T.StructField("unit_price", T.DecimalType(12, 3)),
        T.StructField("invoice_ts", T.TimestampType()),
        T.StructField("customer_id", T.StringType()),
    ])
    frame = spark.createDataFrame(rows, schema)
    return frame.select(
        "*", F.to_date("invoice_ts").alias("order_date"),
        F.col("invoice_no").startswith("C").alias("is_cancellation"),
        (F.col("quantity").cast("decimal(10,0)") * F.col("unit_price")).cast("decimal(18,3)")
        .alias("line_revenue"))


def test_customer_daily_sales(spark):
    t = dt.datetime
    valid = _items(spark, [
        # c1: two invoices on one day, a return, and rounding half-up of 0.005
        ("1001", 2, Decimal("1.250"), t(2010, 12, 1, 9, 0), "c1"),
        ("1001", 1, Decimal("0.005"), t(2010, 12, 1, 9, 0), "c1"),
        ("1002", 3, Decimal("2.000"), t(2010, 12, 1, 15, 30), "c1"),
        ("C1003", -1, Decimal("1.255"), t(2010, 12, 1, 16, 0), "c1"),
        ("C1004", -2, Decimal("1.000"), t(2010, 12, 1, 17, 0), "c1"),
        # c1 the next day
        ("1005", 1, Decimal("10.000"), t(2010, 12, 2, 8, 0), "c1"),
        # c2 only returned things: no purchases
        ("C1006", -4, Decimal("0.500"), t(2010, 12, 1, 10, 0), "c2"),
        # a guest line: not in the table
        ("1007", 5, Decimal("1.000"), t(2010, 12, 1, 11, 0), None),
    ])
    got = tr.customer_daily_sales(valid, "run-1")
    expected = [
        Row(order_date=dt.date(2010, 12, 1), customer_id="c1", orders=2, units=6,
            revenue=Decimal("8.51"), returned_value=Decimal("3.26"),
            first_purchase_ts=t(2010, 12, 1, 9, 0), last_purchase_ts=t(2010, 12, 1, 15, 30),
            run_id="run-1"),
        Row(order_date=dt.date(2010, 12, 2), customer_id="c1", orders=1, units=1,
            revenue=Decimal("10.00"), returned_value=Decimal("0.00"),
            first_purchase_ts=t(2010, 12, 2, 8, 0), last_purchase_ts=t(2010, 12, 2, 8, 0),
            run_id="run-1"),
        Row(order_date=dt.date(2010, 12, 1), customer_id="c2", orders=0, units=0,
            revenue=Decimal("0.00"), returned_value=Decimal("2.00"),
            first_purchase_ts=None, last_purchase_ts=None, run_id="run-1"),
    ]
    assert tuple(got.columns) == tr.CUSTOMER_DAILY_COLUMNS
    assert dict(got.dtypes) == {
        "order_date": "date", "customer_id": "string", "orders": "bigint", "units": "bigint",
        "revenue": "decimal(14,2)", "returned_value": "decimal(14,2)",
        "first_purchase_ts": "timestamp", "last_purchase_ts": "timestamp", "run_id": "string"}
    assertDataFrameEqual(got, spark.createDataFrame(expected, got.schema))


def test_parse_keeps_its_input_the_typed_columns_and_the_reason_only(spark):
    """The raw fields are not kept: every query of the job reads what parse returns."""
    frame = tr.parse(lines_frame(spark, "536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850.0,UK"))
    assert tuple(frame.columns) == ("value", "_line", *tr.TYPED_COLUMNS, "_reason")


def test_sales_line_items_and_quarantine_columns(spark):
    frame = tr.parse(lines_frame(spark, "536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850.0,UK",
                                 "536365,85123A,X,six,2010-12-01 08:26:00,2.55,17850.0,UK"))
    frame = frame.withColumn("_source_line", F.col("_line"))
    items = tr.sales_line_items(frame.where("_reason is null"), "r1")
    assert tuple(items.columns) == tr.LINE_ITEM_COLUMNS
    assert items.select("run_id", "line_revenue").collect() == [("r1", Decimal("15.300"))]
    rejected = tr.quarantine_rows(frame.where("_reason is not null"), "r1")
    assert tuple(rejected.columns) == tr.QUARANTINE_COLUMNS
    assert rejected.collect() == [
        ("536365", "85123A", "X", "six", "2010-12-01 08:26:00", "2.55", "17850.0", "UK",
         tr.BAD_QUANTITY, 3, "r1")]


# ---------------------------------------------------------------------------------------------
# Lines the load could not take: another day, values the warehouse tables refuse


def _tables():
    from pipeline_core.warehouse_limits import load_table_definitions

    shipped = load_table_definitions()
    return {t: shipped.table(SCHEMA, t) for t in tr.OUTPUTS}


def _line(description="WHITE HEART", ts="2010-12-01 08:26:00", customer="17850.0",
          invoice="536365", stock="85123A", country="United Kingdom", quantity="6",
          price="2.55"):
    return f"{invoice},{stock},{description},{quantity},{ts},{price},{customer},{country}"


def test_the_job_knows_the_catalog_schema_and_tables():
    from pipeline_core.catalog import load_catalog

    load = load_catalog().get("online_retail").load
    assert load.schema == SCHEMA
    assert tuple(t.name for t in load.tables) == tuple(tr.OUTPUTS)


def test_partition_reason_names_both_days(spark):
    frame = typed(spark, _line(ts="2010-12-01 23:59:59"), _line(ts="2010-12-02 00:00:00"),
                  _line(ts="2010-11-30 23:59:59"), _line(ts="not a date"))
    got = frame.select("invoice_ts", tr.partition_reason(day("2010-12-01")).alias("r")).collect()
    assert [r["r"] for r in got] == [
        None,
        "order_date 2010-12-02 is not the run's partition 2010-12-01",
        "order_date 2010-11-30 is not the run's partition 2010-12-01",
        None,  # no date at all: rejection_reason says so
    ]


def test_load_limit_reason_counts_bytes_not_characters(spark):
    frame = typed(
        spark,
        _line(description="X" * 256),  # 256 bytes: fits
        _line(description="X" * 300),
        _line(description="é" * 128),  # 128 characters, 256 bytes: fits
        _line(description="é" * 150),  # 150 characters, 300 bytes
        _line(description="€" * 86),  # 86 characters, 258 bytes
        _line(description="NUL\x00HERE"),
        _line(customer="1234567890123456.0"),  # 16 digits: fits
        _line(customer="12345678901234567.0"),
        _line(invoice="5" * 21),
        _line(stock="S" * 33),
        _line(country="Ü" * 33),  # 66 bytes
    )
    got = frame.select(line_limit_reason(tr.OUTPUTS, _tables()).alias("r")).collect()
    assert [r["r"] for r in got] == [
        None,
        "description is 300 bytes, over varchar(256)",
        None,
        "description is 300 bytes, over varchar(256)",
        "description is 258 bytes, over varchar(256)",
        "description contains a NUL character, which varchar(256) cannot hold",
        None,
        "customer_id is 17 bytes, over varchar(16)",
        "invoice_no is 21 bytes, over varchar(20)",
        "stock_code is 33 bytes, over varchar(32)",
        "country is 66 bytes, over varchar(64)",
    ]


def test_load_limits_follow_the_table_definitions(spark):
    """The limits are the DDL's: a narrower customer_daily_sales.customer_id applies to the
    lines that have a customer id only, and names that table."""
    from pipeline_core.warehouse_limits import parse_statements

    ddl = parse_statements([
        "create table analytics.sales_line_items (invoice_no varchar(20), stock_code "
        "varchar(32), description varchar(10) not null, quantity smallint, unit_price "
        "decimal(12,3), invoice_ts timestamp, order_date date, customer_id varchar(16), "
        "country varchar(64), is_cancellation boolean, line_revenue decimal(18,3), "
        "run_id varchar(128))",
        "create table analytics.customer_daily_sales (order_date date, customer_id char(3), "
        "orders bigint, units bigint, revenue decimal(14,2), returned_value decimal(14,2), "
        "first_purchase_ts timestamp, last_purchase_ts timestamp, run_id varchar(128))",
    ])
    tables = {t: ddl.table("analytics", t) for t in tr.OUTPUTS}
    frame = typed(spark, _line(description="SHORT", customer="123.0"),
                  _line(description="ELEVEN CHAR"), _line(description=" "),
                  _line(description="SHORT", quantity="40000"),
                  _line(description="SHORT", customer="1234.0"),
                  _line(description="SHORT", customer=""))
    got = frame.select(line_limit_reason(tr.OUTPUTS, tables).alias("r")).collect()
    assert [r["r"] for r in got] == [
        None,
        "description is 11 bytes, over varchar(10)",
        "description is missing, the column is NOT NULL",
        "quantity 40000 is out of range for smallint",
        "customer_daily_sales.customer_id is 4 bytes, over char(3)",
        None,
    ]


def test_daily_totals_that_would_not_fit_refuse_the_customers_lines(spark):
    """decimal(14,2) holds less than 10**12: a customer's day summing past it would make the
    cast (ANSI) fail the whole job, or the COPY fail the load. Its lines are refused instead;
    other customers and guest lines load."""
    frame = typed(
        spark,
        _line(customer="1.0", quantity="1000", price="999999999.999"),  # 999999999999.00
        _line(customer="2.0", quantity="1000", price="999999999.999"),
        _line(customer="2.0", quantity="1", price="1", invoice="536366"),  # tips it over
        _line(customer="2.0", quantity="1", price="1", invoice="536366", stock="X",
              description="REFUSED ANYWAY", country=""),
        _line(customer="", quantity="2000", price="999999999.999"),  # a guest: no daily row
        _line(customer="3.0", invoice="C536367", quantity="-1001", price="999999999.999"),
    )
    judged = frame.withColumn("_reason", F.coalesce(
        F.col("_reason"), F.when(F.col("country").isNull(), F.lit("no country"))))
    checked = with_group_limits(judged, tr.OUTPUTS, _tables())
    got = sorted((r["customer_id"] or "", r["stock_code"], r["_reason"]) for r in
                 checked.select("customer_id", "stock_code", "_reason").collect())
    revenue = "customer_daily_sales.revenue 1000000000000.00 is out of range for decimal(14,2)"
    returned = ("customer_daily_sales.returned_value 1000999999999.00 is out of range for "
                "decimal(14,2)")
    assert got == [("", "85123A", None), ("1", "85123A", None),
                   ("2", "85123A", revenue), ("2", "85123A", revenue),
                   ("2", "X", "no country"), ("3", "85123A", returned)]
    daily = tr.customer_daily_sales(checked.where(F.col("_reason").isNull()), "r1")
    assert [(r["customer_id"], r["revenue"]) for r in daily.collect()] == [
        ("1", Decimal("999999999999.00"))]


def test_daily_limits_change_nothing_on_a_normal_day(spark):
    frame = typed(spark, _line(), _line(customer="2.0"), _line(customer=""))
    checked = with_group_limits(frame, tr.OUTPUTS, _tables())
    assert checked.where(F.col("_reason").isNotNull()).count() == 0
    assert sorted(checked.columns) == sorted(frame.columns)


def test_a_group_whose_key_is_null_gets_its_overflow_reason_too(spark):
    """A dataset whose group key may be NULL: the group's totals overflow, so its lines are
    refused (a plain equi-join on the keys never matched NULL and let the cast fail the job)."""
    guest = "__guest__"

    def totals_with_guests(accepted):
        named = accepted.withColumn("customer_id", F.coalesce("customer_id", F.lit(guest)))
        rows = tr.customer_daily_totals(named)
        return rows.withColumn("customer_id", F.when(F.col("customer_id") != guest,
                                                     F.col("customer_id")))

    daily = tr.OUTPUTS["customer_daily_sales"]
    with_guests = {"customer_daily_sales": GroupedOutput(daily.build, keys=daily.keys,
                                                         totals=totals_with_guests)}
    frame = typed(spark, _line(customer="", quantity="2000", price="999999999.999"),
                  _line(customer="1.0", quantity="1", price="1"))
    checked = with_group_limits(frame, with_guests, _tables())
    got = sorted((r["customer_id"] or "", r["_reason"] or "") for r in
                 checked.select("customer_id", "_reason").collect())
    assert got == [("", "customer_daily_sales.revenue 1999999999998.00 is out of range for "
                        "decimal(14,2)"), ("1", "")]
    assert sorted(checked.columns) == sorted(frame.columns)
