"""The whole pipeline through the real state machine on the local deployment (real sample days)."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest
from e2e_expected import expected_day

from local_runtime.cli import run_file

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
DAY1, DAY2, DAY3 = (SAMPLES / f"2010-12-0{i}.csv" for i in (1, 2, 3))


def _count(q, table, day):
    return q(f"select count(*) from analytics.{table} where order_date = %s", (day,))[0][0]


def test_success_matches_an_independent_computation(deployment, warehouse_db):
    res = run_file(deployment, DAY1, "online_retail/2010-12-01.csv", out=None)
    assert res.status == "SUCCEEDED", res.summary
    exp = expected_day(DAY1)
    assert _count(warehouse_db, "sales_line_items", "2010-12-01") == exp["line_items"]
    got = {(str(d), c): (o, u, r, rv) for d, c, o, u, r, rv in warehouse_db(
        "select order_date, customer_id, orders, units, revenue, returned_value "
        "from analytics.customer_daily_sales where order_date = '2010-12-01'")}
    assert set(got) == set(exp["customers"])
    assert got == exp["customers"]
    assert res.summary["lines"]["in"] == exp["lines"]
    assert res.summary["lines"]["quarantined"] == exp["quarantined"]
    assert res.ledger["status"] == "SUCCEEDED"
    assert res.summary["estimated_cost_usd"] is not None


def test_same_event_twice_loads_once_and_rerun_leaves_no_duplicates(deployment, warehouse_db):
    first = run_file(deployment, DAY2, "online_retail/2010-12-02.csv", out=None)
    assert first.status == "SUCCEEDED"
    n = _count(warehouse_db, "sales_line_items", "2010-12-02")
    again = run_file(deployment, DAY2, "online_retail/2010-12-02.csv", out=None)
    assert again.status == "SUCCEEDED" and again.summary["duplicate"]
    assert _count(warehouse_db, "sales_line_items", "2010-12-02") == n
    rerun = run_file(deployment, DAY2, "online_retail/2010-12-02.csv", out=None, rerun=True)
    assert rerun.status == "SUCCEEDED", rerun.summary
    assert _count(warehouse_db, "sales_line_items", "2010-12-02") == n


def _raw_unchanged(deployment, key, body):
    obj = deployment.client("s3").get_object(Bucket=deployment.bucket("raw"), Key=key)
    return obj["Body"].read() == body


def test_quality_gate_failure_is_not_loaded(deployment, warehouse_db, tmp_path):
    # The same day delivered twice in one file (a classic double export): the rules see it
    # before duplicates are dropped, and the gate stops the load.
    bad = tmp_path / "2010-12-03.csv"
    bad.write_bytes(DAY3.read_bytes() * 2)
    res = run_file(deployment, bad, "online_retail/2010-12-03.csv", out=None)
    assert res.status == "FAILED"
    assert res.ledger["status"] == "FAILED"
    assert res.ledger["failure"]["state"] == "EvaluateQuality"
    assert "Uniqueness" in res.ledger["failure"]["cause"]
    assert res.alerts
    assert _count(warehouse_db, "sales_line_items", "2010-12-03") == 0
    quarantine = deployment.client("s3").list_objects_v2(
        Bucket=deployment.bucket("curated"),
        Prefix="quarantine/online_retail/partition=2010-12-03/")
    assert quarantine.get("KeyCount", 0) > 0, "the second header line is quarantined"
    assert _raw_unchanged(deployment, "online_retail/2010-12-03.csv", bad.read_bytes())


def test_failing_spark_job_takes_the_failure_path(deployment, tmp_path):
    bad = tmp_path / "x.csv.gz"
    bad.write_bytes(b"not gzip at all")
    key = "online_retail/2010-12-04.csv.gz"
    res = run_file(deployment, bad, key, out=None)
    assert res.status == "FAILED"
    assert res.ledger is None or res.ledger["status"] == "FAILED"
    assert res.alerts
    assert _raw_unchanged(deployment, key, bad.read_bytes())


def test_failed_redshift_statement_takes_the_failure_path(deployment, tmp_path):
    body = gzip.compress(DAY1.read_bytes())
    src = tmp_path / "d.csv.gz"
    src.write_bytes(body)
    deployment.data_api.inject_failure(r"^INSERT INTO analytics\.customer_daily_sales",
                                "ERROR: injected by the e2e test")
    try:
        res = run_file(deployment, src, "online_retail/2010-12-01.csv.gz", out=None)
    finally:
        deployment.data_api.clear_failures()
    assert res.status == "FAILED"
    assert res.ledger["status"] == "FAILED"
    assert "injected" in str(res.ledger.get("failure")), res.ledger.get("quality_failed_rules")
    assert res.alerts
    assert _raw_unchanged(deployment, "online_retail/2010-12-01.csv.gz", body)


def test_key_outside_every_prefix_is_rejected(deployment):
    from local_runtime.stack import LocalRuntimeError

    with pytest.raises(LocalRuntimeError, match="no EventBridge rule"):
        run_file(deployment, DAY1, "elsewhere/2010-12-01.csv", out=None)


def test_cluster_mode_succeeds_and_leaves_no_cluster(deployment, warehouse_db, tmp_path):
    src = tmp_path / "c.csv"
    src.write_bytes(DAY1.read_bytes().replace(b"2010-12-01", b"2010-12-06"))
    res = run_file(deployment, src, "online_retail/2010-12-06.csv", out=None, compute="cluster")
    assert res.status == "SUCCEEDED", res.summary
    assert res.summary["compute"] == "cluster"
    assert deployment.running_clusters() == []
    assert _count(warehouse_db, "sales_line_items", "2010-12-06") > 0
    assert Decimal(0) < warehouse_db(
        "select sum(revenue) from analytics.customer_daily_sales "
        "where order_date = '2010-12-06'")[0][0]


@pytest.mark.parametrize("compute, day, expected", [("serverless", "2010-12-20", 12),
                                                    ("cluster", "2010-12-21", 14)])
def test_a_slow_load_costs_no_more_state_transitions(deployment, warehouse_db, tmp_path,
                                                     compute, day, expected):
    """Issue 15, item 6: at most 15 state transitions in a happy run, whatever the load's
    duration. The load is held 4 s before its commit; the state machine waits for the Data
    API's completion event (AwaitLoad), which the stand-in sends as "Monitoring events for the
    Amazon Redshift Data API in Amazon EventBridge" (Amazon Redshift Management Guide) shows it,
    through the template's rule, to the load function."""
    src = tmp_path / f"{day}.csv"
    src.write_bytes(DAY1.read_bytes().replace(b"2010-12-01", day.encode()))
    seen = len(deployment.delivered_events)
    deployment.data_api.delay_before_commit(r"^INSERT INTO analytics\.sales_line_items", 4.0)
    try:
        res = run_file(deployment, src, f"online_retail/{day}.csv", out=None, compute=compute)
    finally:
        deployment.data_api.clear_failures()
    assert res.status == "SUCCEEDED", res.summary
    assert res.transitions == expected and res.transitions <= 15, res.timeline
    assert [r["state"] for r in res.timeline].count("AwaitLoad") == 1
    assert "DescribeLoad" not in [r["state"] for r in res.timeline]
    await_row = next(r for r in res.timeline if r["state"] == "AwaitLoad")
    assert await_row["seconds"] >= 3.0  # it waited for the statement, not a poll
    events = [(fn, e) for fn, e in deployment.delivered_events[seen:]
              if e["source"] == "aws.redshift-data"]
    load_function = next(f.name for f in deployment.functions.values()
                         if f.logical_id == "LoadStatementFunction")
    [(fn, event)] = events  # the load's statement alone was submitted WithEvent
    assert fn == load_function
    assert event["detail"]["statementName"].startswith(f"{deployment.stack_name}-load/")
    assert event["detail"]["state"] == "FINISHED"
    assert _count(warehouse_db, "sales_line_items", day) > 0
