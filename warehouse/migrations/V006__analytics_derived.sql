-- The derived datasets of issue 13: computed from the curated history of online_retail, not
-- from raw files. Column order is the order the Spark jobs write their parquet in:
-- COPY ... FORMAT AS PARQUET maps columns by position.
-- DISTSTYLE/DISTKEY/SORTKEY/ENCODE are Redshift physical design; everything else is portable
-- to PostgreSQL 15 (the local runtime strips those clauses).
-- IF NOT EXISTS: two loads racing on a fresh warehouse both apply this file safely.
--
-- Lengths as the upstream tables (V001): customer_id varchar(16), stock_code varchar(32),
-- country varchar(64) (byte lengths: Redshift's varchar(n) counts bytes). Money is
-- decimal(18,2); counts bigint; scores and averages double precision.
-- A run replaces its as_of day (replace_by as_of_date / order_date).

CREATE SCHEMA IF NOT EXISTS analytics;

-- One row per customer and as_of day: the customer's RFM features and its segment.
CREATE TABLE IF NOT EXISTS analytics.customer_segments (
    as_of_date    date           ENCODE raw,
    customer_id   varchar(16)    ENCODE zstd,
    segment_id    integer        ENCODE az64,
    segment_name  varchar(32)    ENCODE bytedict,
    recency_days  integer        ENCODE az64,
    frequency     bigint         ENCODE az64,
    monetary      decimal(18,2)  ENCODE az64
)
DISTSTYLE KEY
DISTKEY (customer_id)
SORTKEY (as_of_date, segment_id);

-- One row per segment and as_of day (a handful of rows: DISTSTYLE ALL).
CREATE TABLE IF NOT EXISTS analytics.segment_profiles (
    as_of_date        date              ENCODE raw,
    segment_id        integer           ENCODE az64,
    segment_name      varchar(32)       ENCODE zstd,
    customers         bigint            ENCODE az64,
    avg_recency_days  double precision,
    avg_frequency     double precision,
    avg_monetary      decimal(18,2)     ENCODE az64,
    silhouette        double precision
)
DISTSTYLE ALL
SORTKEY (as_of_date, segment_id);

-- One row per customer and as_of day: history and the next 90 days' predicted revenue.
CREATE TABLE IF NOT EXISTS analytics.customer_value (
    as_of_date             date           ENCODE raw,
    customer_id            varchar(16)    ENCODE zstd,
    historical_revenue     decimal(18,2)  ENCODE az64,
    orders                 bigint         ENCODE az64,
    predicted_90d_revenue  decimal(18,2)  ENCODE az64
)
DISTSTYLE KEY
DISTKEY (customer_id)
SORTKEY (as_of_date);

-- The top products per customer and as_of day (rank 1 is the best).
CREATE TABLE IF NOT EXISTS analytics.product_recommendations (
    as_of_date   date              ENCODE raw,
    customer_id  varchar(16)       ENCODE zstd,
    rank         integer           ENCODE az64,
    stock_code   varchar(32)       ENCODE zstd,
    score        double precision
)
DISTSTYLE KEY
DISTKEY (customer_id)
SORTKEY (as_of_date, customer_id);

-- One row per day and country, and per day for 'ALL' countries: the day's purchases and
-- their sums over the last 7 and 30 calendar days (the day included; a day without sales
-- counts as zero).
CREATE TABLE IF NOT EXISTS analytics.sales_trends (
    order_date   date           ENCODE raw,
    country      varchar(64)    ENCODE zstd,
    revenue      decimal(18,2)  ENCODE az64,
    orders       bigint         ENCODE az64,
    customers    bigint         ENCODE az64,
    revenue_7d   decimal(18,2)  ENCODE az64,
    revenue_30d  decimal(18,2)  ENCODE az64,
    orders_7d    bigint         ENCODE az64,
    orders_30d   bigint         ENCODE az64
)
DISTSTYLE ALL
SORTKEY (order_date, country);
