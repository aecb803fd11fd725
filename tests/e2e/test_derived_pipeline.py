"""sales_trends, a derived dataset, through the real state machine on the local deployment:
each online_retail sample day's load starts its run (the template's TriggerDerived rule, as
the local runtime applies it), which loads the day's trends, checked against the warehouse's
own sales_line_items; the schedule of a loaded day has the same inputs, so it is a duplicate
that changes nothing; a day without sales gets zeros and its windows. The module's days are its
own (2010-11-01..03: the three sample days under other dates, before any other module's), so
its history is exactly them and no other module's run meets its rows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from local_runtime.cli import run_file, run_schedule

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
OWN_DAYS = {"2010-11-01": "2010-12-01", "2010-11-02": "2010-12-02", "2010-11-03": "2010-12-03"}
DAYS = tuple(OWN_DAYS)


@pytest.fixture(scope="module")
def day_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("derived-days")
    files = {}
    for day, sample in OWN_DAYS.items():
        files[day] = folder / f"{day}.csv"
        files[day].write_bytes((SAMPLES / f"{sample}.csv").read_bytes().replace(
            sample.encode(), day.encode()))
    return files


def _trends(q, day: str) -> dict[str, tuple]:
    return {r[0]: tuple(r[1:]) for r in q(
        "select country, revenue, orders, customers, revenue_7d, revenue_30d, orders_7d, "
        "orders_30d from analytics.sales_trends where order_date = %s", (day,))}


def _expected_all(q, day: str) -> tuple:
    """The 'ALL' row computed independently from the loaded purchase lines."""
    revenue, orders, customers = q(
        "select round(coalesce(sum(line_revenue), 0), 2), count(distinct invoice_no), "
        "count(distinct customer_id) from analytics.sales_line_items "
        "where order_date = %s and not is_cancellation", (day,))[0]
    window = q(
        "select round(coalesce(sum(line_revenue), 0), 2) from analytics.sales_line_items "
        "where order_date between cast(%s as date) - 6 and cast(%s as date) "
        "and not is_cancellation", (day, day))[0][0]
    return Decimal(revenue), orders, customers, Decimal(window)


def test_each_loaded_day_starts_its_trends_run_which_loads(derived_triggers, warehouse_db,
                                                           day_files):
    deployment = derived_triggers
    for day in DAYS:
        res = run_file(deployment, day_files[day], f"online_retail/{day}.csv", out=None)
        assert res.status == "SUCCEEDED", res.summary
        [trends] = [d for d in res.derived if d.summary["dataset"] == "sales_trends"]
        assert trends.status == "SUCCEEDED", trends.summary
        assert trends.summary["partition"] == day
        assert trends.ledger["trigger"] == "upstream"
    for day in DAYS:
        rows = _trends(warehouse_db, day)
        revenue, orders, customers, window = _expected_all(warehouse_db, day)
        assert rows["ALL"][:3] == (revenue, orders, customers), day
        assert rows["ALL"][3] == window, day
        assert rows["United Kingdom"][0] > 0
        countries = sum(r[0] for c, r in rows.items() if c != "ALL")
        assert abs(countries - rows["ALL"][0]) <= Decimal("0.01") * len(rows)


def test_the_schedule_with_the_same_inputs_changes_nothing(deployment, warehouse_db):
    before = _trends(warehouse_db, "2010-11-02")
    res = run_schedule(deployment, "sales_trends", "2010-11-02", None, out=None)
    assert res.status == "SUCCEEDED", res.summary
    # Its inputs (11-01 and 11-02, as loaded) are those the upstream trigger already ran.
    assert res.summary["duplicate"], res.summary
    assert _trends(warehouse_db, "2010-11-02") == before


def test_a_scheduled_day_without_sales_counts_zero_and_keeps_its_windows(deployment,
                                                                         warehouse_db):
    res = run_schedule(deployment, "sales_trends", "2010-11-04", None, out=None)
    assert res.status == "SUCCEEDED", res.summary
    assert res.ledger["trigger"] == "schedule"
    rows = _trends(warehouse_db, "2010-11-04")
    three_days = sum(_trends(warehouse_db, d)["ALL"][0] for d in DAYS)
    assert rows["ALL"][:3] == (Decimal("0.00"), 0, 0)
    assert rows["ALL"][3] == three_days  # 7 days: Oct 29 to Nov 4
    again = run_schedule(deployment, "sales_trends", "2010-11-04", None, out=None)
    assert again.summary["duplicate"] and _trends(warehouse_db, "2010-11-04") == rows


def test_a_day_with_no_loaded_history_is_refused_clearly(deployment):
    res = run_schedule(deployment, "sales_trends", "2009-06-01", None, out=None)
    assert res.status == "FAILED"
    assert "online_retail has no loaded partition from 2009-05-03 to 2009-06-01" in str(
        res.summary.get("failure")), res.summary


def _segments(q, day: str) -> tuple[list[tuple], list[tuple]]:
    return (q("select customer_id, segment_id, segment_name, recency_days, frequency, monetary "
              "from analytics.customer_segments where as_of_date = %s order by customer_id",
              (day,)),
            q("select segment_id, segment_name, customers, silhouette "
              "from analytics.segment_profiles where as_of_date = %s order by segment_id",
              (day,)))


def test_customer_segments_by_schedule_loads_and_the_same_run_changes_nothing(deployment,
                                                                               warehouse_db,
                                                                               day_files):
    """The weekly ML dataset (no upstream trigger) by its schedule's path: it trains, saves
    its model, scores every customer with a purchase up to the day and loads both tables;
    the same inputs again are the same run (a duplicate: nothing changes)."""
    for day in DAYS:  # loaded by an earlier test, or here: then a duplicate
        res = run_file(deployment, day_files[day], f"online_retail/{day}.csv", out=None)
        assert res.status == "SUCCEEDED", res.summary
        assert [d.summary["dataset"] for d in res.derived
                if d.summary["dataset"] == "customer_segments"] == []  # schedule only
    res = run_schedule(deployment, "customer_segments", DAYS[-1], None, out=None)
    assert res.status == "SUCCEEDED", res.summary
    assert res.ledger["trigger"] == "schedule"
    model = res.ledger["model"]
    assert model["trained"] and model["promoted"], model
    assert model["path"].endswith(f"/models/customer_segments/{res.summary['run_id']}/")
    segments, profiles = _segments(warehouse_db, DAYS[-1])
    [(buyers,)] = warehouse_db(
        "select count(distinct customer_id) from analytics.sales_line_items "
        "where customer_id is not null and not is_cancellation and order_date <= %s",
        (DAYS[-1],))
    assert len(segments) == buyers > 0
    assert 2 <= len(profiles) <= 8
    assert sum(p[2] for p in profiles) == buyers
    assert len({p[3] for p in profiles}) == 1 and profiles[0][3] > 0.25
    again = run_schedule(deployment, "customer_segments", DAYS[-1], None, out=None)
    assert again.status == "SUCCEEDED", again.summary
    assert again.summary["duplicate"], again.summary
    assert _segments(warehouse_db, DAYS[-1]) == (segments, profiles)
