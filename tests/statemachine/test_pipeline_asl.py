"""The real pipeline ASL, executed in moto's interpreter with scripted integrations."""

from __future__ import annotations

import json
import time

import pytest
from sm_harness import InvalidInput, TransientError, manifest

from pipeline_aws.load_policy import MAX_LOAD_TRIES

REDSHIFT_1023 = ("ERROR: 1023 DETAIL: Serializable isolation violation on table - 156701, "
                 "transactions forming the cycle are: 1048577, 1048578 (pid:25413)")

pytestmark = pytest.mark.statemachine


def failure_of(harness) -> dict:
    """What HandleFailure was given: {state name: {Error, Cause}}."""
    calls = harness.lambdas.calls.get("HandleFailure") or []
    assert len(calls) == 1, f"HandleFailure ran {len(calls)} times"
    return calls[0]["state"]["failure"]


def _inputs(ex, state: str) -> list[dict]:
    """The input of each entry into `state`, in order."""
    return [json.loads(e["stateEnteredEventDetails"]["input"]) for e in ex.history
            if e.get("stateEnteredEventDetails", {}).get("name") == state]


SERVERLESS_HAPPY = ["ResolveRun", "IsDuplicate", "ChooseCompute", "RunServerlessJob",
                    "EvaluateQuality", "QualityGate", "StartLoad", "AwaitLoad", "LoadStatus",
                    "RecordRun", "TrackCost", "Succeeded"]
CLUSTER_HAPPY = ["ResolveRun", "IsDuplicate", "ChooseCompute", "CreateCluster", "RunClusterStep",
                 "TerminateCluster", "EvaluateQuality", "QualityGate", "StartLoad", "AwaitLoad",
                 "LoadStatus", "RecordRun", "TrackCost", "Succeeded"]


def test_success_waits_for_the_completion_event(harness):
    harness.data_api.statuses = ["STARTED", "FINISHED"]
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    assert ex.states_entered() == SERVERLESS_HAPPY
    assert len(harness.jobs.runs) == 1
    # AwaitLoad's own look saw it running; the completion event ended the wait
    assert harness.load.reports == [{"statement_id": harness.load.submitted[0][1],
                                     "outcome": "finished", "sent": True}]
    record_input = harness.lambdas.calls["RecordRun"][0]["state"]
    assert record_input["load_status"]["Status"] == "FINISHED"
    assert record_input["load_status"]["polls"] == 1
    assert record_input["job_run"]["job_run_id"]
    # one function owns the statement: StartLoad and AwaitLoad called it
    operations = [c["operation"] for c in harness.lambdas.calls["LoadStatement"]]
    assert operations == ["submit", "await"]
    [awaited] = [c for c in harness.lambdas.calls["LoadStatement"] if c["operation"] == "await"]
    assert awaited["task_token"]


@pytest.mark.parametrize("compute, expected", [("serverless", SERVERLESS_HAPPY),
                                               ("cluster", CLUSTER_HAPPY)])
def test_a_happy_run_costs_at_most_fifteen_transitions(harness, compute, expected):
    """However long the COPY: the wait is one Task state (issue 15, item 6). The full-run
    layer holds it with a slow load (tests/e2e/test_pipeline.py)."""
    harness.script_success(compute)
    harness.data_api.statuses = ["STARTED"] * 3 + ["FINISHED"]
    harness.load.events = 4  # three arrive while the statement still runs (ignored)
    entered = harness.run().states_entered()
    assert entered == expected and len(entered) <= 15


def test_a_load_that_ended_before_the_wait_is_reported_by_the_wait_itself(harness):
    """The event came before AwaitLoad kept its token (it found no waiter): AwaitLoad's own
    look reports the statement."""
    harness.data_api.statuses = ["FINISHED"]
    harness.load.events = 0
    ex = harness.run()
    assert ex.status == "SUCCEEDED" and ex.states_entered() == SERVERLESS_HAPPY
    assert harness.data_api.described == 1


def test_a_redelivered_event_finds_its_token_used(harness):
    """EventBridge may deliver an event twice: the second SendTaskSuccess meets a closed
    token (TaskTimedOut / InvalidToken), which is not an error."""
    harness.data_api.statuses = ["STARTED", "FINISHED"]
    harness.load.events = 2
    ex = harness.run()
    assert ex.status == "SUCCEEDED" and ex.states_entered() == SERVERLESS_HAPPY
    deadline = time.monotonic() + 5
    while len(harness.load.reports) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r["sent"] for r in harness.load.reports] == [True, False]
    assert len(harness.lambdas.calls["RecordRun"]) == 1


def test_a_lost_event_ends_the_wait_with_one_describe(harness):
    """The wait runs out (TimeoutSeconds, compressed here) and DescribeLoad looks once: a
    finished load is recorded."""
    harness.data_api.statuses = ["STARTED", "FINISHED"]
    harness.load.events = 0
    ex = harness.run()
    assert ex.status == "SUCCEEDED", ex.output
    entered = ex.states_entered()
    assert entered[entered.index("AwaitLoad"):] == [
        "AwaitLoad", "DescribeLoad", "LoadStatus", "RecordRun", "TrackCost", "Succeeded"]
    assert "failure" not in harness.lambdas.calls["RecordRun"][0]["state"]


def test_duplicate_delivery_starts_no_job(harness):
    harness.lambdas.set("ResolveRun", manifest(duplicate=True))
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    assert "DuplicateDelivery" in ex.states_entered()
    assert harness.jobs.runs == []
    assert "LoadStatement" not in harness.lambdas.calls


def test_failed_gate_stops_the_load(harness):
    harness.lambdas.set("EvaluateQuality", {
        "verdict": "fail", "summary": "1 error rule failed: Completeness \"customer_id\" > 0.6",
        "failed_rules": [{"rule": "Completeness \"customer_id\" > 0.6"}], "warned_rules": []})
    ex = harness.run()
    assert ex.status == "FAILED"
    assert "LoadStatement" not in harness.lambdas.calls
    failure = failure_of(harness)
    assert failure["EvaluateQuality"]["Error"] == "QualityGateFailed"
    assert "customer_id" in failure["EvaluateQuality"]["Cause"]
    assert "TrackCostOnFailure" in ex.states_entered()


def test_warn_verdict_still_loads(harness):
    harness.lambdas.set("EvaluateQuality", {"verdict": "warn", "summary": "1 warning",
                                            "failed_rules": [], "warned_rules": [{}]})
    assert harness.run().status == "SUCCEEDED"
    assert "StartLoad" in harness.run().states_entered()


def test_spark_job_failure_takes_the_failure_path(harness):
    harness.jobs.outcome, harness.jobs.details = "FAILED", "JOB ERROR: header mismatch"
    ex = harness.run()
    assert ex.status == "FAILED"
    failure = failure_of(harness)["RunServerlessJob"]
    assert failure["Error"] == "EMRServerless.JobRunFailed"
    assert "header mismatch" in failure["Cause"]
    assert "EvaluateQuality" not in harness.lambdas.calls


@pytest.mark.parametrize("status, error", [("FAILED", "LoadFailed"), ("ABORTED", "LoadAborted")])
def test_redshift_failed_or_aborted_takes_the_failure_path(harness, status, error):
    harness.data_api.statuses = ["STARTED", status]
    ex = harness.run()
    assert ex.status == "FAILED"
    failure = failure_of(harness)["Load"]
    assert failure["Error"] == error
    if status == "FAILED":  # Redshift's own message, not retried
        assert failure["Cause"] == harness.data_api.error
        assert ex.states_entered().count("StartLoad") == 1
    assert "RecordRun" not in harness.lambdas.calls
    assert "CancelLoad" not in ex.states_entered()  # it ended: nothing to cancel


def test_load_that_never_finishes_times_out_and_is_cancelled_by_its_owner(harness):
    harness.data_api.statuses = ["STARTED"]
    ex = harness.run(timeout=120)
    assert ex.status == "FAILED"
    state = harness.lambdas.calls["HandleFailure"][0]["state"]
    assert state["failure"]["Load"]["Error"] == "LoadTimedOut"
    assert ex.states_entered().count("DescribeLoad") == 1
    [(_, statement_id)] = harness.load.submitted
    assert harness.data_api.cancelled == [statement_id]
    assert state["load_cancel"] == {"action": "cancel_statement", "id": statement_id,
                                    "result": "cancelled"}
    entered = ex.states_entered()
    assert entered.index("AwaitLoad") < entered.index("DescribeLoad") < entered.index(
        "LoadTimedOut") < entered.index("CancelLoad") < entered.index("HandleFailure")


def test_a_statement_that_cannot_be_judged_fails_the_wait_and_is_cancelled(harness):
    """The event's describe fails (not retried: access denied): the function ends the task
    with SendTaskFailure, and the statement is cancelled before HandleFailure."""
    from pipeline_core.errors import ConfigurationError

    harness.data_api.statuses = ["STARTED", ConfigurationError("describing statement failed "
                                                               "(AccessDeniedException)")]
    ex = harness.run()
    assert ex.status == "FAILED"
    state = harness.lambdas.calls["HandleFailure"][0]["state"]
    assert state["failure"]["AwaitLoad"]["Error"] == "ConfigurationError"
    assert "AccessDeniedException" in state["failure"]["AwaitLoad"]["Cause"]
    assert state["load_cancel"]["result"] == "cancelled"
    assert harness.data_api.cancelled == [harness.load.submitted[0][1]]
    assert "DescribeLoad" not in ex.states_entered()


def test_a_serialization_conflict_is_retried_with_a_new_load_try(harness):
    harness.data_api.statuses = ["FAILED", "STARTED", "FINISHED"]
    harness.data_api.errors = [REDSHIFT_1023]
    ex = harness.run()
    assert ex.status == "SUCCEEDED", ex.output
    entered = ex.states_entered()
    assert entered.count("StartLoad") == 2 and entered.count("WaitBeforeLoadRetry") == 1
    assert "HandleFailure" not in entered
    assert [t for t, _ in harness.load.submitted] == [1, 2]
    [retry] = _inputs(ex, "WaitBeforeLoadRetry")
    assert entered.count("AwaitLoad") == 2 and "DescribeLoad" not in entered
    # backoff computed by the load function (the harness's jitter takes the top: 2 * 2 s)
    assert retry["load_status"]["outcome"] == "retry"
    assert retry["load_status"]["wait_seconds"] == 4
    record_input = harness.lambdas.calls["RecordRun"][0]["state"]
    assert record_input["load"]["load_try"] == 2
    assert record_input["load"]["statement_id"] == harness.load.submitted[1][1]
    assert record_input["load_status"]["Id"] == harness.load.submitted[1][1]


def test_a_load_that_keeps_losing_fails_naming_the_conflict(harness):
    harness.data_api.statuses = ["FAILED"]
    harness.data_api.error = REDSHIFT_1023
    ex = harness.run(timeout=120)
    assert ex.status == "FAILED"
    assert [t for t, _ in harness.load.submitted] == list(range(1, MAX_LOAD_TRIES + 1))
    waits = [i["load_status"]["wait_seconds"] for i in _inputs(ex, "WaitBeforeLoadRetry")]
    assert waits == [4, 8, 16, 32]  # exponential (top of the jitter), below the cap
    failure = failure_of(harness)["Load"]
    assert failure["Error"] == "LoadSerializationConflict"
    assert "serialization conflict" in failure["Cause"] and "1023" in failure["Cause"]
    assert "CancelLoad" not in ex.states_entered()


def test_transient_lambda_errors_are_retried(harness):
    ok = {"verdict": "pass", "summary": "ok", "failed_rules": [], "warned_rules": []}
    harness.lambdas.set("EvaluateQuality", TransientError("throttled"),
                        TransientError("throttled"), ok)
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    assert len(harness.lambdas.calls["EvaluateQuality"]) == 3


def test_throttled_describe_statement_is_retried(harness):
    # RedshiftData turns a ThrottlingException into TransientError, which AwaitLoad retries
    # (the retry's task token is kept in place of the one before)
    harness.data_api.statuses = [TransientError("describing statement failed "
                                                "(ThrottlingException): Rate exceeded"),
                                 "FINISHED"]
    ex = harness.run()
    assert ex.status == "SUCCEEDED", ex.output
    assert ex.states_entered() == SERVERLESS_HAPPY
    assert harness.data_api.described == 2
    tokens = [c["task_token"] for c in harness.lambdas.calls["LoadStatement"]
              if c["operation"] == "await"]
    assert len(tokens) == 2 and all(tokens)


def test_a_load_function_that_crashes_before_the_submit_fails_the_run(harness):
    """Nothing was submitted, so nothing waits and nothing is cancelled."""
    harness.lambdas.set("LoadStatement", _crashes_on("submit"))
    ex = harness.run()
    assert ex.status == "FAILED"
    assert failure_of(harness)["StartLoad"]["Error"] == "RuntimeError"
    assert [c["operation"] for c in harness.lambdas.calls["LoadStatement"]] == ["submit"]
    assert "AwaitLoad" not in ex.states_entered()


def test_invalid_input_is_not_retried_and_is_recorded(harness):
    harness.lambdas.set("ResolveRun", InvalidInput("key 'x.csv' is outside every prefix"))
    ex = harness.run()
    assert ex.status == "FAILED"
    assert len(harness.lambdas.calls["ResolveRun"]) == 1
    assert failure_of(harness)["ResolveRun"]["Error"] == "InvalidInput"
    assert harness.jobs.runs == []


def test_cost_tracking_failure_does_not_fail_a_loaded_run(harness):
    harness.lambdas.set("TrackCost", RuntimeError("rate card unreadable"))
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    assert ex.output["cost_error"]["Error"] == "RuntimeError"


# -- the transient cluster path (every scenario ends with the cluster TERMINATED: the harness
#    fixture checks that no cluster is left active) ---------------------------------------------

def _cluster_states(harness) -> list[str]:
    return [c["Status"]["State"] for c in harness.emr.list_clusters()["Clusters"]]


def test_cluster_success_terminates_the_cluster(harness):
    harness.script_success("cluster")
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    entered = ex.states_entered()
    assert entered.index("RunClusterStep") < entered.index("TerminateCluster") < entered.index(
        "EvaluateQuality")
    assert _cluster_states(harness) == ["TERMINATED"]
    assert harness.jobs.runs == []


def test_cluster_step_failure_terminates_then_handles_the_failure(harness):
    harness.script_success("cluster")
    harness.clusters.outcome = "FAILED"
    ex = harness.run()
    assert ex.status == "FAILED"
    entered = ex.states_entered()
    assert entered.index("TerminateClusterOnFailure") < entered.index("HandleFailure")
    assert failure_of(harness)["RunClusterStep"]["Error"] == "States.TaskFailed"
    assert _cluster_states(harness) == ["TERMINATED"]


def test_cluster_quality_failure_leaves_no_cluster(harness):
    harness.script_success("cluster")
    harness.lambdas.set("EvaluateQuality", {"verdict": "fail", "summary": "rules failed",
                                            "failed_rules": [], "warned_rules": []})
    assert harness.run().status == "FAILED"
    assert _cluster_states(harness) == ["TERMINATED"]


def test_cluster_load_failure_leaves_no_cluster(harness):
    harness.script_success("cluster")
    harness.data_api.statuses = ["FAILED"]
    assert harness.run().status == "FAILED"
    assert failure_of(harness)["Load"]["Error"] == "LoadFailed"
    assert _cluster_states(harness) == ["TERMINATED"]


def _crashes_on(operation: str):
    def invoke(payload: dict) -> dict:
        if payload.get("operation") == operation:
            raise RuntimeError(f"{operation}: the function crashed")
        return {}
    return invoke


def _fails_on(operation: str):
    def invoke(payload: dict) -> dict:
        if payload.get("operation") == operation:
            raise TransientError(f"{operation} keeps failing")
        return {}
    return invoke


# Lambda Task -> (the harness's function, what it answers): every attempt fails with an error
# the Task retries, so the Retry runs out and the Catch decides.
EXHAUSTED = {
    "ResolveRun": ("ResolveRun", TransientError("ledger throttled")),
    "EvaluateQuality": ("EvaluateQuality", TransientError("report unreadable")),
    "StartLoad": ("LoadStatement", _fails_on("submit")),
    "AwaitLoad": ("LoadStatement", _fails_on("await")),
    "RecordRun": ("RecordRun", TransientError("ledger throttled")),
}


@pytest.mark.parametrize("state", list(EXHAUSTED))
def test_a_task_whose_retries_run_out_is_handled_as_a_failure_of_that_state(harness, state):
    """The full-run layer injects this fault at three of these states (tests/e2e/
    test_hostile_runs.py); here every Lambda Task of the run path, cheaply."""
    function, answer = EXHAUSTED[state]
    harness.lambdas.set(function, answer)
    ex = harness.run()
    assert ex.status == "FAILED", ex.output
    assert failure_of(harness)[state]["Error"] == "TransientError"
    assert ex.states_entered().count(state) == 1  # retried inside the state, not re-entered
    assert "RecordRun" not in ex.states_entered() or state == "RecordRun"
