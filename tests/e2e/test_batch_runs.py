"""Batches through the real state machine: one execution runs several partitions (one Spark
job, one gate decision per partition, one load). Days 2011-05-xx are this module's own (the
sample days' lines under other dates), so no other e2e test meets its rows."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from e2e_expected import expected_day, loaded_day_figures

from local_runtime.cli import run_file
from local_runtime.runner import run_batch

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
# Five real days: the three sample days, and two of them again under other dates.
GOOD = {"2011-05-02": "2010-12-01", "2011-05-03": "2010-12-02", "2011-05-04": "2010-12-03",
        "2011-05-05": "2010-12-01", "2011-05-06": "2010-12-02"}
TRUNCATED, BAD_HEADER = "2011-05-09", "2011-05-10"


def _day_file(tmp: Path, day: str, sample: str) -> Path:
    path = tmp / f"{day}.csv"
    path.write_bytes((SAMPLES / f"{sample}.csv").read_bytes().replace(sample.encode(),
                                                                    day.encode()))
    return path


def _files(tmp: Path) -> list[tuple[Path, str]]:
    files = [(_day_file(tmp, day, sample), f"online_retail/{day}.csv")
             for day, sample in GOOD.items()]
    # A gzip cut in the middle: its start (and header) reads, its end does not.
    whole = gzip.compress(_day_file(tmp, TRUNCATED, "2010-12-01").read_bytes())
    cut = tmp / f"{TRUNCATED}.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    files.append((cut, f"online_retail/{TRUNCATED}.csv.gz"))
    header = tmp / f"{BAD_HEADER}.csv"
    header.write_bytes(b"Invoice;Stock;Description\n1;2;3\n")
    files.append((header, f"online_retail/{BAD_HEADER}.csv"))
    return files


def _partitions(res: Any) -> dict[str, dict[str, Any]]:
    return {p["partition"]: p for p in res.summary["partitions"]}


def test_a_batch_loads_each_good_day_as_its_own_run_would_and_bad_days_fail_alone(
        deployment, warehouse_db, tmp_path):
    files = _files(tmp_path)
    res = run_batch(deployment, "online_retail", files, batch_id="e2e-may", out=None)

    assert res.status == "SUCCEEDED", res.summary
    parts = _partitions(res)
    assert set(parts) == {*GOOD, TRUNCATED, BAD_HEADER}
    for day, (path, _) in zip(GOOD, files, strict=False):
        expected = expected_day(path)
        # Figure for figure what the single-day e2e run is held to (test_pipeline.py).
        assert loaded_day_figures(warehouse_db, day) == {
            "line_items": expected["line_items"], "customers": expected["customers"]}, day
        assert parts[day]["status"] == "SUCCEEDED" and parts[day]["verdict"] == "pass"
        assert parts[day]["lines"] == {"in": expected["lines"], "out": expected["line_items"],
                                       "quarantined": expected["quarantined"],
                                       "duplicates": expected["duplicates"]}
        assert parts[day]["rows_loaded"]["sales_line_items"] == expected["line_items"]
    for day in (TRUNCATED, BAD_HEADER):
        assert parts[day]["status"] == "FAILED", parts[day]
        assert loaded_day_figures(warehouse_db, day)["line_items"] == 0
    assert parts[BAD_HEADER]["refused"]  # refused by ResolveRun, before any compute
    subjects = sorted(a["subject"] for a in res.alerts)
    assert [s for s in subjects if TRUNCATED in s or BAD_HEADER in s] == subjects, subjects
    assert len(subjects) == 2  # each bad day alerts alone; the batch itself does not
    jobs = [row for row in res.timeline if row["state"] == "RunServerlessJob"]
    assert len(jobs) == 1  # one Spark job for the whole batch

    # The same batch again: every partition's run exists, nothing runs, nothing changes.
    before = {day: loaded_day_figures(warehouse_db, day) for day in GOOD}
    again = run_batch(deployment, "online_retail", files, batch_id="e2e-may", out=None)
    assert again.status == "SUCCEEDED" and again.summary["duplicate"], again.summary
    assert {p["status"] for p in again.summary["partitions"]} == {"SKIPPED"}
    assert {day: loaded_day_figures(warehouse_db, day) for day in GOOD} == before

    # An S3 event of one of the batch's object versions is a redelivery: loaded once.
    path, key = files[0]
    event = run_file(deployment, path, key, out=None)
    assert event.status == "SUCCEEDED" and event.summary["duplicate"]
    assert {day: loaded_day_figures(warehouse_db, day) for day in GOOD} == before
