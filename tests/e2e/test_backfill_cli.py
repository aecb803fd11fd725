"""`python -m local_runtime backfill`, as a person runs it (a new process, its own work
directory and warehouse): six real days of online_retail load once, in one batch; a second
backfill over the same prefix (a new process: the raw objects and the ledger come back from the
work directory) skips every day and runs nothing; a day whose file changed is replaced by a new
version, said so, and only that day runs again. Two pipeline runs in all."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_cli import real_retail_days, run_backfill

pytestmark = pytest.mark.e2e

DAYS = ["2011-02-01", "2011-02-02", "2011-02-03", "2011-02-04", "2011-02-06", "2011-02-07"]


def _rows_per_day(work: Path) -> dict[str, int]:
    import psycopg

    from local_runtime.warehouse import saved_warehouse

    wh = saved_warehouse(work / "warehouse")
    assert wh is not None, "the backfill left no warehouse"
    with psycopg.connect(wh.database_url("dev")) as conn:
        rows = conn.execute("SELECT order_date::text, count(*) FROM analytics.sales_line_items "
                            "GROUP BY 1 ORDER BY 1").fetchall()
    return {day: n for day, n in rows}


@pytest.fixture
def days(tmp_path: Path) -> Path:
    folder = real_retail_days(tmp_path / "days", DAYS)
    (folder / "notes.txt").write_text("not a day file")
    return folder


def test_a_backfill_loads_each_day_once_and_a_second_one_skips_them(days, tmp_path):
    from local_runtime.warehouse import saved_warehouse

    work = tmp_path / "local"
    try:
        first, out = run_backfill(work, "--from-dir", days)
        assert "left out 1 file(s)" in out and "notes.txt" in out
        assert first["status"] == "succeeded" and first["loaded"] == DAYS
        assert first["counts"]["job_runs"] == 1 and first["counts"]["batches"] == 1
        assert first["cost_usd"] > 0
        loaded = _rows_per_day(work)
        assert sorted(loaded) == DAYS and all(n > 0 for n in loaded.values())

        again, out = run_backfill(work, "--prefix", "online_retail/")
        assert again["skipped"] == DAYS and again["counts"]["job_runs"] == 0
        assert again["loaded"] == [] and "6 raw object(s) under online_retail/" in out
        assert _rows_per_day(work) == loaded

        changed = days / "2011-02-03.csv"
        lines = changed.read_text(encoding="utf-8").splitlines(keepends=True)
        changed.write_text("".join(lines[:-10]), encoding="utf-8")  # ten lines fewer
        third, out = run_backfill(work, "--from-dir", days, "--start", "2011-02-02",
                               "--end", "2011-02-04")
        assert "replaced online_retail/2011-02-03.csv" in out and "old version is kept" in out
        assert third["loaded"] == ["2011-02-03"]
        assert third["skipped"] == ["2011-02-02", "2011-02-04"]
        assert third["counts"]["outside_range"] == 3
        after = _rows_per_day(work)
        assert after["2011-02-03"] < loaded["2011-02-03"]
        assert {d: n for d, n in after.items() if d != "2011-02-03"} == {
            d: n for d, n in loaded.items() if d != "2011-02-03"}
    finally:
        wh = saved_warehouse(work / "warehouse")
        if wh is not None:
            wh.stop()
