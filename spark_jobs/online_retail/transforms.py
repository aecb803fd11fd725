"""Online Retail transformations: pure DataFrame -> DataFrame (no I/O, no session).

Input lines are the raw CSV text of one daily file (`value`, one line each, header removed).
Values that do not parse become NULL (ANSI-safe `try_*` functions), so the quality rules can
measure them and `rejection_reason` can say why a line is refused, instead of the job failing.
The names the job framework takes (spark_jobs.common.raw_job): `parse`, `TYPED_COLUMNS`,
`partition_reason`, `OUTPUTS`, `NULL_COUNT_COLUMNS`, `RANGE_COLUMNS` and `quarantine_rows`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.common.outputs import GroupedOutput, LineOutput, Output, RunId
from spark_jobs.common.raw_job import other_day_reason

HEADER = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country")
# Raw fields keep a prefix: Spark resolves names case-insensitively, so "Quantity" and the
# typed "quantity" could not live in one frame.
RAW_COLUMNS = tuple(f"raw_{name}" for name in HEADER)
EXTRA_FIELD = "_extra"  # the text of a ninth field, if a line has one
TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"
# RFC 4180 quoting: fields in double quotes, a quote inside doubled ("RECORD FRAME 7"" ...").
CSV_OPTIONS = {"sep": ",", "quote": '"', "escape": '"', "mode": "PERMISSIVE"}

TYPED_COLUMNS = ("invoice_no", "stock_code", "description", "quantity", "unit_price",
                 "invoice_ts", "order_date", "customer_id", "country", "is_cancellation",
                 "line_revenue")
LINE_ITEM_COLUMNS = (*TYPED_COLUMNS, "run_id")
CUSTOMER_DAILY_COLUMNS = ("order_date", "customer_id", "orders", "units", "revenue",
                          "returned_value", "first_purchase_ts", "last_purchase_ts", "run_id")
DAILY_KEYS = ("order_date", "customer_id")
# What metrics.json reports over every data line: null counts, min and max.
NULL_COUNT_COLUMNS = ("invoice_no", "stock_code", "description", "quantity", "unit_price",
                      "invoice_ts", "customer_id", "country")
RANGE_COLUMNS = ("quantity", "unit_price", "invoice_ts", "order_date", "line_revenue")
QUARANTINE_COLUMNS = (*HEADER, "_reason", "_source_line", "run_id")

# Why the job itself refuses a line (the error row-level DQDL rules add their own reasons).
MORE_FIELDS = "more fields than the header"
NO_INVOICE = "missing invoice number"
NO_STOCK_CODE = "missing stock code"
BAD_QUANTITY = "unparseable quantity"
BAD_PRICE = "unparseable unit price"
PRICE_TOO_PRECISE = "unit price has more than 3 decimals"
NEGATIVE_PRICE = "negative unit price"
BAD_TIMESTAMP = "unparseable invoice date"
REVENUE_OVERFLOW = "line revenue out of range"
JOB_REASONS = (MORE_FIELDS, NO_INVOICE, NO_STOCK_CODE, BAD_QUANTITY, BAD_PRICE,
               PRICE_TOO_PRECISE, NEGATIVE_PRICE, BAD_TIMESTAMP, REVENUE_OVERFLOW)


def _text(column: Column) -> Column:
    """Trimmed text, NULL when blank."""
    trimmed = F.trim(column)
    return F.when(trimmed != "", trimmed)


def split_fields(lines: DataFrame) -> DataFrame:
    """Adds RAW_COLUMNS and `_extra` (the raw CSV fields, as text) parsed from `value`."""
    ddl = ", ".join(f"`{c}` STRING" for c in (*RAW_COLUMNS, EXTRA_FIELD))
    parsed = F.from_csv(F.col("value"), ddl, CSV_OPTIONS).alias("_fields")
    return lines.withColumn("_fields", parsed).select(
        "*", *[F.col(f"_fields.`{c}`").alias(c) for c in (*RAW_COLUMNS, EXTRA_FIELD)]
    ).drop("_fields")


def type_fields(raw: DataFrame) -> DataFrame:
    """Adds the typed columns (TYPED_COLUMNS) to a frame holding RAW_COLUMNS."""
    quantity = _text(F.col("raw_Quantity")).try_cast("int")
    price_text = _text(F.col("raw_UnitPrice"))
    unit_price = price_text.try_cast("decimal(12,3)")
    invoice_ts = F.try_to_timestamp(_text(F.col("raw_InvoiceDate")), F.lit(TIMESTAMP_FORMAT))
    invoice_no = _text(F.col("raw_InvoiceNo"))
    description = F.when(F.trim(F.col("raw_Description")) != "", F.col("raw_Description"))
    revenue = (quantity.cast("decimal(10,0)") * unit_price).try_cast("decimal(18,3)")
    return raw.select(
        "*",
        invoice_no.alias("invoice_no"),
        _text(F.col("raw_StockCode")).alias("stock_code"),
        description.alias("description"),
        quantity.alias("quantity"),
        unit_price.alias("unit_price"),
        invoice_ts.alias("invoice_ts"),
        F.to_date(invoice_ts).alias("order_date"),
        # CustomerID arrives as a float ("17850.0"): the id is the integer text.
        F.regexp_replace(_text(F.col("raw_CustomerID")), r"\.0+$", "").alias("customer_id"),
        _text(F.col("raw_Country")).alias("country"),
        invoice_no.startswith("C").alias("is_cancellation"),
        revenue.alias("line_revenue"),
        # decimal(12,3) rounds a fourth decimal away: keep whether the text had one.
        price_text.rlike(r"\.[0-9]{3}0*[1-9]").alias("_price_too_precise"),
    )


def rejection_reason() -> Column:
    """Why the job refuses a typed line (NULL: the line is fine), first reason wins."""
    return (
        F.when(F.col(EXTRA_FIELD).isNotNull(), F.lit(MORE_FIELDS))
        .when(F.col("invoice_no").isNull(), F.lit(NO_INVOICE))
        .when(F.col("stock_code").isNull(), F.lit(NO_STOCK_CODE))
        .when(F.col("quantity").isNull(), F.lit(BAD_QUANTITY))
        # Missing, not a number, or too large for decimal(12,3).
        .when(F.col("unit_price").isNull(), F.lit(BAD_PRICE))
        .when(F.col("_price_too_precise"), F.lit(PRICE_TOO_PRECISE))
        .when(F.col("unit_price") < 0, F.lit(NEGATIVE_PRICE))
        .when(F.col("invoice_ts").isNull(), F.lit(BAD_TIMESTAMP))
        .when(F.col("line_revenue").isNull(), F.lit(REVENUE_OVERFLOW))
    )


def parse(lines: DataFrame) -> DataFrame:
    """The raw job's parse: its input's columns, the typed columns and `_reason` (the job's
    own). Not the raw fields: every later query of the job reads what parse returns, and
    they are needed only for the quarantine, which splits its few lines again
    (`quarantine_rows`); kept, they were a third of what each of those queries read."""
    typed = type_fields(split_fields(lines))
    return typed.select(*[F.col(f"`{c}`") for c in lines.columns], *TYPED_COLUMNS,
                        rejection_reason().alias("_reason"))


def partition_reason(partition: Column) -> Column:
    """Lines of another day than its partition (a date column): the load replaces the days
    its rows carry, so such a line would replace a day this run does not own."""
    return other_day_reason("order_date", "order_date", partition)


def sales_line_items(valid: DataFrame, run_id: RunId) -> DataFrame:
    """Accepted lines in the column order and types of analytics.sales_line_items."""
    return valid.select(*TYPED_COLUMNS, F.lit(run_id).alias("run_id"))


def customer_daily_totals(valid: DataFrame) -> DataFrame:
    """One row per (order_date, customer_id) over lines that have a customer id: the
    CUSTOMER_DAILY_COLUMNS but run_id, exact (not yet cast to the table's types).

    Purchases are lines of invoices not starting with "C"; returns are the "C" lines.
    """
    purchase = ~F.col("is_cancellation")
    purchase_value = F.sum(F.when(purchase, F.col("line_revenue")))
    return_value = F.sum(F.when(~purchase, F.col("line_revenue")))
    return (
        valid.where(F.col("customer_id").isNotNull())
        .groupBy(*DAILY_KEYS)
        .agg(
            F.count_distinct(F.when(purchase, F.col("invoice_no"))).alias("orders"),
            F.coalesce(F.sum(F.when(purchase, F.col("quantity"))), F.lit(0)).alias("units"),
            # round() on decimals is HALF_UP; the sum itself is exact.
            F.round(F.coalesce(purchase_value, F.lit(0)), 2).alias("revenue"),
            F.round(F.abs(F.coalesce(return_value, F.lit(0))), 2).alias("returned_value"),
            F.min(F.when(purchase, F.col("invoice_ts"))).alias("first_purchase_ts"),
            F.max(F.when(purchase, F.col("invoice_ts"))).alias("last_purchase_ts"),
        )
    )


def customer_daily_sales(valid: DataFrame, run_id: RunId) -> DataFrame:
    """customer_daily_totals in the column order and types of analytics.customer_daily_sales
    (the framework has quarantined the lines of any row whose totals would not fit)."""
    totals = customer_daily_totals(valid)
    return totals.select(
        *DAILY_KEYS,
        F.col("orders").cast("bigint").alias("orders"),
        F.col("units").cast("bigint").alias("units"),
        F.col("revenue").cast("decimal(14,2)").alias("revenue"),
        F.col("returned_value").cast("decimal(14,2)").alias("returned_value"),
        "first_purchase_ts", "last_purchase_ts",
        F.lit(run_id).alias("run_id"),
    )


def quarantine_rows(rejected: DataFrame, run_id: str) -> DataFrame:
    """Refused lines (`value`: their text): the raw fields as text under their header names,
    why, and where."""
    return split_fields(rejected).select(
        *[F.col(raw).alias(name) for raw, name in zip(RAW_COLUMNS, HEADER, strict=True)],
        F.col("_reason"),
        F.col("_source_line").cast("long").alias("_source_line"),
        F.lit(run_id).alias("run_id"),
    )


def has_customer() -> Column:
    """The lines that reach customer_daily_sales: guests' lines have no daily row."""
    return F.col("customer_id").isNotNull()


# The warehouse tables (schema analytics, warehouse/migrations) in the catalog's load order.
OUTPUTS: dict[str, Output] = {
    "sales_line_items": LineOutput(sales_line_items),
    "customer_daily_sales": GroupedOutput(customer_daily_sales, keys=DAILY_KEYS,
                                          totals=customer_daily_totals, lines=has_customer,
                                          day="order_date"),
}
