"""The online_retail job's outputs computed by DuckDB: the reference the bench measures against.

Written from the job's output rules (docs/architecture.md, datasets/online_retail.dqdl and the
warehouse tables), not from its code: typed fields (blank is NULL, values that do not parse are
NULL), the job's reasons to refuse a line, and `sales_line_items` / `customer_daily_sales` as
zstd parquet. With `--rules` it also does what the job does around them: measures every rule of
datasets/online_retail.dqdl over every data line, keeps exact duplicates once, and sends lines to
quarantine with the first reason (the job's own, another day, a value a table refuses, a failing
row-level rule). bench_vs_duckdb.py checks its tables equal the job's before timing anything.

Exact duplicates are judged on the parsed fields, not the line's text (DuckDB's CSV reader
gives no raw line); on the generated bench files the two are the same.

usage: python bench/duckdb_retail.py --input FILE --partition YYYY-MM-DD --out DIR [--rules]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

COUNTRIES = (
    "United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium",
    "Switzerland", "Portugal", "Australia", "Norway", "Italy", "Channel Islands", "Finland",
    "Cyprus", "Sweden", "Unspecified", "Austria", "Denmark", "Japan", "Poland", "Israel", "USA",
    "Hong Kong", "Singapore", "Iceland", "Canada", "Greece", "Malta", "United Arab Emirates",
    "European Community", "RSA", "Lebanon", "Lithuania", "Brazil", "Czech Republic", "Bahrain",
    "Saudi Arabia")
FIELDS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country")

TYPED = """
CREATE TEMP TABLE typed AS
SELECT *,
       starts_with(invoice_no, 'C') AS is_cancellation,
       TRY_CAST(CAST(quantity AS DECIMAL(10,0)) * unit_price AS DECIMAL(18,3)) AS line_revenue,
       CAST(invoice_ts AS DATE) AS order_date
FROM (
  SELECT NULLIF(trim(InvoiceNo), '') AS invoice_no,
         NULLIF(trim(StockCode), '') AS stock_code,
         CASE WHEN trim(Description) <> '' THEN Description END AS description,
         TRY_CAST(NULLIF(trim(Quantity), '') AS INTEGER) AS quantity,
         TRY_CAST(NULLIF(trim(UnitPrice), '') AS DECIMAL(12,3)) AS unit_price,
         regexp_matches(NULLIF(trim(UnitPrice), ''), '\\.[0-9]{3}0*[1-9]') AS price_too_precise,
         try_strptime(NULLIF(trim(InvoiceDate), ''), '%Y-%m-%d %H:%M:%S') AS invoice_ts,
         regexp_replace(NULLIF(trim(CustomerID), ''), '\\.0+$', '') AS customer_id,
         NULLIF(trim(Country), '') AS country,
         InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country
  FROM read_csv($input, header = true, delim = ',', quote = '"', escape = '"',
                columns = {COLUMNS}, auto_detect = false, strict_mode = true)
)
"""

JOB_REASON = """
CASE WHEN invoice_no IS NULL THEN 'missing invoice number'
     WHEN stock_code IS NULL THEN 'missing stock code'
     WHEN quantity IS NULL THEN 'unparseable quantity'
     WHEN unit_price IS NULL THEN 'unparseable unit price'
     WHEN price_too_precise THEN 'unit price has more than 3 decimals'
     WHEN unit_price < 0 THEN 'negative unit price'
     WHEN invoice_ts IS NULL THEN 'unparseable invoice date'
     WHEN line_revenue IS NULL THEN 'line revenue out of range'
END
"""

# Lines another day's, values the tables refuse (VARCHAR lengths are bytes), failing row-level
# rules of Rules (a NULL value passes a ColumnValues check, as in DQDL).
OTHER_REASONS = """
CASE WHEN order_date <> CAST($day AS DATE) THEN 'another day'
     WHEN octet_length(encode(invoice_no)) > 20 OR octet_length(encode(stock_code)) > 32
       OR octet_length(encode(description)) > 256 OR octet_length(encode(customer_id)) > 16
       OR octet_length(encode(country)) > 64 THEN 'too long for its column'
     WHEN country IS NULL THEN 'IsComplete "country"'
     WHEN NOT regexp_full_match(invoice_no, '[CA]?[0-9]{6}') THEN 'invoice_no matches'
     WHEN NOT regexp_full_match(stock_code, '[A-Za-z0-9_ ]{1,12}') THEN 'stock_code matches'
     WHEN quantity = 0 THEN 'quantity != 0'
     WHEN country NOT IN (SELECT unnest($countries)) THEN 'country in [...]'
     WHEN invoice_ts < CAST($reference AS TIMESTAMP) - INTERVAL 24 HOURS THEN 'DataFreshness'
     WHEN invoice_ts >= CAST($reference AS TIMESTAMP) THEN 'invoice_ts < now()'
END
"""

RULE_METRICS = """
SELECT count(*) AS row_count,
       avg(CASE WHEN invoice_no IS NOT NULL THEN 1.0 ELSE 0.0 END) AS invoice_no_complete,
       avg(CASE WHEN stock_code IS NOT NULL THEN 1.0 ELSE 0.0 END) AS stock_code_complete,
       avg(CASE WHEN quantity IS NOT NULL THEN 1.0 ELSE 0.0 END) AS quantity_complete,
       avg(CASE WHEN unit_price IS NOT NULL THEN 1.0 ELSE 0.0 END) AS unit_price_complete,
       avg(CASE WHEN invoice_ts IS NOT NULL THEN 1.0 ELSE 0.0 END) AS invoice_ts_complete,
       avg(CASE WHEN country IS NOT NULL THEN 1.0 ELSE 0.0 END) AS country_complete,
       avg(CASE WHEN customer_id IS NOT NULL THEN 1.0 ELSE 0.0 END) AS customer_id_complete,
       avg(CASE WHEN description IS NOT NULL THEN 1.0 ELSE 0.0 END) AS description_complete,
       avg(CASE WHEN regexp_full_match(invoice_no, '[CA]?[0-9]{6}') THEN 1.0 ELSE 0.0 END)
         AS invoice_no_matches,
       avg(CASE WHEN regexp_full_match(stock_code, '[A-Za-z0-9_ ]{1,12}') THEN 1.0 ELSE 0.0 END)
         AS stock_code_matches,
       avg(CASE WHEN quantity <> 0 THEN 1.0 ELSE 0.0 END) AS quantity_nonzero,
       avg(CASE WHEN country IN (SELECT unnest($countries)) THEN 1.0 ELSE 0.0 END)
         AS country_known,
       avg(CASE WHEN invoice_ts >= CAST($reference AS TIMESTAMP) - INTERVAL 24 HOURS
                THEN 1.0 ELSE 0.0 END) AS freshness,
       avg(CASE WHEN invoice_ts < CAST($reference AS TIMESTAMP) THEN 1.0 ELSE 0.0 END)
         AS before_now,
       avg(CASE WHEN unit_price >= 0 THEN 1.0 ELSE 0.0 END) AS price_not_negative,
       avg(CASE WHEN customer_id IS NOT NULL
                THEN CASE WHEN unit_price = 0 THEN 1.0 ELSE 0.0 END END) AS zero_price_share
FROM typed
"""

UNIQUENESS = """
SELECT sum(n) FILTER (WHERE n = 1) / sum(n) FROM (
  SELECT count(*) AS n FROM typed GROUP BY invoice_no, stock_code, description, quantity,
                                           invoice_ts, unit_price, customer_id, country)
"""

MIXED_CUSTOMERS = """
SELECT count(*) FROM (
  SELECT invoice_no FROM typed WHERE invoice_no IS NOT NULL GROUP BY invoice_no
  HAVING count(DISTINCT customer_id) > 1
      OR (count(customer_id) > 0 AND count(customer_id) < count(*)))
"""

LINE_ITEMS = """
COPY (SELECT invoice_no, stock_code, description, quantity, unit_price, invoice_ts, order_date,
             customer_id, country, is_cancellation, line_revenue, $run_id AS run_id
      FROM accepted) TO '{path}' (FORMAT parquet, COMPRESSION zstd)
"""

DAILY = """
COPY (SELECT order_date, customer_id,
             CAST(count(DISTINCT invoice_no) FILTER (WHERE NOT is_cancellation) AS BIGINT)
               AS orders,
             CAST(coalesce(sum(quantity) FILTER (WHERE NOT is_cancellation), 0) AS BIGINT)
               AS units,
             CAST(round(coalesce(sum(line_revenue) FILTER (WHERE NOT is_cancellation), 0), 2)
               AS DECIMAL(14,2)) AS revenue,
             CAST(round(abs(coalesce(sum(line_revenue) FILTER (WHERE is_cancellation), 0)), 2)
               AS DECIMAL(14,2)) AS returned_value,
             min(invoice_ts) FILTER (WHERE NOT is_cancellation) AS first_purchase_ts,
             max(invoice_ts) FILTER (WHERE NOT is_cancellation) AS last_purchase_ts,
             $run_id AS run_id
      FROM accepted WHERE customer_id IS NOT NULL GROUP BY order_date, customer_id)
TO '{path}' (FORMAT parquet, COMPRESSION zstd)
"""


def run(input_path: Path, day: str, out: Path, rules: bool, run_id: str = "duckdb") -> dict:
    """Writes out/sales_line_items.parquet and out/customer_daily_sales.parquet (and, with
    rules, out/quarantine.parquet); returns the line counts and, with rules, the rule metrics."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in FIELDS) + "}"
    con.execute(TYPED.replace("{COLUMNS}", columns), {"input": str(input_path)})
    # The rules' now() is the end of the partition day (quality.freshness_reference).
    params = {"day": day, "reference": f"{day} 00:00:00", "countries": list(COUNTRIES)}
    con.execute("SELECT CAST(CAST($day AS DATE) + INTERVAL 1 DAY AS VARCHAR)", {"day": day})
    params["reference"] = con.fetchone()[0]
    figures: dict = {"lines": con.execute("SELECT count(*) FROM typed").fetchone()[0]}
    if rules:
        con.execute(RULE_METRICS, {k: params[k] for k in ("reference", "countries")})
        names = [d[0] for d in con.description]
        figures["metrics"] = {n: None if v is None else float(v)
                              for n, v in zip(names, con.fetchone(), strict=True)}
        figures["metrics"]["uniqueness"] = float(con.execute(UNIQUENESS).fetchone()[0])
        figures["metrics"]["mixed_customer_invoices"] = con.execute(MIXED_CUSTOMERS).fetchone()[0]
        reason = f"coalesce({JOB_REASON}, {OTHER_REASONS})"
    else:
        reason, params = JOB_REASON, {}
    con.execute(f"CREATE TEMP TABLE judged AS SELECT *, {reason} AS reason "
                f"FROM (SELECT DISTINCT * FROM typed)", params)
    con.execute("CREATE TEMP VIEW accepted AS SELECT * FROM judged WHERE reason IS NULL")
    if rules:
        con.execute(f"COPY (SELECT {', '.join(FIELDS)}, reason FROM judged WHERE reason IS NOT "
                    f"NULL) TO '{out / 'quarantine.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    for sql, table in ((LINE_ITEMS, "sales_line_items"), (DAILY, "customer_daily_sales")):
        con.execute(sql.replace("{path}", str(out / f"{table}.parquet")), {"run_id": run_id})
    figures["distinct"] = con.execute("SELECT count(*) FROM judged").fetchone()[0]
    figures["written"] = con.execute("SELECT count(*) FROM accepted").fetchone()[0]
    figures["quarantined"] = figures["distinct"] - figures["written"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--partition", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rules", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    figures = run(args.input, args.partition, args.out, args.rules)
    figures["seconds"] = round(time.monotonic() - started, 3)
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
