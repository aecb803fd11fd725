-- The online_retail tables. Column order is the order the Spark job writes its parquet in:
-- COPY ... FORMAT AS PARQUET maps columns by position.
-- DISTSTYLE/DISTKEY/SORTKEY/ENCODE are Redshift physical design; everything else is
-- portable to PostgreSQL 15 (the local runtime strips those clauses).
-- IF NOT EXISTS: two loads racing on a fresh warehouse both apply this file safely.

CREATE SCHEMA IF NOT EXISTS analytics;

-- One row per purchase line; days are replaced as a whole (replace_by order_date).
CREATE TABLE IF NOT EXISTS analytics.sales_line_items (
    invoice_no      varchar(20)    ENCODE zstd,
    stock_code      varchar(32)    ENCODE zstd,
    description     varchar(256)   ENCODE zstd,
    quantity        integer        ENCODE az64,
    unit_price      decimal(12,3)  ENCODE az64,
    invoice_ts      timestamp      ENCODE az64,
    order_date      date           ENCODE raw,
    customer_id     varchar(16)    ENCODE zstd,
    country         varchar(64)    ENCODE zstd,
    is_cancellation boolean,
    line_revenue    decimal(18,3)  ENCODE az64,
    run_id          varchar(128)   ENCODE zstd
)
DISTSTYLE KEY
DISTKEY (customer_id)
SORTKEY (order_date);

-- One row per customer and trading day (merge keys order_date, customer_id).
CREATE TABLE IF NOT EXISTS analytics.customer_daily_sales (
    order_date        date           ENCODE raw,
    customer_id       varchar(16)    ENCODE zstd,
    orders            bigint         ENCODE az64,
    units             bigint         ENCODE az64,
    revenue           decimal(14,2)  ENCODE az64,
    returned_value    decimal(14,2)  ENCODE az64,
    first_purchase_ts timestamp      ENCODE az64,
    last_purchase_ts  timestamp      ENCODE az64,
    run_id            varchar(128)   ENCODE zstd
)
DISTSTYLE KEY
DISTKEY (customer_id)
SORTKEY (order_date, customer_id);
