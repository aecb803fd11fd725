"""QualityGate (pipeline_aws.quality): its decisions, ledger writes, alerts and metrics, on
in-memory fakes (see conftest.py)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from pipeline_aws.contracts import EvaluateQualityRequest
from pipeline_core.errors import InvalidInput
from tests.support.aws import emf_blobs, read_event
from tests.unit.quality_gate.conftest import World

ROWS = "Dataset.*.RowCount"
COMPLETENESS = "Column.customer_id.Completeness"


def rule(text: str, line: int, metric_name: str | None, metric: float | None, outcome: str,
         severity: str = "error", threshold: str = "") -> dict[str, Any]:
    return {"rule": text, "line": line, "severity": severity, "metric_name": metric_name,
            "metric": metric, "threshold": threshold, "outcome": outcome}


def quality(*rules: dict[str, Any], metrics: dict[str, float] | None = None) -> dict[str, Any]:
    measured = {r["metric_name"]: r["metric"] for r in rules if r["metric_name"]}
    return {"rules_file": "online_retail.dqdl", "rules": list(rules),
            "metrics": {**measured, **(metrics or {})}}


def run_metrics(run: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {"run_id": run["run_id"], "dataset": run["dataset"], "partition": run["partition"],
            "lines_read": 3108, "lines_written": 3080, "lines_quarantined": 2, "duplicates": 26,
            "quarantine_reasons": {"negative unit price": 2},
            "tables": {"sales_line_items": {"rows": 3080}, "customer_daily_sales": {"rows": 98}}}
    body.update(overrides)
    return body


COMPLETE_OK = rule('Completeness "customer_id" > 0.5', 3, COMPLETENESS, 0.74, "pass",
                   threshold="> 0.5")
ROWS_OK = rule("RowCount > 0", 2, ROWS, 3080, "pass", threshold="> 0")
COLLAPSE_RULE = "RowCount > median(last(10)) * 0.3"
RELATIVE_RULE = "RowCount between median(last(10)) * 0.5 and median(last(10)) * 1.5"


def load_event(name: str) -> dict[str, Any]:
    return read_event("evaluate_quality", name)


@pytest.fixture
def event() -> dict[str, Any]:
    return load_event("serverless_run.json")


@pytest.fixture
def run(event: dict[str, Any]) -> dict[str, Any]:
    return event["state"]["run"]


@pytest.fixture
def aws(world: World) -> World:
    """The fakes the gate works on (named as the handler tests name moto's resources)."""
    return world


@pytest.fixture
def invoke(world: World, run):
    """Seed the run's ledger item and evaluate the gate."""
    world.put_ledger_run(run["run_id"], "2026-11-21T10:00:00Z", "RUNNING")
    return world.evaluate


def seed_history(aws, values: list[float], *, status: str = "SUCCEEDED", day: int = 1,
                 metric: str = ROWS) -> None:
    """Earlier runs, newest first: values[0] is the most recent."""
    for i, value in enumerate(values):
        started = f"2026-11-{day + len(values) - i:02d}T03:00:00Z"
        aws.put_ledger_run(f"online_retail-hist-{day}-{i}", started.replace("2026-11", "2026-10"),
                           status, {metric: value})


def ledger_item(aws, run_id: str) -> dict[str, Any]:
    """The item as the table holds it (numbers as Decimal)."""
    item = aws.ledger.item(run_id)
    assert item is not None
    return item


# -- verdicts without history --------------------------------------------------------------


def test_all_rules_passing_gives_pass_without_alert(aws, invoke, event, run):
    aws.put_run_files(run, quality(ROWS_OK, COMPLETE_OK), run_metrics(run))

    result = invoke(event)

    assert result == {
        "verdict": "pass",
        "summary": result["summary"],
        "failed_rules": [],
        "warned_rules": [],
        "lines": {"in": 3108, "out": 3080, "quarantined": 2, "duplicates": 26},
        "partitions": result["partitions"],
    }
    # A single run is a batch of one: its one partition's verdict is the run's.
    assert result["partitions"] == {"2010-12-01": {
        "run_id": run["run_id"], "verdict": "pass", "summary": result["summary"],
        "lines": result["lines"], "rows": {"sales_line_items": 3080,
                                           "customer_daily_sales": 98}}}
    assert result["summary"].startswith("Data quality gate passed for online_retail partition "
                                        "2010-12-01")
    assert aws.alerts() == []


def test_failed_warn_rule_gives_warn_and_alert(aws, invoke, event, run):
    warn = rule('Completeness "customer_id" > 0.9', 4, COMPLETENESS, 0.74, "fail",
                severity="warn", threshold="> 0.9")
    aws.put_run_files(run, quality(ROWS_OK, warn), run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "warn"
    assert result["failed_rules"] == []
    assert result["warned_rules"] == [{
        "rule": 'Completeness "customer_id" > 0.9', "line": 4, "severity": "warn",
        "metric_name": COMPLETENESS, "value": 0.74, "threshold": "> 0.9"}]
    assert "passed with warnings" in result["summary"]
    [alert] = aws.alerts()
    assert "WARNING" in alert.subject


def test_failed_error_rule_gives_fail_with_a_summary_naming_it(aws, invoke, event, run):
    bad = rule('Completeness "customer_id" > 0.9', 4, COMPLETENESS, 0.74, "fail",
               threshold="> 0.9")
    warn = rule("RowCount < 3000", 5, ROWS, 3080, "fail", severity="warn", threshold="< 3000")
    aws.put_run_files(run, quality(ROWS_OK, bad, warn), run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "fail"
    assert [r["line"] for r in result["failed_rules"]] == [4]
    assert [r["line"] for r in result["warned_rules"]] == [5]
    summary = result["summary"]
    assert summary.startswith("Data quality gate failed for online_retail partition 2010-12-01")
    assert 'Completeness "customer_id" > 0.9 (line 4) measured 0.74 against threshold > 0.9' \
        in summary
    assert "RowCount < 3000 (line 5)" in summary  # the warning is named too


# -- history ------------------------------------------------------------------------------


def deferred(text: str, value: float, severity: str = "error", line: int = 6) -> dict[str, Any]:
    return rule(text, line, ROWS, value, "deferred", severity=severity,
                threshold=text.removeprefix("RowCount ").strip())


def test_deferred_rule_without_history_passes_with_reason(aws, invoke, event, run):
    aws.put_run_files(run, quality(deferred(COLLAPSE_RULE, 12)), run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "pass"
    assert "insufficient history (0 of 10 runs)" in result["summary"]


def test_deferred_rule_with_too_little_history_passes(aws, invoke, event, run):
    seed_history(aws, [3000, 3100, 2900])
    aws.put_run_files(run, quality(deferred(COLLAPSE_RULE, 12)), run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "pass"
    assert "insufficient history (3 of 10 runs)" in result["summary"]


def test_row_count_collapse_against_history_fails(aws, invoke, event, run):
    seed_history(aws, [3000, 3100, 2900, 3050, 2950, 3020, 2980, 3010, 2990, 3040])
    aws.put_run_files(run, quality(ROWS_OK, deferred(COLLAPSE_RULE, 12)),
                      run_metrics(run, lines_written=12))

    result = invoke(event)

    assert result["verdict"] == "fail"
    [failed] = result["failed_rules"]
    assert failed["rule"] == COLLAPSE_RULE
    assert failed["value"] == 12
    # median 3005 * 0.3 = 901.5: the threshold names the number the value was held against
    assert "901.5" in failed["threshold"]
    assert COLLAPSE_RULE in result["summary"]


def test_relative_change_within_limits_passes(aws, invoke, event, run):
    seed_history(aws, [3000, 3100, 2900, 3050, 2950, 3020, 2980, 3010, 2990, 3040])
    aws.put_run_files(run, quality(deferred(RELATIVE_RULE, 3400)), run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "pass"
    assert "insufficient" not in result["summary"]


def test_relative_change_beyond_limits_as_warning_warns(aws, invoke, event, run):
    seed_history(aws, [3000, 3100, 2900, 3050, 2950, 3020, 2980, 3010, 2990, 3040])
    aws.put_run_files(run, quality(deferred(RELATIVE_RULE, 6000, severity="warn")),
                      run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "warn"
    assert result["warned_rules"][0]["value"] == 6000


def test_history_uses_only_the_newest_succeeded_runs_of_the_dataset(aws, invoke, event, run):
    # The 10 newest SUCCEEDED runs are steady around 3000 ...
    seed_history(aws, [3000] * 10, day=10)
    # ... older successful runs were far bigger, and failed runs / other datasets are huge:
    seed_history(aws, [90000] * 5, day=1)
    seed_history(aws, [50000] * 5, status="FAILED", day=20)
    for i in range(5):
        aws.put_ledger_run(f"other-{i}", f"2026-11-0{i + 1}T00:00:00Z", "SUCCEEDED",
                           {ROWS: 80000}, dataset="other_dataset")
    aws.put_run_files(run, quality(deferred(RELATIVE_RULE, 3100)), run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "pass", result["summary"]


def test_detect_anomalies_needs_three_runs_then_flags_an_outlier(aws, invoke, event, run):
    anomaly = deferred('DetectAnomalies "RowCount"', 12, line=7)
    seed_history(aws, [3000, 3100])
    aws.put_run_files(run, quality(anomaly), run_metrics(run))
    assert "insufficient history (2 of 3 runs)" in invoke(event)["summary"]

    seed_history(aws, [2900, 3050, 2950], day=20)
    result = invoke(event)
    assert result["verdict"] == "fail"
    assert result["failed_rules"][0]["rule"] == 'DetectAnomalies "RowCount"'


def test_deferred_rule_without_a_measured_value_fails_even_without_history(
        aws, invoke, event, run):
    aws.put_run_files(run, quality(deferred(COLLAPSE_RULE, None)), run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "fail"
    assert f"{COLLAPSE_RULE} (line 6) was not measured" in result["summary"]


def test_rule_wanting_more_runs_than_the_catalog_default_gets_them(aws, invoke, event, run):
    wide = "RowCount > median(last(15)) * 0.3"
    seed_history(aws, [3000] * 15)
    aws.put_run_files(run, quality(deferred(wide, 12)), run_metrics(run))

    result = invoke(event)

    assert result["verdict"] == "fail"
    assert "over 15 earlier runs" in result["failed_rules"][0]["threshold"]


def test_deferred_rule_that_needs_no_history_is_invalid_input(aws, invoke, event, run):
    seed_history(aws, [3000] * 10)
    aws.put_run_files(run, quality(deferred("RowCount > 100", 12)), run_metrics(run))
    with pytest.raises(InvalidInput, match="does not depend on earlier runs"):
        invoke(event)


# -- the ledger -----------------------------------------------------------------------------


def test_ledger_gets_metrics_verdict_failed_rules_and_lines(aws, invoke, event, run):
    bad = rule('Completeness "customer_id" > 0.9', 4, COMPLETENESS, 0.74, "fail",
               threshold="> 0.9")
    aws.put_run_files(run, quality(ROWS_OK, bad, metrics={"Column.quantity.Mean": 7.25}),
                      run_metrics(run))

    invoke(event)

    item = ledger_item(aws, run["run_id"])
    assert item["status"] == "RUNNING"  # the gate never changes the run's status
    assert item["quality_verdict"] == "fail"
    assert item["quality_metrics"] == {ROWS: Decimal("3080"), COMPLETENESS: Decimal("0.74"),
                                       "Column.quantity.Mean": Decimal("7.25"),
                                       "Output.sales_line_items.RowCount": Decimal("3080"),
                                       "Output.customer_daily_sales.RowCount": Decimal("98")}
    assert item["quality_failed_rules"] == [{
        "rule": 'Completeness "customer_id" > 0.9', "line": Decimal(4), "severity": "error",
        "metric_name": COMPLETENESS, "value": Decimal("0.74"), "threshold": "> 0.9"}]
    assert item["lines"] == {"in": 3108, "out": 3080, "quarantined": 2, "duplicates": 26}
    assert "updated_at" in item


def test_this_runs_metrics_become_history_for_the_next_run(aws, invoke, event, run):
    aws.put_run_files(run, quality(ROWS_OK), run_metrics(run))
    invoke(event)
    aws.ledger.items[run["run_id"]]["status"] = "SUCCEEDED"

    nxt = load_event("cluster_run.json")
    aws.put_ledger_run(nxt["state"]["run"]["run_id"], "2026-11-22T10:00:00Z", "RUNNING")
    aws.put_run_files(nxt["state"]["run"], quality(deferred(COLLAPSE_RULE, 12)),
                      run_metrics(nxt["state"]["run"]))
    result = invoke(nxt)

    assert "insufficient history (1 of 10 runs)" in result["summary"]


def test_run_missing_from_the_ledger_is_invalid_input(aws, event, run):
    aws.put_run_files(run, quality(ROWS_OK), run_metrics(run))
    with pytest.raises(InvalidInput, match="not in the ledger"):
        aws.evaluate(event)


# -- the alert ------------------------------------------------------------------------------


def test_fail_alert_lists_rules_values_thresholds_and_where_things_are(aws, invoke, event, run):
    seed_history(aws, [3000, 3100, 2900, 3050, 2950, 3020, 2980, 3010, 2990, 3040])
    warn = rule('Completeness "customer_id" > 0.9', 4, COMPLETENESS, 0.74, "fail",
                severity="warn", threshold="> 0.9")
    aws.put_run_files(run, quality(deferred(COLLAPSE_RULE, 12), warn), run_metrics(run))

    invoke(event)

    [alert] = aws.alerts()
    assert alert.subject == "Data quality FAILED [dev]: online_retail 2010-12-01"
    attributes = alert.attributes
    assert attributes["verdict"] == "fail"
    assert attributes["dataset"] == "online_retail"
    assert attributes["run_id"] == run["run_id"]
    document = alert.document  # SQS subscribers get the JSON document
    assert document["dataset"] == "online_retail"
    assert document["partition"] == "2010-12-01"
    assert document["run_id"] == run["run_id"]
    assert document["quarantine"] == run["quarantine_uri"]
    assert document["execution"] == event["execution"]["Id"]
    assert "load was stopped" in document["title"]
    [failed] = document["failed_rules"]
    assert (failed["rule"], failed["value"]) == (COLLAPSE_RULE, 12)
    assert "901.5" in failed["threshold"]
    assert document["warned_rules"][0]["threshold"] == "> 0.9"
    assert "value 12 " in document["failed rule (line 6)"]
    assert "value 0.74 " in document["warning (line 4)"]


# -- metrics ------------------------------------------------------------------------------


def test_one_metric_per_rule_outcome_by_rule_type_without_run_id_dimension(
        aws, invoke, event, run, capsys):
    bad = rule('Completeness "customer_id" > 0.9', 4, COMPLETENESS, 0.74, "fail",
               threshold="> 0.9")
    aws.put_run_files(run, quality(ROWS_OK, COMPLETE_OK, bad), run_metrics(run))
    capsys.readouterr()

    invoke(event)
    aws.metrics.flush_metrics()  # what the handler's log_metrics does at the end

    blobs = emf_blobs(capsys.readouterr().out)
    by_type = {b["rule_type"]: b for b in blobs if "rule_type" in b}
    assert set(by_type) == {"RowCount", "Completeness", "OutputRowCount"}
    completeness = by_type["Completeness"]
    assert (completeness["RulePassed"], completeness["RuleFailed"],
            completeness["RuleWarned"]) == ([1.0], [1.0], [0.0])
    assert by_type["RowCount"]["RulePassed"] == [1.0]
    verdict = next(b for b in blobs if "QualityGateFailed" in b)
    assert verdict["QualityGateFailed"] == [1.0] and verdict["QualityGatePassed"] == [0.0]
    for blob in blobs:
        dimensions = {d for ds in blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for d in ds}
        assert "run_id" not in dimensions
        assert dimensions <= {"service", "environment", "dataset", "rule_type"}
        assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "EmrPipelines"
        assert blob["run_id"] == run["run_id"]  # metadata
        assert blob["dataset"] == "online_retail"


# -- missing and malformed input ----------------------------------------------------------


def test_missing_quality_file_names_its_uri(aws, invoke, event, run):
    aws.put_json(run["metrics_uri"], run_metrics(run))
    with pytest.raises(InvalidInput, match=re.escape(f"{run['quality_uri']} does not exist")):
        invoke(event)


def test_missing_metrics_file_names_its_uri(aws, invoke, event, run):
    aws.put_json(run["quality_uri"], quality(ROWS_OK))
    with pytest.raises(InvalidInput, match=re.escape(f"{run['metrics_uri']} does not exist")):
        invoke(event)


def test_quality_file_that_is_not_json_names_its_uri(aws, invoke, event, run):
    aws.put_run_files(run, '{"rules": [', run_metrics(run))
    with pytest.raises(InvalidInput, match=re.escape(f"{run['quality_uri']} is not valid JSON")):
        invoke(event)


@pytest.mark.parametrize(("body", "problem"), [
    ({"rules": [{**ROWS_OK, "severity": "fatal"}]}, "rules.0.severity"),
    ({"rules": [{**ROWS_OK, "outcome": "maybe"}]}, "rules.0.outcome"),
    ({"rules": [{k: v for k, v in ROWS_OK.items() if k != "line"}]}, "rules.0.line"),
    ({"rules": [{**ROWS_OK, "metric": "3080"}]}, "rules.0.metric"),
    ({"metrics": {}}, "rules: Field required"),
    ({"rules": []}, "lists no rules"),
    ([1, 2], "Input should be"),
])
def test_malformed_quality_file_names_uri_and_field(aws, invoke, event, run, body, problem):
    aws.put_run_files(run, body, run_metrics(run))
    with pytest.raises(InvalidInput) as raised:
        invoke(event)
    assert run["quality_uri"] in str(raised.value)
    assert problem in str(raised.value)


def test_malformed_metrics_file_names_uri_and_field(aws, invoke, event, run):
    body = run_metrics(run)
    del body["lines_quarantined"]
    body["duplicates"] = -1
    aws.put_run_files(run, quality(ROWS_OK), body)
    with pytest.raises(InvalidInput) as raised:
        invoke(event)
    message = str(raised.value)
    assert run["metrics_uri"] in message
    assert "lines_quarantined" in message and "duplicates" in message


def test_bad_event_names_the_missing_fields(event):
    del event["state"]["run"]["quality_uri"]
    event["state"]["run"]["metrics_uri"] = "/tmp/metrics.json"
    with pytest.raises(InvalidInput) as raised:
        EvaluateQualityRequest.parse(event)
    message = str(raised.value)
    # A single run's object and paths are its one partition's (contracts.RunManifest).
    assert "state.run.partitions.0.quality_uri: Field required" in message
    assert "state.run.metrics_uri" in message
