-- The web_logs tables (Apache/Nginx access logs, one server-local day a file). Column order is
-- the order the Spark job writes its parquet in: COPY ... FORMAT AS PARQUET maps columns by
-- position. Timestamps are UTC; log_date is the server-local day of the file (the run's
-- partition), which every table carries so a load replaces exactly its day (replace_by).
-- DISTSTYLE/DISTKEY/SORTKEY/ENCODE are Redshift physical design; everything else is
-- portable to PostgreSQL 15 (the local runtime strips those clauses).
-- IF NOT EXISTS: two loads racing on a fresh warehouse both apply this file safely.
--
-- VARCHAR lengths are bytes. The fields hold what the server logged (Apache's \" and \xhh
-- escapes included). Apache refuses a request line over 8190 bytes (LimitRequestLine) and a
-- header over 8190 bytes (LimitRequestFieldSize), so a path or query it served fits 8192; the
-- longest seen in the real May 2015 log are a 608-byte request line, an 807-byte referrer and
-- a 294-byte user agent. A longer value is quarantined by the job with its reason.

CREATE SCHEMA IF NOT EXISTS analytics;

-- One row per request. Requests spread evenly: by client would pile a crawler's hits on one
-- slice. Sorted by day then time: loads delete a day, queries filter on time ranges.
CREATE TABLE IF NOT EXISTS analytics.web_requests (
    request_ts     timestamp      ENCODE az64,
    log_date       date           ENCODE raw,
    -- An IPv4 or IPv6 address (45 characters at most, plus an IPv6 zone such as %eth0).
    client_ip      varchar(64)    ENCODE zstd,
    -- NULL when the request line was not "METHOD target [protocol]" (a TLS handshake sent to
    -- port 80, "-" for a connection closed before a request): the server answered 4xx.
    method         varchar(32)    ENCODE zstd,
    path           varchar(8192)  ENCODE zstd,
    -- The text after the first "?" of the target ('' for a bare "?"), NULL without one.
    query          varchar(8192)  ENCODE zstd,
    -- NULL for an HTTP/0.9 request line (no protocol).
    protocol       varchar(16)    ENCODE zstd,
    status         smallint       ENCODE az64,
    -- NULL when the server logged "-" (no body sent).
    response_bytes bigint         ENCODE az64,
    referrer       varchar(4096)  ENCODE zstd,
    user_agent     varchar(2048)  ENCODE zstd,
    is_bot         boolean,
    run_id         varchar(128)   ENCODE zstd
)
DISTSTYLE EVEN
SORTKEY (log_date, request_ts);

-- One row per server-local day and UTC hour. An hour can hold requests of two local days
-- when the offset is not a whole number of hours (+0530): each day has its own row, so sum
-- over log_date for an hour's total. A few dozen rows a day: a copy on every node.
CREATE TABLE IF NOT EXISTS analytics.web_traffic_hourly (
    hour_ts          timestamp    ENCODE az64,
    log_date         date         ENCODE raw,
    requests         bigint       ENCODE az64,
    -- Sum of the sizes logged (a "-" counts as none).
    response_bytes   bigint       ENCODE az64,
    distinct_clients bigint       ENCODE az64,
    status_2xx       bigint       ENCODE az64,
    status_3xx       bigint       ENCODE az64,
    status_4xx       bigint       ENCODE az64,
    status_5xx       bigint       ENCODE az64,
    bot_requests     bigint       ENCODE az64,
    run_id           varchar(128) ENCODE zstd
)
DISTSTYLE ALL
SORTKEY (log_date, hour_ts);

-- One row per server-local day, status (>= 400) and path (NULL: request lines that were not
-- requests). Scanners can make thousands of distinct 404 paths a day: let Redshift choose.
CREATE TABLE IF NOT EXISTS analytics.web_error_paths (
    log_date   date          ENCODE raw,
    status     smallint      ENCODE az64,
    path       varchar(8192) ENCODE zstd,
    requests   bigint        ENCODE az64,
    first_seen timestamp     ENCODE az64,
    last_seen  timestamp     ENCODE az64,
    run_id     varchar(128)  ENCODE zstd
)
DISTSTYLE AUTO
SORTKEY (log_date, status);
