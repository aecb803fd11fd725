"""The web_logs job end to end in the shared session: the real sample days and hostile lines."""

from __future__ import annotations

import gzip

import pytest
from spark_helpers import REPO

pytestmark = pytest.mark.spark

SAMPLES = REPO / "sample_data" / "web_logs"
DAY = SAMPLES / "2015-05-17.log"
GZ_DAY = SAMPLES / "2015-05-20.log.gz"


def _rows(spark, run, table):
    return [r.asDict() for r in spark.read.parquet(str(run.out / table)).collect()]


def test_a_real_day_loads_every_line_duplicates_included(spark, run_dataset):
    """An access log's identical lines are separate requests (3 on this real day): all load."""
    lines = DAY.read_text().splitlines()
    run = run_dataset("web_logs", DAY, "2015-05-17")
    assert run.code == 0, run.stderr
    assert run.failed_errors == []
    requests = _rows(spark, run, "web_requests")
    assert len(set(lines)) == 1629
    assert len(requests) == len(lines) == 1632
    assert run.metrics["duplicates"] == 0 and run.metrics["lines_written"] == 1632
    hourly = _rows(spark, run, "web_traffic_hourly")
    assert sum(r["requests"] for r in hourly) == 1632
    assert sum(r["response_bytes"] for r in hourly) == sum(
        r["response_bytes"] or 0 for r in requests)
    errors = _rows(spark, run, "web_error_paths")
    assert sum(r["requests"] for r in errors) == sum(r["status"] >= 400 for r in requests)
    # Nothing refused: no quarantine folder (the raw job framework writes none).
    assert run.metrics["lines_quarantined"] == 0 and not (run.out / "quarantine").exists()


def test_a_gzipped_real_day_quarantines_its_broken_line(spark, run_dataset):
    run = run_dataset("web_logs", GZ_DAY, "2015-05-20")
    assert run.code == 0, run.stderr
    quarantine = _rows(spark, run, "quarantine")
    assert [(r["_source_line"], r["_reason"]) for r in quarantine] == [
        (1478, "the text after the response size is not the combined format's quoted "
               "referrer and user agent")]
    assert quarantine[0]["line"].startswith("46.118.127.106 - - [20/May/2015:12:05:17 +0000]")
    # one broken line; its one exact copy of another line is a request too
    assert len(_rows(spark, run, "web_requests")) == 2579 - 1


def test_hostile_lines_are_quarantined_with_their_reason(spark, run_dataset, tmp_path):
    good = DAY.read_text().splitlines()
    base = '10.0.0.9 - - [17/May/2015:12:00:00 +0000] "GET /{path} HTTP/1.1" {status} {size}'
    hostile = [
        base.format(path="x", status=200, size=1) + ' "-" "' + "A" * 3000 + '"',
        base.format(path="a\u0000b", status=200, size=1),
        '10.0.0.9 - - [18/May/2015:00:00:00 +0000] "GET / HTTP/1.1" 200 1',
        base.format(path="cached", status=304, size=512),
        r'10.0.0.9 - - [17/May/2015:12:00:00 +0000] "\x16\x03\x01" 200 0',
        base.format(path="p" * 9000, status=404, size=1),
    ]
    raw = ("\n".join([*good, *hostile]) + "\n").encode() + b"10.0.0.9 \xff\xfe\n"
    path = tmp_path / "2015-05-17.log.gz"
    path.write_bytes(gzip.compress(raw))
    run = run_dataset("web_logs", path, "2015-05-17")
    assert run.code == 0, run.stderr
    n = len(good)
    quarantine = {r["_source_line"]: r["_reason"] for r in _rows(spark, run, "quarantine")}
    assert quarantine == {
        n + 1: "user_agent is 3000 bytes, over varchar(2048)",
        n + 2: "path contains a NUL character, which varchar(8192) cannot hold",
        n + 3: "request day 2015-05-18 is not the run's partition 2015-05-17",
        n + 4: 'ColumnValues "response_bytes" in [NULL, 0] where "status in (204, 304)"',
        n + 5: r"request line '\x16\x03\x01' is not METHOD target [HTTP/x.y], yet the status "
               "is 200",
        n + 6: "path is 9001 bytes, over varchar(8192)",
        n + 7: "line is not valid UTF-8 text",
    }
    # A 304 with a body is a tampered line: quarantined, and the day is held for review.
    assert run.failed_errors == [quarantine[n + 4]]
    assert len(_rows(spark, run, "web_requests")) == n == 1632
