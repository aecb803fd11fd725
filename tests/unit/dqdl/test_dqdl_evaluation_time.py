"""The evaluation time of DataFreshness and now(): the run's start, or the end of the partition
day when the catalog says so (quality.freshness_reference), and the gate's check that the job
measured against it.

AWS documents DataFreshness as "the difference between the current time and the values of a
date column" (DataFreshness, https://docs.aws.amazon.com/glue/latest/dg/dqdl-rule-types-DataFreshness.html)
and now() as the current time (Data Quality Definition Language (DQDL) reference,
https://docs.aws.amazon.com/glue/latest/dg/dqdl.html): the run's start here. Historical data
(and any backfill) declares partition_end instead.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from pipeline_aws.contracts import RunManifest
from pipeline_aws.quality.gate import evaluation_time_check
from pipeline_aws.quality.reports import parse_quality_report
from pipeline_core.catalog import Quality, load_catalog
from pipeline_core.errors import ConfigurationError
from tests.support.aws import read_event
from tests.unit.run.support import write_catalog

REPO = Path(__file__).resolve().parents[3]
STARTED = dt.datetime(2026, 11, 21, 10, 5, tzinfo=dt.UTC)


def test_the_evaluation_time_follows_the_declaration():
    run_start = Quality("x.dqdl")
    assert run_start.freshness_reference == "run_start"  # AWS: the current time
    assert run_start.evaluation_time("2010-12-01", STARTED) == STARTED
    partition_end = Quality("x.dqdl", freshness_reference="partition_end")
    assert partition_end.evaluation_time("2010-12-01", STARTED) == dt.datetime(
        2010, 12, 2, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="time zone"):
        run_start.evaluation_time("2010-12-01", STARTED.replace(tzinfo=None))


def test_the_shipped_historical_dataset_declares_partition_end():
    """Its days are 2010-12-01 to 2011-12-09: against the run's start every line would be years
    old, so its rules measure against the end of each day."""
    assert load_catalog(REPO / "datasets").get("online_retail").quality.freshness_reference == (
        "partition_end")


def test_a_bad_declaration_is_refused(tmp_path: Path):
    directory = write_catalog(tmp_path / "datasets", quality={
        "rules_file": "online_retail.dqdl", "freshness_reference": "yesterday"})
    with pytest.raises(ConfigurationError, match="freshness_reference: 'yesterday' is not one of"):
        load_catalog(directory)


def _run(partition: str = "2010-12-01") -> RunManifest:
    run = dict(read_event("evaluate_quality", "serverless_run.json")["state"]["run"])
    run.update(partition=partition, started_at="2026-11-21T10:05:00Z")
    return RunManifest.model_validate(run)


def _report(rule: str, reference_time: str | None) -> Any:
    body: dict[str, Any] = {"rules": [{"rule": rule, "line": 3, "severity": "error",
                                       "outcome": "pass", "threshold": "= 1"}]}
    if reference_time is not None:
        body["reference_time"] = reference_time
    return parse_quality_report(body, "s3://b/quality.json")


@pytest.mark.parametrize(("reference", "measured", "passed"), [
    ("partition_end", "2010-12-02T00:00:00Z", True),
    ("partition_end", "2026-11-21T10:05:00Z", False),
    ("run_start", "2026-11-21T10:05:00Z", True),
    ("run_start", "2010-12-02T00:00:00Z", False),  # a job left at its default
    ("run_start", None, False),
])
def test_the_gate_checks_the_instant_the_job_measured_against(reference, measured, passed):
    quality = Quality("x.dqdl", freshness_reference=reference)
    [check] = evaluation_time_check(quality, _run(), _report(
        'DataFreshness "t" <= 24 hours', measured))
    assert check.passed is passed and check.severity == "error" and check.line == 0
    if not passed:
        assert f"freshness_reference {reference!r} means" in (check.reason or "")
    [check] = evaluation_time_check(quality, _run(), _report(
        'ColumnValues "t" < now()', measured))
    assert check.passed is passed


def test_rules_without_time_need_no_check():
    quality = Quality("x.dqdl")
    assert evaluation_time_check(quality, _run(), _report("RowCount > 0", None)) == []
