"""The real pipeline ASL, executed in moto's interpreter with scripted integrations."""

from __future__ import annotations

import json

import pytest
from sm_harness import InvalidInput, TransientError, manifest

from pipeline_aws.load_policy import MAX_LOAD_TRIES, MAX_POLLS

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


def test_success_runs_every_stage_once_and_polls_the_load(harness):
    harness.data_api.statuses = ["SUBMITTED", "STARTED", "STARTED", "FINISHED"]
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    entered = ex.states_entered()
    for state in ("ResolveRun", "RunServerlessJob", "EvaluateQuality", "StartLoad",
                  "RecordRun", "TrackCost", "Succeeded"):
        assert entered.count(state) == 1, state
    assert "HandleFailure" not in entered and "CancelLoad" not in entered
    assert entered.count("DescribeLoad") == 4
    assert len(harness.jobs.runs) == 1
    # the load function computes growing waits: 2, 4, 8 seconds between polls
    waits = [i["load_status"]["wait_seconds"] for i in _inputs(ex, "WaitForLoad")]
    assert waits == [2, 4, 8]
    record_input = harness.lambdas.calls["RecordRun"][0]["state"]
    assert record_input["load_status"]["Status"] == "FINISHED"
    assert record_input["load_status"]["polls"] == 4
    assert record_input["job_run"]["job_run_id"]
    # one function owns the statement: StartLoad and every DescribeLoad called it
    operations = [c["operation"] for c in harness.lambdas.calls["LoadStatement"]]
    assert operations == ["submit"] + ["describe"] * 4


def test_a_poll_costs_three_transitions(harness):
    """Wait -> DescribeLoad -> LoadStatus: no Pass or Choice states doing arithmetic."""
    harness.data_api.statuses = ["STARTED"] * 5 + ["FINISHED"]
    entered = harness.run().states_entered()
    first, last = entered.index("DescribeLoad"), len(entered) - entered[::-1].index("LoadStatus")
    assert entered[first:last] == ["DescribeLoad", "LoadStatus"] + [
        "WaitForLoad", "DescribeLoad", "LoadStatus"] * 5


def test_wait_is_capped_at_sixty_seconds(harness):
    harness.data_api.statuses = ["STARTED"] * 8 + ["FINISHED"]
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    waits = [i["load_status"]["wait_seconds"] for i in _inputs(ex, "WaitForLoad")]
    assert waits == [2, 4, 8, 16, 32, 60, 60, 60]


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
    assert ex.states_entered().count("DescribeLoad") == MAX_POLLS
    [(_, statement_id)] = harness.load.submitted
    assert harness.data_api.cancelled == [statement_id]
    assert state["load_cancel"] == {"action": "cancel_statement", "id": statement_id,
                                    "result": "cancelled"}
    entered = ex.states_entered()
    assert entered.index("LoadTimedOut") < entered.index("CancelLoad") < entered.index(
        "HandleFailure")


def test_a_describe_that_fails_cancels_the_statement_first(harness):
    from pipeline_core.errors import ConfigurationError

    harness.data_api.statuses = ["STARTED", ConfigurationError("describing statement failed "
                                                               "(AccessDeniedException)")]
    ex = harness.run()
    assert ex.status == "FAILED"
    state = harness.lambdas.calls["HandleFailure"][0]["state"]
    assert state["failure"]["DescribeLoad"]["Error"] == "ConfigurationError"
    assert state["load_cancel"]["result"] == "cancelled"
    assert harness.data_api.cancelled == [harness.load.submitted[0][1]]


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
    # backoff computed by the load function (the harness's jitter takes the top: 2 * 2 s)
    assert retry["load_status"]["outcome"] == "retry"
    assert retry["load_status"]["wait_seconds"] == 4
    record_input = harness.lambdas.calls["RecordRun"][0]["state"]
    assert record_input["load"]["load_try"] == 2
    assert record_input["load"]["statement_id"] == harness.load.submitted[1][1]
    assert record_input["load_status"]["polls"] == 2  # counted afresh for the new statement


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
    # RedshiftData turns a ThrottlingException into TransientError, which DescribeLoad retries
    harness.data_api.statuses = [TransientError("describing statement failed "
                                                "(ThrottlingException): Rate exceeded"),
                                 "FINISHED"]
    ex = harness.run()
    assert ex.status == "SUCCEEDED", ex.output
    assert ex.states_entered().count("DescribeLoad") == 1
    assert harness.data_api.described == 2


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
    "DescribeLoad": ("LoadStatement", _fails_on("describe")),
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
