"""The load statement's owner after the submit: the wait for its completion event (await, the
event itself), describe (what a status means, the serialization retry) and cancel, on
FakeRedshiftData, FakeLedger and a recorder of task tokens; the pure rules of
pipeline_aws.load_policy.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_aws.contracts import LoadStatementRequest
from pipeline_aws.load import LoadStatement, load_token, next_load_try
from pipeline_aws.load_policy import (
    LOAD_TIMEOUT_SECONDS,
    MAX_LOAD_TRIES,
    RETRY_CAP_SECONDS,
    is_serialization_conflict,
    judge,
    retry_wait,
    statement_error,
)
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import InvalidInput
from pipeline_core.load_sql import applied_versions_sql, load_migrations
from tests.support.aws import read_event
from tests.support.fakes.redshift_data import FakeRedshiftData
from tests.unit.run.conftest import NOW
from tests.unit.run.support import RUN_ENV

# Redshift's text, from "Troubleshooting serializable isolation errors" (Amazon Redshift
# Database Developer Guide), and what PostgreSQL says for SQLSTATE 40001.
REDSHIFT_1023 = ("ERROR: 1023 DETAIL: Serializable isolation violation on table - 156701, "
                 "transactions forming the cycle are: 1048577, 1048578 (pid:25413)")
POSTGRES_40001 = ("ERROR: could not serialize access due to read/write dependencies among "
                  "transactions (SQLSTATE 40001)")
NOT_A_CONFLICT = 'ERROR: relation "analytics.sales_line_items" does not exist'


def no_jitter(low: float, high: float) -> float:
    return 0.0


def full_jitter(low: float, high: float) -> float:
    return high


# -- load_policy: classification and waits -------------------------------------------------


@pytest.mark.parametrize("error, conflict", [
    (REDSHIFT_1023, True),
    ("ERROR:1023 DETAIL: Serializable isolation violation on table in Redshift", True),
    (POSTGRES_40001, True),
    ("ERROR: could not serialize access due to concurrent delete", True),
    (NOT_A_CONFLICT, False),
    ("ERROR: 1023 rows were rejected", False),
    ("ERROR: value 40001 out of range", False),
    (None, False),
])
def test_serialization_conflicts_are_recognised(error: str | None, conflict: bool) -> None:
    """Troubleshooting serializable isolation errors (Amazon Redshift Database Developer
    Guide), https://docs.aws.amazon.com/redshift/latest/dg/c_serial_isolation-serializable-
    isolation-troubleshooting.html: "ERROR:1023 DETAIL: Serializable isolation violation on
    table"; its first remedy is "Retry the canceled transaction"."""
    assert is_serialization_conflict(error) is conflict


def test_the_error_is_the_batchs_or_the_failing_sub_statements() -> None:
    assert statement_error({"Error": "top", "SubStatements": [{"Error": "sub"}]}) == "top"
    assert statement_error({"SubStatements": [{"Status": "FINISHED"},
                                              {"Status": "FAILED", "Error": "sub"}]}) == "sub"
    assert statement_error({"Status": "FAILED"}) is None


def test_retry_waits_grow_exponentially_with_jitter_and_a_cap() -> None:
    lows = [retry_wait(n, no_jitter) for n in range(1, 8)]
    highs = [retry_wait(n, full_jitter) for n in range(1, 8)]
    assert lows == [2, 4, 8, 16, 32, 60, 60]
    assert highs == [4, 8, 16, 32, 64, 120, 120]
    assert max(highs) == RETRY_CAP_SECONDS
    assert all(2 <= retry_wait(3, __import__("random").uniform) <= 16 for _ in range(200))
    with pytest.raises(ValueError, match="count from 1"):
        retry_wait(0)


@pytest.mark.parametrize("description, outcome", [
    ({"Status": "FINISHED"}, "finished"),
    ({"Status": "ABORTED"}, "aborted"),
    ({"Status": "FAILED", "Error": NOT_A_CONFLICT}, "failed"),
    ({"Status": "FAILED", "Error": REDSHIFT_1023}, "retry"),
    ({"Status": "FAILED", "SubStatements": [{"Error": POSTGRES_40001}]}, "retry"),
    ({"Status": "STARTED"}, "timed_out"),
    ({"Status": "SUBMITTED"}, "timed_out"),
    ({"Status": "PICKED"}, "timed_out"),
])
def test_what_each_status_means(description: dict[str, Any], outcome: str) -> None:
    """A statement is judged when it ended, or when the wait for its end ran out: one still
    running then has taken too long."""
    assert judge(description, load_try=1, rng=no_jitter).outcome == outcome


def test_a_failed_load_keeps_redshifts_message() -> None:
    verdict = judge({"Status": "FAILED", "Error": NOT_A_CONFLICT}, load_try=1)
    assert verdict.cause == NOT_A_CONFLICT and verdict.wait_seconds == 0


def test_the_last_try_that_loses_is_a_conflict_naming_it() -> None:
    verdict = judge({"Status": "FAILED", "Error": REDSHIFT_1023}, load_try=MAX_LOAD_TRIES)
    assert verdict.outcome == "conflict"
    assert "serialization conflict" in verdict.cause and f"all {MAX_LOAD_TRIES}" in verdict.cause
    assert "1023" in verdict.cause


def test_running_after_the_wait_times_out_naming_the_limit() -> None:
    verdict = judge({"Status": "STARTED"}, load_try=1)
    assert verdict.outcome == "timed_out"
    assert f"time limit ({LOAD_TIMEOUT_SECONDS} s)" in verdict.cause


def test_an_unknown_status_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown status 'LOST'"):
        judge({"Status": "LOST"}, load_try=1)


# -- LoadStatement: describe and cancel ------------------------------------------------------


@pytest.fixture
def owner(redshift: FakeRedshiftData, env: dict[str, str]) -> LoadStatement:
    return LoadStatement(catalog=load_catalog(env["CATALOG_DIR"]), redshift=redshift,
                         migrations=load_migrations, app_name="emr-pipelines-dev",
                         copy_role_arn=RUN_ENV["REDSHIFT_COPY_ROLE_ARN"], clock=lambda: NOW,
                         rng=no_jitter)


def request(operation: str, **state: Any) -> LoadStatementRequest:
    event = read_event("start_load", "serverless_pass.json")
    event["state"].update(state)
    event["operation"] = operation
    return LoadStatementRequest.parse(event)


def submitted(owner: LoadStatement, **state: Any) -> dict[str, Any]:
    return owner.handle(request("submit", **state))


def test_describe_after_the_wait_says_what_the_statement_is(owner, redshift) -> None:
    load = submitted(owner)
    late = owner.handle(request("describe", load=load))
    assert (late["outcome"], late["polls"], late["wait_seconds"]) == ("timed_out", 1, 0)
    redshift.finish(load["statement_id"], result_rows=[0] * 8 + [3080] + [0] * 4 + [98])
    done = owner.handle(request("describe", load=load, load_status=late))
    assert done["outcome"] == "finished" and done["polls"] == 2
    assert done["SubStatements"][8]["ResultRows"] == 3080  # what RecordRun reads


def test_a_stale_snapshot_is_its_own_outcome_not_a_success(owner, redshift) -> None:
    """A full_refresh load whose snapshot check returned a row committed without a change
    (pipeline_core.load_sql): the run must fail saying so, not record 0 rows as a success.
    The check's row count is its ResultRows ("SubStatementData - Amazon Redshift Data API",
    https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_SubStatementData.html:
    "the number of rows returned from the SQL statement or the number of rows affected")."""
    load = {**submitted(owner), "snapshot_checks": {"bank_accounts": 3}}
    redshift.finish(load["statement_id"], result_rows=[0, 0, 0, 1, 0, 0])
    status = owner.handle(request("describe", load=load))
    partition = request("describe").run.partition
    assert status["outcome"] == "stale" and status["Status"] == "FINISHED"
    assert status["cause"] == (
        f"stale snapshot: bank_accounts holds a snapshot newer than this run's {partition}; "
        "nothing was changed (an old file delivered late or again never replaces a newer one)")
    # the same load whose check returned nothing finished
    fresh = {**submitted(owner, load=load, load_status=None), "snapshot_checks": {"t": 3}}
    redshift.finish(fresh["statement_id"], result_rows=[0, 0, 0, 0, 0, 5])
    assert owner.handle(request("describe", load=fresh))["outcome"] == "finished"


def test_a_serialization_conflict_is_retried_with_a_new_token(owner, redshift) -> None:
    load = submitted(owner)
    redshift.finish(load["statement_id"], "FAILED", REDSHIFT_1023)
    status = owner.handle(request("describe", load=load))
    assert status["outcome"] == "retry" and status["wait_seconds"] == 2
    assert "1023" in status["cause"]
    again = submitted(owner, load=load, load_status=status)
    assert again["load_try"] == 2 and again["statement_id"] != load["statement_id"]
    run_id = request("submit").run.run_id
    assert redshift.statement(again["statement_id"]).token == f"{run_id}-load-a1-r2"
    # a retried Lambda call of that resubmit gets the same statement back
    assert submitted(owner, load=load, load_status=status) == again
    # the new statement's polls start again
    fresh = owner.handle(request("describe", load=again, load_status=status))
    assert fresh["polls"] == 1 and fresh["load_try"] == 2


def test_any_other_failure_is_not_retried(owner, redshift) -> None:
    load = submitted(owner)
    redshift.finish(load["statement_id"], "FAILED", NOT_A_CONFLICT)
    status = owner.handle(request("describe", load=load))
    assert status["outcome"] == "failed" and status["cause"] == NOT_A_CONFLICT
    with pytest.raises(InvalidInput, match="not to be retried"):
        submitted(owner, load=load, load_status=status)


def test_a_migration_applied_by_a_concurrent_load_is_retried_without_it(owner, redshift) -> None:
    """Two loads on a fresh warehouse both apply V001: the loser's DDL collides with the
    winner's. Its batch rolled back, so V001 recorded now means the other load applied it: the
    next try reads the applied versions again and leaves the migration out."""
    load = submitted(owner)
    labels = [m.label for m in load_migrations()]
    assert load["migrations_applied"] == labels and labels[0] == "V001__analytics_online_retail"
    redshift.finish(load["statement_id"], "FAILED",
                    'ERROR: duplicate key value violates unique constraint '
                    '"pg_type_typname_nsp_index"')
    redshift.rows[applied_versions_sql()] = [[m.version] for m in load_migrations()]
    status = owner.handle(request("describe", load=load))
    assert status["outcome"] == "retry"
    assert "applied the same migration" in status["cause"]
    again = submitted(owner, load=load, load_status=status)
    assert again["migrations_applied"] == [] and again["load_try"] == 2


def test_a_failed_migration_nobody_applied_is_a_failure(owner, redshift) -> None:
    load = submitted(owner)
    redshift.finish(load["statement_id"], "FAILED", 'ERROR: syntax error at or near "CREAT"')
    status = owner.handle(request("describe", load=load))
    assert status["outcome"] == "failed" and "syntax error" in status["cause"]


def test_no_more_tries_than_the_limit(owner, redshift) -> None:
    load = submitted(owner)
    status: dict[str, Any] = {}
    for expected_try in range(1, MAX_LOAD_TRIES + 1):
        assert load["load_try"] == expected_try
        redshift.finish(load["statement_id"], "FAILED", POSTGRES_40001)
        status = owner.handle(request("describe", load=load))
        if status["outcome"] != "retry":
            break
        load = submitted(owner, load=load, load_status=status)
    assert status["outcome"] == "conflict" and load["load_try"] == MAX_LOAD_TRIES
    with pytest.raises(InvalidInput, match="not to be retried"):
        submitted(owner, load=load, load_status=status)


def test_cancel_stops_a_running_statement_once(owner, redshift) -> None:
    load = submitted(owner)
    result = owner.handle(request("cancel", load=load))
    assert result == {"action": "cancel_statement", "id": load["statement_id"],
                      "result": "cancelled"}
    assert redshift.statement(load["statement_id"]).status == "ABORTED"
    assert owner.handle(request("cancel", load=load))["result"] == "already ABORTED"


@pytest.mark.parametrize("operation", ["describe", "cancel"])
def test_describe_and_cancel_need_a_submitted_load(owner, operation: str) -> None:
    with pytest.raises(InvalidInput, match=r"state\.load is missing"):
        owner.handle(request(operation))


def test_an_unknown_operation_is_refused() -> None:
    with pytest.raises(InvalidInput, match="operation"):
        request("drop")


def test_the_token_stays_within_64_characters() -> None:
    """BatchExecuteStatement's ClientToken is at most 64 characters (Redshift Data API
    Reference, BatchExecuteStatement, https://docs.aws.amazon.com/redshift-data/latest/
    APIReference/API_BatchExecuteStatement.html)."""
    long_id = "online_retail_with_a_long_name-2010-12-01-0123456789ab-r12"
    tokens = {load_token(long_id, 3, n) for n in range(1, 6)}
    assert len(tokens) == 5 and all(len(t) <= 64 for t in tokens)
    assert load_token("r", 1, 2) == "r-load-a1-r2"


def test_the_first_submit_is_try_one() -> None:
    assert next_load_try(request("submit").state) == 1
