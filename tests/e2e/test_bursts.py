"""A burst through the template's path on the local deployment: every file dropped at once as
raw objects, their S3 events (some delivered twice, as S3 may) sent to the burst queue, the SQS
event source mapping played locally (local_runtime.burst) and AdmitObjects starting batched
executions. Days 2011-06-xx are this module's own (the sample days' lines under other dates).

Held to "StartExecution" (Step Functions API Reference,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html): an
ended execution's name is refused (ExecutionAlreadyExists), so a redelivered batch starts
nothing new."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from e2e_expected import expected_day, loaded_day_figures

from local_runtime import burst
from pipeline_core.catalog import load_catalog

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
DAYS = {"2011-06-01": "2010-12-01", "2011-06-02": "2010-12-02", "2011-06-03": "2010-12-03",
        "2011-06-06": "2010-12-01", "2011-06-07": "2010-12-02", "2011-06-08": "2010-12-03"}
TWICE = ("2011-06-02", "2011-06-07")


@pytest.fixture(scope="module")
def dropped(deployment, tmp_path_factory):
    folder = tmp_path_factory.mktemp("burst-days")
    for day, sample in DAYS.items():
        (folder / f"{day}.csv").write_bytes(
            (SAMPLES / f"{sample}.csv").read_bytes().replace(sample.encode(), day.encode()))
    request = burst.plan_dir(folder, "online_retail", load_catalog())
    puts = burst.drop_files(deployment, request)
    events = [p.event() for p in puts]
    events += [p.event() for p in puts if any(d in p.key for d in TWICE)]  # S3 delivers twice
    out = io.StringIO()
    result = burst.run_burst(deployment, events, out, timeout_s=1800)
    return request, puts, result, out.getvalue()


def test_a_burst_loads_each_day_once_as_its_own_run_would(dropped, deployment, warehouse_db):
    request, puts, result, printed = dropped
    summary = burst.summarize(deployment, request, puts, result)
    assert summary["loaded"] == len(DAYS) and summary["not_loaded"] == [], printed
    # 6 days and 2 repeated events: one batch (online_retail takes 31 per batch), one job run
    assert summary["executions"] == 1 and summary["job_runs"] == 1, printed
    assert summary["failed"] == 0 and summary["duplicates"] == 0
    assert "AdmitObjects: 8 record(s), started 1 execution(s)" in printed
    for path, _ in request.files:
        day = path.stem
        expected = expected_day(path)
        assert loaded_day_figures(warehouse_db, day) == {
            "line_items": expected["line_items"], "customers": expected["customers"]}, day
    runs = warehouse_db(
        "select count(*) from analytics.sales_line_items where order_date between "
        "'2011-06-01' and '2011-06-08'")[0][0]
    assert runs == sum(expected_day(p)["line_items"] for p, _ in request.files)


def test_a_redelivered_burst_starts_nothing_new(dropped, deployment):
    request, puts, _, _ = dropped
    out = io.StringIO()
    again = burst.run_burst(deployment, [p.event() for p in puts], out, timeout_s=600)
    assert again.executions == {}, out.getvalue()
    assert "started 0 execution(s)" in out.getvalue()
    summary = burst.summarize(deployment, request, puts, again)
    assert summary["loaded"] == len(DAYS) and summary["job_runs"] == 0
