"""Daily sales per country and for 'ALL' countries, with rolling sums over the last 7 and 30
calendar days (the day included), from online_retail.sales_line_items.

Purchases are the lines of invoices that are not cancellations (as customer_daily_sales
counts them): revenue is their line revenue, orders their distinct invoices, customers their
distinct customer ids. The windows are ranges of calendar days, not of rows: a day without
sales counts as zero and never stretches a window back in time.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

ALL_COUNTRIES = "ALL"
WINDOWS = (7, 30)
COLUMNS = ("order_date", "country", "revenue", "orders", "customers", "revenue_7d",
           "revenue_30d", "orders_7d", "orders_30d")
INPUT_COLUMNS = ("invoice_no", "order_date", "customer_id", "country", "is_cancellation",
                 "line_revenue")


def _money(column: Column) -> Column:
    """An exact decimal sum rounded HALF_UP to cents, as analytics' decimal(18,2)."""
    return F.round(column, 2).cast("decimal(18,2)")


def daily_totals(lines: DataFrame) -> DataFrame:
    """(order_date, country, revenue, orders, customers) per day with purchases, per country
    and for ALL_COUNTRIES."""
    purchases = lines.select(*INPUT_COLUMNS).where(~F.col("is_cancellation"))
    figures = (F.sum("line_revenue").alias("revenue"),
               F.count_distinct("invoice_no").alias("orders"),
               F.count_distinct("customer_id").alias("customers"))
    by_country = purchases.groupBy("order_date", "country").agg(*figures)
    overall = purchases.groupBy("order_date").agg(*figures).select(
        "order_date", F.lit(ALL_COUNTRIES).alias("country"), "revenue", "orders", "customers")
    return by_country.unionByName(overall)


def _days(spark_frame: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """One row per calendar day from `first` to `last` (`order_date`)."""
    return spark_frame.sparkSession.range(1).select(F.explode(F.sequence(
        F.lit(first), F.lit(last), F.expr("INTERVAL 1 DAY"))).alias("order_date"))


def sales_trends(lines: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """analytics.sales_trends rows for every day from `first` to `last`: for ALL_COUNTRIES
    every day, for a country every day with a sale in its 30-day window. `lines` must hold
    the sales of at least the 29 days before `first` for the sums of the first days to be
    whole (the job reads them: the catalog's lookback)."""
    if last < first:
        raise ValueError(f"sales_trends: last day {last} is before the first {first}")
    totals = daily_totals(lines.where(F.col("order_date") <= F.lit(last)))
    start = first - dt.timedelta(days=max(WINDOWS) - 1)
    countries = totals.select("country").distinct().unionByName(
        lines.sparkSession.createDataFrame([(ALL_COUNTRIES,)], "country string")).distinct()
    grid = _days(lines, start, last).crossJoin(countries)
    dense = grid.join(totals, ["order_date", "country"], "left").select(
        "order_date", "country",
        F.coalesce("revenue", F.lit(0).cast("decimal(28,3)")).alias("revenue"),
        F.coalesce("orders", F.lit(0)).cast("bigint").alias("orders"),
        F.coalesce("customers", F.lit(0)).cast("bigint").alias("customers"),
        F.unix_date("order_date").alias("_day"))
    for days in WINDOWS:
        window = Window.partitionBy("country").orderBy("_day").rangeBetween(-(days - 1), 0)
        dense = dense.withColumn(f"revenue_{days}d", F.sum("revenue").over(window)) \
            .withColumn(f"orders_{days}d", F.sum("orders").over(window))
    in_range = (F.col("order_date") >= F.lit(first)) & (
        (F.col("country") == ALL_COUNTRIES) | (F.col("orders_30d") > 0)
        | (F.col("revenue_30d") != 0))
    return dense.where(in_range).select(
        "order_date", F.col("country").cast("string").alias("country"),
        _money(F.col("revenue")).alias("revenue"), "orders", "customers",
        _money(F.col("revenue_7d")).alias("revenue_7d"),
        _money(F.col("revenue_30d")).alias("revenue_30d"),
        F.col("orders_7d").cast("bigint").alias("orders_7d"),
        F.col("orders_30d").cast("bigint").alias("orders_30d"),
    ).select(*COLUMNS)
