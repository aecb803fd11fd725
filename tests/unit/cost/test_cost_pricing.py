"""Pricing from recorded API responses, checked against figures computed by hand here.

Rates used (pipeline_aws/cost/rate_card.json, 2026-11-21):
  EMR Serverless eu-west-1 ARM64: 0.042094 $/vCPU-h, 0.004628 $/GB-h, 0.000122 $/storage GB-h
  EMR Serverless us-east-1 X86_64: 0.052624 $/vCPU-h, 0.0057785 $/GB-h, 0.000111 $/storage GB-h
  eu-west-1 EC2 on-demand + EMR uplift $/h: m7g.xlarge 0.1824 + 0.0408, m6g.xlarge 0.172 + 0.0385,
  r7g.xlarge 0.2394 + 0.05355, m7g.2xlarge 0.3648 + 0.0816; Spot = 0.4 x on-demand;
  gp3 0.088 $/GB-month (730 h). us-east-1 m5.xlarge 0.192 + 0.048, gp3 0.08.
  Step Functions 0.000025 $/transition; Lambda arm64 0.0000133334 $/GB-s, 0.0000002 $/request.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cost_helpers import recorded

from pipeline_aws.cost.pricing import (
    analyse_history,
    billed_seconds,
    ebs_by_instance_source,
    function_name,
    price_cluster,
    price_orchestration,
    price_serverless,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
H = 3600


def test_serverless_arm_job_prices_billed_usage_and_reports_the_minimum_as_waste(card):
    job = recorded("get_job_run_arm_success.json")["jobRun"]
    c = price_serverless(job, card, "eu-west-1", "ARM64")
    # billed: 1.167 vCPU-h, 4.668 GB-h, 0 storage GB-h (all disk within the free 20 GB/worker)
    assert c.usd == pytest.approx(1.167 * 0.042094 + 4.668 * 0.004628)
    assert c.usd == pytest.approx(0.070727202)
    assert c.priced and c.errors == []
    assert c.usage["vcpu_hours"] == 1.167 and c.usage["used_vcpu_hours"] == 1.156
    # minimum charge: (1.167 - 1.156) vCPU-h and (4.668 - 4.624) GB-h
    assert c.waste["minimum_charge_usd"] == pytest.approx(0.011 * 0.042094 + 0.044 * 0.004628)
    assert c.waste["minimum_charge_usd"] == pytest.approx(0.000666666)
    assert c.waste["storage_above_free_usd"] == 0.0
    assert c.waste["free_storage_gb_hours"] == pytest.approx(5.78)


def test_one_minute_minimum_and_storage_above_20_gb_on_a_20_second_x86_job(card):
    job = recorded("get_job_run_short_x86.json")["jobRun"]
    c = price_serverless(job, card, "us-east-1", "X86_64")
    # 2 workers x 4 vCPU x 60 s = 0.133 vCPU-h billed for 0.044 used; 30 GB over the free 20 GB
    # on each of 2 workers for the minute = 1.0 storage GB-h billed
    assert c.usd == pytest.approx(0.133 * 0.052624 + 0.533 * 0.0057785 + 1.0 * 0.000111)
    assert c.usd == pytest.approx(0.0101899325)
    assert c.waste["minimum_charge_usd"] == pytest.approx(
        (0.133 - 0.044) * 0.052624 + (0.533 - 0.178) * 0.0057785)
    assert c.waste["minimum_charge_usd"] == pytest.approx(0.0067349035)
    assert c.waste["storage_above_free_usd"] == pytest.approx(0.000111)
    assert c.waste["storage_above_free_gb_hours"] == 1.0
    # the minimum is two thirds of what this job paid
    assert c.waste["minimum_charge_usd"] / c.usd > 0.66


def test_unknown_architecture_or_region_is_an_error_never_a_zero(card):
    job = recorded("get_job_run_arm_success.json")["jobRun"]
    for region, arch, code in (("eu-west-1", "RISCV", "UnknownArchitecture"),
                               ("ap-east-2", "ARM64", "UnknownRegion")):
        c = price_serverless(job, card, region, arch)
        assert c.usd is None and not c.priced
        assert [e["code"] for e in c.errors] == [code]


def test_job_that_never_got_workers_costs_nothing_but_says_why(card):
    job = dict(recorded("get_job_run_failed.json")["jobRun"])
    del job["billedResourceUtilization"], job["totalResourceUtilization"]
    c = price_serverless(job, card, "eu-west-1", "ARM64")
    assert c.usd == 0.0 and c.priced
    assert "no billed utilization" in c.details["note"]


def test_running_job_is_priced_as_a_lower_bound_with_an_error(card):
    job = dict(recorded("get_job_run_arm_success.json")["jobRun"], state="RUNNING")
    c = price_serverless(job, card, "eu-west-1", "ARM64")
    assert c.usd == pytest.approx(0.070727202)
    assert [e["code"] for e in c.errors] == ["JobRunNotFinished"]


def _fleet_instances():
    return (recorded("list_instances_fleet_page1.json")["Instances"]
            + recorded("list_instances_fleet_page2.json")["Instances"])


def test_fleet_cluster_per_instance_lifetime_spot_and_ebs(card):
    ebs = ebs_by_instance_source(fleets=recorded("list_instance_fleets.json")["InstanceFleets"])
    c = price_cluster("j-2AXXXXXXGAPLF", _fleet_instances(), ebs, card, "eu-west-1", NOW)
    master = 870 / H * (0.1824 + 0.0408) + 32 * (870 / H) / 730 * 0.088
    core1 = 870 / H * (0.172 + 0.0385) + 64 * (870 / H) / 730 * 0.088
    core2 = 869 / H * (0.172 + 0.0385) + 64 * (869 / H) / 730 * 0.088  # 868.7 s -> 869 s
    spot_40s = 60 / H * (0.2394 * 0.4 + 0.05355) + 64 * (60 / H) / 730 * 0.088  # 60 s minimum
    spot = 702 / H * (0.3648 * 0.4 + 0.0816) + 128 * (702 / H) / 730 * 0.088  # two 64 GB volumes
    assert c.usd == pytest.approx(master + core1 + core2 + spot_40s + spot)
    assert c.usd == pytest.approx(0.21027459977)
    assert c.priced and c.errors == []
    assert c.usage["instances"] == 5
    assert c.usage["instance_hours"] == pytest.approx((870 + 870 + 869 + 60 + 702) / H)
    assert c.usage["spot_instance_hours"] == pytest.approx((60 + 702) / H)
    assert c.usage["vcpu_hours"] == pytest.approx((3 * 4 * 870 - 4 + 4 * 60 + 8 * 702) / H)
    ebs_gb_seconds = 32 * 870 + 64 * (870 + 869) + 64 * 60 + 128 * 702
    assert c.usage["ebs_gb_hours"] == pytest.approx(ebs_gb_seconds / H)
    # the Spot instance reclaimed after 40 s paid 20 s it did not run
    assert c.waste["minimum_charge_usd"] == pytest.approx(20 / 60 * spot_40s)
    assert c.details["by_type"]["m6g.xlarge/ON_DEMAND"]["instances"] == 2
    assert c.details["by_type"]["r7g.xlarge/SPOT"]["ec2_usd"] == pytest.approx(
        60 / H * 0.2394 * 0.4, abs=1e-6)


def test_unknown_instance_type_leaves_the_cluster_unpriced_with_an_error(card):
    ebs = ebs_by_instance_source(groups=recorded("list_instance_groups.json")["InstanceGroups"])
    instances = recorded("list_instances_groups.json")["Instances"]
    c = price_cluster("j-1BYYYYYYGROUP", instances, ebs, card, "us-east-1", NOW)
    # only the m5.xlarge master (1800 s, 32 GB gp3) is priced; m8g.xlarge is not in the card
    assert c.usd == pytest.approx(1800 / H * (0.192 + 0.048) + 32 * 0.5 / 730 * 0.08)
    assert not c.priced
    assert [(e["code"], e["component"]) for e in c.errors] == [("UnknownInstanceType", "cluster")]
    assert "m8g.xlarge" in c.errors[0]["message"]
    assert c.usage["instance_hours"] == pytest.approx(1.0)  # both instances' hours are counted


def test_instance_still_running_is_billed_until_now_and_never_launched_is_free():
    created = datetime(2026, 11, 21, 11, 59, 30, tzinfo=UTC)
    assert billed_seconds(created, None, NOW, 60) == 60  # 30 s so far -> the minimum
    assert billed_seconds(created.replace(minute=50), None, NOW, 60) == 570  # 9 min 30 s
    assert billed_seconds(None, None, NOW, 60) == 0


def _history(*pages: str):
    return [e for page in pages for e in recorded(page)["events"]]


def test_history_transitions_durations_and_lambda_runs():
    facts = analyse_history(_history("history_serverless_page1.json",
                                     "history_serverless_page2.json"))
    # 17 states entered (WaitForLoad, DescribeLoad and LoadStatus twice) + 1 Lambda retry
    assert facts.transitions == 18 and facts.retries == 1
    assert facts.state_durations["WaitForLoad"] == pytest.approx(6.0)
    assert facts.state_durations["RunServerlessJob"] == pytest.approx(0.02 + 0.05 + 431.5 + 0.02)
    assert "TrackCost" not in facts.state_durations  # still running
    assert [(f.split("-")[-1], round(s, 3)) for f, s in facts.lambda_runs] == [
        ("ResolveRun", 1.2), ("EvaluateQuality", 0.8), ("EvaluateQuality", 1.5),
        ("StartLoad", 0.9), ("RecordRun", 0.6)]


def test_orchestration_price_with_one_memory_size_and_with_a_per_function_map(card):
    facts = analyse_history(_history("history_serverless_page1.json",
                                     "history_serverless_page2.json"))
    c = price_orchestration(facts, card, "eu-west-1", "arm64", lambda name: 512)
    # 18 transitions, (1.2 + 0.8 + 1.5 + 0.9 + 0.6) s x 0.5 GB = 2.5 GB-s, 5 requests
    assert c.usage["lambda_gb_seconds"] == pytest.approx(2.5)
    assert c.usd == pytest.approx(18 * 0.000025 + 2.5 * 0.0000133334 + 5 * 0.0000002)
    assert c.usd == pytest.approx(0.0004843335)
    memory = {"emr-pipelines-dev-EvaluateQuality": 1024}
    c = price_orchestration(facts, card, "eu-west-1", "arm64", lambda n: memory.get(n, 512))
    assert c.usage["lambda_gb_seconds"] == pytest.approx((1.2 + 0.9 + 0.6) * 0.5 + 2.3 * 1.0)


def test_orchestration_without_a_memory_size_is_an_error(card):
    facts = analyse_history(_history("history_resolve_failed.json"))
    c = price_orchestration(facts, card, "eu-west-1", "arm64", lambda name: None)
    assert not c.priced
    assert {e["code"] for e in c.errors} == {"UnknownLambdaMemory"}
    assert c.usd == pytest.approx(3 * 0.000025 + 2 * 0.0000002)  # transitions and requests


def test_lambda_invoked_through_the_optimized_integration_is_counted():
    t0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0.replace(microsecond=int(seconds * 1e6) % 1_000_000, second=int(seconds))

    events = [
        {"id": 2, "previousEventId": 1, "type": "TaskStateEntered", "timestamp": at(0),
         "stateEnteredEventDetails": {"name": "Invoke"}},
        {"id": 3, "previousEventId": 2, "type": "TaskScheduled", "timestamp": at(0.1),
         "taskScheduledEventDetails": {"resourceType": "lambda", "resource": "invoke",
                                       "region": "eu-west-1",
                                       "parameters": '{"FunctionName": "arn:aws:lambda:eu-west-1:'
                                                     '123456789012:function:f:live"}'}},
        {"id": 4, "previousEventId": 3, "type": "TaskStarted", "timestamp": at(0.2)},
        {"id": 5, "previousEventId": 4, "type": "TaskSucceeded", "timestamp": at(2.7)},
        {"id": 6, "previousEventId": 5, "type": "TaskStateExited", "timestamp": at(2.8),
         "stateExitedEventDetails": {"name": "Invoke"}},
    ]
    facts = analyse_history(events)
    assert facts.lambda_runs == [("f", pytest.approx(2.5))]
    assert function_name("arn:aws:lambda:eu-west-1:123456789012:function:f:live") == "f"
