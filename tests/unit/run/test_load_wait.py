"""The wait for the load statement's completion event: AwaitLoad's token kept on the ledger, the
event ("Redshift Data Statement Status Change") judged and reported with SendTaskSuccess, and
every way an event can be unexpected: redelivered, not ours, an older try's, early, unjudgeable.

The event's shape is AWS's: "Monitoring events for the Amazon Redshift Data API in Amazon
EventBridge" (Amazon Redshift Management Guide),
https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-monitoring-events.html: source
`aws.redshift-data`, detail-type "Redshift Data Statement Status Change", and in `detail` the
principal, statementName, statementId, redshiftQueryId, state (FINISHED, FAILED or ABORTED),
rows and expireAt. Events are sent only for statements submitted with WithEvent true.
A closed token: SendTaskSuccess (Step Functions API Reference),
https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html, answers
TaskTimedOut when "the task associated with the token has already been closed".
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pipeline_aws.contracts import LoadStatementRequest
from pipeline_aws.load import (
    WAIT_ATTRIBUTE,
    LoadStatement,
    parse_statement_name,
    statement_name,
)
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.load_sql import load_migrations
from tests.support.aws import read_event
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.redshift_data import FakeRedshiftData
from tests.unit.run.conftest import NOW
from tests.unit.run.support import RUN_ENV

APP = "emr-pipelines-dev"
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAX-token-of-await-load"
REDSHIFT_1023 = ("ERROR: 1023 DETAIL: Serializable isolation violation on table - 156701, "
                 "transactions forming the cycle are: 1048577, 1048578 (pid:25413)")


class RecordedTasks:
    """SendTaskSuccess / SendTaskFailure: what was sent; a token is closed once used, and a
    closed token is refused (False), as Step Functions answers TaskTimedOut."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []  # (kind, token, output or (error, cause))
        self.closed: set[str] = set()

    def _send(self, kind: str, token: str, what: Any) -> bool:
        if token in self.closed:
            return False
        self.closed.add(token)
        self.sent.append((kind, token, what))
        return True

    def succeed(self, token: str, output: Any) -> bool:
        return self._send("success", token, dict(output))

    def fail(self, token: str, error: str, cause: str) -> bool:
        return self._send("failure", token, (error, cause))


def statement_event(name: str, statement_id: str, state: str = "FINISHED") -> dict[str, Any]:
    """The completion event as the Redshift Management Guide shows it."""
    return {
        "version": "0", "id": str(uuid.uuid4()),
        "detail-type": "Redshift Data Statement Status Change", "source": "aws.redshift-data",
        "account": "123456789012", "time": "2026-11-21T10:05:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:redshift-serverless:eu-west-1:123456789012:workgroup/wg"],
        "detail": {"principal": "arn:aws:sts::123456789012:assumed-role/load/emr-load",
                   "statementName": name, "statementId": statement_id,
                   "redshiftQueryId": -1, "state": state, "rows": 1,
                   "expireAt": 1801673265},
    }


@pytest.fixture
def tasks() -> RecordedTasks:
    return RecordedTasks()


@pytest.fixture
def owner(redshift: FakeRedshiftData, env: dict[str, str], ledger: FakeLedger,
          tasks: RecordedTasks) -> LoadStatement:
    return LoadStatement(catalog=load_catalog(env["CATALOG_DIR"]), redshift=redshift,
                         migrations=load_migrations, copy_role_arn=RUN_ENV[
                             "REDSHIFT_COPY_ROLE_ARN"], app_name=APP, ledger=ledger,
                         tasks=tasks, clock=lambda: NOW, rng=lambda low, high: high)


def request(operation: str, token: str | None = TOKEN, **state: Any) -> LoadStatementRequest:
    event = read_event("start_load", "serverless_pass.json")
    event["state"].update(state)
    event["operation"] = operation
    if token:
        event["task_token"] = token
    return LoadStatementRequest.parse(event)


@pytest.fixture
def run_id(ledger: FakeLedger) -> str:
    run = request("submit").run
    ledger.create_run({"run_id": run.run_id, "dataset": run.dataset, "status": "RUNNING"})
    return run.run_id


def test_the_load_is_submitted_with_event_under_a_name_that_finds_its_waiter(
        owner, redshift, run_id) -> None:
    load = owner.handle(request("submit"))
    statement = redshift.statement(load["statement_id"])
    assert statement.with_event is True
    assert statement.name == f"{APP}-load/{run_id}/try-1"
    assert parse_statement_name(APP, statement.name) == (run_id, 1)


def test_the_wait_keeps_its_token_then_the_event_reports_what_describe_would(
        owner, redshift, ledger, tasks, run_id) -> None:
    load = owner.handle(request("submit"))
    waiting = owner.handle(request("await", load=load))
    assert waiting == {"waiting": load["statement_id"], "status": "STARTED"}
    assert tasks.sent == []
    kept = ledger.get(run_id)[WAIT_ATTRIBUTE]
    assert kept["token"] == TOKEN and kept["statement_id"] == load["statement_id"]
    redshift.finish(load["statement_id"], result_rows=[0] * 8 + [3080] + [0] * 4 + [98])
    name = redshift.statement(load["statement_id"]).name
    result = owner.handle_event(statement_event(name, load["statement_id"]))
    assert result == {"statement_id": load["statement_id"], "outcome": "finished", "sent": True}
    [(kind, token, output)] = tasks.sent
    assert (kind, token) == ("success", TOKEN)
    # the very LoadStatus DescribeLoad returns, which the LoadStatus Choice and RecordRun read
    assert output == owner.handle(request("describe", load=load))
    assert output["SubStatements"][8]["ResultRows"] == 3080


def test_a_statement_that_ended_before_the_wait_is_reported_by_the_wait(
        owner, redshift, tasks, run_id) -> None:
    """Its event came first and found no waiter: the wait's own look reports it."""
    load = owner.handle(request("submit"))
    redshift.finish(load["statement_id"], "FAILED", 'ERROR: relation "x" does not exist')
    early = owner.handle_event(statement_event(redshift.statement(load["statement_id"]).name,
                                               load["statement_id"], "FAILED"))
    assert "no task waits" in early["ignored"] and tasks.sent == []
    result = owner.handle(request("await", load=load))
    assert result["outcome"] == "failed" and result["sent"] is True
    [(_, _, output)] = tasks.sent
    assert output["cause"] == 'ERROR: relation "x" does not exist'


def test_a_redelivered_event_finds_the_token_used_and_is_no_error(
        owner, redshift, tasks, run_id) -> None:
    load = owner.handle(request("submit"))
    owner.handle(request("await", load=load))
    redshift.finish(load["statement_id"])
    event = statement_event(redshift.statement(load["statement_id"]).name, load["statement_id"])
    assert owner.handle_event(event)["sent"] is True
    again = owner.handle_event(event)
    assert again == {"statement_id": load["statement_id"], "outcome": "finished", "sent": False}
    assert len(tasks.sent) == 1


@pytest.mark.parametrize("name", [
    "load of another application",  # not a load statement of this deployment
    "emr-pipelines-prod-load/online_retail-2010-12-01-32dc43c7cee3/try-1",  # another stack
    f"{APP}-load/online_retail-2010-12-01-32dc43c7cee3/try-x",  # not ours after all
    "",
])
def test_an_event_of_a_statement_that_is_not_ours_is_ignored(owner, ledger, tasks, name) -> None:
    ledger.fail["get"] = AssertionError("the ledger is not read for a foreign statement")
    result = owner.handle_event(statement_event(name, str(uuid.uuid4())))
    assert "is not a load of emr-pipelines-dev" in result["ignored"]
    assert tasks.sent == []


def test_an_older_load_trys_event_is_ignored(owner, redshift, tasks, run_id) -> None:
    """Try 1 lost a serialization conflict (reported), try 2 is awaited: try 1's event,
    delivered late or again, must not end try 2's wait."""
    first = owner.handle(request("submit"))
    redshift.finish(first["statement_id"], "FAILED", REDSHIFT_1023)
    reported = owner.handle(request("await", load=first))
    assert reported["outcome"] == "retry"
    [(_, _, status)] = tasks.sent
    second = owner.handle(request("submit", load=first, load_status=status))
    owner.handle(request("await", token="token-of-try-2", load=second, load_status=status))
    old_name = redshift.statement(first["statement_id"]).name
    assert old_name.endswith("/try-1")
    result = owner.handle_event(statement_event(old_name, first["statement_id"], "FAILED"))
    assert "not the awaited one" in result["ignored"] and "older load try" in result["ignored"]
    assert len(tasks.sent) == 1


def test_a_statement_that_cannot_be_judged_fails_the_task(owner, redshift, tasks,
                                                          run_id) -> None:
    load = owner.handle(request("submit"))
    owner.handle(request("await", load=load))
    name = redshift.statement(load["statement_id"]).name
    redshift.statements.clear()  # DescribeStatement now answers ResourceNotFoundException
    result = owner.handle_event(statement_event(name, load["statement_id"]))
    assert result == {"statement_id": load["statement_id"], "failed": "ConfigurationError",
                      "sent": True}
    [(kind, token, (error, cause))] = tasks.sent
    assert (kind, token, error) == ("failure", TOKEN, "ConfigurationError")
    assert "ResourceNotFoundException" in cause


def test_an_event_while_the_statement_still_runs_sends_nothing(owner, redshift, tasks,
                                                               run_id) -> None:
    load = owner.handle(request("submit"))
    owner.handle(request("await", load=load))
    name = redshift.statement(load["statement_id"]).name
    result = owner.handle_event(statement_event(name, load["statement_id"]))
    assert "still STARTED" in result["ignored"] and tasks.sent == []


def test_the_wait_needs_its_token_and_a_submitted_load(owner, run_id) -> None:
    with pytest.raises(InvalidInput, match="task_token is missing"):
        owner.handle(request("await", token=None, load=owner.handle(request("submit"))))
    with pytest.raises(InvalidInput, match=r"state\.load is missing"):
        owner.handle(request("await"))


def test_waiting_needs_the_ledger_and_step_functions(redshift, env) -> None:
    bare = LoadStatement(catalog=load_catalog(env["CATALOG_DIR"]), redshift=redshift,
                         migrations=load_migrations, copy_role_arn="arn:aws:iam::1:role/x",
                         app_name=APP)
    with pytest.raises(ConfigurationError, match="ledger and Step Functions"):
        bare.handle(request("await", load={"statement_id": "s", "tables": {}}))


def test_statement_names_round_trip_and_refuse_lookalikes() -> None:
    name = statement_name(APP, "online_retail-2010-12-01-32dc43c7cee3", 3)
    assert name == f"{APP}-load/online_retail-2010-12-01-32dc43c7cee3/try-3"
    assert parse_statement_name(APP, name) == ("online_retail-2010-12-01-32dc43c7cee3", 3)
    assert parse_statement_name(f"{APP}-x", name) is None
    assert parse_statement_name(APP, f"{APP}-load//try-3") is None
    assert len(statement_name(APP * 2, "r" * 128, 5)) <= 500  # StatementName's limit
