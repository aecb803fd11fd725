"""Cost-allocation tags on what the pipeline ASL starts, and the cost tracker's readers against
the local EMR stand-ins (the contract: what the stand-ins report is what the tracker prices).

AWS pages:
- "Using AWS cost allocation tags" (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/cost-alloc-tags.html):
  a resource's user-defined tags reach Cost Explorer once activated as cost allocation tags.
- "Tagging resources" (EMR Serverless User Guide, tagging.html) and "Tag clusters" (EMR Management
  Guide, emr-plan-tags.html): StartJobRun `tags` tag the job run; RunJobFlow `Tags` tag the
  cluster and EMR propagates them to its EC2 instances.
- "Amazon EMR Serverless pricing" / JobRun billedResourceUtilization
  (https://docs.aws.amazon.com/emr-serverless/latest/APIReference/API_JobRun.html): a
  one-minute minimum per worker.
- "Amazon EMR pricing" (https://aws.amazon.com/emr/pricing/): EC2 and EMR per second with a
  one-minute minimum.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from sm_harness import REGION, manifest

from pipeline_aws.cost.adapters import EmrServerlessReader
from pipeline_aws.cost.pricing import ebs_by_instance_source, price_cluster, price_serverless
from pipeline_aws.cost.rate_card import load_rate_card
from pipeline_aws.emr import EmrClusters

pytestmark = pytest.mark.statemachine

EXECUTION_TAG = "pipeline:execution"
COST_TAGS = {"pipeline:app": "pipeline-test", "pipeline:environment": "dev",
             "pipeline:dataset": "online_retail",
             "pipeline:run-id": "online_retail-2010-12-01-0123456789ab",
             EXECUTION_TAG: "arn:aws:states:us-east-1:123456789012:execution:pipeline:e1"}


def _run_with_tags(compute: str, cluster_instances: dict | None = None) -> dict:
    run = manifest(compute)
    run["tags"] = dict(COST_TAGS)
    if run["cluster"] is not None:
        run["cluster"]["tags"] = [{"Key": k, "Value": v} for k, v in COST_TAGS.items()]
        if cluster_instances is not None:
            run["cluster"]["instances"] = cluster_instances
    return run


def _fleets() -> dict:
    return {"InstanceFleets": [
        {"Name": "master", "InstanceFleetType": "MASTER", "TargetOnDemandCapacity": 1,
         "InstanceTypeConfigs": [{"InstanceType": "m7g.xlarge"}]},
        {"Name": "core", "InstanceFleetType": "CORE", "TargetOnDemandCapacity": 2,
         "InstanceTypeConfigs": [{"InstanceType": "m7g.xlarge"}, {"InstanceType": "m6g.xlarge"}]},
    ], "Ec2SubnetIds": ["subnet-1"], "KeepJobFlowAliveWhenNoSteps": True}


def test_the_job_run_carries_the_cost_allocation_tags(harness):
    harness.lambdas.set("ResolveRun", _run_with_tags("serverless"))
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    job = ex.output["job_run"]
    run = boto3.client("emr-serverless", region_name=REGION).get_job_run(
        applicationId=job["application_id"], jobRunId=job["job_run_id"])["jobRun"]
    assert run["tags"] == COST_TAGS


def test_the_transient_cluster_carries_the_cost_allocation_tags(harness):
    harness.lambdas.set("ResolveRun", _run_with_tags("cluster"))
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    cluster_id = harness.lambdas.calls["TrackCost"][0]["state"]["cluster"]["cluster_id"]
    tags = {t["Key"]: t["Value"] for t in
            harness.emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Tags"]}
    assert tags == COST_TAGS


def test_the_tracker_prices_what_the_serverless_stand_in_bills(harness):
    """The harness's job ends at once, with the default Spark settings: a 4-vCPU 16 GB driver and
    three 4-vCPU 16 GB executors, each billed its one-minute minimum."""
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    job = ex.output["job_run"]
    run = EmrServerlessReader(boto3.client("emr-serverless", region_name=REGION)).job_run(
        job["application_id"], job["job_run_id"])
    assert run["billedResourceUtilization"] == {
        "vCPUHour": round(16 / 60, 6), "memoryGBHour": round(64 / 60, 6), "storageGBHour": 0.0}
    assert run["totalResourceUtilization"]["vCPUHour"] < run["billedResourceUtilization"][
        "vCPUHour"]
    card = load_rate_card()
    rates = card.serverless("us-east-1", "ARM64")
    component = price_serverless(run, card, "us-east-1", "ARM64")
    assert component.usd == pytest.approx((16 * rates.vcpu_hour + 64 * rates.memory_gb_hour) / 60,
                                          rel=1e-5)
    assert component.waste["minimum_charge_usd"] > 0


def test_spark_settings_no_worker_fits_fail_the_job_start(harness):
    run = manifest()
    run["job"]["spark_submit_parameters"] += " --conf spark.executor.cores=3"
    harness.lambdas.set("ResolveRun", run)
    ex = harness.run()
    assert ex.status == "FAILED"
    failure = harness.lambdas.calls["HandleFailure"][0]["state"]["failure"]["RunServerlessJob"]
    assert failure["Error"] == "EMRServerless.ValidationException"
    assert "spark.executor.cores" in failure["Cause"]
    assert harness.jobs.runs == []


def test_the_tracker_prices_every_fleet_instance_of_the_cluster_stand_in(harness):
    """Three m7g.xlarge (first type of each fleet) for the cluster's life, under a minute here:
    each is billed the one-minute minimum of EC2 + the EMR uplift."""
    harness.lambdas.set("ResolveRun", _run_with_tags("cluster", _fleets()))
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    cluster_id = harness.lambdas.calls["TrackCost"][0]["state"]["cluster"]["cluster_id"]
    clusters = EmrClusters(harness.emr)
    assert clusters.collection_type(cluster_id) == "INSTANCE_FLEET"
    instances = clusters.instances(cluster_id)
    assert [(i["InstanceType"], i["Market"]) for i in instances] == [
        ("m7g.xlarge", "ON_DEMAND")] * 3
    assert all(i["Status"]["Timeline"].get("EndDateTime") for i in instances)
    card = load_rate_card()
    component = price_cluster(cluster_id, instances,
                              ebs_by_instance_source(fleets=clusters.instance_fleets(cluster_id)),
                              card, "us-east-1", datetime.now(UTC))
    rates = card.instance("us-east-1", "m7g.xlarge")
    assert component.usage["instance_hours"] == pytest.approx(3 * 60 / 3600)
    assert component.usd == pytest.approx(
        3 * (rates.on_demand_hour + rates.emr_uplift_hour) / 60, rel=1e-6)
