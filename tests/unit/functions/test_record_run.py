"""functions/record_run: every events/record_run file through the handler, on moto's ledger
table. RunRecorder's logic is tested in tests/unit/run/test_record.py."""

from __future__ import annotations

import pytest

from pipeline_core.errors import InvalidInput
from tests.support.aws import emf_metrics, event_files, read_event


def test_every_event_file_is_exercised() -> None:
    assert event_files("record_run") == ["cluster_finished.json", "serverless_finished.json"]


@pytest.mark.parametrize("name", ["serverless_finished.json", "cluster_finished.json"])
def test_record_run_marks_succeeded(aws, load_handler, context, capsys, name) -> None:
    event = read_event("record_run", name)
    run_id = aws.register(event)
    result = load_handler("record_run").lambda_handler(event, context)
    assert result == {"status": "SUCCEEDED",
                      "rows_loaded": {"sales_line_items": 3071, "customer_daily_sales": 98}}
    item = aws.ledger.get(run_id)
    assert item["status"] == "SUCCEEDED" and item["ended_at"]
    assert item["rows_loaded"] == result["rows_loaded"]
    assert item["quality_verdict"] == "pass"
    assert item["lines"] == {"in": 3108, "out": 3071, "quarantined": 11, "duplicates": 26}
    if "cluster" in event["state"]:
        assert item["cluster_id"] == "j-2AXXXXXXGAPLF" and "job_run_id" not in item
    else:
        assert item["job_run_id"] == "00fo2a8d6e1c2b09"
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["RunsSucceeded"] == [[1.0]] and metrics["RowsLoaded"] == [[3169.0]]


def test_record_run_for_an_unknown_run(aws, load_handler, context) -> None:
    with pytest.raises(InvalidInput, match="is not in the ledger"):
        load_handler("record_run").lambda_handler(
            read_event("record_run", "serverless_finished.json"), context)
