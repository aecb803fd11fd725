"""web_logs transforms on tiny inline frames: the log formats, their real quirks, hostile lines
and the three output tables."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from pipeline_core.warehouse_limits import load_table_definitions
from spark_jobs.common.outputs import builder
from spark_jobs.common.warehouse import check_schema
from spark_jobs.web_logs import transforms as tr

pytestmark = pytest.mark.spark

UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/32.0.1700.77 Safari/537.36")
REAL = ('83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama'
        '-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentati'
        f'ons/logstash-monitorama-2013/" "{UA}"')


def line(client: str = "10.0.0.1", time: str = "17/May/2015:10:05:03 +0000",
         request: str = "GET /a HTTP/1.1", status: str = "200", size: str = "512",
         tail: str = ' "-" "Mozilla/5.0 (X11; Linux x86_64)"') -> str:
    return f'{client} - - [{time}] "{request}" {status} {size}{tail}'


def parsed(spark, *lines: str):
    frame = spark.createDataFrame([(v, i + 1) for i, v in enumerate(lines)],
                                  "value string, _line long")
    return tr.parse(frame)


def one(spark, text: str):
    rows = parsed(spark, text).collect()
    assert len(rows) == 1
    return rows[0]


def each(spark, texts: list[str]) -> list:
    """The parsed rows of `texts`, in order (one Spark job for a whole table of cases)."""
    return parsed(spark, *texts).orderBy("_line").collect()


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_parse_keeps_every_input_column(spark):
    frame = spark.createDataFrame([(REAL, 1, 3)], "value string, _line long, _copies long")
    out = tr.parse(frame)
    assert out.columns[:3] == ["value", "_line", "_copies"] and out.first()._copies == 3


def test_parse_keeps_value_and_line_and_adds_the_typed_columns(spark):
    frame = parsed(spark, REAL)
    assert frame.columns == ["value", "_line", *tr.TYPED_COLUMNS, "hour_ts", "_reason"]
    row = frame.first()
    assert row.asDict() == {"hour_ts": ts("2015-05-17 10:00:00"),
        "value": REAL, "_line": 1, "request_ts": ts("2015-05-17 10:05:03"),
        "log_date": dt.date(2015, 5, 17), "client_ip": "83.149.9.216", "method": "GET",
        "path": "/presentations/logstash-monitorama-2013/images/kibana-search.png",
        "query": None, "protocol": "HTTP/1.1", "status": 200, "response_bytes": 203023,
        "referrer": "http://semicomplete.com/presentations/logstash-monitorama-2013/",
        "user_agent": UA, "is_bot": False, "_reason": None}


def test_common_log_format_has_no_referrer_or_user_agent(spark):
    row = one(spark, line(tail=""))
    assert (row.referrer, row.user_agent, row.is_bot, row._reason) == (None, None, False, None)


def test_dashes_are_null_and_the_query_is_split_at_the_first_question_mark(spark):
    row = one(spark, line(request="GET /s?q=a?b&x=1 HTTP/1.0", size="-", tail=' "-" "-"'))
    assert (row.path, row.query, row.response_bytes, row.referrer, row.user_agent) == (
        "/s", "q=a?b&x=1", None, None, None)
    assert one(spark, line(request="GET /s? HTTP/1.0")).query == ""


OFFSETS = [("+0000", "2015-05-17 10:05:03", "2015-05-17"),
           ("-0700", "2015-05-17 17:05:03", "2015-05-17"),
           ("+0530", "2015-05-17 04:35:03", "2015-05-17"),
           ("-0930", "2015-05-17 19:35:03", "2015-05-17")]


def test_time_is_stored_in_utc_and_the_day_is_the_lines_own(spark):
    rows = each(spark, [line(time=f"17/May/2015:10:05:03 {o}") for o, _, _ in OFFSETS])
    for (offset, utc, day), row in zip(OFFSETS, rows, strict=True):
        assert (row.request_ts, str(row.log_date), row._reason) == (ts(utc), day, None), offset


def test_the_local_day_is_not_the_utc_day(spark):
    late = one(spark, line(time="17/May/2015:23:30:00 -0930"))
    early = one(spark, line(time="18/May/2015:00:15:00 +0530"))
    assert (late.request_ts, str(late.log_date)) == (ts("2015-05-18 09:00:00"), "2015-05-17")
    assert (early.request_ts, str(early.log_date)) == (ts("2015-05-17 18:45:00"), "2015-05-18")


BAD_TIMES = [
    ("31/Feb/2015:10:05:03 +0000", "is not a valid date, time and offset"),
    ("17/May/2015:24:00:00 +0000", "is not a valid date, time and offset"),
    ("17/May/2015:10:05:03 +2500", "is not a valid date, time and offset"),
    ("17/May/2015:10:05:03 +05:30", "is not dd/Mon/yyyy:HH:mm:ss +hhmm"),
    ("17/may/2015:10:05:03 +0000", "is not dd/Mon/yyyy:HH:mm:ss +hhmm"),
    ("2015-05-17T10:05:03Z", "is not dd/Mon/yyyy:HH:mm:ss +hhmm"),
    ("", "is not dd/Mon/yyyy:HH:mm:ss +hhmm"),
]


def test_bad_times_are_refused_with_the_value(spark):
    rows = each(spark, [line(time=time) for time, _ in BAD_TIMES])
    for (time, reason), row in zip(BAD_TIMES, rows, strict=True):
        assert row._reason == f"time '{time}' {reason}"
        assert row.request_ts is None and row.log_date is None


CLIENTS = ["192.168.0.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1", "::",
           "fe80::1%eth0", "fe80::a:b%25", "::ffff:192.0.2.128", "2001:db8:0:0:0:0:2:1",
           "1:2:3:4:5:6:7:8", "1::8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
           "64:ff9b::192.0.2.33", "ABCD:EF01::0",
           "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "example.com", "-",
           "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::1", "::ffff:999.0.0.1", ":1", "1:",
           "fe80::1%", "g::1", "1:2:3:4:5:6:7:1.2.3.4"]


def _oracle(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def test_client_addresses_follow_python_s_ipaddress(spark):
    """The IPv4/IPv6 patterns agree with Python's ipaddress (RFC 4291 text forms, RFC 4007
    zones) on every case above, valid and not."""
    rows = parsed(spark, *[line(client=c) for c in CLIENTS]).orderBy("_line").collect()
    for client, row in zip(CLIENTS, rows, strict=True):
        assert (row._reason is None) == _oracle(client), client
        if row._reason is not None:
            assert row._reason == f"client address '{client}' is not an IPv4 or IPv6 address"
    assert sum(_oracle(c) for c in CLIENTS) == 16


def test_escaped_quotes_stay_inside_their_field(spark):
    row = one(spark, line(request=r'GET /a\"b HTTP/1.1',
                          tail=r' "http://x/\"y\"" "Agent \"quoted\" \\ end"'))
    assert (row.path, row.referrer, row.user_agent, row._reason) == (
        r'/a\"b', r'http://x/\"y\"', r'Agent \"quoted\" \\ end', None)


def test_http_0_9_has_no_protocol(spark):
    row = one(spark, line(request="GET /index.html"))
    assert (row.method, row.path, row.protocol, row._reason) == (
        "GET", "/index.html", None, None)


NOT_REQUESTS = [
    (r"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "400"),  # TLS sent to port 80
    ("-", "408"),                                              # closed before a request
    ("GET /a b HTTP/1.1", "400"),                              # a space in the target
    ("GET / FTP/1.0", "501"),
]


def test_a_request_line_that_is_no_request_is_kept_when_the_server_refused_it(spark):
    rows = each(spark, [line(request=r, status=s, size="226") for r, s in NOT_REQUESTS])
    for (_, status), row in zip(NOT_REQUESTS, rows, strict=True):
        assert (row.method, row.path, row.query, row.protocol) == (None, None, None, None)
        assert (row.status, row.response_bytes, row._reason) == (int(status), 226, None)


def test_a_request_line_that_is_no_request_with_a_success_status_is_refused(spark):
    row = one(spark, line(request=r"\x16\x03\x01", status="200"))
    assert row._reason == (r"request line '\x16\x03\x01' is not METHOD target [HTTP/x.y], "
                           "yet the status is 200")


def test_bad_statuses_are_refused(spark):
    statuses = ["2000", "20", "abc", "099", "600", "-"]
    for status, row in zip(statuses, each(spark, [line(status=s) for s in statuses]),
                           strict=True):
        assert row._reason == f"status '{status}' is not an HTTP status (100-599)"
        assert row.status is None


def test_bad_sizes_are_refused(spark):
    sizes = ["12x", "-1", "1234567890123456789", "1.5"]
    for size, row in zip(sizes, each(spark, [line(size=s) for s in sizes]), strict=True):
        assert row._reason == f"response size '{size}' is not a byte count or '-'"
        assert row.response_bytes is None


def test_the_largest_size_is_kept(spark):
    assert one(spark, line(size="999999999999999999")).response_bytes == 999999999999999999


NOT_LOG_LINES = [
    # The real 2015-05-20 line whose user agent lost its closing quote.
    ('46.118.127.106 - - [20/May/2015:12:05:17 +0000] "GET /scripts/grok-py-test/configlib.py '
     'HTTP/1.1" 200 235 "-" "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bo'
     't.html', tr.TRAILING_TEXT),
    (line(tail=' "-" "agent" 0.042'), tr.TRAILING_TEXT),       # an extra field (%D)
    (line(tail=' "-"'), tr.TRAILING_TEXT),                     # referrer without agent
    (line(tail=' -'), tr.TRAILING_TEXT),
    (line()[:40], tr.NOT_A_LOG_LINE),                          # cut inside the request
    ('10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200', tr.NOT_A_LOG_LINE),
    ("garbage", tr.NOT_A_LOG_LINE),
    ("", tr.NOT_A_LOG_LINE),
    ('10.0.0.1 - - 17/May/2015:10:05:03 +0000 "GET /a HTTP/1.1" 200 5', tr.NOT_A_LOG_LINE),
    ("\u0000" * 10, tr.NOT_A_LOG_LINE),
    ("{\"ip\": \"10.0.0.1\", \"status\": 200}", tr.NOT_A_LOG_LINE),  # a JSON log
]


def test_lines_that_are_not_log_lines_are_refused(spark):
    rows = each(spark, [text for text, _ in NOT_LOG_LINES])
    for (text, reason), row in zip(NOT_LOG_LINES, rows, strict=True):
        assert row._reason == reason, text
        assert row.request_ts is None and row.status is None and row.client_ip is None


def test_a_shifted_line_is_refused(spark):
    """A line whose fields moved one to the left (the ident column lost) no longer parses."""
    shifted = line().replace(" - - [", " - [", 1)
    assert one(spark, shifted)._reason == tr.NOT_A_LOG_LINE


def test_huge_escaped_fields_parse_without_exhausting_the_stack(spark):
    """Java's regex recursion per repetition of an alternation overflows the stack on a few
    thousand escapes; the patterns here are possessive loops and must not."""
    agent = r"\"" * 200_000
    path = "/" + "a" * 300_000
    row = one(spark, line(request=f"GET {path} HTTP/1.1", tail=f' "-" "{agent}"'))
    assert (row.user_agent == agent, row.path == path, row._reason) == (True, True, None)


def test_nul_characters_are_kept_for_the_warehouse_check(spark):
    """The framework refuses a NUL for a varchar column; the parse must carry it there."""
    row = one(spark, line(request="GET /a\u0000b HTTP/1.1"))
    assert row.path == "/a\u0000b" and row._reason is None


AGENTS = [
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
    ("Baiduspider-image+(+http://www.baidu.com/search/spider.htm)", True),
    ("Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)", True),
    ("ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)", True),
    ("Feedfetcher-Google; (+http://www.google.com/feedfetcher.html; 22 subscribers)", True),
    ("UniversalFeedParser/4.2-pre-314-svn +http://feedparser.org/", True),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
    ("curl/7.22.0 (i686-pc-linux-gnu) libcurl/7.22.0", True),
    ("Wget/1.14 (linux-gnu)", True),
    ("python-requests/1.2.0 CPython/2.7.4 Linux/3.8.0-33-generic", True),
    ("Python-urllib/2.7", True),
    (UA, False),
    ("Opera/9.80 (X11; Linux x86_64) Presto/2.12.388 Version/12.16", False),
    ("Tiny Tiny RSS/1.11 (http://tt-rss.org/)", False),
    ("-", False),
]


def test_is_bot_follows_the_documented_tokens(spark):
    rows = each(spark, [line(tail=f' "-" "{agent}"') for agent, _ in AGENTS])
    for (agent, bot), row in zip(AGENTS, rows, strict=True):
        assert row.is_bot is bot, agent


def test_partition_reason_names_both_days(spark):
    frame = parsed(spark, line(time="17/May/2015:23:59:59 +0000"),
                   line(time="18/May/2015:00:00:00 +0000"),
                   line(time="17/May/2015:23:30:00 -0930"),
                   line(time="18/May/2015:01:00:00 +0530"), "garbage")
    reasons = [r[0] for r in frame.orderBy("_line").select(
        tr.partition_reason(F.to_date(F.lit("2015-05-17")))).collect()]
    assert reasons == [None,
                       "request day 2015-05-18 is not the run's partition 2015-05-17",
                       None,
                       "request day 2015-05-18 is not the run's partition 2015-05-17",
                       None]


# ---------------------------------------------------------------------------------------------
# Outputs


def _accepted(spark, *lines: str):
    frame = parsed(spark, *lines)
    assert frame.where(F.col("_reason").isNotNull()).count() == 0
    return frame


def _tables():
    return load_table_definitions("warehouse/migrations")


def test_outputs_match_the_catalog_and_the_warehouse_tables(spark):
    from pipeline_core.catalog import load_catalog

    dataset = load_catalog().get("web_logs")
    assert [t.name for t in dataset.load.tables] == list(tr.OUTPUTS)
    valid = _accepted(spark, REAL, line(status="404"))
    for name, build in tr.OUTPUTS.items():
        check_schema(builder(build)(valid, "run-1").schema,
                     _tables().table("analytics", name))


def test_web_requests_rows(spark):
    out = tr.web_requests(_accepted(spark, REAL), "run-1").first()
    assert out.run_id == "run-1" and out.request_ts == ts("2015-05-17 10:05:03")
    assert tuple(out.asDict()) == tr.REQUEST_COLUMNS


def test_hourly_traffic_per_local_day_and_utc_hour(spark):
    valid = _accepted(
        spark,
        line(client="10.0.0.1", time="17/May/2015:10:05:00 +0000", size="100"),
        line(client="10.0.0.1", time="17/May/2015:10:59:59 +0000", size="-", status="304"),
        line(client="::1", time="17/May/2015:10:30:00 +0000", size="50", status="404",
             tail=' "-" "Googlebot/2.1"'),
        line(client="10.0.0.2", time="17/May/2015:11:00:00 +0000", size="7", status="500"),
        line(client="10.0.0.3", time="17/May/2015:11:00:01 +0000", size="1", status="101"),
        # 23:45 +0530 of the 17th and 00:15 +0530 of the 18th share the UTC hour 18:00.
        line(client="10.0.0.4", time="17/May/2015:23:45:00 +0530", size="3", status="206"),
        line(client="10.0.0.4", time="18/May/2015:00:15:00 +0530", size="4"),
    )
    out = tr.web_traffic_hourly(valid, "run-1")
    assert tuple(out.columns) == tr.HOURLY_COLUMNS
    expected = [
        (ts("2015-05-17 10:00:00"), dt.date(2015, 5, 17), 3, 150, 2, 1, 1, 1, 0, 1, "run-1"),
        (ts("2015-05-17 11:00:00"), dt.date(2015, 5, 17), 2, 8, 2, 0, 0, 0, 1, 0, "run-1"),
        (ts("2015-05-17 18:00:00"), dt.date(2015, 5, 17), 1, 3, 1, 1, 0, 0, 0, 0, "run-1"),
        (ts("2015-05-17 18:00:00"), dt.date(2015, 5, 18), 1, 4, 1, 1, 0, 0, 0, 0, "run-1"),
    ]
    assertDataFrameEqual(out, spark.createDataFrame(expected, out.schema))


def test_hourly_bytes_are_zero_when_every_size_is_a_dash(spark):
    out = tr.web_traffic_hourly(_accepted(spark, line(size="-")), "r").first()
    assert (out.requests, out.response_bytes) == (1, 0)


def test_error_paths_group_status_and_path_including_non_requests(spark):
    valid = _accepted(
        spark,
        line(request="GET /missing?x=1 HTTP/1.1", status="404",
             time="17/May/2015:10:00:00 +0000"),
        line(request="HEAD /missing HTTP/1.1", status="404", time="17/May/2015:09:00:00 +0000"),
        line(request="GET /missing HTTP/1.1", status="500", time="17/May/2015:11:00:00 +0000"),
        line(request="GET /ok HTTP/1.1", status="200"),
        line(request="GET /moved HTTP/1.1", status="301"),
        line(request=r"\x16\x03\x01", status="400", time="17/May/2015:12:00:00 +0000"),
        line(request="-", status="400", time="17/May/2015:13:00:00 +0000"),
    )
    out = tr.web_error_paths(valid, "run-1")
    assert tuple(out.columns) == tr.ERROR_PATH_COLUMNS
    day = dt.date(2015, 5, 17)
    expected = [
        (day, 404, "/missing", 2, ts("2015-05-17 09:00:00"), ts("2015-05-17 10:00:00"), "run-1"),
        (day, 500, "/missing", 1, ts("2015-05-17 11:00:00"), ts("2015-05-17 11:00:00"), "run-1"),
        (day, 400, None, 2, ts("2015-05-17 12:00:00"), ts("2015-05-17 13:00:00"), "run-1"),
    ]
    assertDataFrameEqual(out, spark.createDataFrame(expected, out.schema))


def test_hourly_buckets_do_not_depend_on_the_session_time_zone(spark):
    valid = _accepted(spark, line(time="17/May/2015:10:45:00 +0000"))
    spark.conf.set("spark.sql.session.timeZone", "Asia/Kolkata")
    try:
        hour = tr.web_traffic_hourly(valid, "r").select(
            F.unix_seconds("hour_ts").alias("s")).first()
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert hour.s == int(dt.datetime(2015, 5, 17, 10, tzinfo=dt.UTC).timestamp())
