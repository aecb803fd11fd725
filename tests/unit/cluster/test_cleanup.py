"""Cleanup after an execution: the Cleaner against moto EMR / EMR Serverless, and the
cleanup_execution function against moto Step Functions (real history) and the ledger."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from moto.emr.models import emr_backends

from pipeline_aws.cleanup import Cleaner, ExecutionRuns, RunRef, parse_status_change
from pipeline_core.errors import InvalidInput, TransientError
from tests.unit.cluster.conftest import (
    ACCOUNT,
    APP,
    REGION,
    Aws,
    emf_lines,
    execution_arn,
    fresh_import,
    load_event,
)

ABORTED = load_event("cleanup_execution", "aborted.json")
EXECUTION = ABORTED["detail"]["executionArn"]
OTHER_EXECUTION = execution_arn("a-different-execution")
RUN_ID = "online_retail-2011-12-01-3f2a9c1b7d10"


def cleaner(aws: Aws, application_id: str | None = "from-fixture") -> Cleaner:
    app_id = aws.application_id if application_id == "from-fixture" else application_id
    return Cleaner(aws.emr, aws.serverless, app_id, APP)


def test_cleanup_terminates_and_cancels_only_what_the_execution_started(aws: Aws):
    mine = aws.ours(execution=EXECUTION)
    mine_protected = aws.ours(execution=EXECUTION, protected=True)
    mine_busy = aws.ours(execution=EXECUTION)
    aws.add_step(mine_busy)
    other_execution = aws.ours(execution=OTHER_EXECUTION)
    other_app = aws.cluster(tags={"pipeline:app": "emr-pipelines-prod",
                                  "pipeline:execution": EXECUTION})
    untagged = aws.cluster()
    run_mine = aws.job_run({"pipeline:app": APP, "pipeline:execution": EXECUTION})
    run_queued = aws.job_run({"pipeline:execution": EXECUTION}, state="QUEUED")
    run_other = aws.job_run({"pipeline:app": APP, "pipeline:execution": OTHER_EXECUTION})
    run_foreign_app = aws.job_run({"pipeline:app": "emr-pipelines-prod",
                                   "pipeline:execution": EXECUTION})
    run_done = aws.job_run({"pipeline:app": APP, "pipeline:execution": EXECUTION},
                           state="SUCCESS")

    actions = cleaner(aws).cleanup_execution(EXECUTION)

    assert sorted(actions, key=lambda a: (a["action"], a["id"])) == sorted([
        {"action": "terminate_cluster", "id": mine, "result": "terminated"},
        {"action": "terminate_cluster", "id": mine_protected,
         "result": "terminated_after_removing_protection"},
        {"action": "terminate_cluster", "id": mine_busy, "result": "terminated"},
        {"action": "cancel_job_run", "id": run_mine, "result": "cancelled"},
        {"action": "cancel_job_run", "id": run_queued, "result": "cancelled"},
    ], key=lambda a: (a["action"], a["id"]))
    assert {aws.state(c) for c in (mine, mine_protected, mine_busy)} == {"TERMINATED"}
    assert aws.state(other_execution) == "WAITING"
    assert aws.state(other_app) == "WAITING"
    assert aws.state(untagged) == "WAITING"
    assert aws.job_run_state(run_mine) == "CANCELLED"
    assert aws.job_run_state(run_queued) == "CANCELLED"
    assert aws.job_run_state(run_other) == "RUNNING"
    assert aws.job_run_state(run_foreign_app) == "RUNNING"
    assert aws.job_run_state(run_done) == "SUCCESS"


def test_cleanup_is_idempotent(aws: Aws):
    cluster_id = aws.ours(execution=EXECUTION)
    aws.job_run({"pipeline:app": APP, "pipeline:execution": EXECUTION})

    first = cleaner(aws).cleanup_execution(EXECUTION)
    second = cleaner(aws).cleanup_execution(EXECUTION)

    assert len(first) == 2
    assert second == []
    assert aws.state(cluster_id) == "TERMINATED"


def test_cleanup_sees_every_page_of_clusters(aws: Aws):
    for _ in range(52):
        aws.ours(execution=OTHER_EXECUTION)
    mine = [aws.ours(execution=EXECUTION) for _ in range(3)]
    assert "Marker" in aws.emr.list_clusters(ClusterStates=["WAITING"])

    actions = cleaner(aws, application_id=None).cleanup_execution(EXECUTION)

    assert sorted(a["id"] for a in actions) == sorted(mine)
    assert {aws.state(c) for c in mine} == {"TERMINATED"}


def test_without_a_serverless_application_only_clusters_are_cleaned(aws: Aws):
    run = aws.job_run({"pipeline:app": APP, "pipeline:execution": EXECUTION})
    cluster_id = aws.ours(execution=EXECUTION)

    actions = cleaner(aws, application_id=None).cleanup_execution(EXECUTION)

    assert actions == [{"action": "terminate_cluster", "id": cluster_id, "result": "terminated"}]
    assert aws.job_run_state(run) == "RUNNING"


def test_from_env_builds_its_own_clients(aws: Aws):
    cluster_id = aws.ours(execution=EXECUTION)
    run = aws.job_run({"pipeline:execution": EXECUTION})
    settings = SimpleNamespace(app_name=APP, emr_serverless_application_id=aws.application_id)

    actions = Cleaner.from_env(settings).cleanup_execution(EXECUTION)

    assert {a["id"] for a in actions} == {cluster_id, run}


def test_a_failure_on_one_resource_is_reported_and_the_rest_still_cleaned(aws: Aws):
    failing = aws.ours(execution=EXECUTION)
    fine = aws.ours(execution=EXECUTION)
    backend = emr_backends[ACCOUNT][REGION]

    def terminate(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if params["JobFlowIds"] == [failing]:
            return 503, {"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}
        backend.terminate_job_flows(params["JobFlowIds"])
        return 200, {}

    aws.answer(aws.emr, "TerminateJobFlows", terminate)

    actions = {a["id"]: a for a in cleaner(aws).cleanup_execution(EXECUTION)}

    assert actions[failing]["result"] == "failed"
    assert "ServiceUnavailable" in actions[failing]["error"]
    assert actions[fine]["result"] == "terminated"
    assert aws.state(failing) == "WAITING"


def test_a_run_that_ends_before_the_cancel_is_reported_as_already_final(aws: Aws):
    run = aws.job_run({"pipeline:app": APP, "pipeline:execution": EXECUTION})
    aws.answer(aws.serverless, "CancelJobRun", lambda p: (400, {"Error": {
        "Code": "ValidationException", "Message": "Job run is in a terminal state"}}))

    actions = cleaner(aws).cleanup_execution(EXECUTION)

    assert actions == [{"action": "cancel_job_run", "id": run, "result": "already_final"}]


def test_an_empty_execution_arn_is_refused(aws: Aws):
    with pytest.raises(InvalidInput):
        cleaner(aws).cleanup_execution("")


# -- finding the run of an execution ----------------------------------------------------------


class PagedHistory:
    """GetExecutionHistory in pages (moto 5.2.5 ignores maxResults and returns one page)."""

    def __init__(self, pages: list[list[dict[str, Any]]]):
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        index = int(kwargs.get("nextToken", 0))
        page: dict[str, Any] = {"events": self.pages[index]}
        if index + 1 < len(self.pages):
            page["nextToken"] = str(index + 1)
        return page


def _exited(name: str, output: Any, kind: str = "TaskStateExited") -> dict[str, Any]:
    return {"type": kind, "stateExitedEventDetails": {
        "name": name, "output": output if isinstance(output, str) else json.dumps(output)}}


def test_the_run_is_read_from_resolve_runs_exit_on_any_page():
    history = PagedHistory([
        [{"type": "ExecutionStarted"}, {"type": "TaskStateEntered"},
         _exited("ResolveRun", {"failure": {"ResolveRun": {"Error": "TransientError"}}})],
        [_exited("Other", {"run": {"run_id": "wrong"}}),
         _exited("ResolveRun", '{"run": {"run_id": "trunc'),
         _exited("ResolveRun", {"run": {"run_id": RUN_ID, "duplicate": False}})],
    ])

    assert ExecutionRuns(history).run_of(EXECUTION) == RunRef(RUN_ID, duplicate=False)
    assert len(history.calls) == 2
    assert history.calls[1]["nextToken"] == "1"


def test_an_execution_that_never_resolved_a_run_has_none():
    history = PagedHistory([[{"type": "ExecutionStarted"}, {"type": "ExecutionAborted"}]])
    assert ExecutionRuns(history).run_of(EXECUTION) is None


# -- the function -----------------------------------------------------------------------------


def _ledger_item(aws: Aws, status: str = "RUNNING", arn: str = EXECUTION,
                 **extra: Any) -> None:
    aws.table.put_item(Item={
        "run_id": RUN_ID, "dataset": "online_retail", "partition": "2011-12-01",
        "started_at": "2026-11-21T09:58:12Z", "status": status, "execution_arn": arn,
        "compute": "cluster", "attempt": 1, **extra})


def _aborted_execution(aws: Aws, run: dict[str, Any] | None, event: dict[str, Any]) -> str:
    arn = aws.start_execution(event["detail"]["name"], run)
    assert arn == event["detail"]["executionArn"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # moto's interpreter runs in a thread
        events = aws.sfn.get_execution_history(executionArn=arn)["events"]
        if any(e["type"] == "WaitStateEntered" for e in events):
            break
        time.sleep(0.02)
    aws.sfn.stop_execution(executionArn=arn, error="StopExecution", cause="operator")
    return arn


def test_handler_cleans_up_an_aborted_execution_and_records_it(aws: Aws, lambda_context,
                                                               capsys):
    _aborted_execution(aws, {"run_id": RUN_ID, "duplicate": False}, ABORTED)
    _ledger_item(aws)
    cluster_id = aws.ours(execution=EXECUTION)
    other = aws.ours(execution=OTHER_EXECUTION)
    run = aws.job_run({"pipeline:app": APP, "pipeline:execution": EXECUTION})
    module = fresh_import("functions.cleanup_execution.app")

    result = module.lambda_handler(ABORTED, lambda_context)

    assert result["run_id"] == RUN_ID
    assert result["status"] == "ABORTED"
    assert result["ledger"] == {"status_updated": True, "cleanup_recorded": True}
    assert aws.state(cluster_id) == "TERMINATED"
    assert aws.state(other) == "WAITING"
    assert aws.job_run_state(run) == "CANCELLED"
    item = aws.item(RUN_ID)
    assert item["status"] == "ABORTED"
    assert item["ended_at"] == "2026-11-21T10:13:12Z"  # the event's stopDate
    assert item["failure"] == {"state": "(execution)", "error": "StopExecution",
                               "cause": "Stopped by an operator: wrong input file"}
    recorded = {(c["action"], c["id"], c["result"]) for c in item["cleanup"]}
    assert recorded == {("terminate_cluster", cluster_id, "terminated"),
                        ("cancel_job_run", run, "cancelled")}
    assert {c["by"] for c in item["cleanup"]} == {"cleanup_execution"}
    assert {c["trigger"] for c in item["cleanup"]} == {"ABORTED"}
    blob = emf_lines(capsys.readouterr().out)[0]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["environment"]]
    assert blob["ResourcesCleanedUp"] == [2.0]

    # A repeated delivery finds nothing left and writes nothing more.
    again = module.lambda_handler(ABORTED, lambda_context)
    assert again["actions"] == []
    assert again["ledger"] == {"status_updated": False, "cleanup_recorded": False}
    assert len(aws.item(RUN_ID)["cleanup"]) == 2


def test_a_finished_run_keeps_its_status_but_gets_the_cleanup_record(aws: Aws, lambda_context):
    _aborted_execution(aws, {"run_id": RUN_ID, "duplicate": False}, ABORTED)
    _ledger_item(aws, status="FAILED", failure={"state": "RunClusterStep", "error": "X",
                                                "cause": "y"})
    cluster_id = aws.ours(execution=EXECUTION)
    module = fresh_import("functions.cleanup_execution.app")

    result = module.lambda_handler(ABORTED, lambda_context)

    assert result["ledger"] == {"status_updated": False, "cleanup_recorded": True}
    item = aws.item(RUN_ID)
    assert item["status"] == "FAILED"
    assert item["failure"]["state"] == "RunClusterStep"
    assert [c["id"] for c in item["cleanup"]] == [cluster_id]


def test_the_ledger_item_of_another_execution_is_not_touched(aws: Aws, lambda_context):
    # A re-run or the first delivery owns the item: its execution_arn differs.
    _aborted_execution(aws, {"run_id": RUN_ID, "duplicate": False}, ABORTED)
    _ledger_item(aws, arn=OTHER_EXECUTION)
    aws.ours(execution=EXECUTION)
    module = fresh_import("functions.cleanup_execution.app")

    result = module.lambda_handler(ABORTED, lambda_context)

    assert result["ledger"] == {"status_updated": False, "cleanup_recorded": False}
    item = aws.item(RUN_ID)
    assert item["status"] == "RUNNING"
    assert "cleanup" not in item


def test_a_duplicate_delivery_execution_leaves_the_ledger_alone(aws: Aws, lambda_context):
    _aborted_execution(aws, {"run_id": RUN_ID, "duplicate": True}, ABORTED)
    _ledger_item(aws)  # the first execution's item, even if its ARN matched by mistake
    module = fresh_import("functions.cleanup_execution.app")

    result = module.lambda_handler(ABORTED, lambda_context)

    assert "duplicate" in result["ledger"]["note"]
    assert aws.item(RUN_ID)["status"] == "RUNNING"


def test_an_execution_without_a_run_is_still_cleaned_up(aws: Aws, lambda_context):
    _aborted_execution(aws, None, ABORTED)
    cluster_id = aws.ours(execution=EXECUTION)
    module = fresh_import("functions.cleanup_execution.app")

    result = module.lambda_handler(ABORTED, lambda_context)

    assert result["run_id"] is None
    assert "never resolved a run" in result["ledger"]["note"]
    assert aws.state(cluster_id) == "TERMINATED"


def test_an_unknown_execution_is_still_cleaned_up(aws: Aws, lambda_context):
    # The history is gone (or the execution belongs to a deleted state machine).
    cluster_id = aws.ours(execution=EXECUTION)
    module = fresh_import("functions.cleanup_execution.app")

    result = module.lambda_handler(ABORTED, lambda_context)

    assert result["run_id"] is None
    assert aws.state(cluster_id) == "TERMINATED"


def test_a_failed_cleanup_is_recorded_then_raised_for_a_retry(aws: Aws, lambda_context):
    _aborted_execution(aws, {"run_id": RUN_ID, "duplicate": False}, ABORTED)
    _ledger_item(aws)
    cluster_id = aws.ours(execution=EXECUTION)
    module = fresh_import("functions.cleanup_execution.app")
    aws.answer(module.cleanup._cleaner._clusters._emr, "TerminateJobFlows", lambda p: (
        400, {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}))

    with pytest.raises(TransientError, match=cluster_id):
        module.lambda_handler(ABORTED, lambda_context)

    item = aws.item(RUN_ID)
    assert item["status"] == "ABORTED"
    assert item["cleanup"][0]["result"] == "failed"
    assert aws.state(cluster_id) == "WAITING"


@pytest.mark.parametrize(("name", "status"), [
    ("aborted.json", "ABORTED"), ("timed_out.json", "TIMED_OUT"), ("failed.json", "FAILED")])
def test_every_sample_event_parses(name: str, status: str):
    change = parse_status_change(load_event("cleanup_execution", name))
    assert change.detail.status == status
    assert change.stopped_at is not None


@pytest.mark.parametrize("status", ["TIMED_OUT", "FAILED"])
def test_timed_out_and_failed_runs_get_their_status(aws: Aws, lambda_context, status: str):
    event = load_event("cleanup_execution", f"{status.lower()}.json")
    _aborted_execution(aws, {"run_id": RUN_ID, "duplicate": False}, event)
    _ledger_item(aws, arn=event["detail"]["executionArn"])
    module = fresh_import("functions.cleanup_execution.app")

    module.lambda_handler(event, lambda_context)

    item = aws.item(RUN_ID)
    assert item["status"] == status
    assert item["failure"]["error"] == event["detail"]["error"]


@pytest.mark.parametrize("mutate", [
    lambda e: e["detail"].update(status="SUCCEEDED"),
    lambda e: e["detail"].update(executionArn="not-an-arn"),
    lambda e: e.update(source="aws.s3"),
    lambda e: e.pop("detail"),
])
def test_other_events_are_refused(mutate):
    event = load_event("cleanup_execution", "aborted.json")
    mutate(event)
    with pytest.raises(InvalidInput, match="cleanup_execution input is invalid"):
        parse_status_change(event)
