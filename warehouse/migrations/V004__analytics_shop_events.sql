-- The shop_events tables (REES46 e-commerce clickstream, one CSV of UTC events a day). Column
-- order is the order the Spark job writes its parquet in: COPY ... FORMAT AS PARQUET maps
-- columns by position. Timestamps are UTC; event_date is the UTC day of the file (the run's
-- partition), which every table carries so a load replaces exactly its day (replace_by).
-- DISTSTYLE/DISTKEY/SORTKEY/ENCODE are Redshift physical design; everything else is
-- portable to PostgreSQL 15 (the local runtime strips those clauses).
-- IF NOT EXISTS: two loads racing on a fresh warehouse both apply this file safely.
--
-- VARCHAR lengths are bytes. In the real sample (17,435 events of 2019-10-01) the longest
-- category_code has 38 bytes (three levels at most, lowercase and "_"), the longest brand 16,
-- every user_session is a 36-character UUID and event types are view/cart/purchase. Ids are
-- BIGINT: REES46 category ids are 19-digit numbers (about 2.05e18 to 2.18e18, within BIGINT's
-- 9.22e18); product and user ids have 7 to 9 digits. Prices have two decimals (at most
-- 2,574.07 there): decimal(12,2), and the job refuses a price with more decimals instead of
-- rounding it. A longer or larger value is quarantined by the job with its reason.

CREATE SCHEMA IF NOT EXISTS analytics;

-- One row per accepted event. Distributed on the session: the funnel and abandonment
-- questions group by session, so a session's events stay on one slice. Sorted by day then
-- time: loads delete a day, queries filter on time ranges.
CREATE TABLE IF NOT EXISTS analytics.shop_events (
    event_ts      timestamp      ENCODE az64,
    event_date    date           ENCODE raw,
    -- view, cart or purchase (any other type is quarantined with the reason)
    event_type    varchar(16)    ENCODE bytedict,
    product_id    bigint         ENCODE az64,
    category_id   bigint         ENCODE az64,
    -- dotted path such as "electronics.smartphone"; NULL when the source left it empty
    category_code varchar(256)   ENCODE zstd,
    -- NULL when the source left it empty
    brand         varchar(128)   ENCODE zstd,
    price         decimal(12,2)  ENCODE az64,
    user_id       bigint         ENCODE az64,
    -- the shop's session id (a UUID in the real data); never NULL: an event without a
    -- session cannot be attributed to a funnel and is quarantined
    user_session  varchar(64)    ENCODE zstd,
    run_id        varchar(128)   ENCODE zstd
)
DISTSTYLE KEY
DISTKEY (user_session)
SORTKEY (event_date, event_ts);

-- One row per UTC day: how many sessions (distinct user_session with an accepted event that
-- day) had at least one view, cart, purchase. A session that spans midnight counts on each day
-- it has events. sessions_purchased includes sessions that purchased without a cart event that
-- day (the source's sessions start before its window, or buy directly). One row a day: a copy
-- on every node.
CREATE TABLE IF NOT EXISTS analytics.session_funnel (
    event_date          date          ENCODE raw,
    sessions            bigint        ENCODE az64,
    sessions_viewed     bigint        ENCODE az64,
    sessions_carted     bigint        ENCODE az64,
    sessions_purchased  bigint        ENCODE az64,
    run_id              varchar(128)  ENCODE zstd
)
DISTSTYLE ALL
SORTKEY (event_date);

-- One row per UTC day and category of a carted item: category is the top level of the carted
-- product's category_code (the text before its first "."), 'unknown' when it has none. A
-- session that carts items of several categories counts once in each. Of the sessions_with_cart
-- sessions, sessions_with_purchase had at least one purchase (of any item) in the session that
-- day and abandoned_sessions had none: sessions_with_cart = sessions_with_purchase +
-- abandoned_sessions. abandonment_rate = abandoned_sessions / sessions_with_cart rounded half
-- up to 4 decimals (0 to 1; a row exists only for a category with a cart, so the divisor is at
-- least 1). Purchases in sessions without a cart event are not in this table (see
-- session_funnel). category has the length of category_code, so any accepted code fits.
CREATE TABLE IF NOT EXISTS analytics.cart_abandonment (
    event_date              date          ENCODE raw,
    category                varchar(256)  ENCODE zstd,
    sessions_with_cart      bigint        ENCODE az64,
    sessions_with_purchase  bigint        ENCODE az64,
    abandoned_sessions      bigint        ENCODE az64,
    abandonment_rate        decimal(5,4)  ENCODE az64,
    run_id                  varchar(128)  ENCODE zstd
)
DISTSTYLE ALL
SORTKEY (event_date, category);
