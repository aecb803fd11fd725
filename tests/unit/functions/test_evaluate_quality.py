"""functions/evaluate_quality: every events/evaluate_quality file through the handler, on moto
(the curated bucket, the ledger table, the alert topic). QualityGate's logic is tested in
tests/unit/quality_gate."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_aws.contracts import EvaluateQualityRequest
from tests.support.aws import emf_blobs, event_files, read_event

ROWS_OK = {"rule": "RowCount > 0", "line": 2, "severity": "error",
           "metric_name": "Dataset.*.RowCount", "metric": 3080, "threshold": "> 0",
           "outcome": "pass"}
COMPLETE_OK = {"rule": 'Completeness "customer_id" > 0.5', "line": 3, "severity": "error",
               "metric_name": "Column.customer_id.Completeness", "metric": 0.74,
               "threshold": "> 0.5", "outcome": "pass"}


def run_metrics(run: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run["run_id"], "dataset": run["dataset"], "partition": run["partition"],
            "lines_read": 3108, "lines_written": 3080, "lines_quarantined": 2, "duplicates": 26,
            "tables": {"sales_line_items": {"rows": 3080}, "customer_daily_sales": {"rows": 98}}}


@pytest.mark.parametrize("name", event_files("evaluate_quality"))
def test_every_sample_event_runs_through_the_handler(aws, load_handler, context, capsys,
                                                     name) -> None:
    event = read_event("evaluate_quality", name)
    run = EvaluateQualityRequest.parse(event).run
    aws.ledger.create_run({"run_id": run.run_id, "dataset": run.dataset, "status": "RUNNING",
                           "started_at": "2026-11-21T10:00:00Z"})
    aws.put_json(run.quality_uri, {"rules": [ROWS_OK, COMPLETE_OK],
                                   "metrics": {ROWS_OK["metric_name"]: 3080}})
    aws.put_json(run.metrics_uri, run_metrics(run.model_dump()))
    capsys.readouterr()

    result = load_handler("evaluate_quality").lambda_handler(event, context)

    assert set(result) == {"verdict", "summary", "failed_rules", "warned_rules", "lines",
                           "partitions"}
    assert result["verdict"] == "pass"
    assert run.run_id in result["summary"]
    assert aws.ledger.get(run.run_id)["quality_verdict"] == "pass"
    assert aws.alerts() == []
    verdict = next(b for b in emf_blobs(capsys.readouterr().out) if "QualityGatePassed" in b)
    assert verdict["QualityGatePassed"] == [1.0] and verdict["service"] == "evaluate_quality"
    assert verdict["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "EmrPipelines"
