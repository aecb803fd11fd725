"""bank_reference through the real state machine on the local deployment: the four real
reference files (sample_data/bank_reference/, one snapshot of 1998-12-31) load exactly what an
independent computation over their text says; an older snapshot delivered after a newer one
changes nothing and the run says it was stale; a line the job refuses stops the full refresh.

These tests share the session's warehouse: the stale-snapshot test leaves bank_districts at a
later snapshot than the sample's, so it runs after the sample's load (file order)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from bank_reference_expected import accounts, clients, dispositions, districts

from local_runtime.cli import run_file

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "bank_reference"
SNAPSHOT = "1998-12-31"


def _file(source: str) -> Path:
    return SAMPLES / source / f"{SNAPSHOT}.asc"


def _run(deployment, source: str, path: Path, day: str):
    started = time.monotonic()
    res = run_file(deployment, path, f"bank_reference/{source}/{day}.asc", out=None)
    print(f"bank_reference {source} {day} local run: {time.monotonic() - started:.1f} s")
    return res


def _table(warehouse_db, sql: str, day: str = SNAPSHOT) -> dict:
    rows = warehouse_db(f"{sql} where snapshot_date = %s", (day,))
    return {r[0]: tuple(r[1:]) for r in rows}


def test_the_four_files_load_what_an_independent_computation_says(deployment, warehouse_db):
    runs = {source: _run(deployment, source, _file(source), SNAPSHOT)
            for source in ("account", "client", "disp", "district")}
    for source, res in runs.items():
        assert res.status == "SUCCEEDED", (source, res.summary)
        assert res.summary["lines"]["quarantined"] == 0, source
    expected_accounts = accounts(_file("account"))
    assert _table(warehouse_db, "select account_id, district_id, statement_frequency, "
                  "opened_date from analytics.bank_accounts") == expected_accounts
    assert _table(warehouse_db, "select client_id, birth_date, sex, district_id "
                  "from analytics.bank_clients") == clients(_file("client"))
    assert _table(warehouse_db, "select disp_id, client_id, account_id, disposition_type "
                  "from analytics.bank_dispositions") == dispositions(_file("disp"))
    assert _table(warehouse_db, "select district_id, name, region, inhabitants, "
                  "municipalities_under_500, municipalities_500_1999, municipalities_2000_9999, "
                  "municipalities_over_10000, cities, urban_inhabitants_ratio, average_salary, "
                  "unemployment_rate_1995, unemployment_rate_1996, entrepreneurs_per_1000, "
                  "crimes_1995, crimes_1996 from analytics.bank_districts") == districts(
        _file("district"))
    # a full refresh: nothing but the snapshot, every row of it stamped with its run
    for table, res in (("bank_accounts", runs["account"]), ("bank_districts", runs["district"])):
        assert warehouse_db(f"select count(*), count(distinct snapshot_date), min(run_id), "
                            f"max(run_id) from analytics.{table}")[0] == (
            res.summary["lines"]["in"], 1, res.ledger["run_id"], res.ledger["run_id"])
    assert runs["account"].summary["lines"]["in"] == len(expected_accounts) == 4500


def test_an_older_snapshot_delivered_later_never_rolls_the_table_back(
        deployment, warehouse_db, tmp_path):
    """A newer district snapshot (one district renamed) loads; then an older one arrives (a
    late or repeated upload): the run fails naming the stale snapshot, the table keeps the
    newer one."""
    newer = tmp_path / "newer.asc"
    newer.write_bytes(_file("district").read_bytes().replace(b'"Benesov"', b'"Benesov u Prahy"'))
    res = _run(deployment, "district", newer, "1999-06-30")
    assert res.status == "SUCCEEDED", res.summary
    loaded = _table(warehouse_db, "select district_id, name, run_id from analytics.bank_districts",
                    "1999-06-30")
    assert len(loaded) == 77 and loaded[2][0] == "Benesov u Prahy"

    res = _run(deployment, "district", _file("district"), "1999-03-31")
    assert res.status == "FAILED"
    failure = res.ledger["failure"]
    assert failure["state"] == "Load" and failure["error"] == "StaleSnapshot", failure
    assert failure["cause"].startswith(
        "stale snapshot: bank_districts holds a snapshot newer than this run's 1999-03-31; "
        "nothing was changed")
    assert warehouse_db("select count(*), min(snapshot_date)::text, max(snapshot_date)::text "
                        "from analytics.bank_districts")[0] == (77, "1999-06-30", "1999-06-30")
    assert _table(warehouse_db, "select district_id, name, run_id from analytics.bank_districts",
                  "1999-06-30") == loaded


def test_a_refused_line_stops_the_full_refresh(deployment, warehouse_db, tmp_path):
    """A full refresh would delete the row of a quarantined line: one bad line (a district id
    that is not a number) fails the gate and the table keeps what it had."""
    before = warehouse_db("select district_id, name, snapshot_date, run_id "
                          "from analytics.bank_districts order by 1")
    bad = tmp_path / "bad.asc"
    bad.write_bytes(_file("district").read_bytes().replace(b'\r\n2;"Benesov"', b'\r\nB2;"Benesov"'))
    res = _run(deployment, "district", bad, "1999-09-30")
    assert res.status == "FAILED"
    assert res.ledger["failure"]["state"] == "EvaluateQuality"
    assert "QuarantinedRatio" in res.ledger["failure"]["cause"]
    assert res.summary["lines"]["quarantined"] == 1
    assert warehouse_db("select district_id, name, snapshot_date, run_id "
                        "from analytics.bank_districts order by 1") == before
