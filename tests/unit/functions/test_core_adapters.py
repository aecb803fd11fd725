"""The shared adapters: ledger, alerts, S3 object checks, Redshift Data API, settings."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.stub import Stubber
from core_run_helpers import ENV, RAW, REGION

from pipeline_aws import domain_error
from pipeline_aws.alerts import Alert, AlertPublisher, clip, safe_subject
from pipeline_aws.ledger import RunLedger
from pipeline_aws.redshift import RedshiftData, client_token
from pipeline_aws.s3_objects import ObjectInfo, S3Objects, first_line
from pipeline_aws.settings import HandleFailureSettings, ResolveRunSettings, StartLoadSettings
from pipeline_core.errors import ConfigurationError, InvalidInput, TransientError

# -- ledger -----------------------------------------------------------------------------------


def item(run_id: str, started_at: str, status: str = "RUNNING", dataset: str = "online_retail"
         ) -> dict[str, Any]:
    return {"run_id": run_id, "dataset": dataset, "started_at": started_at, "status": status,
            "attempt": 1, "input": {"size": 12, "etag": "abc"}}


def test_ledger_create_get_update(aws) -> None:
    ledger = RunLedger(aws.table, clock=lambda: datetime(2026, 11, 21, 10, 5, tzinfo=UTC))
    assert ledger.create_run(item("r1", "2026-11-21T10:00:00Z")) is True
    assert ledger.create_run(item("r1", "2026-11-21T10:00:00Z")) is False
    ledger.update("r1", {"rows_loaded": {"t": 5}, "quality_metrics": {"m": 0.75}})
    got = ledger.get("r1")
    assert got["rows_loaded"] == {"t": 5} and got["quality_metrics"] == {"m": 0.75}
    assert got["input"]["size"] == 12 and got["updated_at"] == "2026-11-21T10:05:00Z"
    assert ledger.get("nope") is None


def test_ledger_update_of_a_missing_run(aws) -> None:
    with pytest.raises(InvalidInput, match="not in the ledger"):
        RunLedger(aws.table).update("missing", {"status": "SUCCEEDED"})


def test_ledger_refuses_nan(aws) -> None:
    RunLedger(aws.table).create_run(item("r1", "2026-11-21T10:00:00Z"))
    with pytest.raises(ValueError, match="NaN"):
        RunLedger(aws.table).update("r1", {"quality_metrics": {"m": float("nan")}})


def test_ledger_mark_failed_creates_a_missing_item_and_keeps_existing_values(aws) -> None:
    ledger = RunLedger(aws.table)
    ledger.mark_failed("exec-name", {"state": "ResolveRun", "error": "InvalidInput",
                                     "cause": "bad", "logs": None},
                       defaults={"dataset": "unknown", "execution_arn": "arn:x"})
    got = ledger.get("exec-name")
    assert got["status"] == "FAILED" and got["dataset"] == "unknown"
    assert got["failure"]["state"] == "ResolveRun" and got["started_at"]

    ledger.create_run(item("r2", "2026-11-21T09:00:00Z"))
    ledger.mark_failed("r2", {"state": "Load", "error": "LoadFailed", "cause": "c", "logs": None},
                       cleanup=[{"action": "cancel_statement", "result": "cancelled"}],
                       defaults={"dataset": "other", "started_at": "2030-01-01T00:00:00Z"})
    got = ledger.get("r2")
    assert got["dataset"] == "online_retail" and got["started_at"] == "2026-11-21T09:00:00Z"
    assert got["cleanup"] == [{"action": "cancel_statement", "result": "cancelled"}]


def test_ledger_query_by_dataset_newest_first_with_filters(aws) -> None:
    ledger = RunLedger(aws.table)
    for day, status in ((1, "SUCCEEDED"), (2, "FAILED"), (3, "SUCCEEDED"), (4, "RUNNING")):
        ledger.create_run(item(f"r{day}", f"2026-11-0{day}T10:00:00Z", status))
    ledger.create_run(item("x1", "2026-11-05T10:00:00Z", dataset="web_logs"))
    assert [r["run_id"] for r in ledger.query_by_dataset("online_retail")] == [
        "r4", "r3", "r2", "r1"]
    assert [r["run_id"] for r in ledger.query_by_dataset("online_retail", limit=2)] == ["r4", "r3"]
    assert [r["run_id"] for r in ledger.query_by_dataset(
        "online_retail", status="SUCCEEDED")] == ["r3", "r1"]
    assert [r["run_id"] for r in ledger.query_by_dataset(
        "online_retail", since="2026-11-03T00:00:00Z")] == ["r4", "r3"]
    with pytest.raises(InvalidInput, match="status 'DONE'"):
        ledger.query_by_dataset("online_retail", status="DONE")


def test_ledger_maps_throttling_to_transient_error() -> None:
    class Throttled:
        def put_item(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "slow down"}}, "PutItem")

    with pytest.raises(TransientError, match="ProvisionedThroughputExceededException"):
        RunLedger(Throttled()).create_run({"run_id": "r"})


def test_domain_error_classification() -> None:
    def err(code: str, status: int = 400) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert isinstance(domain_error(err("AccessDenied", 403), "x"), ConfigurationError)
    assert isinstance(domain_error(err("ThrottlingException"), "x"), TransientError)
    assert isinstance(domain_error(err("Whatever", 503), "x"), TransientError)
    bad_request = ParamValidationError(report="Sql: missing")
    assert isinstance(domain_error(bad_request, "x"), ConfigurationError)


# -- alerts -----------------------------------------------------------------------------------


def test_subject_is_ascii_one_line_and_short() -> None:
    subject = safe_subject("[dev] online_retail — failed\nat RunServerlessJob: " + "x" * 200)
    assert len(subject) <= 99 and "\n" not in subject and subject.isascii()
    assert subject.endswith("...")


def test_clip_says_how_much_was_cut() -> None:
    assert clip("abc", 10) == "abc"
    clipped = clip("a" * 5000, 100)
    assert len(clipped) == 100 and "[4927 more characters]" in clipped


def test_alert_reaches_json_and_text_subscribers(aws) -> None:
    topic = ENV["ALERT_TOPIC_ARN"]
    message_id = AlertPublisher(aws.sns, topic).publish(Alert(
        subject="[dev] online_retail 2010-12-01 failed at Load: LoadFailed",
        title="Pipeline run failed",
        fields={"Dataset": "online_retail", "Cause": "c" * 9000, "Logs": None,
                "Cleanup": [{"action": "cancel_statement"}]},
        attributes={"dataset": "online_retail"}))
    assert message_id
    [alert] = aws.alerts()
    assert alert["subject"] == "[dev] online_retail 2010-12-01 failed at Load: LoadFailed"
    document = alert["document"]
    assert document["Dataset"] == "online_retail" and len(document["Cause"]) == 4000
    text = Alert("s", "Pipeline run failed", {"Dataset": "d", "Logs": None}).text()
    assert text == "Pipeline run failed\n\nDataset: d"


def test_alert_to_a_missing_topic_is_a_configuration_error(aws) -> None:
    missing = f"arn:aws:sns:{REGION}:123456789012:nope"
    with pytest.raises(ConfigurationError, match="publishing an alert"):
        AlertPublisher(aws.sns, missing).publish(Alert("s", "t", {}))


# -- S3 object checks -------------------------------------------------------------------------


def test_head_missing_and_present(aws) -> None:
    objects = S3Objects(aws.s3)
    assert objects.head(RAW, "nope.csv") is None
    aws.put_raw("a.csv", b"x,y\n")
    info = objects.head(RAW, "a.csv")
    assert info.size == 4 and '"' not in info.etag and info.uri == f"s3://{RAW}/a.csv"


def test_peek_reads_only_the_first_bytes(aws) -> None:
    aws.put_raw("big.csv", b"h1,h2\n" + b"1,2\n" * 50_000)
    objects = S3Objects(aws.s3)
    data = objects.peek(objects.head(RAW, "big.csv"), max_bytes=1024)
    assert len(data) == 1024 and data.startswith(b"h1,h2\n")


def test_header_longer_than_the_peek_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no line break"):
        first_line(b"a" * 100, gz=False, complete=False, where="s3://b/k")
    assert first_line(b"a,b", gz=False, complete=True, where="s3://b/k") == "a,b"


def test_truncated_gzip_still_yields_the_header() -> None:
    data = gzip.compress(b"h1,h2\n" + b"1,2\n" * 100_000)[:200]
    assert first_line(data, gz=True, complete=False, where="s3://b/k") == "h1,h2"


def test_quoted_header_names_are_parsed_as_csv(aws) -> None:
    aws.put_raw("q.csv", b'"a","b, c"\n1,2\n')
    objects = S3Objects(aws.s3)
    objects.check_csv(objects.head(RAW, "q.csv"), ["a", "b, c"])
    with pytest.raises(InvalidInput, match="same columns in a different order"):
        objects.check_csv(objects.head(RAW, "q.csv"), ["b, c", "a"])


def test_object_changed_since_head_is_refused(aws) -> None:
    aws.put_raw("c.csv", b"a\n1\n")
    objects = S3Objects(aws.s3)
    stale = ObjectInfo(RAW, "c.csv", "0" * 32, 4)
    with pytest.raises(InvalidInput, match="changed while it was being checked"):
        objects.peek(stale)


# -- Redshift Data API ------------------------------------------------------------------------


SID = "d9b6c0c9-0747-4bf4-b142-e8883122f766"


@pytest.fixture
def data_api(env) -> tuple[Any, Stubber]:
    client = boto3.client("redshift-data", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber


def fake_clock(step: float = 1.0):
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]
    return clock


def test_query_waits_and_reads_rows(data_api) -> None:
    client, stub = data_api
    conn = {"Database": "analytics", "WorkgroupName": "emr-pipelines-dev"}
    stub.add_response("execute_statement", {"Id": SID},
                      {"Sql": "SELECT 1", "StatementName": "q", **conn})
    stub.add_response("describe_statement", {"Id": SID, "Status": "STARTED"}, {"Id": SID})
    stub.add_response("describe_statement",
                      {"Id": SID, "Status": "FINISHED", "HasResultSet": True}, {"Id": SID})
    stub.add_response("get_statement_result", {
        "Records": [[{"longValue": 1}, {"isNull": True}]], "ColumnMetadata": [],
        "TotalNumRows": 2, "NextToken": "t"}, {"Id": SID})
    stub.add_response("get_statement_result", {
        "Records": [[{"longValue": 2}, {"stringValue": "b"}]], "TotalNumRows": 2},
        {"Id": SID, "NextToken": "t"})
    sleeps: list[float] = []
    rows = RedshiftData(client, conn, sleep=sleeps.append, clock=fake_clock(0.0)).query(
        "SELECT 1", statement_name="q")
    assert rows == [[1, None], [2, "b"]] and sleeps == [0.25]
    stub.assert_no_pending_responses()


def test_failed_statement_raises_with_redshift_message(data_api) -> None:
    client, stub = data_api
    stub.add_response("describe_statement", {"Id": SID, "Status": "FAILED",
                                             "Error": "permission denied for schema x"})
    with pytest.raises(ConfigurationError, match="permission denied for schema x"):
        RedshiftData(client, {}, sleep=lambda s: None).wait(SID)


def test_aborted_statement_is_transient(data_api) -> None:
    client, stub = data_api
    stub.add_response("describe_statement", {"Id": SID, "Status": "ABORTED"})
    with pytest.raises(TransientError, match="aborted"):
        RedshiftData(client, {}, sleep=lambda s: None).wait(SID)


def test_wait_is_bounded_and_cancels_what_it_gives_up_on(data_api) -> None:
    client, stub = data_api
    for _ in range(4):  # clock ticks 1 s per call: polls at t=2,3,4,5, then gives up
        stub.add_response("describe_statement", {"Id": SID, "Status": "STARTED"})
    stub.add_response("describe_statement", {"Id": SID, "Status": "STARTED"})  # cancel's check
    stub.add_response("cancel_statement", {"Status": True}, {"Id": SID})
    rs = RedshiftData(client, {}, sleep=lambda s: None, clock=fake_clock(1.0))
    with pytest.raises(TransientError, match="it was cancelled"):
        rs.wait(SID, timeout_seconds=4, first_interval=1, max_interval=1)
    stub.assert_no_pending_responses()


def test_cancel_only_what_still_runs(data_api) -> None:
    client, stub = data_api
    stub.add_response("describe_statement", {"Id": SID, "Status": "FINISHED"})
    stub.add_client_error("describe_statement", "ResourceNotFoundException")
    stub.add_response("describe_statement", {"Id": SID, "Status": "PICKED"})
    stub.add_client_error("cancel_statement", "ValidationException",
                          "Could not cancel a query that is already in FINISHED state")
    rs = RedshiftData(client, {})
    assert rs.cancel(SID) == "already FINISHED"
    assert rs.cancel(SID) == "not found"
    assert rs.cancel(SID) == "finished before it could be cancelled"


def test_batch_execute_passes_connection_and_token(data_api) -> None:
    client, stub = data_api
    conn = {"Database": "analytics", "ClusterIdentifier": "c1", "DbUser": "loader"}
    token = "x" * 80
    stub.add_response("batch_execute_statement", {"Id": SID}, {
        "Sqls": ["SELECT 1", "SELECT 2"], "StatementName": "load", "ClientToken":
        client_token(token), **conn})
    assert RedshiftData(client, conn).batch_execute(
        ["SELECT 1", "SELECT 2"], statement_name="load", token=token) == SID
    assert len(client_token(token)) == 64 and client_token("short") == "short"


def test_too_many_statements_is_transient(data_api) -> None:
    client, stub = data_api
    stub.add_client_error("execute_statement", "ActiveStatementsExceededException")
    with pytest.raises(TransientError):
        RedshiftData(client, {"Database": "d", "WorkgroupName": "emr-pipelines-dev"}).execute(
            "SELECT 1", statement_name="q")


# -- settings ---------------------------------------------------------------------------------


def test_settings_split_subnets_and_treat_blank_as_unset() -> None:
    s = ResolveRunSettings.from_environ({**ENV, "EMR_SUBNET_IDS": " subnet-1 , subnet-2,"})
    assert s.emr_subnet_ids == ("subnet-1", "subnet-2")
    assert ResolveRunSettings.from_environ({**ENV, "EMR_SUBNET_IDS": ""}).emr_subnet_ids == ()


def test_settings_name_the_missing_variable() -> None:
    env = {k: v for k, v in ENV.items() if k != "RAW_BUCKET"}
    with pytest.raises(ConfigurationError, match="RAW_BUCKET: Field required"):
        ResolveRunSettings.from_environ(env)
    with pytest.raises(ConfigurationError, match="is not a subnet id"):
        ResolveRunSettings.from_environ({**ENV, "EMR_SUBNET_IDS": "vpc-1"})


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, {"Database": "analytics", "WorkgroupName": "emr-pipelines-dev",
          "SecretArn": ENV["REDSHIFT_SECRET_ARN"]}),
    ({"REDSHIFT_SECRET_ARN": ""}, {"Database": "analytics", "WorkgroupName": "emr-pipelines-dev"}),
    ({"REDSHIFT_WORKGROUP": "", "REDSHIFT_CLUSTER_ID": "c1", "REDSHIFT_SECRET_ARN": "",
      "REDSHIFT_DB_USER": "loader"},
     {"Database": "analytics", "ClusterIdentifier": "c1", "DbUser": "loader"}),
])
def test_redshift_connection_kwargs(overrides, expected) -> None:
    assert StartLoadSettings.from_environ({**ENV, **overrides}).connection_kwargs() == expected


@pytest.mark.parametrize(("overrides", "message"), [
    ({"REDSHIFT_CLUSTER_ID": "c1"}, "exactly one of REDSHIFT_WORKGROUP"),
    ({"REDSHIFT_WORKGROUP": ""}, "exactly one of REDSHIFT_WORKGROUP"),
    ({"REDSHIFT_WORKGROUP": "", "REDSHIFT_CLUSTER_ID": "c1", "REDSHIFT_SECRET_ARN": ""},
     "provisioned cluster needs"),
    ({"REDSHIFT_DB_USER": "u", "REDSHIFT_SECRET_ARN": ""}, "REDSHIFT_DB_USER is for"),
    ({"REDSHIFT_COPY_ROLE_ARN": "role"}, "REDSHIFT_COPY_ROLE_ARN"),
])
def test_redshift_settings_refuse_ambiguous_targets(overrides, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        StartLoadSettings.from_environ({**ENV, **overrides})


def test_handle_failure_settings_carry_what_the_cleaner_needs() -> None:
    s = HandleFailureSettings.from_environ({**ENV, "EMR_SERVERLESS_APPLICATION_ID": "00f"})
    assert (s.app_name, s.emr_serverless_application_id) == ("emr-pipelines-dev", "00f")
    assert json.loads(s.model_dump_json())["alert_topic_arn"] == ENV["ALERT_TOPIC_ARN"]
