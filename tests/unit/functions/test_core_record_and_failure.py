"""RecordRun and HandleFailure: every events/ file through its handler, against moto's ledger
and alert topic; Redshift cancel through a Stubber; EMR cleanup through an injected fake."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest
from botocore.stub import Stubber
from core_run_helpers import ARTIFACTS, event_files, read_event

from pipeline_aws.failure import failure_of, log_location, summarize_cause
from pipeline_aws.ledger import RunLedger
from pipeline_core.errors import InvalidInput, TransientError


def register(aws: Any, event: dict[str, Any], status: str = "RUNNING") -> str:
    run = event["state"]["run"]
    RunLedger(aws.table).create_run({
        "run_id": run["run_id"], "dataset": run["dataset"], "partition": run["partition"],
        "started_at": run["started_at"], "status": status, "attempt": run["attempt"],
        "execution_arn": event["execution"]["Id"]})
    return run["run_id"]


# -- RecordRun --------------------------------------------------------------------------------


def test_record_event_files_are_exercised() -> None:
    assert event_files("record_run") == ["cluster_finished.json", "serverless_finished.json"]


@pytest.mark.parametrize("name", ["serverless_finished.json", "cluster_finished.json"])
def test_record_run_marks_succeeded(aws, load_handler, context, name) -> None:
    event = read_event("record_run", name)
    run_id = register(aws, event)
    result = load_handler("record_run").lambda_handler(event, context)
    assert result == {"status": "SUCCEEDED",
                      "rows_loaded": {"sales_line_items": 3071, "customer_daily_sales": 98}}
    item = RunLedger(aws.table).get(run_id)
    assert item["status"] == "SUCCEEDED" and item["ended_at"]
    assert item["rows_loaded"] == result["rows_loaded"]
    assert item["quality_verdict"] == "pass"
    assert item["lines"] == {"in": 3108, "out": 3071, "quarantined": 11, "duplicates": 26}
    if "cluster" in event["state"]:
        assert item["cluster_id"] == "j-2AXXXXXXGAPLF" and "job_run_id" not in item
    else:
        assert item["job_run_id"] == "00fo2a8d6e1c2b09"


def test_record_run_refuses_an_unfinished_or_short_status(aws, load_handler, context) -> None:
    app = load_handler("record_run")
    event = read_event("record_run", "serverless_finished.json")
    register(aws, event)
    event["state"]["load_status"]["Status"] = "STARTED"
    with pytest.raises(InvalidInput, match="is STARTED, not FINISHED"):
        app.lambda_handler(event, context)
    event = read_event("record_run", "serverless_finished.json")
    event["state"]["load_status"]["SubStatements"] = event["state"]["load_status"][
        "SubStatements"][:9]
    with pytest.raises(InvalidInput, match="has 9 sub-statements; table customer_daily_sales"):
        app.lambda_handler(event, context)


def test_record_run_for_an_unknown_run(aws, load_handler, context) -> None:
    with pytest.raises(InvalidInput, match="is not in the ledger"):
        load_handler("record_run").lambda_handler(
            read_event("record_run", "serverless_finished.json"), context)


# -- HandleFailure ----------------------------------------------------------------------------


class FakeCleaner:
    calls: list[str] = []
    actions: list[dict[str, Any]] = []
    error: Exception | None = None

    @classmethod
    def from_env(cls, settings: Any) -> FakeCleaner:
        assert settings.app_name == "emr-pipelines-dev"
        return cls()

    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]:
        FakeCleaner.calls.append(execution_arn)
        if FakeCleaner.error:
            raise FakeCleaner.error
        return list(FakeCleaner.actions)


@pytest.fixture
def failure_app(aws, load_handler, monkeypatch) -> Any:
    """The handler with pipeline_aws.cleanup replaced by a fake (the real one calls EMR)."""
    module = types.ModuleType("pipeline_aws.cleanup")
    module.Cleaner = FakeCleaner  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pipeline_aws.cleanup", module)
    FakeCleaner.calls, FakeCleaner.actions, FakeCleaner.error = [], [], None
    return load_handler("handle_failure")


def test_failure_event_files_are_exercised() -> None:
    assert event_files("handle_failure") == [
        "cluster_step_failed.json", "load_failed.json", "load_timed_out.json",
        "quality_gate_failed.json", "resolve_run_failed.json",
        "resolve_run_header_mismatch.json", "serverless_job_failed.json"]


def test_serverless_job_failure(aws, failure_app, context) -> None:
    event = read_event("handle_failure", "serverless_job_failed.json")
    run_id = register(aws, event)
    FakeCleaner.actions = [{"action": "cancel_job_run", "id": "00fo2a8d6e1c2b09",
                            "result": "already FAILED"}]
    result = failure_app.lambda_handler(event, context)
    logs = (f"s3://{ARTIFACTS}/logs/emr-serverless/applications/00fo1ttqvjbk3p09/jobs/"
            "00fo2a8d6e1c2b09/")
    assert result["failed_state"] == "RunServerlessJob" and result["error"] == "States.TaskFailed"
    assert result["cause"].startswith("Job failed, please check complete logs")
    assert result["logs"] == logs and result["cleanup"] == FakeCleaner.actions
    assert FakeCleaner.calls == [event["execution"]["Id"]]

    item = RunLedger(aws.table).get(run_id)
    assert item["status"] == "FAILED"
    assert item["failure"] == {"state": "RunServerlessJob", "error": "States.TaskFailed",
                               "cause": result["cause"], "logs": logs}
    [alert] = aws.alerts()
    assert alert["subject"].startswith("[dev] online_retail 2010-12-01 failed at RunServerlessJob")
    doc = alert["document"]
    assert doc["Run id"] == run_id and doc["Logs"] == logs and doc["Error"] == "States.TaskFailed"
    assert doc["Input (kept in place)"] == event["state"]["run"]["input"]["uri"]
    assert '"rerun": true' in doc["Re-run"]
    # The input object is never touched: the handler has no S3 client at all.
    assert not hasattr(failure_app, "s3")


@pytest.mark.parametrize("name", ["resolve_run_failed.json", "resolve_run_header_mismatch.json"])
def test_resolve_run_failure_without_a_run(aws, failure_app, context, name) -> None:
    event = read_event("handle_failure", name)
    result = failure_app.lambda_handler(event, context)
    assert result["failed_state"] == "ResolveRun" and result["error"] == "InvalidInput"
    assert result["cause"].startswith("InvalidInput: ") and "stackTrace" not in result["cause"]
    assert result["logs"] is None and result["cleanup"] == []
    assert FakeCleaner.calls == []  # nothing was started
    item = RunLedger(aws.table).get(event["execution"]["Name"])
    assert item["status"] == "FAILED" and item["execution_arn"] == event["execution"]["Id"]
    if name == "resolve_run_header_mismatch.json":  # key known: dataset derived from it
        assert (item["dataset"], item["partition"]) == ("online_retail", "2010-12-01")
    else:
        assert item["dataset"] == "unknown"
    [alert] = aws.alerts()
    assert "failed at ResolveRun: InvalidInput" in alert["subject"]


def test_load_timed_out_cancels_the_statement(aws, failure_app, context) -> None:
    event = read_event("handle_failure", "load_timed_out.json")
    register(aws, event)
    sid = event["state"]["load"]["statement_id"]
    with Stubber(failure_app.redshift_client) as stub:
        stub.add_response("describe_statement", {"Id": sid, "Status": "STARTED"}, {"Id": sid})
        stub.add_response("cancel_statement", {"Status": True}, {"Id": sid})
        result = failure_app.lambda_handler(event, context)
        stub.assert_no_pending_responses()
    assert result["failed_state"] == "Load" and result["error"] == "LoadTimedOut"
    assert result["cleanup"][0] == {"action": "cancel_statement", "id": sid,
                                    "result": "cancelled"}


def test_load_failed_records_the_redshift_error(aws, failure_app, context) -> None:
    event = read_event("handle_failure", "load_failed.json")
    run_id = register(aws, event)
    sid = event["state"]["load"]["statement_id"]
    with Stubber(failure_app.redshift_client) as stub:
        stub.add_response("describe_statement", {"Id": sid, "Status": "FAILED"}, {"Id": sid})
        result = failure_app.lambda_handler(event, context)
    assert "incompatible Parquet schema" in result["cause"]
    assert result["cleanup"][0]["result"] == "already FAILED"
    assert RunLedger(aws.table).get(run_id)["failure"]["error"] == "LoadFailed"


def test_quality_gate_failure(aws, failure_app, context) -> None:
    event = read_event("handle_failure", "quality_gate_failed.json")
    register(aws, event)
    result = failure_app.lambda_handler(event, context)
    assert (result["failed_state"], result["error"]) == ("EvaluateQuality", "QualityGateFailed")
    assert "customer_id" in result["cause"]
    assert result["logs"].endswith("/jobs/00fo2a8d6e1c2b09/")


def test_cluster_step_failure_names_the_step_logs_and_the_secondary_failure(
        aws, failure_app, context) -> None:
    event = read_event("handle_failure", "cluster_step_failed.json")
    run_id = register(aws, event)
    FakeCleaner.actions = [{"action": "terminate_cluster", "id": "j-2AXXXXXXGAPLF",
                            "result": "terminated"}]
    result = failure_app.lambda_handler(event, context)
    assert result["failed_state"] == "RunClusterStep"
    assert result["cause"] == "JOB ERROR: input is not gzip"
    assert result["logs"] == f"s3://{ARTIFACTS}/logs/emr/j-2AXXXXXXGAPLF/steps/s-1XXXXXXXXXXA/"
    failure = RunLedger(aws.table).get(run_id)["failure"]
    assert "TerminateClusterOnFailure" in failure["also_failed"]
    assert RunLedger(aws.table).get(run_id)["cleanup"] == FakeCleaner.actions


def test_cleanup_errors_are_recorded_not_raised(aws, failure_app, context) -> None:
    event = read_event("handle_failure", "serverless_job_failed.json")
    register(aws, event)
    FakeCleaner.error = TransientError("ListClusters throttled")
    result = failure_app.lambda_handler(event, context)
    assert result["cleanup"] == [{"action": "cleanup_execution", "id": event["execution"]["Id"],
                                  "result": "failed", "error": "ListClusters throttled"}]
    assert len(aws.alerts()) == 1


def test_handler_needs_state_and_execution(aws, failure_app, context) -> None:
    with pytest.raises(InvalidInput, match="execution: field required"):
        failure_app.lambda_handler({"state": {}}, context)


# -- pure helpers -----------------------------------------------------------------------------


def test_summarize_cause_variants() -> None:
    lam = json.dumps({"errorType": "TransientError", "errorMessage": "slow",
                      "stackTrace": ["x"] * 50})
    assert summarize_cause(lam) == "TransientError: slow"
    assert summarize_cause("plain text") == "plain text"
    assert summarize_cause(None) == ""
    assert len(summarize_cause("x" * 10_000)) == 2000
    assert summarize_cause('{"not": "closed"') == '{"not": "closed"'


def test_failure_of_without_failure_details() -> None:
    info = failure_of({}, "HandleFailure")
    assert (info.state, info.error) == ("HandleFailure", "Unknown")


def test_log_location_needs_a_job() -> None:
    info = failure_of({"failure": {"StartLoad": {"Error": "E", "Cause": "c"}}}, None)
    assert log_location({}, info, ARTIFACTS) is None
    assert log_location({"cluster": {"cluster_id": "j-ABC123"}}, info, ARTIFACTS) == (
        f"s3://{ARTIFACTS}/logs/emr/j-ABC123/")
