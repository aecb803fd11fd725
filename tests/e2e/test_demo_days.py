"""Days dropped as `demo` drops them (cli.run_days): the next day's execution starts as soon as
the previous one ends, while the sales_trends run that day's load started goes on (as its
EventBridge rule starts it in AWS); every run ends, each derived run is followed after the next
day, and each execution's Spark and SQL time is its own (two executions overlap). The module's
days are its own (two sample days as 2010-08-02..03: no other module's 30-day window reaches
them)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from local_runtime.cli import run_days

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
OWN_DAYS = {"2010-08-02": "2010-12-01", "2010-08-03": "2010-12-02"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[tuple[Path, str], ...]:
    folder = tmp_path_factory.mktemp("demo-days")
    out = []
    for day, sample in OWN_DAYS.items():
        path = folder / f"{day}.csv"
        path.write_bytes((SAMPLES / f"{sample}.csv").read_bytes().replace(
            sample.encode(), day.encode()))
        out.append((path, f"online_retail/{day}.csv"))
    return tuple(out)


def test_the_next_day_runs_beside_the_derived_run_and_every_run_is_followed(
        derived_triggers, warehouse_db, files):
    deployment = derived_triggers
    printed = io.StringIO()
    days = run_days(deployment, files, out=printed)
    assert [d.summary["partition"] for d in days] == list(OWN_DAYS)
    runs = [run for day in days for run in (day, *day.derived)]
    assert [(r.summary["dataset"], r.summary["partition"], r.status) for r in runs] == [
        ("online_retail", "2010-08-02", "SUCCEEDED"), ("sales_trends", "2010-08-02", "SUCCEEDED"),
        ("online_retail", "2010-08-03", "SUCCEEDED"), ("sales_trends", "2010-08-03", "SUCCEEDED")]
    assert all(not day.pending for day in days)
    assert [d["partition"] for d in days[0].summary["derived"]] == ["2010-08-02"]
    # the first day's derived run is printed after the second day's execution
    text = printed.getvalue()
    assert text.index("== online_retail/2010-08-03.csv") < text.index(
        "== after the load: sales_trends 2010-08-02")
    for run in runs:  # each execution's own job and load, not what ran beside it
        job = deployment.spark_runner.results[run.output["job_run"]["job_run_id"]]
        assert run.job_seconds == job.wall_seconds > 0
        assert 0 < run.sql_seconds < run.wall_seconds
    for day in OWN_DAYS:
        assert warehouse_db("select count(*) from analytics.sales_trends where order_date = %s",
                            (day,))[0][0] > 0
