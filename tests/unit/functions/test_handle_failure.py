"""functions/handle_failure: every events/handle_failure file through the handler, on moto's
ledger table and alert topic; the Data API through a Stubber; the EMR cleaner replaced by a
scripted one (pipeline_aws.cleanup has its own tests). FailureHandler's logic is tested in
tests/unit/run/test_failure.py."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

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
LOAD_STATUS = {"load_failed.json": "FAILED", "load_timed_out.json": "STARTED"}


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


def expect_load_status(stub: Stubber, event: dict[str, Any], name: str) -> None:
    if name not in LOAD_STATUS:
        return
    sid = event["state"]["load"]["statement_id"]
    stub.add_response("describe_statement", {"Id": sid, "Status": LOAD_STATUS[name]}, {"Id": sid})
    if LOAD_STATUS[name] == "STARTED":
        stub.add_response("cancel_statement", {"Status": True}, {"Id": sid})


@pytest.mark.parametrize("name", FILES)
def test_every_failure_is_recorded_alerted_and_cleaned_up(aws, failure_app, cleaner, context,
                                                          name) -> None:
    event = read_event("handle_failure", name)
    has_run = "run" in event["state"]
    run_id = aws.register(event) if has_run else event["execution"]["Name"]
    with Stubber(failure_app.redshift_client) as stub:
        expect_load_status(stub, event, name)
        result = failure_app.lambda_handler(event, context)
        stub.assert_no_pending_responses()

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
    # The input object is never touched: the handler has no S3 client at all.
    assert not hasattr(failure_app, "s3")


def test_handler_needs_state_and_execution(aws, failure_app, context) -> None:
    with pytest.raises(InvalidInput, match="execution: Field required"):
        failure_app.lambda_handler({"state": {}}, context)
