"""What a local run says it would cost on AWS: the stand-ins bill the run's EMR Serverless workers
and cluster instances as AWS does, the real TrackCost prices them, and the summary says so.

AWS pages:
- "Amazon EMR Serverless pricing" (https://aws.amazon.com/emr/pricing/) and the JobRun API
  reference, billedResourceUtilization
  (https://docs.aws.amazon.com/emr-serverless/latest/APIReference/API_JobRun.html): workers'
  vCPU, memory and storage above 20 GB, per second with a one-minute minimum per worker.
- "Using Spark configurations when you run EMR Serverless jobs", default Spark properties
  (https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/jobs-spark.html#spark-defaults)
  and "Understanding application behavior in EMR Serverless", worker configurations
  (https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/app-behavior.html): a 4-vCPU
  16 GB driver; the catalog's 2-core 4g executors get 5 GB workers; 3 initial executors.
- "Amazon EMR pricing" (https://aws.amazon.com/emr/pricing/): cluster instances per second with a
  one-minute minimum.
- "Using AWS cost allocation tags"
  (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/cost-alloc-tags.html).
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest

from local_runtime.cli import run_file
from local_runtime.runner import print_summary
from pipeline_aws.cost.rate_card import load_rate_card
from pipeline_aws.cost.workers import Worker, WorkerPlan, plan_workers, spark_properties

pytestmark = pytest.mark.e2e
DAY1 = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail" / "2010-12-01.csv"
# driver 4 vCPU 16 GB + 3 executors of 2 vCPU 5 GB (datasets/online_retail.yaml spark_conf)
VCPU, MEMORY_GB = 10, 31


def _day(tmp_path: Path, day: str) -> Path:
    src = tmp_path / f"{day}.csv"
    src.write_bytes(DAY1.read_bytes().replace(b"2010-12-01", day.encode()))
    return src


def _cost_tags(tags: dict[str, str], deployment, res) -> None:
    assert tags["pipeline:dataset"] == "online_retail"
    assert tags["pipeline:run-id"] == res.summary["run_id"]
    assert tags["pipeline:app"] == deployment.stack_name
    assert tags["pipeline:execution"] == res.execution_arn


def test_a_serverless_run_bills_its_workers_and_the_summary_says_it_is_an_estimate(
        deployment, tmp_path):
    res = run_file(deployment, _day(tmp_path, "2010-12-13"), "online_retail/2010-12-13.csv",
                   out=None)
    assert res.status == "SUCCEEDED", res.summary
    job = res.output["job_run"]
    run = deployment.client("emr-serverless").get_job_run(
        applicationId=job["application_id"], jobRunId=job["job_run_id"])["jobRun"]
    _cost_tags(run["tags"], deployment, res)

    plan = plan_workers(spark_properties(run["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]))
    assert plan == WorkerPlan(Worker("driver", 4, 16, 20), Worker("executor", 2, 5, 20), 3)
    billed, total = run["billedResourceUtilization"], run["totalResourceUtilization"]
    billed_seconds = billed["vCPUHour"] * 3600 / VCPU
    ran = math.ceil((run["endedAt"] - run["startedAt"]).total_seconds())
    assert billed_seconds == pytest.approx(max(ran, 60), abs=1.01)
    assert billed["memoryGBHour"] == pytest.approx(MEMORY_GB * billed_seconds / 3600, abs=1e-5)
    assert billed["storageGBHour"] == 0.0  # 20 GB disks: all free
    assert total["storageGBHour"] > 0.0

    card = load_rate_card()
    rates = card.serverless("us-east-1", "ARM64")
    serverless = res.ledger["cost"]["components"]["serverless"]
    assert float(serverless["usd"]) == pytest.approx(
        (VCPU * rates.vcpu_hour + MEMORY_GB * rates.memory_gb_hour) * billed_seconds / 3600,
        rel=1e-4)

    total_usd = float(res.summary["estimated_cost_usd"])
    out = io.StringIO()
    print_summary(res.summary, res.alerts, out)  # what `run` and `demo` print
    assert float(serverless["usd"]) < total_usd < float(serverless["usd"]) + 0.005
    line = re.search(r"cost on AWS \(estimate\): \$(\d+\.\d{4}) \(us-east-1 list prices, "
                     r"rate card [\w-]+\)", out.getvalue())
    assert line, out.getvalue()
    assert float(line.group(1)) == pytest.approx(total_usd, abs=5e-5)


def test_a_cluster_run_bills_every_fleet_instance_for_the_clusters_life(deployment, tmp_path):
    res = run_file(deployment, _day(tmp_path, "2010-12-14"), "online_retail/2010-12-14.csv",
                   out=None, compute="cluster")
    assert res.status == "SUCCEEDED", res.summary
    cluster_id = res.output["cluster"]["cluster_id"]
    emr = deployment.client("emr")
    described = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    _cost_tags({t["Key"]: t["Value"] for t in described["Tags"]}, deployment, res)

    instances = emr.list_instances(ClusterId=cluster_id)["Instances"]
    # the catalog: 1 master m7g.xlarge, 2 core m7g.xlarge, 2 Spot task m7g.2xlarge
    assert sorted((i["InstanceType"], i["Market"]) for i in instances) == [
        ("m7g.2xlarge", "SPOT"), ("m7g.2xlarge", "SPOT"), ("m7g.xlarge", "ON_DEMAND"),
        ("m7g.xlarge", "ON_DEMAND"), ("m7g.xlarge", "ON_DEMAND")]
    lived = (described["Status"]["Timeline"]["EndDateTime"]
             - described["Status"]["Timeline"]["CreationDateTime"]).total_seconds()
    usage = res.ledger["cost"]["usage"]
    billed_each = max(math.ceil(lived), 60)
    assert float(usage["instance_hours"]) == pytest.approx(5 * billed_each / 3600, abs=5 / 3600)
    assert float(res.ledger["cost"]["components"]["cluster"]["usd"]) > 0
    assert res.ledger["cost"]["complete"] is True
