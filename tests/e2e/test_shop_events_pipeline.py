"""shop_events through the real state machine on the local deployment (the real sample day): the
warehouse holds exactly what an independent computation over the CSV text says; broken lines
are quarantined with their reasons and a broken day fails the gate with the rule it broke."""

from __future__ import annotations

import datetime as dt
import gzip
import time
from pathlib import Path

import pytest
from shop_events_expected import expected_day

from local_runtime.cli import run_file

pytestmark = pytest.mark.e2e
DAY = Path(__file__).resolve().parents[2] / "sample_data" / "shop_events" / "2019-10-01.csv.gz"

EVENTS = ("select event_ts, event_date, event_type, product_id, category_id, category_code, "
          "brand, price, user_id, user_session from analytics.shop_events where event_date = %s")
FUNNEL = ("select event_date, sessions, sessions_viewed, sessions_carted, sessions_purchased "
          "from analytics.session_funnel where event_date = %s")
ABANDONMENT = ("select event_date, category, sessions_with_cart, sessions_with_purchase, "
               "abandoned_sessions, abandonment_rate from analytics.cart_abandonment "
               "where event_date = %s")


def _loaded(q, day: dt.date) -> dict:
    return {
        "events": sorted((tuple(r) for r in q(EVENTS, (day,))), key=repr),
        "funnel": {r[0]: tuple(r[1:]) for r in q(FUNNEL, (day,))},
        "abandonment": {(r[0], r[1]): tuple(r[2:]) for r in q(ABANDONMENT, (day,))},
    }


def test_the_sample_day_loads_what_an_independent_computation_says(deployment, warehouse_db):
    started = time.monotonic()
    res = run_file(deployment, DAY, "shop_events/2019-10-01.csv.gz", out=None)
    print(f"shop_events 2019-10-01 local run: {time.monotonic() - started:.1f} s")
    assert res.status == "SUCCEEDED", res.summary
    day = dt.date(2019, 10, 1)
    expected = expected_day(DAY, day)
    loaded = _loaded(warehouse_db, day)
    assert len(loaded["events"]) == 5_097
    assert loaded["funnel"] == expected["funnel"] == {day: (1_932, 1_932, 35, 51)}
    assert loaded["abandonment"] == expected["abandonment"]
    assert loaded["events"] == expected["events"]
    assert res.summary["lines"]["in"] == expected["lines"] == 5_100
    assert res.summary["lines"]["quarantined"] == expected["quarantined"] == 0
    assert res.summary["rows_loaded"]["cart_abandonment"] == len(expected["abandonment"])


def _day_with_broken_lines(tmp_path: Path) -> Path:
    """The sample day (as 2019-10-02) plus three real lines made broken the way real exports
    break: an event type the funnel does not know, a price with three decimals, and the real
    export's last line, cut inside its user_id (no session, no final newline)."""
    text = gzip.decompress(DAY.read_bytes()).decode("utf-8").replace("2019-10-01 ", "2019-10-02 ")
    lines = text.splitlines()
    broken = [lines[1].replace(",view,", ",remove_from_cart,"),
              lines[2].replace(",33.20,", ",33.205,"),
              "2019-10-02 02:50:00 UTC,view,10900305,2053013555069845885,appliances.kitchen.mixer,"
              "elenberg,25.71,52040330"]
    path = tmp_path / "2019-10-02.csv"
    path.write_text("\n".join([*lines, *broken]), encoding="utf-8")
    return path


def test_broken_lines_are_quarantined_and_the_rest_loads(deployment, warehouse_db, tmp_path):
    path = _day_with_broken_lines(tmp_path)
    res = run_file(deployment, path, "shop_events/2019-10-02.csv", out=None)
    assert res.status == "SUCCEEDED", res.summary
    day = dt.date(2019, 10, 2)
    expected = expected_day(path, day)
    assert res.summary["lines"]["quarantined"] == expected["quarantined"] == 3
    loaded = _loaded(warehouse_db, day)
    assert loaded["funnel"] == expected["funnel"]
    assert loaded["abandonment"] == expected["abandonment"]
    assert loaded["events"] == expected["events"]
    reasons = _quarantine_reasons(deployment, "2019-10-02")
    assert sorted(reasons) == sorted([
        "event_type 'remove_from_cart' is not view, cart or purchase",
        "price '33.205' has more than 2 decimals",
        "missing user_session (the event belongs to no session)"])


def _quarantine_reasons(deployment, partition: str) -> list[str]:
    import io

    import pyarrow.parquet as pq

    s3 = deployment.client("s3")
    bucket = deployment.bucket("curated")
    listing = s3.list_objects_v2(Bucket=bucket,
                                 Prefix=f"quarantine/shop_events/partition={partition}/")
    reasons: list[str] = []
    for item in listing.get("Contents", []):
        if item["Key"].endswith(".parquet"):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            reasons += pq.read_table(io.BytesIO(body)).column("_reason").to_pylist()
    return reasons


# Swapped product_id/category_id fail the gate and load nothing: the gate's behaviour is one for
# every dataset (test_pipeline.py::test_quality_gate_failure_is_not_loaded); shop_events' rule
# catching the swap: tests/spark/test_shop_events_transforms.py::
# test_a_realistic_corruption_fails_its_rule["product_id and category_id swapped"].
