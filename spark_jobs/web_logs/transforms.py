"""web_logs transformations: access-log lines -> typed requests -> the three tables (pure).

A line is Apache's/Nginx's common log format, optionally followed by the combined format's
quoted referrer and user agent:

    client ident user [dd/Mon/yyyy:HH:mm:ss +hhmm] "request line" status size ["ref" "agent"]

Fields keep the text the server logged (Apache's `\\"` and `\\xhh` escapes included); "-" is
NULL. The time is stored in UTC; `log_date` is the day in the line's own offset (the
server-local day, which the run's partition must be). A request line that is not "METHOD
target [HTTP/x.y]" (a TLS handshake sent to port 80, "-" for a connection closed before any
request) is a real hit the server answered with 4xx: it is kept with method, path, query and
protocol NULL; with a status under 400 it is a broken line and is refused.

Every pattern on a quoted field uses possessive quantifiers in the unrolled-loop form: Java's
regex engine recurses once per repetition of an alternation, so `((?:[^"\\\\]|\\\\.)*)` on a
user agent of a few thousand escapes overflows the executor's stack and kills the job.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.common.outputs import GroupedOutput, LineOutput, Output, RunId
from spark_jobs.common.raw_job import other_day_reason

# A quoted field: any run of characters but `"` and `\`, and backslash escapes (`\"`, `\\`).
_QUOTED = r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"'
# client, ident, user, [time], "request", status, size: the common log format.
_COMMON = r"^(\S++) (\S++) (\S++) \[([^\]]*+)\] " + _QUOTED + r" (\S++) (\S++)"
COMMON_LINE = _COMMON + "$"
# The combined format adds the referrer and the user agent, each quoted.
LOG_LINE = _COMMON + "(?: " + _QUOTED + " " + _QUOTED + ")?$"
_GROUPS = {"client": 1, "time": 4, "request": 5, "status": 6, "size": 7, "referrer": 8,
           "agent": 9}

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
TIME_TEXT = (rf"^[0-9]{{2}}/(?:{_MONTHS})/[0-9]{{4}}:[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}} "
             r"[+-][0-9]{4}$")
TIME_FORMAT = "dd/MMM/yyyy:HH:mm:ss Z"
# RFC 9110: a method is a token; the target has no space; HTTP/0.9 lines have no protocol.
REQUEST_LINE = r"^([!#$%&'*+.^_`|~0-9A-Za-z-]++) (\S++)(?: (HTTP/[0-9](?:\.[0-9])?))?$"


def _ip_patterns() -> tuple[str, str]:
    """(IPv4, IPv6 with an optional zone) as whole-value regexes, IPv6 after RFC 3986's
    IPv6address rule (every `::` form, an IPv4 tail) and RFC 6874's zone (`%eth0`)."""
    octet = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    ipv4 = rf"{octet}(?:\.{octet}){{3}}"
    h16 = "[0-9A-Fa-f]{1,4}"
    ls32 = f"(?:{h16}:{h16}|{ipv4})"
    forms = [f"(?:{h16}:){{6}}{ls32}", f"::(?:{h16}:){{5}}{ls32}"]
    for before, after in ((0, 4), (1, 3), (2, 2), (3, 1), (4, 0)):
        head = f"(?:(?:{h16}:){{0,{before}}}{h16})?"
        forms.append(f"{head}::(?:{h16}:){{{after}}}{ls32}")
    forms.append(f"(?:(?:{h16}:){{0,5}}{h16})?::{h16}")
    forms.append(f"(?:(?:{h16}:){{0,6}}{h16})?::")
    return f"^{ipv4}$", f"^(?:{'|'.join(forms)})(?:%[0-9A-Za-z._~-]+)?$"


IPV4, IPV6 = _ip_patterns()

# is_bot: the user agent declares an automated client. Tokens, case-insensitive substrings:
# crawlers name themselves "...bot" (Googlebot, bingbot, AhrefsBot, Twitterbot...), "crawl",
# "spider" (Baiduspider, 360Spider), "slurp" (Yahoo), "archiver" (ia_archiver, archive.org);
# fetchers ("Feedfetcher-Google", "Digg Feed Fetcher"), feed pollers (UniversalFeedParser,
# FeedBurner), facebookexternalhit, Apache Nutch; HTTP libraries and tools (curl/, Wget/,
# Python-urllib, python-requests, libwww-perl, Go-http-client, Java/, Apache-HttpClient,
# Scrapy) and headless browsers (HeadlessChrome). A missing user agent is not a claim: false.
BOT_TOKENS = ("bot", "crawl", "spider", "slurp", "archiver", "fetcher", "feedparser",
              "feedburner", "facebookexternalhit", "nutch", "curl/", "wget/", "python-urllib",
              "python-requests", "libwww-perl", "go-http-client", "java/", "httpclient",
              "scrapy", "headless")
BOT_PATTERN = "(?i)(?:" + "|".join(re.escape(token) for token in BOT_TOKENS) + ")"

TYPED_COLUMNS = ("request_ts", "log_date", "client_ip", "method", "path", "query", "protocol",
                 "status", "response_bytes", "referrer", "user_agent", "is_bot")
NULL_COUNT_COLUMNS = ("request_ts", "client_ip", "method", "path", "query", "protocol", "status",
                      "response_bytes", "referrer", "user_agent")
RANGE_COLUMNS = ("request_ts", "status", "response_bytes")
REQUEST_COLUMNS = (*TYPED_COLUMNS, "run_id")
HOUR_KEYS = ("hour_ts", "log_date")
ERROR_KEYS = ("log_date", "status", "path")
HOURLY_COLUMNS = ("hour_ts", "log_date", "requests", "response_bytes", "distinct_clients",
                  "status_2xx", "status_3xx", "status_4xx", "status_5xx", "bot_requests",
                  "run_id")
ERROR_PATH_COLUMNS = ("log_date", "status", "path", "requests", "first_seen", "last_seen",
                      "run_id")

# Why a line is refused (each names the field; the value, cut to SHOWN characters, follows).
NOT_A_LOG_LINE = ("line is not in the common or combined log format "
                  '(client ident user [time] "request" status size)')
TRAILING_TEXT = ("the text after the response size is not the combined format's quoted "
                 "referrer and user agent")
SHOWN = 80


def _field(name: str) -> Column:
    return F.regexp_extract(F.col("value"), LOG_LINE, _GROUPS[name])


def _optional(text: Column) -> Column:
    """NULL for the log's "-" (and for a field the common format does not have)."""
    return F.when(~text.isin("-", ""), text)


def _shown(prefix: str, value: Column, suffix: str) -> Column:
    return F.concat(F.lit(prefix + " '"), F.substring(value, 1, SHOWN), F.lit("' " + suffix))


def _fields(lines: DataFrame) -> DataFrame:
    """The raw fields of each line (`_f_*`, '' when the line does not match LOG_LINE)."""
    return lines.select("*", *[_field(name).alias(f"_f_{name}") for name in _GROUPS],
                        F.col("value").rlike(LOG_LINE).alias("_f_line"),
                        F.col("value").rlike(_COMMON).alias("_f_head"))


def _typed(fields: DataFrame) -> DataFrame:
    """The typed columns (and the checks the reasons need) from `_fields`."""
    time_text = F.col("_f_time")
    time_ok = time_text.rlike(TIME_TEXT)
    request_ts = F.when(time_ok, F.try_to_timestamp(time_text, F.lit(TIME_FORMAT)))
    request = F.regexp_extract(F.col("_f_request"), REQUEST_LINE, 0) != ""
    target = F.when(request, F.regexp_extract(F.col("_f_request"), REQUEST_LINE, 2))
    status_ok = F.col("_f_status").rlike("^[1-5][0-9]{2}$")
    size = F.col("_f_size")
    size_ok = (size == "-") | size.rlike("^[0-9]{1,18}$")
    agent = _optional(F.col("_f_agent"))
    client = F.col("_f_client")
    ip_ok = client.rlike(IPV4) | client.rlike(IPV6)
    return fields.select(
        "*",
        request_ts.alias("request_ts"),
        F.when(request_ts.isNotNull(), F.try_to_date(F.substring(time_text, 1, 11),
                                                     "dd/MMM/yyyy")).alias("log_date"),
        F.when(ip_ok, client).alias("client_ip"),
        F.when(request, F.regexp_extract(F.col("_f_request"), REQUEST_LINE, 1)).alias("method"),
        F.substring_index(target, "?", 1).alias("path"),
        F.when(F.instr(target, "?") > 0,
               F.substr(target, F.instr(target, "?") + 1)).alias("query"),
        F.when(request, _optional(F.regexp_extract(F.col("_f_request"), REQUEST_LINE, 3))
               ).alias("protocol"),
        F.when(status_ok, F.col("_f_status").try_cast("smallint")).alias("status"),
        F.when(size_ok & (size != "-"), size.try_cast("bigint")).alias("response_bytes"),
        _optional(F.col("_f_referrer")).alias("referrer"),
        agent.alias("user_agent"),
        F.coalesce(agent.rlike(BOT_PATTERN), F.lit(False)).alias("is_bot"),
        ip_ok.alias("_ip_ok"),
        time_ok.alias("_time_ok"), request.alias("_request_ok"), size_ok.alias("_size_ok"),
    )


def _reason() -> Column:
    """Why the job refuses a typed line (NULL: it is fine); the first problem wins."""
    return (
        F.when(~F.col("_f_head"), F.lit(NOT_A_LOG_LINE))
        .when(~F.col("_f_line"), F.lit(TRAILING_TEXT))
        .when(~F.col("_ip_ok"),
              _shown("client address", F.col("_f_client"), "is not an IPv4 or IPv6 address"))
        .when(~F.col("_time_ok"), _shown("time", F.col("_f_time"),
                                         "is not dd/Mon/yyyy:HH:mm:ss +hhmm"))
        .when(F.col("request_ts").isNull(), _shown("time", F.col("_f_time"),
                                                   "is not a valid date, time and offset"))
        .when(F.col("status").isNull(),
              _shown("status", F.col("_f_status"), "is not an HTTP status (100-599)"))
        .when(~F.col("_size_ok"),
              _shown("response size", F.col("_f_size"), "is not a byte count or '-'"))
        .when(~F.col("_request_ok") & (F.col("status") < 400),
              F.concat(_shown("request line", F.col("_f_request"),
                              "is not METHOD target [HTTP/x.y], yet the status is"),
                       F.lit(" "), F.col("status").cast("string")))
    )


def _utc_hour(ts: Column) -> Column:
    """The UTC hour of an instant, on epoch seconds: the same whatever the session's zone."""
    return F.timestamp_seconds(F.floor(F.unix_seconds(ts) / 3600) * 3600)


def parse(lines: DataFrame) -> DataFrame:
    """Every column of `lines` (`value`, `_line`, the framework's bookkeeping), plus the
    TYPED_COLUMNS, `hour_ts` (web_traffic_hourly's key) and `_reason`."""
    typed = _typed(_fields(lines))
    return typed.select(*[F.col(f"`{name}`") for name in lines.columns], *TYPED_COLUMNS,
                        _utc_hour(F.col("request_ts")).alias("hour_ts"),
                        _reason().alias("_reason"))


def partition_reason(partition: Column) -> Column:
    """A line of another server-local day than its partition (a date column): the load
    replaces the days its rows carry, so it would replace a day this run does not own."""
    return other_day_reason("log_date", "request day", partition)


def web_requests(valid: DataFrame, run_id: RunId) -> DataFrame:
    """Accepted lines in the column order and types of analytics.web_requests."""
    return valid.select(*TYPED_COLUMNS, F.lit(run_id).alias("run_id"))


def _count(condition: Column) -> Column:
    return F.count(F.when(condition, F.lit(1)))


def hourly_totals(valid: DataFrame) -> DataFrame:
    """One row per server-local day and UTC hour: HOUR_KEYS and the other columns of
    analytics.web_traffic_hourly but run_id, exact (the byte sum as a decimal, which cannot
    overflow where a bigint sum would fail the job)."""
    status = F.col("status")
    return valid.groupBy(*HOUR_KEYS).agg(
        F.count(F.lit(1)).alias("requests"),
        F.coalesce(F.sum(F.col("response_bytes").cast("decimal(38,0)")),
                   F.lit(0).cast("decimal(38,0)")).alias("response_bytes"),
        F.count_distinct("client_ip").alias("distinct_clients"),
        *[_count((status >= low) & (status < low + 100)).alias(f"status_{low // 100}xx")
          for low in (200, 300, 400, 500)],
        _count(F.col("is_bot")).alias("bot_requests"),
    )


def web_traffic_hourly(valid: DataFrame, run_id: RunId) -> DataFrame:
    """hourly_totals in the column order and types of analytics.web_traffic_hourly (the
    framework has quarantined the lines of any hour whose totals would not fit)."""
    totals = hourly_totals(valid)
    return totals.select(*[F.col(c).cast("bigint").alias(c) if c not in HOUR_KEYS else c
                           for c in HOURLY_COLUMNS[:-1]], F.lit(run_id).alias("run_id"))


def is_error() -> Column:
    """The lines web_error_paths counts."""
    return F.col("status") >= 400


def web_error_paths(valid: DataFrame, run_id: RunId) -> DataFrame:
    """One row per server-local day, status >= 400 and path (analytics.web_error_paths); the
    path is NULL for request lines that were not requests."""
    return (
        valid.where(is_error())
        .groupBy(*ERROR_KEYS)
        .agg(F.count(F.lit(1)).alias("requests"),
             F.min("request_ts").alias("first_seen"),
             F.max("request_ts").alias("last_seen"))
        .select(*ERROR_PATH_COLUMNS[:-1], F.lit(run_id).alias("run_id"))
    )


# Keys are the catalog's load.tables, in order. The framework checks each line's values
# against web_requests' limits and the error lines' keys against web_error_paths'; an hour
# whose totals would not fit quarantines its lines. error paths have no totals that can
# overflow (a count and two timestamps).
OUTPUTS: dict[str, Output] = {
    "web_requests": LineOutput(web_requests),
    "web_traffic_hourly": GroupedOutput(web_traffic_hourly, keys=HOUR_KEYS,
                                        totals=hourly_totals, day="log_date"),
    "web_error_paths": GroupedOutput(web_error_paths, keys=ERROR_KEYS, lines=is_error,
                                     day="log_date"),
}
