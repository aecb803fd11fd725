-- The bank_transactions tables (Berka bank, one JSON Lines file per booking day). Column order
-- is the order the Spark job writes its parquet in: COPY ... FORMAT AS PARQUET maps columns by
-- position. DISTSTYLE/DISTKEY/SORTKEY/ENCODE are Redshift physical design; everything else is
-- portable to PostgreSQL 15 (the local runtime strips those clauses).
-- IF NOT EXISTS: two loads racing on a fresh warehouse both apply this file safely.
--
-- Lengths from the 454 real days (1993-01-01 to 1994-03-30), with headroom: ids have at most
-- 7 digits, amounts at most 6 whole digits and 1 decimal, balances at most 6 whole digits
-- (some negative), banks are 2 letters, partner accounts at most 8 digits. Money is
-- decimal(14,2): the Czech crown has two decimals (haler), twelve whole digits leave room for
-- any account; the job refuses an amount with more than two decimals instead of rounding it.

CREATE SCHEMA IF NOT EXISTS analytics;

-- One row per booked transaction; days are replaced as a whole (replace_by txn_date).
-- Both tables are distributed on account_id: the daily summary and the usual questions
-- ("an account's history") join and group on it, so those joins stay node-local.
CREATE TABLE IF NOT EXISTS analytics.bank_transactions (
    trans_id        bigint         ENCODE az64,
    account_id      bigint         ENCODE az64,
    txn_date        date           ENCODE raw,
    -- credit (PRIJEM), debit (VYDAJ), cash_withdrawal (VYBER)
    direction       varchar(16)    ENCODE bytedict,
    -- English labels of the source's codes (berka.pdf); NULL when the source has none
    operation       varchar(40)    ENCODE bytedict,
    purpose         varchar(40)    ENCODE bytedict,
    amount          decimal(14,2)  ENCODE az64,
    -- amount for credits, minus amount for debits and cash withdrawals
    signed_amount   decimal(14,2)  ENCODE az64,
    balance         decimal(14,2)  ENCODE az64,
    partner_bank    varchar(8)     ENCODE zstd,
    partner_account varchar(20)    ENCODE zstd,
    run_id          varchar(128)   ENCODE zstd
)
DISTSTYLE KEY
DISTKEY (account_id)
SORTKEY (txn_date, account_id);

-- One row per account and booking day with at least one transaction.
CREATE TABLE IF NOT EXISTS analytics.account_daily_summary (
    txn_date        date           ENCODE raw,
    account_id      bigint         ENCODE az64,
    transactions    bigint         ENCODE az64,
    -- sum of credit amounts; debits: sum of debit and cash-withdrawal amounts (both >= 0)
    credits         decimal(18,2)  ENCODE az64,
    debits          decimal(18,2)  ENCODE az64,
    -- credits - debits
    net             decimal(18,2)  ENCODE az64,
    -- the balance after the day's last transaction (see spark_jobs/bank_transactions)
    closing_balance decimal(14,2)  ENCODE az64,
    run_id          varchar(128)   ENCODE zstd
)
DISTSTYLE KEY
DISTKEY (account_id)
SORTKEY (txn_date, account_id);
