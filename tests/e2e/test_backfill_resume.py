"""A backfill of twenty real days, as a person runs it (`python -m local_runtime` in new
processes, its own work directory and warehouse): killed half-way (SIGKILL of its process
group while its Spark job runs; the warm Spark server, in a session of its own, lives on with
the orphaned job), started again, it finishes with every day loaded once, each day figure for
figure as that day's own run loads it; a third backfill runs nothing. One test, so the batch
runs once (CI time). Days 2011-03-xx are this module's own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_expected import expected_day, loaded_day_figures
from local_cli import REPO, cli_command, cli_env, real_retail_days, run_backfill, run_cli

pytestmark = pytest.mark.e2e

DAYS = ["2011-03-01", "2011-03-02", "2011-03-03", "2011-03-04", "2011-03-06", "2011-03-07",
        "2011-03-08", "2011-03-09", "2011-03-10", "2011-03-11", "2011-03-13", "2011-03-14",
        "2011-03-15", "2011-03-16", "2011-03-17", "2011-03-18", "2011-03-20", "2011-03-21",
        "2011-03-22", "2011-03-23"]
OWN_RUNS = ["2011-03-01", "2011-03-23"]  # run again on their own after the backfill


@pytest.fixture
def days(tmp_path: Path) -> Path:
    return real_retail_days(tmp_path / "days", DAYS)


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    from local_runtime.warehouse import saved_warehouse

    work = tmp_path / "local"
    try:
        yield work
    finally:
        run_cli("spark", "stop", "--work-dir", work, timeout=120)
        wh = saved_warehouse(work / "warehouse")
        if wh is not None:
            wh.stop()


def _query(work: Path):
    import psycopg

    from local_runtime.warehouse import saved_warehouse

    wh = saved_warehouse(work / "warehouse")
    assert wh is not None, "the run left no warehouse"

    def query(sql: str, params: Any = None) -> list[tuple]:
        with psycopg.connect(wh.database_url("dev")) as conn:
            return conn.execute(sql, params).fetchall()

    return query


def _figures(work: Path) -> dict[str, dict[str, Any]]:
    q = _query(work)
    return {day: loaded_day_figures(q, day) for day in DAYS}


def _expected(days: Path) -> dict[str, dict[str, Any]]:
    figures = {}
    for day in DAYS:
        e = expected_day(days / f"{day}.csv")
        figures[day] = {"line_items": e["line_items"], "customers": e["customers"]}
    return figures


def _start_backfill(work: Path, days: Path, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command("backfill", "--dataset", "online_retail", "--from-dir", days,
                    "--work-dir", work),
        cwd=REPO, env=cli_env(), stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # its own process group: the kill reaches Spark too


def _wait_for_the_job(work: Path, proc: subprocess.Popen[str], log: Path, seconds: float) -> None:
    """Until the batch's Spark job has begun writing its outputs (`<work>/jobs/<id>/out`)."""
    deadline = time.monotonic() + seconds
    while not any(work.glob("jobs/*/out/*")):
        assert proc.poll() is None, f"the backfill ended before its job ran:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no job output in {seconds} s:\n{log.read_text()}"
        time.sleep(0.5)


def test_a_backfill_killed_half_way_resumes_and_loads_each_day_once_as_its_own_run_does(
        days, work, tmp_path):
    log = tmp_path / "killed.log"
    proc = _start_backfill(work, days, log)
    try:
        _wait_for_the_job(work, proc, log, seconds=1200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert "plan: 20 partition(s) in 1 batch(es)" in log.read_text()
    assert "backfill succeeded" not in log.read_text(), "killed too late to test a resume"

    summary, out = run_backfill(work, "--from-dir", days, timeout=1800)
    assert summary["status"] == "succeeded", out
    assert sorted(summary["loaded"] + summary["skipped"]) == DAYS
    assert summary["counts"]["failed"] == 0
    batch = _figures(work)
    assert batch == _expected(days)  # each day once: nothing lost, nothing doubled
    q = _query(work)
    assert q("select count(*) from analytics.sales_line_items where order_date not between "
             "%s and %s", (DAYS[0], DAYS[-1]))[0][0] == 0

    for day in OWN_RUNS:  # the day's own run replaces what the batch loaded: same figures
        own = tmp_path / f"own-{day}.json"
        proc_run = run_cli("run", "--file", days / f"{day}.csv", "--key",
                           f"online_retail/{day}.csv", "--rerun", "--work-dir", work,
                           "--summary-json", own, timeout=900)
        assert proc_run.returncode == 0, proc_run.stdout + proc_run.stderr
        ran = json.loads(own.read_text())
        assert ran["status"] == "SUCCEEDED" and not ran["duplicate"], proc_run.stdout
    assert _figures(work) == batch

    again, _ = run_backfill(work, "--from-dir", days, timeout=1800)
    assert again["skipped"] == DAYS and again["counts"]["job_runs"] == 0
