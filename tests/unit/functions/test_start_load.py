"""functions/start_load (the load statement's owner): every events/start_load file through the
handler, with the Data API and Step Functions stubbed (botocore Stubber checks each request
against the API model; moto has no BatchExecuteStatement) and the ledger on moto.
LoadStatement's logic is tested in tests/unit/run (test_load_statement, test_load_wait)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from pipeline_core.errors import InvalidInput
from pipeline_core.load_sql import applied_versions_sql, ensure_meta_sqls, load_migrations
from tests.support.aws import event_files, read_event
from tests.unit.run.support import RUN_ENV

SID = "d9b6c0c9-0747-4bf4-b142-e8883122f766"
CONNECTION = {"Database": "analytics", "WorkgroupName": "emr-pipelines-dev",
              "SecretArn": RUN_ENV["REDSHIFT_SECRET_ARN"]}


def expect_applied_versions(stub: Stubber, versions: list[int]) -> None:
    stub.add_response("batch_execute_statement", {"Id": SID},
                      {"Sqls": ensure_meta_sqls(), "StatementName": ANY, **CONNECTION})
    stub.add_response("describe_statement", {"Id": SID, "Status": "FINISHED"}, {"Id": SID})
    stub.add_response("execute_statement", {"Id": SID},
                      {"Sql": applied_versions_sql(), "StatementName": ANY, **CONNECTION})
    stub.add_response("describe_statement", {"Id": SID, "Status": "FINISHED", "HasResultSet": True},
                      {"Id": SID})
    stub.add_response("get_statement_result",
                      {"Records": [[{"longValue": v}] for v in versions], "TotalNumRows": 1},
                      {"Id": SID})


def test_every_event_file_is_exercised() -> None:
    assert event_files("start_load") == ["await_running.json", "cancel_timed_out.json",
                                         "describe_running.json", "serverless_pass.json",
                                         "serverless_warn.json", "statement_finished.json"]


@pytest.mark.parametrize("name", ["serverless_pass.json", "serverless_warn.json"])
def test_handler_submits_one_batch(load_handler, context, name) -> None:
    app = load_handler("start_load")
    event = read_event("start_load", name)
    run = event["state"]["run"]
    submitted: dict[str, Any] = {}
    with Stubber(app.redshift_client) as stub:
        expect_applied_versions(stub, [])
        stub.add_response("batch_execute_statement", {"Id": SID}, {
            "Sqls": ANY, "StatementName": f"emr-pipelines-dev-load/{run['run_id']}/try-1",
            "ClientToken": f"{run['run_id']}-load-a1-r1", "WithEvent": True, **CONNECTION})
        original = app.redshift_client.batch_execute_statement

        def spy(**kwargs: Any) -> Any:
            submitted.setdefault("calls", []).append(kwargs["Sqls"])
            return original(**kwargs)

        app.redshift_client.batch_execute_statement = spy
        result = app.lambda_handler(event, context)
        stub.assert_no_pending_responses()
    migrations = load_migrations()  # all pending on a fresh warehouse, each then recorded
    first = sum(len(m.statements) + 1 for m in migrations)
    assert result == {"statement_id": SID,
                      "tables": {"sales_line_items": first + 4,
                                 "customer_daily_sales": first + 9},
                      "migrations_applied": [m.label for m in migrations], "load_try": 1,
                      "snapshot_checks": {}}  # no full_refresh table
    load_sqls = submitted["calls"][-1]
    assert load_sqls[first + 4] == ("INSERT INTO analytics.sales_line_items SELECT * FROM "
                                    "stage_sales_line_items WHERE order_date IN ('2010-12-01')")
    assert f"FROM '{run['outputs']['customer_daily_sales']}part-'" in load_sqls[first + 7]


def test_handler_refuses_a_state_without_run(load_handler, context) -> None:
    app = load_handler("start_load")
    with pytest.raises(InvalidInput, match=r"state\.run: Field required"):
        app.lambda_handler({"state": {}, "execution": {"Id": "x"}}, context)


def test_handler_describes_the_statement_it_submitted(load_handler, context) -> None:
    """DescribeLoad runs only when the wait for the completion event ran out."""
    app = load_handler("start_load")
    event = read_event("start_load", "describe_running.json")
    sid = event["state"]["load"]["statement_id"]
    with Stubber(app.redshift_client) as stub:
        stub.add_response("describe_statement", {"Id": sid, "Status": "STARTED"}, {"Id": sid})
        result = app.lambda_handler(event, context)
        stub.assert_no_pending_responses()
    assert result["outcome"] == "timed_out" and result["Status"] == "STARTED"
    assert (result["polls"], result["wait_seconds"], result["load_try"]) == (1, 0, 1)


def test_handler_keeps_the_task_token_and_waits(aws, load_handler, context) -> None:
    event = read_event("start_load", "await_running.json")
    run_id = aws.register(event)
    app = load_handler("start_load")
    sid = event["state"]["load"]["statement_id"]
    with Stubber(app.redshift_client) as stub, Stubber(app.sfn_client) as sfn:
        stub.add_response("describe_statement", {"Id": sid, "Status": "STARTED"}, {"Id": sid})
        result = app.lambda_handler(event, context)
        stub.assert_no_pending_responses()
        sfn.assert_no_pending_responses()  # nothing sent while it runs
    assert result == {"waiting": sid, "status": "STARTED"}
    kept = aws.ledger.get(run_id)["load_wait"]
    assert kept["token"] == event["task_token"] and kept["statement_id"] == sid


def test_handler_ends_the_wait_on_the_completion_event(aws, load_handler, context) -> None:
    waiting = read_event("start_load", "await_running.json")
    aws.register(waiting)
    app = load_handler("start_load")
    sid = waiting["state"]["load"]["statement_id"]
    with Stubber(app.redshift_client) as stub:
        stub.add_response("describe_statement", {"Id": sid, "Status": "STARTED"}, {"Id": sid})
        app.lambda_handler(waiting, context)
    finished = {"Id": sid, "Status": "FINISHED", "SubStatements": [
        {"Id": f"{sid}:{i + 1}", "Status": "FINISHED", "ResultRows": 7} for i in range(14)]}
    with Stubber(app.redshift_client) as stub, Stubber(app.sfn_client) as sfn:
        stub.add_response("describe_statement", finished, {"Id": sid})
        sfn.add_response("send_task_success", {}, {"taskToken": waiting["task_token"],
                                                   "output": ANY})
        result = app.lambda_handler(read_event("start_load", "statement_finished.json"),
                                    context)
        stub.assert_no_pending_responses()
        sfn.assert_no_pending_responses()
    assert result == {"statement_id": sid, "outcome": "finished", "sent": True}
    # the same event again: Step Functions answers that the task is closed
    with Stubber(app.redshift_client) as stub, Stubber(app.sfn_client) as sfn:
        stub.add_response("describe_statement", finished, {"Id": sid})
        sfn.add_client_error("send_task_success", "TaskTimedOut", "Task Timed Out")
        again = app.lambda_handler(read_event("start_load", "statement_finished.json"),
                                   context)
    assert again == {"statement_id": sid, "outcome": "finished", "sent": False}


def test_handler_cancels_the_statement_it_submitted(load_handler, context) -> None:
    app = load_handler("start_load")
    event = read_event("start_load", "cancel_timed_out.json")
    sid = event["state"]["load"]["statement_id"]
    with Stubber(app.redshift_client) as stub:
        stub.add_response("describe_statement", {"Id": sid, "Status": "STARTED"}, {"Id": sid})
        stub.add_response("cancel_statement", {"Status": True}, {"Id": sid})
        result = app.lambda_handler(event, context)
        stub.assert_no_pending_responses()
    assert result == {"action": "cancel_statement", "id": sid, "result": "cancelled"}
