"""functions/handle_failure: every events/handle_failure file through the handler, on moto's
ledger table and alert topic; the EMR cleaner replaced by a
scripted one (pipeline_aws.cleanup has its own tests). FailureHandler's logic is tested in
tests/unit/run/test_failure.py."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_core.errors import InvalidInput
from tests.support.aws import event_files, read_event

FILES = ["cluster_step_failed.json", "load_failed.json", "load_timed_out.json",
         "quality_gate_failed.json", "resolve_run_failed.json",
         "resolve_run_header_mismatch.json", "serverless_job_failed.json"]
FAILED_STATE = {"cluster_step_failed.json": "RunClusterStep", "load_failed.json": "Load",
                "load_timed_out.json": "Load", "quality_gate_failed.json": "EvaluateQuality",
                "resolve_run_failed.json": "ResolveRun",
                "resolve_run_header_mismatch.json": "ResolveRun",
                "serverless_job_failed.json": "RunServerlessJob"}


class ScriptedCleaner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]:
        self.calls.append(execution_arn)
        return [{"action": "terminate_cluster", "id": "j-1", "result": "terminated"}]


@pytest.fixture
def cleaner() -> ScriptedCleaner:
    return ScriptedCleaner()


@pytest.fixture
def failure_app(aws, load_handler, cleaner, monkeypatch) -> Any:
    """The handler, built with the scripted cleaner (the real one calls EMR)."""
    import pipeline_aws.failure

    monkeypatch.setattr(pipeline_aws.failure, "default_cleaner", lambda settings: cleaner)
    return load_handler("handle_failure")


def test_every_event_file_is_exercised() -> None:
    assert event_files("handle_failure") == FILES


@pytest.mark.parametrize("name", FILES)
def test_every_failure_is_recorded_alerted_and_cleaned_up(aws, failure_app, cleaner, context,
                                                          name) -> None:
    event = read_event("handle_failure", name)
    has_run = "run" in event["state"]
    run_id = aws.register(event) if has_run else event["execution"]["Name"]
    result = failure_app.lambda_handler(event, context)

    assert set(result) == {"failed_state", "error", "cause", "logs", "cleanup"}
    assert result["failed_state"] == FAILED_STATE[name]
    assert cleaner.calls == ([event["execution"]["Id"]] if has_run else [])
    item = aws.ledger.get(run_id)
    assert item["status"] == "FAILED" and item["execution_arn"] == event["execution"]["Id"]
    assert item["failure"]["state"] == FAILED_STATE[name] and item["cleanup"] == result["cleanup"]
    [alert] = aws.alerts()
    assert f"failed at {FAILED_STATE[name]}: {result['error']}" in alert["subject"]
    assert alert["document"]["Execution"] == event["execution"]["Id"]
    assert alert["attributes"]["event"] == "run_failed"
    # The input object is never touched: the handler has no S3 client at all. Nor a Data API
    # client: only the load function, which submitted the statement, may cancel it.
    assert not hasattr(failure_app, "s3") and not hasattr(failure_app, "redshift_client")
    cancels = [a for a in result["cleanup"] if a["action"] == "cancel_statement"]
    assert cancels == ([event["state"]["load_cancel"]] if "load_cancel" in event["state"]
                       else [])


def test_handler_needs_state_and_execution(aws, failure_app, context) -> None:
    with pytest.raises(InvalidInput, match="execution: Field required"):
        failure_app.lambda_handler({"state": {}}, context)
