"""sales_trends on tiny frames: calendar-day windows (a gap counts as zero and never stretches
a window), a country and 'ALL', cancellations left out, the warehouse's column types."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pipeline_core.warehouse_limits import load_table_definitions
from spark_jobs.sales_trends import transforms as tr

pytestmark = pytest.mark.spark
D = dt.date
SCHEMA = ("invoice_no string, order_date date, customer_id string, country string, "
          "is_cancellation boolean, line_revenue decimal(18,3)")


def line(invoice: str, day: dt.date, customer: str | None, country: str, revenue: str,
         cancelled: bool = False) -> tuple:
    return (invoice, day, customer, country, cancelled, Decimal(revenue))


def rows(frame) -> dict[tuple[dt.date, str], tuple]:
    return {(r["order_date"], r["country"]): tuple(r)[2:] for r in frame.collect()}


def test_a_gap_counts_as_zero_and_does_not_stretch_the_window(spark):
    """Sales on Jan 1 and Jan 9 (nothing between): Jan 9's 7-day sum is Jan 9 alone (Jan 3
    to 9), not Jan 1 + Jan 9 as a window of the last 7 rows with sales would say."""
    lines = spark.createDataFrame([
        line("1", D(2011, 1, 1), "c1", "France", "10.00"),
        line("2", D(2011, 1, 9), "c2", "France", "5.50"),
    ], SCHEMA)
    got = rows(tr.sales_trends(lines, D(2011, 1, 1), D(2011, 1, 9)))
    assert got[(D(2011, 1, 9), "France")] == (
        Decimal("5.50"), 1, 1, Decimal("5.50"), Decimal("15.50"), 1, 2)
    # Jan 7 has no sale: a zero day whose 7-day window (Jan 1-7) still holds Jan 1.
    assert got[(D(2011, 1, 7), "France")] == (
        Decimal("0.00"), 0, 0, Decimal("10.00"), Decimal("10.00"), 1, 1)
    # Jan 8: Jan 1 has left the 7-day window (Jan 2-8), not the 30-day one.
    assert got[(D(2011, 1, 8), "France")][3:] == (Decimal("0.00"), Decimal("10.00"), 0, 1)
    assert len([k for k in got if k[1] == "France"]) == 9


def test_the_30_day_window_ends_after_30_calendar_days(spark):
    lines = spark.createDataFrame([line("1", D(2011, 3, 1), "c1", "Spain", "7.00")], SCHEMA)
    got = rows(tr.sales_trends(lines, D(2011, 3, 30), D(2011, 3, 31)))
    assert got[(D(2011, 3, 30), "Spain")][4] == Decimal("7.00")  # Mar 1 to 30: 30 days
    assert (D(2011, 3, 31), "Spain") not in got  # no sale in Mar 2 to 31: no country row
    assert got[(D(2011, 3, 31), "ALL")] == (
        Decimal("0.00"), 0, 0, Decimal("0.00"), Decimal("0.00"), 0, 0)


def test_all_sums_every_country_and_counts_distinct_orders_and_customers(spark):
    day = D(2011, 5, 2)
    lines = spark.createDataFrame([
        line("10", day, "c1", "France", "1.10"),
        line("10", day, "c1", "France", "2.20"),   # a second line of one invoice
        line("11", day, "c2", "Germany", "3.005"),
        line("12", day, None, "Germany", "4.00"),  # no customer id: revenue and an order
        line("C13", day, "c2", "Germany", "-9.99", cancelled=True),
        line("14", day, "c1", "Germany", "1.00"),  # c1 also buys in Germany
    ], SCHEMA)
    got = rows(tr.sales_trends(lines, day, day))
    assert got[(day, "France")][:3] == (Decimal("3.30"), 1, 1)
    assert got[(day, "Germany")][:3] == (Decimal("8.01"), 3, 2)
    assert got[(day, "ALL")] == (Decimal("11.31"), 4, 2, Decimal("11.31"), Decimal("11.31"),
                                 4, 4)


def test_later_days_than_the_range_are_not_counted(spark):
    lines = spark.createDataFrame([
        line("1", D(2011, 6, 1), "c1", "EIRE", "2.00"),
        line("2", D(2011, 6, 2), "c1", "EIRE", "3.00"),
    ], SCHEMA)
    assert rows(tr.sales_trends(lines, D(2011, 6, 1), D(2011, 6, 1))) == {
        (D(2011, 6, 1), "EIRE"): (Decimal("2.00"), 1, 1, Decimal("2.00"), Decimal("2.00"), 1, 1),
        (D(2011, 6, 1), "ALL"): (Decimal("2.00"), 1, 1, Decimal("2.00"), Decimal("2.00"), 1, 1),
    }


def test_the_columns_and_types_are_the_warehouse_table_s(spark):
    lines = spark.createDataFrame([line("1", D(2011, 1, 1), "c1", "France", "1")], SCHEMA)
    frame = tr.sales_trends(lines, D(2011, 1, 1), D(2011, 1, 1))
    table = load_table_definitions().table("analytics", "sales_trends")
    assert tuple(frame.columns) == table.column_names == tr.COLUMNS
    assert [f.dataType.simpleString() for f in frame.schema.fields] == [
        "date", "string", "decimal(18,2)", "bigint", "bigint", "decimal(18,2)",
        "decimal(18,2)", "bigint", "bigint"]


def test_a_range_that_ends_before_it_starts_is_refused(spark):
    lines = spark.createDataFrame([], SCHEMA)
    with pytest.raises(ValueError, match="before the first"):
        tr.sales_trends(lines, D(2011, 1, 2), D(2011, 1, 1))
