"""web_logs through the real state machine on the local deployment (real sample days): the
warehouse holds exactly what an independent computation over the log text says."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from web_logs_expected import expected_day

from local_runtime.cli import run_file

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "web_logs"
DAY = SAMPLES / "2015-05-17.log"
GZ_DAY = SAMPLES / "2015-05-20.log.gz"

REQUESTS = ("select request_ts, log_date, client_ip, method, path, query, protocol, status, "
            "response_bytes, referrer, user_agent, is_bot from analytics.web_requests "
            "where log_date = %s")
HOURLY = ("select hour_ts, log_date, requests, response_bytes, distinct_clients, status_2xx, "
          "status_3xx, status_4xx, status_5xx, bot_requests from analytics.web_traffic_hourly "
          "where log_date = %s")
ERRORS = ("select status, path, requests, first_seen, last_seen from analytics.web_error_paths "
          "where log_date = %s")


def _loaded(q, day: dt.date) -> dict:
    return {
        "requests": sorted((tuple(r) for r in q(REQUESTS, (day,))), key=repr),
        "hourly": {(r[0], r[1]): tuple(r[2:]) for r in q(HOURLY, (day,))},
        "errors": {(r[0], r[1]): tuple(r[2:]) for r in q(ERRORS, (day,))},
    }


def test_a_day_loads_what_an_independent_computation_says(deployment, warehouse_db):
    started = time.monotonic()
    res = run_file(deployment, DAY, "web_logs/2015-05-17.log", out=None)
    print(f"web_logs 2015-05-17 local run: {time.monotonic() - started:.1f} s")
    assert res.status == "SUCCEEDED", res.summary
    day = dt.date(2015, 5, 17)
    expected = expected_day(DAY, day)
    loaded = _loaded(warehouse_db, day)
    assert len(loaded["requests"]) == 1632  # 3 identical requests are requests too
    for part in ("requests", "hourly", "errors"):
        assert loaded[part] == expected[part], part
    assert res.summary["lines"]["in"] == expected["lines"]
    assert res.summary["lines"]["quarantined"] == expected["quarantined"] == 0


def test_a_gzipped_day_quarantines_its_broken_line_and_loads_the_rest(deployment, warehouse_db):
    started = time.monotonic()
    res = run_file(deployment, GZ_DAY, "web_logs/2015-05-20.log.gz", out=None)
    print(f"web_logs 2015-05-20 (gzip) local run: {time.monotonic() - started:.1f} s")
    assert res.status == "SUCCEEDED", res.summary
    day = dt.date(2015, 5, 20)
    expected = expected_day(GZ_DAY, day)
    assert res.summary["lines"]["quarantined"] == expected["quarantined"] == 1
    loaded = _loaded(warehouse_db, day)
    assert loaded["hourly"] == expected["hourly"]
    assert loaded["errors"] == expected["errors"]
    assert len(loaded["requests"]) == len(expected["requests"]) == 2578
    quarantine = deployment.client("s3").list_objects_v2(
        Bucket=deployment.bucket("curated"), Prefix="quarantine/web_logs/partition=2015-05-20/")
    assert quarantine.get("KeyCount", 0) > 0


def test_a_misnamed_day_fails_the_gate_and_loads_nothing(deployment, warehouse_db, tmp_path):
    """2015-05-17's log delivered as 2015-05-18: every line is of another day."""
    bad = tmp_path / "2015-05-18.log"
    bad.write_bytes(DAY.read_bytes())
    res = run_file(deployment, bad, "web_logs/2015-05-18.log", out=None)
    assert res.status == "FAILED"
    assert res.ledger["failure"]["state"] == "EvaluateQuality"
    assert 'ColumnValues "log_date" >= (now() - 1 days)' in res.ledger["failure"]["cause"]
    assert warehouse_db("select count(*) from analytics.web_requests "
                        "where log_date = '2015-05-18'")[0][0] == 0


# A doubled day fails Uniqueness and loads nothing: the gate's behaviour is one for every dataset
# (test_pipeline.py::test_quality_gate_failure_is_not_loaded, a double export); web_logs' own rule
# catching a doubled file: tests/spark/test_web_logs_rules.py::test_a_doubled_file_fails_uniqueness.
