"""The Redshift Data port's contract: FakeRedshiftData and RedshiftData.

moto's Redshift Data API cannot run SQL (its results are fixed) and has no
BatchExecuteStatement, so the real adapter talks to a botocore Stubber instead: it answers what
Redshift would and checks every request against the service's API model. Each test scripts the
same answer on both sides (`Warehouse`) and expects the same behaviour from the port.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pipeline_aws.redshift import RedshiftData, RedshiftDataPort, client_token
from pipeline_core.errors import ConfigurationError, TransientError
from tests.support.aws import REGION
from tests.support.fakes.redshift_data import FakeRedshiftData

SID = "d9b6c0c9-0747-4bf4-b142-e8883122f766"
CONNECTION = {"Database": "analytics", "WorkgroupName": "emr-pipelines-dev"}
ENSURE = ["CREATE SCHEMA IF NOT EXISTS pipeline_meta", "CREATE TABLE IF NOT EXISTS x (v int)"]


def _field(value: Any) -> dict[str, Any]:
    """A Python value as the Data API's Field."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


class Warehouse:
    """One side of the contract: the port, and how to script what Redshift answers."""

    port: RedshiftDataPort

    def query_answers(self, sql: str, rows: list[list[Any]]) -> None: ...

    def batch_ends(self, sqls: list[str], status: str, error: str | None = None) -> None: ...

    def running(self) -> str: ...

    def ended(self, status: str) -> str: ...

    def unknown(self) -> str: ...

    def submit_answers(self, sqls: list[str], token: str) -> None: ...

    def close(self) -> None: ...


class FakeSide(Warehouse):
    def __init__(self) -> None:
        self.fake = FakeRedshiftData()
        self.port = self.fake

    def query_answers(self, sql: str, rows: list[list[Any]]) -> None:
        self.fake.rows[sql] = rows

    def batch_ends(self, sqls: list[str], status: str, error: str | None = None) -> None:
        if status != "FINISHED":
            self.fake.fail_when[sqls[0]] = (status, error)

    def running(self) -> str:
        return self.fake.batch_execute(["INSERT INTO t SELECT 1"], statement_name="load")

    def ended(self, status: str) -> str:
        statement_id = self.running()
        self.fake.finish(statement_id, status)
        return statement_id

    def unknown(self) -> str:
        return SID


class StubbedSide(Warehouse):
    def __init__(self) -> None:
        client = boto3.client("redshift-data", region_name=REGION)
        self.stub = Stubber(client)
        self.stub.activate()
        self.port = RedshiftData(client, CONNECTION, sleep=lambda s: None)

    def query_answers(self, sql: str, rows: list[list[Any]]) -> None:
        self.stub.add_response("execute_statement", {"Id": SID},
                               {"Sql": sql, "StatementName": ANY, **CONNECTION})
        self.stub.add_response("describe_statement",
                               {"Id": SID, "Status": "FINISHED", "HasResultSet": bool(rows)},
                               {"Id": SID})
        if rows:
            self.stub.add_response("get_statement_result", {
                "Records": [[_field(v) for v in row] for row in rows],
                "TotalNumRows": len(rows)}, {"Id": SID})

    def batch_ends(self, sqls: list[str], status: str, error: str | None = None) -> None:
        self.stub.add_response("batch_execute_statement", {"Id": SID},
                               {"Sqls": sqls, "StatementName": ANY, **CONNECTION})
        described: dict[str, Any] = {"Id": SID, "Status": status}
        if error:
            described["Error"] = error
        self.stub.add_response("describe_statement", described, {"Id": SID})

    def running(self) -> str:
        self.stub.add_response("describe_statement", {"Id": SID, "Status": "STARTED"},
                               {"Id": SID})
        self.stub.add_response("cancel_statement", {"Status": True}, {"Id": SID})
        return SID

    def ended(self, status: str) -> str:
        self.stub.add_response("describe_statement", {"Id": SID, "Status": status}, {"Id": SID})
        return SID

    def unknown(self) -> str:
        self.stub.add_client_error("describe_statement", "ResourceNotFoundException")
        return SID

    def submit_answers(self, sqls: list[str], token: str) -> None:
        self.stub.add_response("batch_execute_statement", {"Id": SID}, {
            "Sqls": sqls, "StatementName": "load", "ClientToken": client_token(token),
            **CONNECTION})

    def close(self) -> None:
        self.stub.assert_no_pending_responses()
        self.stub.deactivate()


@pytest.fixture(params=["fake", "stubbed"])
def warehouse(request: pytest.FixtureRequest, aws_env: None) -> Iterator[Warehouse]:
    side: Warehouse = FakeSide() if request.param == "fake" else StubbedSide()
    yield side
    side.close()


def test_a_query_returns_its_rows_as_python_values(warehouse: Warehouse) -> None:
    rows: list[list[Any]] = [[1, "V001", None], [2, "V002", 1.5]]
    warehouse.query_answers("SELECT version, name, x FROM m", rows)
    assert warehouse.port.query("SELECT version, name, x FROM m", statement_name="q") == rows


def test_a_query_without_a_result_set_returns_no_rows(warehouse: Warehouse) -> None:
    warehouse.query_answers("SELECT version FROM m", [])
    assert warehouse.port.query("SELECT version FROM m", statement_name="q") == []


def test_a_small_batch_that_finishes_returns_its_description(warehouse: Warehouse) -> None:
    warehouse.batch_ends(ENSURE, "FINISHED")
    assert warehouse.port.run(ENSURE, statement_name="ensure")["Status"] == "FINISHED"


def test_a_failed_statement_is_a_configuration_error_with_redshifts_message(
        warehouse: Warehouse) -> None:
    warehouse.batch_ends(ENSURE, "FAILED", "permission denied for schema pipeline_meta")
    with pytest.raises(ConfigurationError, match="permission denied for schema pipeline_meta"):
        warehouse.port.run(ENSURE, statement_name="ensure")


def test_an_aborted_statement_is_transient(warehouse: Warehouse) -> None:
    warehouse.batch_ends(ENSURE, "ABORTED")
    with pytest.raises(TransientError, match="was aborted"):
        warehouse.port.run(ENSURE, statement_name="ensure")


def test_cancel_stops_a_running_statement(warehouse: Warehouse) -> None:
    assert warehouse.port.cancel(warehouse.running()) == "cancelled"


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "ABORTED"])
def test_cancel_leaves_an_ended_statement_alone(warehouse: Warehouse, status: str) -> None:
    assert warehouse.port.cancel(warehouse.ended(status)) == f"already {status}"


def test_cancel_of_an_unknown_statement_says_so(warehouse: Warehouse) -> None:
    assert warehouse.port.cancel(warehouse.unknown()) == "not found"


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "ABORTED"])
def test_describe_returns_the_statements_status(warehouse: Warehouse, status: str) -> None:
    statement_id = warehouse.ended(status)
    described = warehouse.port.describe(statement_id)
    assert (described["Id"], described["Status"]) == (statement_id, status)


def test_describe_of_an_unknown_statement_is_a_configuration_error(warehouse: Warehouse) -> None:
    """DescribeStatement answers ResourceNotFoundException for an id the caller cannot see
    (Redshift Data API Reference, DescribeStatement, Errors): also a statement another
    principal submitted. Retrying cannot help."""
    with pytest.raises(ConfigurationError, match="ResourceNotFoundException"):
        warehouse.port.describe(warehouse.unknown())


def test_a_submitted_batch_has_an_id(warehouse: Warehouse) -> None:
    token = "online_retail-2010-12-01-0123456789ab-load-a1"
    warehouse.submit_answers(ENSURE, token)
    assert warehouse.port.batch_execute(ENSURE, statement_name="load", token=token)


def test_an_empty_batch_is_refused(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="at least one statement"):
        warehouse.port.batch_execute([], statement_name="load")


# -- the fake: what the Data API does on its side ---------------------------------------------


def test_fake_the_same_client_token_returns_the_same_statement() -> None:
    fake = FakeRedshiftData()
    first = fake.batch_execute(ENSURE, statement_name="load", token="t-1")
    assert fake.batch_execute(ENSURE, statement_name="load", token="t-1") == first
    assert fake.batch_execute(ENSURE, statement_name="load", token="t-2") != first
    assert len(fake.statements) == 2


# -- the real adapter only: polling, budgets and request shapes --------------------------------


@pytest.fixture
def data_api(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("redshift-data", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber


def fake_clock(step: float = 1.0) -> Any:
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]
    return clock


def test_query_waits_and_reads_every_page(data_api: tuple[Any, Stubber]) -> None:
    client, stub = data_api
    stub.add_response("execute_statement", {"Id": SID},
                      {"Sql": "SELECT 1", "StatementName": "q", **CONNECTION})
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
    rows = RedshiftData(client, CONNECTION, sleep=sleeps.append, clock=fake_clock(0.0)).query(
        "SELECT 1", statement_name="q")
    assert rows == [[1, None], [2, "b"]] and sleeps == [0.05]
    stub.assert_no_pending_responses()


def test_wait_is_bounded_and_cancels_what_it_gives_up_on(data_api: tuple[Any, Stubber]) -> None:
    client, stub = data_api
    for _ in range(4):  # clock ticks 1 s per call: polls at t=2,3,4,5, then gives up
        stub.add_response("describe_statement", {"Id": SID, "Status": "STARTED"})
    stub.add_response("describe_statement", {"Id": SID, "Status": "STARTED"})  # cancel's check
    stub.add_response("cancel_statement", {"Status": True}, {"Id": SID})
    rs = RedshiftData(client, {}, sleep=lambda s: None, clock=fake_clock(1.0))
    with pytest.raises(TransientError, match="it was cancelled"):
        rs.wait(SID, timeout_seconds=4, first_interval=1, max_interval=1)
    stub.assert_no_pending_responses()


def test_a_statement_that_ends_while_being_cancelled(data_api: tuple[Any, Stubber]) -> None:
    client, stub = data_api
    stub.add_response("describe_statement", {"Id": SID, "Status": "PICKED"})
    stub.add_client_error("cancel_statement", "ValidationException",
                          "Could not cancel a query that is already in FINISHED state")
    assert RedshiftData(client, {}).cancel(SID) == "finished before it could be cancelled"


def test_batch_execute_passes_connection_and_a_64_character_token(
        data_api: tuple[Any, Stubber]) -> None:
    client, stub = data_api
    conn = {"Database": "analytics", "ClusterIdentifier": "c1", "DbUser": "loader"}
    token = "x" * 80
    stub.add_response("batch_execute_statement", {"Id": SID}, {
        "Sqls": ["SELECT 1", "SELECT 2"], "StatementName": "load", "ClientToken":
        client_token(token), **conn})
    assert RedshiftData(client, conn).batch_execute(
        ["SELECT 1", "SELECT 2"], statement_name="load", token=token) == SID
    assert len(client_token(token)) == 64 and client_token("short") == "short"


def test_too_many_statements_is_transient(data_api: tuple[Any, Stubber]) -> None:
    client, stub = data_api
    stub.add_client_error("execute_statement", "ActiveStatementsExceededException")
    with pytest.raises(TransientError):
        RedshiftData(client, CONNECTION).execute("SELECT 1", statement_name="q")
