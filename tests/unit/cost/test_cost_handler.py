"""Every events/track_cost file through the real handler: moto for DynamoDB, SNS and SSM; recorded
responses (botocore Stubber) for EMR Serverless, EMR and the execution history, because moto
returns no resource utilization, has no ListInstanceFleets and answers GetExecutionHistory with
a canned four-event history. The tracker's logic is tested on fakes in test_cost_tracker.py."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from cost_helpers import EVENTS, load_event, set_catalog_cost

APP, JOB, CLUSTER = "00fabc123def4567", "00fabc987zyx6543", "j-2AXXXXXXGAPLF"
# hand-computed in test_cost_pricing.py
SERVERLESS_OK = 1.167 * 0.042094 + 4.668 * 0.004628  # 0.070727202
SERVERLESS_FAILED = 0.287 * 0.042094 + 1.148 * 0.004628  # 0.017393922
CLUSTER_FLEET = 0.21027459977
ORCH_SERVERLESS = 18 * 0.000025 + 2.5 * 0.0000133334 + 5 * 0.0000002
ORCH_CLUSTER = 8 * 0.000025 + (1.0 + 2.0) * 0.5 * 0.0000133334 + 2 * 0.0000002
ORCH_RESOLVE = 3 * 0.000025 + (0.7 + 1.1) * 0.5 * 0.0000133334 + 2 * 0.0000002


def _stub_job(stubs, fixture):
    stubs.add("emr-serverless", "get_job_run", fixture, {"applicationId": APP, "jobRunId": JOB})


def _stub_fleet_cluster(stubs):
    stubs.add("emr", "describe_cluster", "describe_cluster_fleet.json", {"ClusterId": CLUSTER})
    stubs.add("emr", "list_instance_fleets", "list_instance_fleets.json", {"ClusterId": CLUSTER})
    stubs.add("emr", "list_instances", "list_instances_fleet_page1.json", {"ClusterId": CLUSTER})
    stubs.add("emr", "list_instances", "list_instances_fleet_page2.json",
              {"ClusterId": CLUSTER, "Marker": "eyJwYWdlIjoyfQ=="})


# event file -> (stub plan, {component: expected usd})
PLANS = {
    "serverless_succeeded.json": (
        lambda s, arn: (_stub_job(s, "get_job_run_arm_success.json"),
                        s.history(arn, "history_serverless_page1.json",
                                  "history_serverless_page2.json")),
        {"serverless": SERVERLESS_OK, "orchestration": ORCH_SERVERLESS}),
    "serverless_job_failed.json": (  # job ids recovered from the failed .sync task's Cause
        lambda s, arn: (_stub_job(s, "get_job_run_failed.json"),
                        s.history(arn, "history_cluster_failed.json")),
        {"serverless": SERVERLESS_FAILED, "orchestration": ORCH_CLUSTER}),
    "serverless_start_failed.json": (  # failed before any job started: orchestration only
        lambda s, arn: s.history(arn, "history_resolve_failed.json"),
        {"orchestration": ORCH_RESOLVE}),
    "cluster_step_failed.json": (
        lambda s, arn: (_stub_fleet_cluster(s), s.history(arn, "history_cluster_failed.json")),
        {"cluster": CLUSTER_FLEET, "orchestration": ORCH_CLUSTER}),
    "resolve_failed.json": (
        lambda s, arn: s.history(arn, "history_resolve_failed.json"),
        {"orchestration": ORCH_RESOLVE}),
}


def test_every_event_file_has_a_plan():
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(PLANS)


def _put_run(aws, event, **extra):
    run = event["state"].get("run")
    if run:
        aws.table.put_item(Item={"run_id": run["run_id"], "dataset": run["dataset"],
                                 "started_at": run["started_at"], "status": "RUNNING", **extra})


@pytest.mark.parametrize("name", sorted(PLANS))
def test_event_file_through_the_handler(name, aws, stubs, load_handler, lambda_context, capsys):
    event = load_event(name)
    plan, expected = PLANS[name]
    plan(stubs, event["execution"]["Id"])
    _put_run(aws, event)
    handler = load_handler()

    result = handler.lambda_handler(event, lambda_context)

    stubs.assert_done()
    assert set(result["components"]) == set(expected)
    for component, usd in expected.items():
        assert result["components"][component] == pytest.approx(usd, abs=1e-6)
    assert result["total_usd"] == pytest.approx(sum(expected.values()), abs=1e-6)
    assert result["errors"] == []
    json.dumps(result)  # the state machine gets plain JSON

    run_id = event["state"]["run"]["run_id"] if "run" in event["state"] else \
        event["execution"]["Name"]
    item = aws.table.get_item(Key={"run_id": run_id})["Item"]
    cost = item["cost"]
    assert cost["total_usd"] == Decimal(str(result["total_usd"]))
    assert cost["complete"] is True and cost["errors"] == []
    assert set(cost["components"]) == set(expected)
    assert cost["tracked_by"] == event["state_name"]
    assert item["ended_at"].endswith("Z") and item["execution_arn"] == event["execution"]["Id"]
    assert isinstance(item["state_durations"], dict) and item["state_durations"]
    assert all(isinstance(v, Decimal) for v in item["state_durations"].values())
    assert "state_transitions" in cost["usage"]

    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines()
           if line.startswith("{") and '"_aws"' in line]
    blob = next(b for b in emf if "RunCostUSD" in b)
    value = blob["RunCostUSD"]
    assert (value[0] if isinstance(value, list) else value) == pytest.approx(result["total_usd"])
    dims = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
    assert {"dataset", "compute", "environment"} <= set(dims)
    assert blob["run_id"] == run_id and "run_id" not in dims


def test_run_over_its_ceiling_alerts(aws, stubs, load_handler, lambda_context, catalog_dir: Path):
    set_catalog_cost(catalog_dir, max_run_usd=0.05, monthly_budget_usd=50.0)
    event = load_event("serverless_succeeded.json")
    PLANS["serverless_succeeded.json"][0](stubs, event["execution"]["Id"])
    _put_run(aws, event)
    load_handler().lambda_handler(event, lambda_context)
    alerts = aws.alerts()
    assert len(alerts) == 1
    assert alerts[0]["MessageAttributes"]["budget"]["Value"] == "run"
    assert "over the per-run ceiling" in alerts[0]["Message"]
    budget = aws.table.get_item(Key={"run_id": event["state"]["run"]["run_id"]})["Item"]["cost"][
        "budget"]
    assert budget["over_run_ceiling"] is True and budget["crossed_monthly_budget"] is False
