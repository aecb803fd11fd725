"""Hostile states through the HandleFailure, EvaluateQuality and LoadStatement (StartLoad)
handlers on moto. HandleFailure is the last word of a failed run: whatever the state holds, it
must record the run FAILED and send an alert SNS accepts. The gate must decide on a hostile
report without blowing the limits of what carries its result; the load must refuse a manifest
that would put text into SQL before it calls the Data API.

Limits held here: an SNS subject is ASCII, one line, under 100 characters (SNS API reference,
"Publish", https://docs.aws.amazon.com/sns/latest/api/API_Publish.html); a Step Functions
failure cause is at most 32,768 characters (Step Functions API reference,
"ExecutionFailedEventDetails",
https://docs.aws.amazon.com/step-functions/latest/apireference/API_ExecutionFailedEventDetails.html).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from pipeline_aws.contracts import EvaluateQualityRequest
from pipeline_core.errors import InvalidInput, PipelineError
from tests.support.aws import read_event

pytestmark = pytest.mark.hostile
SUBJECT = r"^[ -~]{1,99}$"  # printable ASCII on one line, under 100 characters


class ScriptedCleaner:
    """Stands in for the EMR cleaner (pipeline_aws.cleanup has its own tests)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]:
        self.calls.append(execution_arn)
        return []


@pytest.fixture
def failure_app(account, handler, monkeypatch) -> Any:
    import pipeline_aws.failure

    cleaner = ScriptedCleaner()
    monkeypatch.setattr(pipeline_aws.failure, "default_cleaner", lambda settings: cleaner)
    return handler("handle_failure")


def _job_failed() -> dict[str, Any]:
    return read_event("handle_failure", "serverless_job_failed.json")


def _hostile_run(event: dict[str, Any]) -> dict[str, Any]:
    event["state"]["run"] = "not a manifest: a state overwritten by a bad ResultPath"
    return event


def _detail_is_text(event: dict[str, Any]) -> dict[str, Any]:
    event["state"]["failure"] = {"RunServerlessJob": "Error: job failed (a bare string)"}
    return event


def _huge_cause(event: dict[str, Any]) -> dict[str, Any]:
    noisy = "\u00e9\u2603\x00\x1b[31m\r\n" * 4096  # multi-byte, NUL, ANSI escapes, line breaks
    event["state"]["failure"] = {"RunServerlessJob": {"Error": "States.TaskFailed",
                                                      "Cause": noisy[:32768]}}
    return event


def _hostile_error_name(event: dict[str, Any]) -> dict[str, Any]:
    event["state"]["failure"] = {"RunServerlessJob": {
        "Error": "Boom\nInjected \u2603 " + "E" * 300, "Cause": "{\"errorMessage\": \"x\"}"}}
    return event


def _trigger_with_a_nul_key(event: dict[str, Any]) -> dict[str, Any]:
    state = event["state"]
    state.pop("run")
    state["detail"]["object"]["key"] = "online_retail/2010-12-01\x00.csv"
    state["failure"] = {"ResolveRun": {"Error": "InvalidInput",
                                       "Cause": "key does not match its key pattern"}}
    return event


def _no_failure_at_all(event: dict[str, Any]) -> dict[str, Any]:
    del event["state"]["failure"]
    return event


# case -> (change to the event, the run id the ledger records it under, failed state, error)
FAILURES = {
    "run-section-is-a-string": (_hostile_run, "execution", "RunServerlessJob", None),
    "failure-detail-is-a-bare-string": (_detail_is_text, "run", "RunServerlessJob", "Unknown"),
    "cause-of-32768-noisy-characters": (_huge_cause, "run", "RunServerlessJob",
                                        "States.TaskFailed"),
    "error-name-with-newline-and-snowman": (_hostile_error_name, "run", "RunServerlessJob",
                                            None),
    "trigger-key-with-nul-and-no-run": (_trigger_with_a_nul_key, "execution", "ResolveRun",
                                        "InvalidInput"),
    "state-without-failure-details": (_no_failure_at_all, "run", "HandleFailure", "Unknown"),
}


@pytest.mark.parametrize("case", list(FAILURES), ids=list(FAILURES))
def test_a_hostile_failure_state_is_recorded_and_alerted(account, failure_app, context, case):
    change, recorded_as, failed_state, error = FAILURES[case]
    event = change(_job_failed())
    run = event["state"].get("run")
    run_id = (run["run_id"] if recorded_as == "run" and isinstance(run, dict)
              else event["execution"]["Name"])

    result = failure_app.lambda_handler(event, context)

    assert result["failed_state"] == failed_state
    if error is not None:
        assert result["error"] == error
    assert len(result["cause"]) <= 2000
    item = account.ledger.get(run_id)
    assert item is not None and item["status"] == "FAILED"
    assert item["failure"]["state"] == failed_state
    assert item["execution_arn"] == event["execution"]["Id"]
    [alert] = account.alerts()
    assert alert["attributes"]["event"] == "run_failed"
    assert re.fullmatch(SUBJECT, alert["subject"]), alert["subject"]
    assert alert["document"]["Execution"] == event["execution"]["Id"]
    assert len(json.dumps(alert["document"])) < 64 * 1024


# -- EvaluateQuality ------------------------------------------------------------------------------


def _gate_event() -> dict[str, Any]:
    return read_event("evaluate_quality", "serverless_run.json")


def _metrics(run: Any, **overrides: Any) -> dict[str, Any]:
    body = {"run_id": run.run_id, "dataset": run.dataset, "partition": run.partition,
            "lines_read": 3108, "lines_written": 3080, "lines_quarantined": 2, "duplicates": 26,
            "tables": {"sales_line_items": {"rows": 3080}, "customer_daily_sales": {"rows": 98}}}
    body.update(overrides)
    return body


def _put(account, uri: str, body: Any) -> None:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    account.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body))


@pytest.fixture
def gate_run(account) -> tuple[dict[str, Any], Any]:
    event = _gate_event()
    run = EvaluateQualityRequest.parse(event).run
    account.ledger.create_run({"run_id": run.run_id, "dataset": run.dataset,
                               "status": "RUNNING", "started_at": "2026-11-21T10:00:00Z"})
    return event, run


def test_four_hundred_failing_rules_fail_within_the_limits_of_cause_and_alert(
        account, handler, context, gate_run):
    event, run = gate_run
    rules = [{"rule": f'ColumnValues "country" in ["Atlantis \u2603 {i}", "{"x" * 200}"]',
              "line": i + 2, "severity": "error", "metric_name": f"Column.d{i}.Values",
              "metric": 0.1, "threshold": "= 1.0", "outcome": "fail"} for i in range(400)]
    _put(account, run.quality_uri, {"rules": rules, "metrics": {}})
    _put(account, run.metrics_uri, _metrics(run))
    result = handler("evaluate_quality").lambda_handler(event, context)
    assert result["verdict"] == "fail" and len(result["failed_rules"]) == 400
    assert len(result["summary"]) <= 4000 < 32768  # the cause the QualityGate Choice passes on
    assert account.ledger.get(run.run_id)["quality_verdict"] == "fail"
    [alert] = account.alerts()
    assert re.fullmatch(SUBJECT, alert["subject"]), alert["subject"]


def test_quarantine_samples_with_nul_and_10kb_text_still_alert(account, handler, context,
                                                               gate_run):
    event, run = gate_run
    warn = {"rule": "RowCount > 5000", "line": 4, "severity": "warn",
            "metric_name": "Dataset.*.RowCount", "metric": 3080, "threshold": "> 5000",
            "outcome": "fail"}
    samples = [{"reason": "line is not valid UTF-8 text\x00", "line": 7,
                "text": "\ufffd\x00" * 5000}] * 5
    _put(account, run.quality_uri, {"rules": [warn], "metrics": {}})
    _put(account, run.metrics_uri, _metrics(run, quarantine_samples=samples,
                                            quarantine_reasons={"\x00" * 3000: 2}))
    result = handler("evaluate_quality").lambda_handler(event, context)
    assert result["verdict"] == "warn"
    [alert] = account.alerts()
    assert len(json.dumps(alert["document"])) < 256 * 1024


@pytest.mark.parametrize("field", ["lines_read", "lines_written"])
def test_metrics_with_fractional_line_counts_name_the_field(account, handler, context,
                                                           gate_run, field):
    event, run = gate_run
    _put(account, run.quality_uri, {"rules": [
        {"rule": "RowCount > 0", "line": 2, "severity": "error", "metric_name": "R",
         "metric": 1, "threshold": "> 0", "outcome": "pass"}], "metrics": {}})
    _put(account, run.metrics_uri, _metrics(run, **{field: 3108.5}))
    with pytest.raises(InvalidInput, match=rf"{run.metrics_uri} is not a valid metrics\.json: "
                                           rf"{field}"):
        handler("evaluate_quality").lambda_handler(event, context)
    assert account.ledger.get(run.run_id).get("quality_verdict") is None
    assert account.alerts() == []


# -- StartLoad: nothing hostile reaches SQL --------------------------------------------------------


def _load_event(change) -> dict[str, Any]:
    event = copy.deepcopy(read_event("start_load", "serverless_pass.json"))
    change(event["state"]["run"])
    return event


LOADS = {
    "output-uri-on-local-disk": (
        lambda run: run["outputs"].update(sales_line_items="/etc/"), r"s3://"),
    "dataset-not-in-the-catalog": (
        lambda run: run.update(dataset="no_such_dataset"),
        r"'no_such_dataset' is not in the catalog"),
}


@pytest.mark.parametrize("case", list(LOADS), ids=list(LOADS))
def test_a_hostile_manifest_never_reaches_the_data_api(account, handler, context, case):
    change, says = LOADS[case]
    app = handler("start_load")
    calls: list[tuple[str, dict[str, Any]]] = []
    app.redshift_client._make_api_call = _recording_data_api(calls)
    with pytest.raises(PipelineError, match=says):
        app.lambda_handler(_load_event(change), context)
    submitted = [sql for op, params in calls for sql in
                 params.get("Sqls", []) + ([params["Sql"]] if "Sql" in params else [])]
    assert not [sql for sql in submitted if "INSERT INTO analytics." in sql or "COPY " in sql]
    assert not [sql for sql in submitted if "'/etc/" in sql]


def test_a_partition_with_quotes_is_escaped_as_one_literal(account, handler, context):
    """A manifest is ResolveRun's (which takes partitions from keys it validated); should a
    state carry a partition with quotes, the load's SQL still holds it as one string literal."""
    app = handler("start_load")
    calls: list[tuple[str, dict[str, Any]]] = []
    app.redshift_client._make_api_call = _recording_data_api(calls)
    hostile = "2010-12-01') OR (1=1"
    app.lambda_handler(_load_event(lambda run: run.update(partition=hostile)), context)
    load = calls[-1][1]["Sqls"]
    deletes = [sql for sql in load if sql.startswith("DELETE FROM analytics.")]
    assert deletes and all(sql.endswith("IN ('2010-12-01'') OR (1=1')") for sql in deletes)


def _recording_data_api(calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """A Data API that finishes every statement and reports every migration applied, so the
    load gets as far as building its batch; it records what it was sent."""

    def answer(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        calls.append((operation, params))
        if operation in ("BatchExecuteStatement", "ExecuteStatement"):
            return {"Id": f"stmt-{len(calls)}"}
        if operation == "DescribeStatement":
            return {"Id": params["Id"], "Status": "FINISHED", "HasResultSet": True}
        if operation == "GetStatementResult":
            return {"Records": [[{"longValue": 1}]], "TotalNumRows": 1}
        raise AssertionError(f"unexpected Data API call {operation}")

    return answer
