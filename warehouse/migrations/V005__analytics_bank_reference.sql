-- The Berka bank's reference tables (account.asc, client.asc, disp.asc, district.asc), each
-- refreshed whole from one snapshot file (load mode full_refresh). Column order is the order
-- the Spark job writes its parquet in: COPY ... FORMAT AS PARQUET maps columns by position.
-- DISTSTYLE/DISTKEY/SORTKEY/ENCODE are Redshift physical design; everything else is portable
-- to PostgreSQL 15 (the local runtime strips those clauses).
-- IF NOT EXISTS: two loads racing on a fresh warehouse both apply this file safely.
--
-- Every table carries snapshot_date (the extract's date, the raw key's partition): a load of
-- an older snapshot than the table holds changes nothing and fails as stale
-- (pipeline_core/load_sql.py), so a late or redelivered old file never rolls a table back.
--
-- Lengths from the real files (4,500 accounts, 5,369 clients and dispositions, 77 districts),
-- with headroom: ids have at most 5 digits (bigint, as bank_transactions.account_id, so joins
-- compare like types), district names at most 19 bytes, region names at most 15.
-- The tables are small (a few thousand rows): DISTSTYLE ALL puts a copy on every node, so
-- joining them to bank_transactions never moves the fact rows.

CREATE SCHEMA IF NOT EXISTS analytics;

-- One row per account (berka.pdf, relation account).
CREATE TABLE IF NOT EXISTS analytics.bank_accounts (
    account_id          bigint        NOT NULL ENCODE az64,
    -- the branch's district (analytics.bank_districts)
    district_id         integer       ENCODE az64,
    -- how often statements are issued: monthly, weekly, after transaction
    statement_frequency varchar(24)   ENCODE bytedict,
    opened_date         date          ENCODE az64,
    snapshot_date       date          NOT NULL ENCODE raw,
    run_id              varchar(128)  ENCODE zstd
)
DISTSTYLE ALL
SORTKEY (account_id);

-- One row per client; birth date and sex decoded from the source's birth_number (YYMMDD for
-- men, YYMM+50DD for women).
CREATE TABLE IF NOT EXISTS analytics.bank_clients (
    client_id     bigint        NOT NULL ENCODE az64,
    birth_date    date          ENCODE az64,
    -- female or male
    sex           varchar(8)    ENCODE bytedict,
    district_id   integer       ENCODE az64,
    snapshot_date date          NOT NULL ENCODE raw,
    run_id        varchar(128)  ENCODE zstd
)
DISTSTYLE ALL
SORTKEY (client_id);

-- Which client may use which account (berka.pdf, relation disposition).
CREATE TABLE IF NOT EXISTS analytics.bank_dispositions (
    disp_id          bigint        NOT NULL ENCODE az64,
    client_id        bigint        ENCODE az64,
    account_id       bigint        ENCODE az64,
    -- owner or user (the source's OWNER and DISPONENT); only an owner may order payments
    disposition_type varchar(16)   ENCODE bytedict,
    snapshot_date    date          NOT NULL ENCODE raw,
    run_id           varchar(128)  ENCODE zstd
)
DISTSTYLE ALL
SORTKEY (account_id, client_id);

-- Demographics of the 77 districts (berka.pdf, relation demographic data, A1-A16). The
-- source writes an unknown figure as '?': NULL here.
CREATE TABLE IF NOT EXISTS analytics.bank_districts (
    district_id                   integer       NOT NULL ENCODE az64,  -- A1
    name                          varchar(64)   ENCODE zstd,           -- A2
    region                        varchar(64)   ENCODE bytedict,       -- A3
    inhabitants                   integer       ENCODE az64,           -- A4
    municipalities_under_500      integer       ENCODE az64,           -- A5: < 499 inhabitants
    municipalities_500_1999       integer       ENCODE az64,           -- A6
    municipalities_2000_9999      integer       ENCODE az64,           -- A7
    municipalities_over_10000     integer       ENCODE az64,           -- A8
    cities                        integer       ENCODE az64,           -- A9
    -- A10, in percent (one decimal in the source)
    urban_inhabitants_ratio       decimal(5,1)  ENCODE az64,
    average_salary                integer       ENCODE az64,           -- A11
    -- A12, A13, in percent (two decimals in the source)
    unemployment_rate_1995        decimal(5,2)  ENCODE az64,
    unemployment_rate_1996        decimal(5,2)  ENCODE az64,
    entrepreneurs_per_1000        integer       ENCODE az64,           -- A14
    crimes_1995                   integer       ENCODE az64,           -- A15
    crimes_1996                   integer       ENCODE az64,           -- A16
    snapshot_date                 date          NOT NULL ENCODE raw,
    run_id                        varchar(128)  ENCODE zstd
)
DISTSTYLE ALL
SORTKEY (district_id);
