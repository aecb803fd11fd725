"""`list_runs` and `python -m pipeline_aws runs` against a moto ledger with the GSI by_dataset."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from moto import mock_aws

from pipeline_aws.__main__ import main as package_main
from pipeline_aws.runs_cli import list_runs, main
from tests.support.aws import create_ledger_table
from tests.unit.contracts.conftest import resource


class NoScan:
    """The Table, minus Scan: list_runs must only Query the GSI."""

    def __init__(self, table):
        self._table = table
        self.queries: list[dict] = []

    def query(self, **kwargs):
        self.queries.append(kwargs)
        return self._table.query(**kwargs)

    def scan(self, **kwargs):
        raise AssertionError("list_runs must not Scan the ledger")


def _item(run_id, dataset, started, status="SUCCEEDED", ended=None, usd=None, rows=None,
          complete=True):
    item = {"run_id": run_id, "dataset": dataset, "started_at": started, "status": status,
            "partition": started[:10], "compute": "serverless"}
    if ended:
        item["ended_at"] = ended
    if usd is not None:
        item["cost"] = {"total_usd": Decimal(usd), "complete": complete}
    if rows:
        item["rows_loaded"] = {k: Decimal(v) for k, v in rows.items()}
    return item


@pytest.fixture
def ledger(env):
    with mock_aws():
        table = create_ledger_table(resource("dynamodb"))
        for item in [
            _item("or-1", "online_retail", "2026-11-01T10:00:00Z", ended="2026-11-01T10:09:30Z",
                  usd="0.0712", rows={"sales_line_items": 3080, "customer_daily_sales": 98}),
            _item("or-2", "online_retail", "2026-11-02T10:00:00Z", status="FAILED",
                  ended="2026-11-02T10:03:00Z", usd="0.0175", complete=False),
            _item("or-3", "online_retail", "2026-11-03T10:00:00Z", status="RUNNING"),
            _item("wx-1", "weather", "2026-11-02T12:00:00Z", ended="2026-11-02T12:01:05Z",
                  usd="0.01"),
            _item("wx-0", "weather", "2026-10-28T12:00:00Z", usd="0.02"),
        ]:
            table.put_item(Item=item)
        yield NoScan(table)


def test_one_dataset_newest_first_with_duration_rows_and_cost(ledger):
    rows = list_runs(ledger, "online_retail")
    assert [r["run_id"] for r in rows] == ["or-3", "or-2", "or-1"]
    first = rows[2]
    assert first["duration_s"] == 570.0 and first["rows"] == 3178
    assert first["cost_usd"] == pytest.approx(0.0712) and first["status"] == "SUCCEEDED"
    assert rows[0]["duration_s"] is None and rows[0]["cost_usd"] is None
    assert all(q["IndexName"] == "by_dataset" for q in ledger.queries)


def test_every_dataset_since_a_date_and_a_limit(ledger):
    rows = list_runs(ledger, since=date(2026, 11, 2), limit=3,
                     datasets=["online_retail", "weather"])
    assert [r["run_id"] for r in rows] == ["or-3", "wx-1", "or-2"]
    assert len(ledger.queries) == 2  # one GSI query per dataset
    assert all(":s" in q["ExpressionAttributeValues"] for q in ledger.queries)


def test_without_a_dataset_the_catalog_names_the_datasets(ledger):
    rows = list_runs(ledger, since="2026-10-01")
    assert {r["dataset"] for r in rows} == {"online_retail"}  # weather is not in the catalog
    assert [q["ExpressionAttributeValues"][":d"] for q in ledger.queries] == ["online_retail"]


def test_limit_must_be_positive(ledger):
    with pytest.raises(ValueError):
        list_runs(ledger, "online_retail", limit=0)


def test_cli_table_and_json(ledger, capsys):
    assert main(["--dataset", "online_retail", "--limit", "2"], table=ledger) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["STARTED", "DATASET", "PARTITION", "STATUS"]
    assert len(out) == 3 and "0.0175+" in out[2] and "3m00s" in out[2]

    assert main(["--since", "2026-11-02", "--json"], table=ledger) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == ["or-3", "or-2"]


def test_cli_rejects_a_bad_date(ledger, capsys):
    with pytest.raises(SystemExit):
        main(["--since", "2026-13-01"], table=ledger)
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_package_entry_point_routes_runs(ledger, monkeypatch, capsys):
    import pipeline_aws.runs_cli as runs_cli

    seen = {}
    monkeypatch.setattr(runs_cli, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    assert package_main(["runs", "--dataset", "online_retail"]) == 0
    assert seen["argv"] == ["--dataset", "online_retail"]
    assert package_main(["nope"]) == 2
    assert "runs" in capsys.readouterr().err


def test_duration_of_a_zoneless_start_and_a_utc_end_is_read_as_utc():
    """Ledger timestamps are UTC; one written without a zone (an older writer, a hand edit)
    must not make the duration a TypeError (naive minus aware) or shift it by the machine's zone."""
    from pipeline_aws.runs_cli import summarize

    row = summarize({"run_id": "r", "started_at": "2026-11-01T10:00:00",
                     "ended_at": "2026-11-01T10:01:30Z"})
    assert row["duration_s"] == 90.0
