"""Cleanup after an execution: the Cleaner and ExecutionCleanup on the in-memory fakes (EMR,
EMR Serverless, the ledger), ExecutionRuns on a paged history, and the cleanup_execution
function on moto (Step Functions with a real history, EMR, EMR Serverless, the ledger)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline_aws.cleanup import Cleaner, ExecutionCleanup, ExecutionRuns, RunRef
from pipeline_aws.contracts import ExecutionStatusChange
from pipeline_aws.emr import EmrClusters, ServerlessJobRuns
from pipeline_core.errors import InvalidInput, TransientError
from tests.support.aws import APP, emf_blobs, execution_arn, read_event
from tests.support.fakes.emr import FakeClusters, FakeJobRuns
from tests.support.fakes.ledger import FakeLedger
from tests.unit.cluster.conftest import NOW, Aws, fresh_import
from tests.unit.contracts.moto_emr import answer

ABORTED = read_event("cleanup_execution", "aborted.json")
EXECUTION = ABORTED["detail"]["executionArn"]
OTHER_EXECUTION = execution_arn("a-different-execution")
RUN_ID = "online_retail-2011-12-01-3f2a9c1b7d10"
OURS = {"pipeline:app": APP, "pipeline:environment": "dev"}


def ours(clusters: FakeClusters, execution: str | None = None, **kwargs: Any) -> str:
    tags = dict(OURS)
    if execution:
        tags["pipeline:execution"] = execution
    return clusters.add(tags=tags, **kwargs)


@pytest.fixture
def clusters() -> FakeClusters:
    return FakeClusters()


@pytest.fixture
def job_runs() -> FakeJobRuns:
    return FakeJobRuns()


def test_cleanup_terminates_and_cancels_only_what_the_execution_started(
        clusters: FakeClusters, job_runs: FakeJobRuns):
    mine = ours(clusters, EXECUTION)
    mine_protected = ours(clusters, EXECUTION, termination_protected=True)
    mine_busy = ours(clusters, EXECUTION, state="RUNNING")
    clusters.add_step(mine_busy)
    other_execution = ours(clusters, OTHER_EXECUTION)
    other_app = clusters.add(tags={"pipeline:app": "emr-pipelines-prod",
                                   "pipeline:execution": EXECUTION})
    untagged = clusters.add()
    run_mine = job_runs.add({"pipeline:app": APP, "pipeline:execution": EXECUTION})
    run_queued = job_runs.add({"pipeline:execution": EXECUTION}, state="QUEUED")
    run_other = job_runs.add({"pipeline:app": APP, "pipeline:execution": OTHER_EXECUTION})
    run_foreign_app = job_runs.add({"pipeline:app": "emr-pipelines-prod",
                                    "pipeline:execution": EXECUTION})
    run_done = job_runs.add({"pipeline:app": APP, "pipeline:execution": EXECUTION},
                            state="SUCCESS")

    actions = Cleaner(clusters, job_runs, APP).cleanup_execution(EXECUTION)

    assert sorted(actions, key=lambda a: (a["action"], a["id"])) == sorted([
        {"action": "terminate_cluster", "id": mine, "result": "terminated"},
        {"action": "terminate_cluster", "id": mine_protected,
         "result": "terminated_after_removing_protection"},
        {"action": "terminate_cluster", "id": mine_busy, "result": "terminated"},
        {"action": "cancel_job_run", "id": run_mine, "result": "cancelled"},
        {"action": "cancel_job_run", "id": run_queued, "result": "cancelled"},
    ], key=lambda a: (a["action"], a["id"]))
    assert {clusters.state(c) for c in (mine, mine_protected, mine_busy)} == {"TERMINATED"}
    assert clusters.state(other_execution) == "WAITING"
    assert clusters.state(other_app) == "WAITING"
    assert clusters.state(untagged) == "WAITING"
    assert job_runs.state(run_mine) == "CANCELLED"
    assert job_runs.state(run_queued) == "CANCELLED"
    assert job_runs.state(run_other) == "RUNNING"
    assert job_runs.state(run_foreign_app) == "RUNNING"
    assert job_runs.state(run_done) == "SUCCESS"


def test_cleanup_is_idempotent(clusters: FakeClusters, job_runs: FakeJobRuns):
    cluster_id = ours(clusters, EXECUTION)
    job_runs.add({"pipeline:app": APP, "pipeline:execution": EXECUTION})

    first = Cleaner(clusters, job_runs, APP).cleanup_execution(EXECUTION)
    second = Cleaner(clusters, job_runs, APP).cleanup_execution(EXECUTION)

    assert len(first) == 2
    assert second == []
    assert clusters.state(cluster_id) == "TERMINATED"


def test_cleanup_sees_every_cluster(clusters: FakeClusters):
    # EmrClusters reads every page of ListClusters: tests/unit/contracts/test_emr_contract.py
    for _ in range(52):
        ours(clusters, OTHER_EXECUTION)
    mine = [ours(clusters, EXECUTION) for _ in range(3)]

    actions = Cleaner(clusters, None, APP).cleanup_execution(EXECUTION)

    assert sorted(a["id"] for a in actions) == sorted(mine)
    assert {clusters.state(c) for c in mine} == {"TERMINATED"}


def test_without_a_serverless_application_only_clusters_are_cleaned(clusters: FakeClusters,
                                                                    job_runs: FakeJobRuns):
    run = job_runs.add({"pipeline:app": APP, "pipeline:execution": EXECUTION})
    cluster_id = ours(clusters, EXECUTION)

    actions = Cleaner(clusters, None, APP).cleanup_execution(EXECUTION)

    assert actions == [{"action": "terminate_cluster", "id": cluster_id, "result": "terminated"}]
    assert job_runs.state(run) == "RUNNING"


def test_a_failure_on_one_resource_is_reported_and_the_rest_still_cleaned(
        clusters: FakeClusters, job_runs: FakeJobRuns):
    failing = ours(clusters, EXECUTION)
    fine = ours(clusters, EXECUTION)
    clusters.fail[("terminate", failing)] = TransientError(
        f"terminating EMR cluster {failing} failed (ServiceUnavailable): try later")

    actions = {a["id"]: a for a in Cleaner(clusters, job_runs, APP).cleanup_execution(EXECUTION)}

    assert actions[failing]["result"] == "failed"
    assert "ServiceUnavailable" in actions[failing]["error"]
    assert actions[fine]["result"] == "terminated"
    assert clusters.state(failing) == "WAITING"


def test_an_empty_execution_arn_is_refused(clusters: FakeClusters, job_runs: FakeJobRuns):
    with pytest.raises(InvalidInput):
        Cleaner(clusters, job_runs, APP).cleanup_execution("")


def test_from_settings_builds_its_own_clients(aws: Aws):
    cluster_id = aws.ours(execution=EXECUTION)
    run = aws.job_run({"pipeline:execution": EXECUTION})
    settings = SimpleNamespace(app_name=APP, emr_serverless_application_id=aws.application_id)

    actions = Cleaner.from_settings(settings).cleanup_execution(EXECUTION)

    assert {a["id"] for a in actions} == {cluster_id, run}


def test_a_run_that_ends_before_the_cancel_is_reported_as_already_final(aws: Aws):
    run = aws.job_run({"pipeline:app": APP, "pipeline:execution": EXECUTION})
    answer(aws.serverless, "CancelJobRun", lambda p: (400, {"Error": {
        "Code": "ValidationException", "Message": "Job run is in a terminal state"}}))
    cleaner = Cleaner(EmrClusters(aws.emr), ServerlessJobRuns(aws.serverless,
                                                              aws.application_id), APP)

    actions = cleaner.cleanup_execution(EXECUTION)

    assert actions == [{"action": "cancel_job_run", "id": run, "result": "already_final"}]


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


# -- recording the cleanup (ExecutionCleanup on fakes) ----------------------------------------


class FakeRuns:
    """The run each execution resolved (what ExecutionRuns reads from the history)."""

    def __init__(self, runs: dict[str, RunRef] | None = None):
        self.runs = runs or {}

    def run_of(self, execution_arn: str) -> RunRef | None:
        return self.runs.get(execution_arn)


class RecordingMetrics:
    def __init__(self) -> None:
        self.published: list[list[dict[str, Any]]] = []

    def publish(self, actions: Any) -> None:
        self.published.append([dict(a) for a in actions])


class Logger:
    def info(self, message: str, extra: dict[str, Any] | None = None) -> None:
        pass


def _ledger_item(ledger: FakeLedger, status: str = "RUNNING", arn: str = EXECUTION,
                 **extra: Any) -> None:
    ledger.put({
        "run_id": RUN_ID, "dataset": "online_retail", "partition": "2011-12-01",
        "started_at": "2026-11-21T09:58:12Z", "status": status, "execution_arn": arn,
        "compute": "cluster", "attempt": 1, **extra})


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger(clock=lambda: NOW)


RESOLVED = RunRef(RUN_ID, duplicate=False)


def execution_cleanup(clusters: FakeClusters, job_runs: FakeJobRuns, ledger: FakeLedger,
                      run: RunRef | None = RESOLVED, arn: str = EXECUTION) -> ExecutionCleanup:
    return ExecutionCleanup(Cleaner(clusters, job_runs, APP),
                            FakeRuns({arn: run} if run else {}), ledger, RecordingMetrics(),
                            Logger(), clock=lambda: NOW)


def test_a_finished_run_keeps_its_status_but_gets_the_cleanup_record(
        clusters: FakeClusters, job_runs: FakeJobRuns, ledger: FakeLedger):
    _ledger_item(ledger, status="FAILED", failure={"state": "RunClusterStep", "error": "X",
                                                   "cause": "y"})
    cluster_id = ours(clusters, EXECUTION)

    result = execution_cleanup(clusters, job_runs, ledger).handle(
        ExecutionStatusChange.parse(ABORTED))

    assert result["ledger"] == {"status_updated": False, "cleanup_recorded": True}
    item = ledger.get(RUN_ID)
    assert item is not None
    assert item["status"] == "FAILED"
    assert item["failure"]["state"] == "RunClusterStep"
    assert [c["id"] for c in item["cleanup"]] == [cluster_id]
    assert item["cleanup"][0]["at"] == "2026-11-21T12:00:00Z"


def test_the_ledger_item_of_another_execution_is_not_touched(
        clusters: FakeClusters, job_runs: FakeJobRuns, ledger: FakeLedger):
    # A re-run or the first delivery owns the item: its execution_arn differs.
    _ledger_item(ledger, arn=OTHER_EXECUTION)
    ours(clusters, EXECUTION)

    result = execution_cleanup(clusters, job_runs, ledger).handle(
        ExecutionStatusChange.parse(ABORTED))

    assert result["ledger"] == {"status_updated": False, "cleanup_recorded": False}
    item = ledger.get(RUN_ID)
    assert item is not None
    assert item["status"] == "RUNNING"
    assert "cleanup" not in item


def test_a_duplicate_delivery_execution_leaves_the_ledger_alone(
        clusters: FakeClusters, job_runs: FakeJobRuns, ledger: FakeLedger):
    _ledger_item(ledger)  # the first execution's item, even if its ARN matched by mistake

    result = execution_cleanup(clusters, job_runs, ledger, RunRef(RUN_ID, duplicate=True)
                               ).handle(ExecutionStatusChange.parse(ABORTED))

    assert "duplicate" in result["ledger"]["note"]
    item = ledger.get(RUN_ID)
    assert item is not None and item["status"] == "RUNNING"


def test_an_execution_without_a_run_is_still_cleaned_up(
        clusters: FakeClusters, job_runs: FakeJobRuns, ledger: FakeLedger):
    cluster_id = ours(clusters, EXECUTION)

    result = execution_cleanup(clusters, job_runs, ledger, run=None).handle(
        ExecutionStatusChange.parse(ABORTED))

    assert result["run_id"] is None
    assert "never resolved a run" in result["ledger"]["note"]
    assert clusters.state(cluster_id) == "TERMINATED"
    assert ledger.items == {}


def test_a_failed_cleanup_is_recorded_then_raised_for_a_retry(
        clusters: FakeClusters, job_runs: FakeJobRuns, ledger: FakeLedger):
    _ledger_item(ledger)
    cluster_id = ours(clusters, EXECUTION)
    clusters.fail[("terminate", cluster_id)] = TransientError(
        f"terminating EMR cluster {cluster_id} failed (ThrottlingException): Rate exceeded")
    cleanup = execution_cleanup(clusters, job_runs, ledger)

    with pytest.raises(TransientError, match=cluster_id):
        cleanup.handle(ExecutionStatusChange.parse(ABORTED))

    item = ledger.get(RUN_ID)
    assert item is not None
    assert item["status"] == "ABORTED"
    assert item["cleanup"][0]["result"] == "failed"
    assert clusters.state(cluster_id) == "WAITING"


@pytest.mark.parametrize(("name", "status"), [
    ("aborted.json", "ABORTED"), ("timed_out.json", "TIMED_OUT"), ("failed.json", "FAILED")])
def test_every_sample_event_parses(name: str, status: str):
    change = ExecutionStatusChange.parse(read_event("cleanup_execution", name))
    assert change.detail.status == status
    assert change.stopped_at is not None


@pytest.mark.parametrize("mutate", [
    lambda e: e["detail"].update(status="SUCCEEDED"),
    lambda e: e["detail"].update(executionArn="not-an-arn"),
    lambda e: e.update(source="aws.s3"),
    lambda e: e.pop("detail"),
])
def test_other_events_are_refused(mutate):
    event = read_event("cleanup_execution", "aborted.json")
    mutate(event)
    with pytest.raises(InvalidInput, match="cleanup_execution input is invalid"):
        ExecutionStatusChange.parse(event)


# -- the function on moto: every events/cleanup_execution file through the handler ----------


def _put_ledger_item(aws: Aws, status: str = "RUNNING", arn: str = EXECUTION) -> None:
    aws.table.put_item(Item={
        "run_id": RUN_ID, "dataset": "online_retail", "partition": "2011-12-01",
        "started_at": "2026-11-21T09:58:12Z", "status": status, "execution_arn": arn,
        "compute": "cluster", "attempt": 1})


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
    _put_ledger_item(aws)
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
    assert item is not None
    assert item["status"] == "ABORTED"
    assert item["ended_at"] == "2026-11-21T10:13:12Z"  # the event's stopDate
    assert item["failure"] == {"state": "(execution)", "error": "StopExecution",
                               "cause": "Stopped by an operator: wrong input file"}
    recorded = {(c["action"], c["id"], c["result"]) for c in item["cleanup"]}
    assert recorded == {("terminate_cluster", cluster_id, "terminated"),
                        ("cancel_job_run", run, "cancelled")}
    assert {c["by"] for c in item["cleanup"]} == {"cleanup_execution"}
    assert {c["trigger"] for c in item["cleanup"]} == {"ABORTED"}
    blob = emf_blobs(capsys.readouterr().out)[0]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["environment"]]
    assert blob["ResourcesCleanedUp"] == [2.0]

    # A repeated delivery finds nothing left and writes nothing more.
    again = module.lambda_handler(ABORTED, lambda_context)
    assert again["actions"] == []
    assert again["ledger"] == {"status_updated": False, "cleanup_recorded": False}
    assert len(aws.item(RUN_ID)["cleanup"]) == 2


def test_an_unknown_execution_is_still_cleaned_up(aws: Aws, lambda_context):
    # The history is gone (or the execution belongs to a deleted state machine).
    cluster_id = aws.ours(execution=EXECUTION)
    module = fresh_import("functions.cleanup_execution.app")

    result = module.lambda_handler(ABORTED, lambda_context)

    assert result["run_id"] is None
    assert aws.state(cluster_id) == "TERMINATED"


@pytest.mark.parametrize("status", ["TIMED_OUT", "FAILED"])
def test_timed_out_and_failed_runs_get_their_status(aws: Aws, lambda_context, status: str):
    event = read_event("cleanup_execution", f"{status.lower()}.json")
    _aborted_execution(aws, {"run_id": RUN_ID, "duplicate": False}, event)
    _put_ledger_item(aws, arn=event["detail"]["executionArn"])
    module = fresh_import("functions.cleanup_execution.app")

    module.lambda_handler(event, lambda_context)

    item = aws.item(RUN_ID)
    assert item is not None
    assert item["status"] == status
    assert item["failure"]["error"] == event["detail"]["error"]
