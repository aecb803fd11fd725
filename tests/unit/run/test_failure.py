"""FailureHandler (pipeline_aws.failure) on FakeLedger, FakeAlerts and a scripted EMR cleaner,
fed the events/handle_failure files; and its pure helpers. The same files
run through the handler on moto in tests/unit/functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline_aws.contracts import HandleFailureRequest
from pipeline_aws.failure import FailureHandler, failure_of, log_location, summarize_cause
from pipeline_aws.settings import HandleFailureSettings
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import InvalidInput, TransientError
from tests.support.aws import read_event
from tests.support.fakes.alerts import FakeAlerts
from tests.unit.run.support import ARTIFACTS, register


class FakeCleaner:
    """The EMR cleaner (pipeline_aws.cleanup.Cleaner): returns `actions`, or raises `error`."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.actions: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]:
        self.calls.append(execution_arn)
        if self.error:
            raise self.error
        return list(self.actions)


@pytest.fixture
def cleaner() -> FakeCleaner:
    return FakeCleaner()


@pytest.fixture
def handler(env, ledger, alerts, cleaner) -> FailureHandler:
    return FailureHandler(settings=HandleFailureSettings.from_environ(env), ledger=ledger,
                          alerts=alerts, cleaner=cleaner,
                          catalog=lambda: load_catalog(env["CATALOG_DIR"]))


def handle(handler: FailureHandler, event: dict[str, Any]) -> dict[str, Any]:
    return handler.handle(HandleFailureRequest.parse(event))


def only_alert(alerts: FakeAlerts) -> tuple[str, dict[str, Any]]:
    """The one alert published: its subject as SNS shows it and its JSON document."""
    [subject] = alerts.subjects()
    return subject, json.loads(json.dumps(alerts.published[0].document(), default=str))


def test_serverless_job_failure(ledger, alerts, cleaner, handler) -> None:
    event = read_event("handle_failure", "serverless_job_failed.json")
    run_id = register(ledger, event)
    cleaner.actions = [{"action": "cancel_job_run", "id": "00fo2a8d6e1c2b09",
                        "result": "already FAILED"}]
    result = handle(handler, event)
    logs = (f"s3://{ARTIFACTS}/logs/emr-serverless/applications/00fo1ttqvjbk3p09/jobs/"
            "00fo2a8d6e1c2b09/")
    assert result["failed_state"] == "RunServerlessJob" and result["error"] == "States.TaskFailed"
    # one line: the job's own cause from EMR's stateDetails, then where the logs are
    assert result["cause"] == ("JOB ERROR: header does not match: expected 8 columns, found 7; "
                               f"logs: {logs}")
    assert result["logs"] == logs and result["cleanup"] == cleaner.actions
    assert cleaner.calls == [event["execution"]["Id"]]

    item = ledger.get(run_id)
    assert item is not None and item["status"] == "FAILED"
    assert item["failure"] == {"state": "RunServerlessJob", "error": "States.TaskFailed",
                               "cause": result["cause"], "logs": logs}
    subject, doc = only_alert(alerts)
    assert subject.startswith("[dev] online_retail 2010-12-01 failed at RunServerlessJob")
    assert doc["Run id"] == run_id and doc["Logs"] == logs and doc["Error"] == "States.TaskFailed"
    assert doc["Input (kept in place)"] == event["state"]["run"]["input"]["uri"]
    assert '"rerun": true' in doc["Re-run"]
    assert alerts.published[0].attributes == {
        "dataset": "online_retail", "environment": "dev", "event": "run_failed",
        "failed_state": "RunServerlessJob"}


@pytest.mark.parametrize("name", ["resolve_run_failed.json", "resolve_run_header_mismatch.json"])
def test_resolve_run_failure_without_a_run(ledger, alerts, cleaner, handler, name) -> None:
    event = read_event("handle_failure", name)
    result = handle(handler, event)
    assert result["failed_state"] == "ResolveRun" and result["error"] == "InvalidInput"
    assert result["cause"].startswith("InvalidInput: ") and "stackTrace" not in result["cause"]
    assert result["logs"] is None and result["cleanup"] == []
    assert cleaner.calls == []  # nothing was started
    item = ledger.get(event["execution"]["Name"])
    assert item is not None
    assert item["status"] == "FAILED" and item["execution_arn"] == event["execution"]["Id"]
    if name == "resolve_run_header_mismatch.json":  # key known: dataset derived from it
        assert (item["dataset"], item["partition"]) == ("online_retail", "2010-12-01")
    else:
        assert item["dataset"] == "unknown"
    subject, _ = only_alert(alerts)
    assert "failed at ResolveRun: InvalidInput" in subject


def test_load_timed_out_records_what_cancel_load_did(ledger, handler) -> None:
    """The load function cancelled its statement (CancelLoad): HandleFailure has no Data API
    client at all (only the submitter may cancel) and records that action."""
    event = read_event("handle_failure", "load_timed_out.json")
    run_id = register(ledger, event)
    sid = event["state"]["load"]["statement_id"]
    result = handle(handler, event)
    assert result["failed_state"] == "Load" and result["error"] == "LoadTimedOut"
    assert result["cleanup"][0] == {"action": "cancel_statement", "id": sid,
                                    "result": "cancelled"}
    assert ledger.get(run_id)["cleanup"][0]["result"] == "cancelled"


def test_load_failed_records_the_redshift_error_and_cancels_nothing(ledger, handler) -> None:
    event = read_event("handle_failure", "load_failed.json")
    run_id = register(ledger, event)
    result = handle(handler, event)
    assert "incompatible Parquet schema" in result["cause"]
    assert all(a["action"] != "cancel_statement" for a in result["cleanup"])
    assert ledger.get(run_id)["failure"]["error"] == "LoadFailed"


def test_a_cancel_that_failed_is_recorded(ledger, handler) -> None:
    event = read_event("handle_failure", "load_timed_out.json")
    register(ledger, event)
    event["state"]["load_cancel"] = {"Error": "TransientError", "Cause": json.dumps(
        {"errorType": "TransientError", "errorMessage": "CancelStatement throttled"})}
    result = handle(handler, event)
    assert result["cleanup"][0] == {"action": "cancel_statement",
                                    "id": event["state"]["load"]["statement_id"],
                                    "result": "failed",
                                    "error": "TransientError: TransientError: CancelStatement "
                                             "throttled"}


def test_quality_gate_failure(ledger, handler) -> None:
    event = read_event("handle_failure", "quality_gate_failed.json")
    register(ledger, event)
    result = handle(handler, event)
    assert (result["failed_state"], result["error"]) == ("EvaluateQuality", "QualityGateFailed")
    assert "customer_id" in result["cause"]
    assert result["logs"].endswith("/jobs/00fo2a8d6e1c2b09/")


def test_cluster_step_failure_names_the_step_logs_and_the_secondary_failure(
        ledger, cleaner, handler) -> None:
    event = read_event("handle_failure", "cluster_step_failed.json")
    run_id = register(ledger, event)
    cleaner.actions = [{"action": "terminate_cluster", "id": "j-2AXXXXXXGAPLF",
                        "result": "terminated"}]
    result = handle(handler, event)
    assert result["failed_state"] == "RunClusterStep"
    # EMR's FailureDetails.LogFile: the file where it found the step's root cause
    logs = f"s3://{ARTIFACTS}/logs/emr/j-2AXXXXXXGAPLF/steps/s-1XXXXXXXXXXA/stderr.gz"
    assert result["cause"] == f"JOB ERROR: input is not gzip; logs: {logs}"
    assert result["logs"] == logs
    item = ledger.get(run_id)
    assert "TerminateClusterOnFailure" in item["failure"]["also_failed"]
    assert item["cleanup"] == cleaner.actions


def test_cleanup_errors_are_recorded_not_raised(ledger, alerts, cleaner, handler) -> None:
    event = read_event("handle_failure", "serverless_job_failed.json")
    register(ledger, event)
    cleaner.error = TransientError("ListClusters throttled")
    result = handle(handler, event)
    assert result["cleanup"] == [{"action": "cleanup_execution", "id": event["execution"]["Id"],
                                  "result": "failed", "error": "ListClusters throttled"}]
    assert len(alerts.published) == 1


def test_the_request_needs_state_and_execution() -> None:
    with pytest.raises(InvalidInput, match="execution: Field required"):
        HandleFailureRequest.parse({"state": {}})


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


def test_a_failed_batch_ends_each_partition_still_running(ledger, handler) -> None:
    """A batch's job failing as a whole (not one refused input) fails every partition it ran;
    a partition the gate failed keeps its own cause, so the next run can resume from here."""
    event = read_event("handle_failure", "serverless_job_failed.json")
    run = event["state"]["run"]
    parts = []
    for day in ("2011-01-04", "2011-01-05", "2011-01-06"):
        rid = f"online_retail-{day}-abc"
        ledger.create_run({"run_id": rid, "dataset": "online_retail", "partition": day,
                           "status": "RUNNING", "started_at": "2026-11-21T10:00:00Z",
                           "execution_arn": event["execution"]["Id"]})
        parts.append({"run_id": rid, "partition": day, "input": run["input"],
                      "outputs": {}, "metrics_uri": run["metrics_uri"]})
    parts[2]["refused"] = "input is empty"
    ledger.mark_failed(parts[2]["run_id"], {"state": "EvaluateQuality", "cause": "empty"})
    run.update(run_id="online_retail-batch-0123456789ab", batch_id="b1", partitions=parts)
    handle(handler, event)
    for part in parts[:2]:
        item = ledger.get(part["run_id"])
        assert item is not None and item["status"] == "FAILED"
        assert item["failure"]["state"] == "RunServerlessJob"
    kept = ledger.get(parts[2]["run_id"])
    assert kept is not None and kept["failure"]["cause"] == "empty"
    batch = ledger.get("online_retail-batch-0123456789ab")
    assert batch is not None and batch["status"] == "FAILED"
