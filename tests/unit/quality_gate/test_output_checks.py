"""The gate measures what the run wrote, not only what it read: a day that loads no rows, or
quarantines more than the dataset allows, fails (or warns, as the catalog says), and the alert
names the top quarantine reasons with sample lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline_core.catalog import Quality
from pipeline_core.errors import ConfigurationError
from tests.support.aws import read_event
from tests.unit.quality_gate.conftest import World, make_world
from tests.unit.quality_gate.test_quality_gate import ROWS, quality, rule, run_metrics
from tests.unit.run.support import write_catalog

ROWS_OK = rule("RowCount > 0", 2, ROWS, 3108, "pass", threshold="> 0")
NINTH_FIELD = "more fields than the header"


def world_with(tmp_path: Path, **settings: Any) -> World:
    section = {"rules_file": "online_retail.dqdl", "history_runs": 10, **settings}
    return make_world(write_catalog(tmp_path / "datasets", quality=section))


def every_line_quarantined(run: dict[str, Any]) -> dict[str, Any]:
    return run_metrics(
        run, lines_written=0, lines_quarantined=3108, quarantine_reasons={NINTH_FIELD: 3108},
        tables={"sales_line_items": {"rows": 0}, "customer_daily_sales": {"rows": 0}},
        quarantine_samples=[{"reason": NINTH_FIELD, "line": n, "text": f"536365,85123A,x,{n}"}
                            for n in range(2, 9)])


@pytest.fixture
def event() -> dict[str, Any]:
    return read_event("evaluate_quality", "serverless_run.json")


def evaluate(world: World, event: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    run = event["state"]["run"]
    world.put_ledger_run(run["run_id"], "2026-11-21T10:00:00Z", "RUNNING")
    world.put_run_files(run, quality(ROWS_OK), metrics)
    return world.evaluate(event)


def test_a_day_whose_every_line_is_quarantined_fails_and_the_alert_says_why(
        tmp_path: Path, event: dict[str, Any]) -> None:
    world = world_with(tmp_path)
    result = evaluate(world, event, every_line_quarantined(event["state"]["run"]))

    assert result["verdict"] == "fail"
    assert [r["rule"] for r in result["failed_rules"]] == [
        'OutputRowCount "customer_daily_sales" >= 1', 'OutputRowCount "sales_line_items" >= 1']
    assert 'OutputRowCount "sales_line_items" >= 1 (line 0) measured 0' in result["summary"]
    [alert] = world.alerts()
    fields = alert.document
    assert fields["top quarantine reasons"] == f"{NINTH_FIELD} (3108)"
    samples = fields["sample quarantined lines"]
    assert len(samples) == 5  # at most five, each naming its line and reason
    assert samples[0] == f"line 2: {NINTH_FIELD}: 536365,85123A,x,2"


def test_too_many_quarantined_lines_fail_the_gate(tmp_path: Path, event: dict[str, Any]) -> None:
    world = world_with(tmp_path, max_quarantined_ratio=0.01)
    metrics = run_metrics(event["state"]["run"], lines_quarantined=40,
                          quarantine_reasons={"negative unit price": 30, "bad date": 10},
                          tables={"sales_line_items": {"rows": 3000},
                                  "customer_daily_sales": {"rows": 90}})

    result = evaluate(world, event, metrics)

    assert result["verdict"] == "fail"
    [failed] = result["failed_rules"]
    assert failed["rule"] == "QuarantinedRatio <= 0.01"
    assert failed["value"] == pytest.approx(40 / 3108, abs=1e-6)
    assert world.alerts()[0].document["top quarantine reasons"] == (
        "negative unit price (30); bad date (10)")


def test_within_the_limits_the_gate_passes(tmp_path: Path, event: dict[str, Any]) -> None:
    world = world_with(tmp_path, max_quarantined_ratio=0.01)
    result = evaluate(world, event, run_metrics(event["state"]["run"]))
    assert result["verdict"] == "pass" and not world.alerts()


def test_output_checks_can_warn_instead(tmp_path: Path, event: dict[str, Any]) -> None:
    world = world_with(tmp_path, output_severity="warn")
    result = evaluate(world, event, every_line_quarantined(event["state"]["run"]))
    assert result["verdict"] == "warn" and len(result["warned_rules"]) == 2


def test_a_dataset_may_allow_an_empty_day(tmp_path: Path, event: dict[str, Any]) -> None:
    world = world_with(tmp_path, min_output_rows=0)
    result = evaluate(world, event, run_metrics(
        event["state"]["run"], lines_read=0, lines_written=0, lines_quarantined=0,
        tables={"sales_line_items": {"rows": 0}, "customer_daily_sales": {"rows": 0}}))
    assert result["verdict"] == "pass"


def test_a_table_the_job_did_not_report_is_not_measured_and_fails(
        tmp_path: Path, event: dict[str, Any]) -> None:
    world = world_with(tmp_path)
    result = evaluate(world, event, run_metrics(event["state"]["run"],
                                                tables={"sales_line_items": {"rows": 5}}))
    [failed] = result["failed_rules"]
    assert failed["rule"] == 'OutputRowCount "customer_daily_sales" >= 1'
    assert failed["value"] is None


@pytest.mark.parametrize(("settings", "message"), [
    ({"min_output_rows": -1}, "min_output_rows: must be 0 or more"),
    ({"max_quarantined_ratio": 1.5}, "max_quarantined_ratio: must be between 0 and 1"),
    ({"output_severity": "info"}, "output_severity: 'info' is not one of"),
])
def test_the_catalog_refuses_bad_output_limits(tmp_path: Path, event: dict[str, Any],
                                               settings: dict[str, Any], message: str) -> None:
    world = world_with(tmp_path, **settings)
    with pytest.raises(ConfigurationError, match=message):
        evaluate(world, event, run_metrics(event["state"]["run"]))


def test_defaults_fail_an_empty_load_and_allow_any_quarantine() -> None:
    defaults = Quality(rules_file="x.dqdl")
    assert (defaults.min_output_rows, defaults.max_quarantined_ratio,
            defaults.output_severity) == (1, 1.0, "error")
