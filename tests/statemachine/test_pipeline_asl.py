"""The real pipeline ASL, executed in moto's interpreter with scripted integrations."""

from __future__ import annotations

import pytest
from sm_harness import InvalidInput, TransientError, manifest

pytestmark = pytest.mark.statemachine


def failure_of(harness) -> dict:
    """What HandleFailure was given: {state name: {Error, Cause}}."""
    calls = harness.lambdas.calls.get("HandleFailure") or []
    assert len(calls) == 1, f"HandleFailure ran {len(calls)} times"
    return calls[0]["state"]["failure"]


def test_success_runs_every_stage_once_and_polls_the_load(harness):
    harness.data_api.statuses = ["SUBMITTED", "STARTED", "STARTED", "FINISHED"]
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    entered = ex.states_entered()
    for state in ("ResolveRun", "RunServerlessJob", "EvaluateQuality", "StartLoad",
                  "RecordRun", "TrackCost", "Succeeded"):
        assert entered.count(state) == 1, state
    assert "HandleFailure" not in entered
    assert entered.count("DescribeLoad") == 4
    assert len(harness.jobs.runs) == 1
    # growing waits: 2, 4, 8 seconds between polls
    waits = [e["stateEnteredEventDetails"]["input"] for e in ex.history
             if e.get("stateEnteredEventDetails", {}).get("name") == "WaitForLoad"]
    assert [__import__("json").loads(w)["load"]["wait_seconds"] for w in waits] == [2, 4, 8, 16]
    record_input = harness.lambdas.calls["RecordRun"][0]["state"]
    assert record_input["load_status"]["Status"] == "FINISHED"
    assert record_input["job_run"]["job_run_id"]


def test_wait_is_capped_at_sixty_seconds(harness):
    harness.data_api.statuses = ["STARTED"] * 7 + ["FINISHED"]
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    waits = [__import__("json").loads(e["stateEnteredEventDetails"]["input"])["load"]
             ["wait_seconds"] for e in ex.history
             if e.get("stateEnteredEventDetails", {}).get("name") == "WaitForLoad"]
    assert waits == [2, 4, 8, 16, 32, 60, 60, 60]


def test_duplicate_delivery_starts_no_job(harness):
    harness.lambdas.set("ResolveRun", manifest(duplicate=True))
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    assert "DuplicateDelivery" in ex.states_entered()
    assert harness.jobs.runs == []
    assert "StartLoad" not in harness.lambdas.calls


def test_failed_gate_stops_the_load(harness):
    harness.lambdas.set("EvaluateQuality", {
        "verdict": "fail", "summary": "1 error rule failed: Completeness \"customer_id\" > 0.6",
        "failed_rules": [{"rule": "Completeness \"customer_id\" > 0.6"}], "warned_rules": []})
    ex = harness.run()
    assert ex.status == "FAILED"
    assert "StartLoad" not in harness.lambdas.calls
    failure = failure_of(harness)
    assert failure["EvaluateQuality"]["Error"] == "QualityGateFailed"
    assert "customer_id" in failure["EvaluateQuality"]["Cause"]
    assert "TrackCostOnFailure" in ex.states_entered()


def test_warn_verdict_still_loads(harness):
    harness.lambdas.set("EvaluateQuality", {"verdict": "warn", "summary": "1 warning",
                                            "failed_rules": [], "warned_rules": [{}]})
    assert harness.run().status == "SUCCEEDED"
    assert "StartLoad" in harness.lambdas.calls


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
    if status == "FAILED":
        assert "does not exist" in failure["Cause"]
    assert "RecordRun" not in harness.lambdas.calls


def test_load_that_never_finishes_times_out(harness):
    harness.data_api.statuses = ["STARTED"]
    ex = harness.run(timeout=120)
    assert ex.status == "FAILED"
    assert failure_of(harness)["Load"]["Error"] == "LoadTimedOut"
    assert ex.states_entered().count("DescribeLoad") == 61


def test_transient_lambda_errors_are_retried(harness):
    ok = {"verdict": "pass", "summary": "ok", "failed_rules": [], "warned_rules": []}
    harness.lambdas.set("EvaluateQuality", TransientError("throttled"),
                        TransientError("throttled"), ok)
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    assert len(harness.lambdas.calls["EvaluateQuality"]) == 3


def test_throttled_describe_statement_is_retried(harness):
    from moto.core.exceptions import JsonRESTError

    class Throttled(JsonRESTError):
        def __init__(self):
            super().__init__("ThrottlingException", "Rate exceeded")

    harness.data_api.statuses = [Throttled(), "FINISHED"]
    ex = harness.run()
    assert ex.status == "SUCCEEDED", ex.output


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
