"""What the three customer jobs share: purchase history per customer and model artifacts.

Rules over `online_retail.sales_line_items` (one row per invoice line):
- guests (NULL customer_id) are left out: nothing can be said about a person;
- a purchase is a line of an invoice that is not a cancellation ("C" invoices); cancellations
  carry negative quantities and so negative `line_revenue`;
- revenue is net: purchases plus cancellation lines, so a return lowers the customer's
  revenue in the window it was made in (it can go negative when a customer returns more than
  they bought in that window, e.g. goods bought before the history starts).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F


def known_lines(lines: DataFrame, after: date | None, until: date) -> DataFrame:
    """Lines of known customers with after < order_date <= until (`after` None: no floor)."""
    kept = lines.where(F.col("customer_id").isNotNull() & (F.col("order_date") <= F.lit(until)))
    return kept if after is None else kept.where(F.col("order_date") > F.lit(after))


def is_purchase() -> Column:
    return ~F.col("is_cancellation")


def money(column: Column) -> Column:
    """An exact sum rounded HALF_UP to cents, as the warehouse's decimal(18,2)."""
    return F.round(column, 2).cast("decimal(18,2)")


# A frame of a row per customer (4,339 customers in the real year) is cached and iterated
# over by the models (KMeans: an iteration per Spark job, for each k, and the silhouettes;
# the value model's boosting rounds): in a shuffle's 200 partitions that is 200 tasks a pass
# for a few rows each, which made customer_segments' run on the three sample days take over
# 15 minutes on a loaded 2-core machine (the e2e test's limit). A fixed few partitions instead
# (coalesce: no shuffle, the rows' order kept), the same on every machine, so a seed gives
# the same model locally and on EMR.
CUSTOMER_PARTITIONS = 4


def per_customer(frame: DataFrame) -> DataFrame:
    """`frame` (a row per customer) in CUSTOMER_PARTITIONS partitions."""
    return frame.coalesce(CUSTOMER_PARTITIONS)


def rfm(lines: DataFrame, as_of: date) -> DataFrame:
    """Per customer with at least one purchase up to as_of: recency_days (days from the last
    purchase day to as_of), frequency (distinct purchase invoices), monetary (net revenue,
    decimal(18,2)), tenure_days (days from the first purchase day to as_of).

    A customer whose only lines up to as_of are cancellations has no purchase and no row.
    """
    purchase_day = F.when(is_purchase(), F.col("order_date"))
    per_customer = (
        known_lines(lines, None, as_of)
        .groupBy("customer_id")
        .agg(
            F.max(purchase_day).alias("_last"),
            F.min(purchase_day).alias("_first"),
            F.count_distinct(F.when(is_purchase(), F.col("invoice_no"))).alias("frequency"),
            F.sum("line_revenue").alias("_net"),
        )
        .where(F.col("_last").isNotNull())
    )
    return per_customer.select(
        "customer_id",
        F.datediff(F.lit(as_of), F.col("_last")).alias("recency_days"),
        F.col("frequency").cast("bigint").alias("frequency"),
        money(F.col("_net")).alias("monetary"),
        F.datediff(F.lit(as_of), F.col("_first")).alias("tenure_days"),
    )


def net_revenue(lines: DataFrame, after: date, until: date) -> DataFrame:
    """customer_id, revenue (net, double) and orders (purchase invoices) in (after, until]."""
    return (
        known_lines(lines, after, until)
        .groupBy("customer_id")
        .agg(
            F.sum("line_revenue").cast("double").alias("revenue"),
            F.count_distinct(F.when(is_purchase(), F.col("invoice_no"))).alias("orders"),
        )
    )


def history_start(lines: DataFrame, until: date) -> date:
    """The first order day up to `until` (the start of a model's training range)."""
    first = lines.where(F.col("order_date") <= F.lit(until)).agg(F.min("order_date")).first()
    if first is None or first[0] is None:
        raise ValueError(f"no sales lines on or before {until}: nothing to train on")
    value: date = first[0]
    return value


def write_json(path: str, content: dict[str, Any]) -> None:
    """Writes one JSON document as a text file under the directory URI `path` (through Spark,
    so s3:// works on EMR as local paths do here)."""
    spark = SparkSession.active()
    text = json.dumps(content, sort_keys=True)
    spark.createDataFrame([(text,)], "value string").coalesce(1).write.mode(
        "overwrite").text(path)


def read_json(path: str) -> dict[str, Any]:
    rows = SparkSession.active().read.text(path).collect()
    if len(rows) != 1:
        raise ValueError(f"{path}: expected one JSON line, found {len(rows)}")
    content: dict[str, Any] = json.loads(rows[0][0])
    return content
