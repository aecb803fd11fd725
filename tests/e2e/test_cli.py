"""Command-line mistakes: one line `error: ...` on stderr, exit code 2, no traceback, and
nothing started (no Spark job, no warehouse, no moto). Each runs `python -m local_runtime` as
a new process."""

from __future__ import annotations

import pytest
from local_cli import REPO, SECRET, run_cli

pytestmark = pytest.mark.e2e
DAY1 = REPO / "sample_data" / "online_retail" / "2010-12-01.csv"
UNREACHABLE = f"postgresql://user:{SECRET}@127.0.0.1:1/db"

CASES = {
    "bad date": (["run", "--schedule", "online_retail", "--date", "2011-02-30"],
                 ["--date 2011-02-30 is not a real date", "day is out of range for month"]),
    "not a date": (["run", "--schedule", "online_retail", "--date", "20101201"],
                   ["YYYY-MM-DD"]),
    "unknown dataset": (["run", "--schedule", "nope", "--date", "2010-12-01"],
                        ["unknown dataset 'nope'", "online_retail"]),
    "year 1": (["run", "--schedule", "online_retail", "--date", "0001-01-01"],
               ["--date 0001-01-01 is out of range for a schedule", "1969-12-31"]),
    "last day": (["run", "--schedule", "online_retail", "--date", "9999-12-31"],
                 ["out of range", "9999-12-30"]),
    "unreachable warehouse": (
        ["run", "--schedule", "online_retail", "--date", "2010-12-01",
         "--warehouse-url", UNREACHABLE],
        ["cannot connect to the warehouse at postgresql://user:***@127.0.0.1:1/db",
         "Connection refused"]),
    "demo, unreachable warehouse": (
        ["demo", "--warehouse-url", UNREACHABLE],
        ["cannot connect to the warehouse at postgresql://user:***@127.0.0.1:1/db"]),
    "missing file": (["run", "--file", "/nonexistent/2010-12-01.csv", "--key",
                      "online_retail/2010-12-01.csv"],
                     ["--file /nonexistent/2010-12-01.csv does not exist"]),
    "missing file for a schedule": (["run", "--schedule", "online_retail", "--date",
                                     "2010-12-01", "--file", "/nonexistent/x.csv"],
                                    ["--file /nonexistent/x.csv does not exist"]),
    "key outside every prefix": (["run", "--file", str(DAY1), "--key", "elsewhere/2010-12-01.csv"],
                                 ["'elsewhere/2010-12-01.csv' is outside every dataset prefix",
                                  "online_retail/"]),
    "key with an impossible day": (["run", "--file", str(DAY1), "--key",
                                    "online_retail/2010-12-32.csv"],
                                   ["'2010-12-32' is not a real date"]),
    "no sample for the day": (["run", "--schedule", "online_retail", "--date", "2011-01-01"],
                              ["no sample file for online_retail 2011-01-01", "--file"]),
    "schedule without date": (["run", "--schedule", "online_retail"], ["--date"]),
    "date without schedule": (["run", "--date", "2010-12-01"], ["--schedule"]),
    "unknown option": (["run", "--nope"], ["unrecognized arguments: --nope"]),
    "backfill of an unknown dataset": (["backfill", "--dataset", "nope", "--prefix", "nope/"],
                                       ["unknown dataset 'nope'", "online_retail"]),
    "backfill without a source": (["backfill", "--dataset", "online_retail"],
                                  ["--from-dir DIR or --prefix PREFIX"]),
    "backfill with both sources": (["backfill", "--dataset", "online_retail", "--prefix",
                                    "online_retail/", "--from-dir", "sample_data"],
                                   ["one of --from-dir DIR or --prefix PREFIX"]),
    "backfill range backwards": (["backfill", "--dataset", "online_retail", "--prefix",
                                  "online_retail/", "--start", "2011-02-02", "--end",
                                  "2011-02-01"], ["--start 2011-02-02 is after --end"]),
    "backfill prefix of another dataset": (["backfill", "--dataset", "online_retail",
                                            "--prefix", "web_logs/"],
                                           ["not under dataset online_retail's prefix"]),
    "bad compute": (["run", "--compute", "gpu"], ["invalid choice: 'gpu'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_is_one_line_and_exit_2(case, tmp_path):
    args, expected = CASES[case]
    work = tmp_path / "local"
    proc = run_cli(*args, "--work-dir", work, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in proc.stderr and SECRET not in proc.stderr
    # nothing started: no Spark job directory, no warehouse (only the lock file, at most)
    started = sorted(p.name for p in work.iterdir()) if work.exists() else []
    assert not {"jobs", "warehouse"} & set(started), started
