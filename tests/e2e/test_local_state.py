"""The local runtime's state across processes (local_runtime.state): each `run` below is a new
process, i.e. a new LocalDeployment over the same work directory, which restores the run
ledger its predecessors wrote. The loads go to the session's warehouse through a
--warehouse-url that carries a password, which must never be shown."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from local_cli import (
    REPO,
    SECRET,
    cli_command,
    cli_env,
    files_containing,
    run_cli,
    wait_for_text,
    with_password,
)

from local_runtime.state import LedgerFileError, StateBusy, StateLock, read_ledger

pytestmark = pytest.mark.e2e
SAMPLES = REPO / "sample_data" / "online_retail"
DAY = "2010-12-07"  # a day no other e2e test loads: DAY2's lines moved to it
KEY = f"online_retail/{DAY}.csv"


def _ledger(work: Path) -> dict[str, dict]:
    return {i["run_id"]["S"]: i for i in read_ledger(work / "ledger.json")}


def _day_rows(q) -> tuple:
    count, revenue = q("select count(*), sum(line_revenue) from analytics.sales_line_items "
                       "where order_date = %s", (DAY,))[0]
    run_ids = {r[0] for r in q("select distinct run_id from analytics.sales_line_items "
                               "where order_date = %s", (DAY,))}
    return count, revenue, run_ids


def _no_secret(proc: subprocess.CompletedProcess[str] | None, *roots: Path) -> None:
    if proc is not None:
        assert SECRET not in proc.stdout and SECRET not in proc.stderr
    for root in roots:
        assert files_containing(root, SECRET) == []


@pytest.fixture(scope="module")
def secret_url(deployment) -> str:
    """The session warehouse's URL with a password (its trust auth ignores it)."""
    return with_password(deployment.warehouse.url)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, secret_url):
    """The day loaded once, by its own process, into an empty work directory."""
    base = tmp_path_factory.mktemp("state")
    work, out = base / "local", base / "out"
    out.mkdir()
    src = out / f"{DAY}.csv"
    src.write_bytes((SAMPLES / "2010-12-02.csv").read_bytes().replace(b"2010-12-02",
                                                                      DAY.encode()))
    proc = run_cli("-v", "run", "--work-dir", work, "--file", src, "--key", KEY,
                   "--warehouse-url", secret_url, "--summary-json", out / "first.json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "first.json").read_text())
    return SimpleNamespace(work=work, out=out, src=src, proc=proc, summary=summary,
                           args=("run", "--work-dir", work, "--file", src, "--key", KEY,
                                 "--warehouse-url", secret_url))


def test_first_run_loads_with_no_history_and_never_shows_the_password(first_run, warehouse_db):
    s = first_run.summary
    assert s["status"] == "SUCCEEDED" and not s["duplicate"] and s["attempt"] == 1
    assert "insufficient history (0 of 10 runs)" in s["quality_summary"]
    count, _, run_ids = _day_rows(warehouse_db)
    assert run_ids == {s["run_id"]} and count == s["rows_loaded"]["sales_line_items"] > 0
    assert _ledger(first_run.work)[s["run_id"]]["status"] == {"S": "SUCCEEDED"}
    # the password of --warehouse-url: not in stdout/stderr (-v logs), the summary, any file
    _no_secret(first_run.proc, first_run.work, first_run.out)


def test_redelivery_in_a_new_process_waits_for_the_lock_then_is_a_duplicate(
        first_run, warehouse_db):
    before = _day_rows(warehouse_db)
    out = first_run.out / "dup.json"
    stdout, stderr = first_run.out / "dup.stdout", first_run.out / "dup.stderr"
    holder = StateLock(first_run.work).acquire()  # another local runtime is busy
    try:
        with open(stdout, "w") as o, open(stderr, "w") as e:
            proc = subprocess.Popen(cli_command(*first_run.args, "--summary-json", out),
                                    cwd=REPO, env=cli_env(), stdout=o, stderr=e, text=True)
        try:
            assert wait_for_text(stderr, "waiting for the local runtime that holds", 60), \
                stderr.read_text()
            assert f"pid {os.getpid()}" in stderr.read_text()
            assert proc.poll() is None  # it waits: it has not run anything
        finally:
            holder.release()
        assert proc.wait(timeout=300) == 0, stdout.read_text() + stderr.read_text()
    finally:
        holder.release()
    s = json.loads(out.read_text())
    assert s["status"] == "SUCCEEDED" and s["duplicate"] is True
    assert s["run_id"].startswith(first_run.summary["run_id"])
    assert "DuplicateDelivery" in [t["state"] for t in s["timeline"]]
    assert "RunServerlessJob" not in [t["state"] for t in s["timeline"]]
    assert _day_rows(warehouse_db) == before
    assert SECRET not in stdout.read_text() + stderr.read_text()


def test_rerun_in_a_new_process_is_attempt_2_replaces_the_day_and_sees_history(
        first_run, warehouse_db):
    first = first_run.summary
    out = first_run.out / "rerun.json"
    proc = run_cli(*first_run.args, "--rerun", "--summary-json", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads(out.read_text())
    assert s["status"] == "SUCCEEDED" and not s["duplicate"]
    assert s["run_id"] == f"{first['run_id']}-r2" and s["attempt"] == 2
    # replaced, not doubled: the same rows, now all from attempt 2
    count, _, run_ids = _day_rows(warehouse_db)
    assert count == first["rows_loaded"]["sales_line_items"] == s["rows_loaded"][
        "sales_line_items"]
    assert run_ids == {s["run_id"]}
    # the gate's history holds the first process's SUCCEEDED run
    assert "insufficient history (1 of 10 runs)" in s["quality_summary"]
    assert 'DetectAnomalies "RowCount"' in s["quality_summary"]
    assert "(1 of 3 runs)" in s["quality_summary"]
    ledger = _ledger(first_run.work)
    assert ledger[first["run_id"]]["latest_attempt"] == {"N": "2"}
    assert ledger[first["run_id"]]["latest_run_id"] == {"S": s["run_id"]}
    assert ledger[s["run_id"]]["base_run_id"] == {"S": first["run_id"]}
    assert ledger[s["run_id"]]["status"] == {"S": "SUCCEEDED"}
    assert ledger[s["run_id"]]["quality_metrics"]["M"]  # the next runs' history
    _no_secret(proc, first_run.work, first_run.out)


# -- the lock -------------------------------------------------------------------------------------

def test_a_second_locker_gives_up_after_its_timeout(tmp_path):
    with StateLock(tmp_path):
        t0 = time.monotonic()
        with pytest.raises(StateBusy, match=f"held by pid {os.getpid()}"):
            StateLock(tmp_path, timeout=0.2, out=io.StringIO()).acquire()
        assert time.monotonic() - t0 < 5
    with StateLock(tmp_path, timeout=0.2) as again:  # released: free at once
        assert again.held


def test_a_second_locker_waits_until_the_first_releases(tmp_path):
    first = StateLock(tmp_path).acquire()
    said = io.StringIO()
    second = StateLock(tmp_path, out=said)
    acquired = threading.Event()
    waiter = threading.Thread(target=lambda: (second.acquire(), acquired.set()), daemon=True)
    waiter.start()
    try:
        assert not acquired.wait(0.3), "the second locker must block while the first holds it"
        assert "waiting for the local runtime that holds" in said.getvalue()
        first.release()
        assert acquired.wait(10)
        assert second.held
    finally:
        first.release()
        waiter.join(10)
        second.release()


def test_a_run_gives_up_when_another_process_holds_the_work_dir(tmp_path):
    work = tmp_path / "local"
    with StateLock(work):
        proc = run_cli("run", "--work-dir", work, "--lock-timeout", "0.3",
                       "--schedule", "online_retail", "--date", "2010-12-01", timeout=120)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"held by pid {os.getpid()}" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["ledger.lock"]  # nothing started


# -- a ledger file that cannot be used ------------------------------------------------------------

@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "not valid JSON"),
    ("[]", '"items" list'),
    ('{"items": {}}', '"items" list'),
    ('{"items": [{"status": {"S": "SUCCEEDED"}}]}', 'item 0 has no "run_id"'),
    ('{"items": [{"run_id": {"S": "a"}, "attempt": 1}]}', "attempt"),
])
def test_a_ledger_that_is_not_a_ledger_is_named_and_kept(tmp_path, content, why):
    path = tmp_path / "ledger.json"
    path.write_text(content)
    with pytest.raises(LedgerFileError) as e:
        read_ledger(path)
    assert str(path) in str(e.value) and why in str(e.value)
    assert f"mv {path} {path}.broken" in str(e.value) and "left as it is" in str(e.value)
    assert path.read_text() == content


def test_an_unreadable_ledger_is_named(tmp_path):
    (tmp_path / "ledger.json").mkdir()
    with pytest.raises(LedgerFileError, match="cannot read it"):
        read_ledger(tmp_path / "ledger.json")


@pytest.mark.parametrize("command", [
    ("run", "--schedule", "online_retail", "--date", "2010-12-01"),
    ("runs",),
])
def test_a_corrupt_ledger_stops_the_command_with_one_line_and_is_kept(tmp_path, command):
    work = tmp_path / "local"
    work.mkdir()
    ledger = work / "ledger.json"
    ledger.write_text('{"table": "t", "items": [')
    proc = run_cli(*command, "--work-dir", work, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert str(ledger) in proc.stderr and "mv " in proc.stderr
    assert "Traceback" not in proc.stderr
    assert ledger.read_text() == '{"table": "t", "items": ['
    assert not (work / "warehouse").exists() and not (work / "jobs").exists()
