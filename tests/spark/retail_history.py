"""Sales lines for the ML jobs' tests: tiny hand-made frames and the real sample days.

Both have the columns and types of online_retail.sales_line_items (warehouse/migrations/V001),
the frame the derived-dataset framework hands the jobs.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.online_retail import transforms as retail

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DAYS = REPO / "sample_data" / "online_retail"

LINE_SCHEMA = (
    "invoice_no string, stock_code string, description string, quantity int, "
    "unit_price decimal(12,3), invoice_ts timestamp, order_date date, customer_id string, "
    "country string, is_cancellation boolean, line_revenue decimal(18,3), run_id string"
)


def line(invoice: str, customer: str | None, day: date, stock: str = "85123A",
         quantity: int = 1, price: str = "1.00") -> tuple[object, ...]:
    """One sales_line_items row; a cancellation when the invoice starts with "C"."""
    unit = Decimal(price)
    return (invoice, stock, "ITEM", quantity, unit, datetime.combine(day, time(10, 0)), day,
            customer, "United Kingdom", invoice.startswith("C"), unit * quantity, "run")


def lines(spark: SparkSession, rows: list[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(rows, LINE_SCHEMA)


def sample_lines(spark: SparkSession) -> DataFrame:
    """The accepted lines of the three real sample days (2010-12-01..03), parsed by the
    online_retail job's own transforms (exact duplicate lines kept once, as the job does)."""
    header = ",".join(retail.HEADER)
    files = sorted(str(p) for p in SAMPLE_DAYS.glob("*.csv"))
    text = spark.read.text(files).where(F.col("value") != header).dropDuplicates(["value"])
    parsed = retail.parse(text).where(F.col("_reason").isNull())
    return parsed.select(*retail.TYPED_COLUMNS, F.lit("sample").alias("run_id"))
