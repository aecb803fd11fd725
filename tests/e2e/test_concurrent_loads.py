"""Two runs loading the same day at once, through the real state machine, with the Data API
stand-in enforcing statement ownership and SERIALIZABLE isolation on PostgreSQL.

"Serializable isolation" (Amazon Redshift Database Developer Guide,
https://docs.aws.amazon.com/redshift/latest/dg/c_serial_isolation.html) and "Troubleshooting
serializable isolation errors" (same guide, c_serial_isolation-serializable-isolation-
troubleshooting.html): of two overlapping writers of one table one fails with error 1023, and
the remedy is to retry that transaction. The day must end loaded exactly once.
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path
from typing import Any

import pytest
from e2e_expected import expected_day

from local_runtime.cli import run_file

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
DAY = "2010-12-08"  # a day no other e2e test loads: both loads start from an empty day


def _entered(deployment: Any, execution_arn: str) -> list[str]:
    sfn = deployment.client("stepfunctions")
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return [e["stateEnteredEventDetails"]["name"] for e in events
            if "stateEnteredEventDetails" in e]


def _make_the_loads_overlap(deployment: Any, monkeypatch: Any) -> None:
    """The two runs' Spark jobs end at different times: their first submits wait for each
    other (outside the Lambda lock), then both loads hold just before their commit until the
    other got there too, so the two transactions overlap. The ledger file, written after each
    execution, is written by one run at a time."""
    import local_runtime.runner as runner
    from local_runtime import sfn_hooks

    dump, dumping = runner.dump_ledger, threading.Lock()

    def dump_in_turn(d: Any) -> None:
        with dumping:
            dump(d)

    invoke, submits = sfn_hooks.STATE.invoke_lambda, threading.Barrier(2, timeout=600)

    def invoke_together(function: str, payload: Any) -> Any:
        state = payload.get("state") if isinstance(payload, dict) else None
        if payload.get("operation") == "submit" and state and "load" not in state:
            submits.wait()
        return invoke(function, payload)

    monkeypatch.setattr(runner, "dump_ledger", dump_in_turn)
    monkeypatch.setattr(sfn_hooks.STATE, "invoke_lambda", invoke_together)
    deployment.data_api.hold_before_commit(r"^INSERT INTO analytics\.sales_line_items",
                                           parties=2, timeout=20)


def test_two_loads_of_one_day_at_once_leave_one_copy_and_the_loser_retries(
        deployment, warehouse_db, tmp_path, monkeypatch):
    body = (SAMPLES / "2010-12-01.csv").read_bytes().replace(b"2010-12-01", DAY.encode())
    plain, gzipped = tmp_path / f"{DAY}.csv", tmp_path / f"{DAY}.csv.gz"
    plain.write_bytes(body)
    gzipped.write_bytes(gzip.compress(body))
    expected = expected_day(plain)["line_items"]
    _make_the_loads_overlap(deployment, monkeypatch)
    results: dict[str, Any] = {}

    def run(path: Path, key: str) -> None:
        results[key] = run_file(deployment, path, key, out=None)

    threads = [threading.Thread(target=run, args=(path, f"online_retail/{path.name}"))
               for path in (plain, gzipped)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=900)
    finally:
        deployment.data_api.clear_failures()

    assert set(results) == {f"online_retail/{DAY}.csv", f"online_retail/{DAY}.csv.gz"}
    for res in results.values():
        assert res.status == "SUCCEEDED", res.summary
    count = warehouse_db("select count(*) from analytics.sales_line_items where order_date = %s",
                         (DAY,))[0][0]
    assert count == expected  # one copy of the day, not two
    loads = {key: _entered(deployment, res.execution_arn).count("StartLoad")
             for key, res in results.items()}
    assert sorted(loads.values()) == [1, 2], loads  # the loser retried once, with a new try
    for res in results.values():
        # the retried run's ledger and alerts look like any other successful run's
        assert res.ledger["status"] == "SUCCEEDED" and "failure" not in res.ledger
        assert res.ledger["rows_loaded"]["sales_line_items"] == expected
        assert "HandleFailure" not in _entered(deployment, res.execution_arn)
    alerts = [a for res in results.values() for a in res.alerts]
    assert not [a for a in alerts if "failed" in str(a.get("subject")).lower()
                or "serializ" in str(a.get("message")).lower()], alerts
