"""The workers EMR Serverless allocates for a job's Spark settings, and the utilization it reports.

Figures are computed by hand from these AWS pages:
- "Using Spark configurations when you run EMR Serverless jobs", default Spark properties
  (https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/jobs-spark.html#spark-defaults):
  driver/executor 4 cores, 14G memory, 20G disk; memoryOverheadFactor 0.1; dynamic allocation on,
  initialExecutors 3, minExecutors 0, maxExecutors infinity; spark.executor.instances 3.
- "Understanding application behavior in EMR Serverless", supported worker configurations
  (https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/app-behavior.html#worker-configs):
  1/2/4/8/16 vCPU with their memory ranges and increments; 20-200 GB disk; overhead 10% of the
  memory, at least 384 MB (its example: 27 GB + 2.7 GB = 29.7 GB on a 4-vCPU worker); only the
  storage above 20 GB per worker is paid for.
- "Amazon EMR Serverless pricing" (https://aws.amazon.com/emr/pricing/) and the JobRun API
  reference, billedResourceUtilization
  (https://docs.aws.amazon.com/emr-serverless/latest/APIReference/API_JobRun.html): a one-minute
  minimum per worker, plus the storage over 20 GB per worker; TotalResourceUtilization
  (API_TotalResourceUtilization.html): rounded up to the nearest second.
"""

from __future__ import annotations

import pytest

from pipeline_aws.cost.pricing import price_serverless
from pipeline_aws.cost.workers import (
    Worker,
    WorkerConfigurationError,
    WorkerPlan,
    executor_count,
    job_run_utilization,
    plan_workers,
    spark_properties,
)

# what ResolveRun passes for the catalog's online_retail (datasets/online_retail.yaml)
CATALOG_PARAMETERS = (
    "--py-files s3://artifacts/jobs/v1/spark_jobs.zip --conf spark.executor.cores=2 "
    "--conf spark.executor.memory=4g --conf spark.dynamicAllocation.maxExecutors=4")


def test_defaults_are_four_vcpu_sixteen_gb_twenty_gb_workers_and_three_executors():
    plan = plan_workers({})
    # 14 GB + 10% = 15.4 GB -> 16 GB (4 vCPU: 8-30 GB in 1 GB steps)
    assert plan.driver == Worker("driver", 4, 16, 20)
    assert plan.executor == Worker("executor", 4, 16, 20)
    assert plan.executors == 3


def test_the_catalog_settings_give_three_two_vcpu_five_gb_executors():
    plan = plan_workers(spark_properties(CATALOG_PARAMETERS))
    assert plan.driver == Worker("driver", 4, 16, 20)
    # 4 GB + max(0.4 GB, 384 MB) = 4.4 GB -> 5 GB; initial 3 executors, under maxExecutors 4
    assert plan.executor == Worker("executor", 2, 5, 20)
    assert plan.executors == 3


def test_a_thirty_second_job_is_billed_one_minute_per_worker_and_no_free_storage():
    plan = plan_workers(spark_properties(CATALOG_PARAMETERS))
    total, billed = job_run_utilization(plan, 30.0)
    # vCPU 4 + 3x2 = 10, memory 16 + 3x5 = 31 GB, disk 4 x 20 = 80 GB
    assert total == {"vCPUHour": round(10 * 30 / 3600, 6), "memoryGBHour": round(31 * 30 / 3600, 6),
                     "storageGBHour": round(80 * 30 / 3600, 6)}
    assert billed == {"vCPUHour": round(10 / 60, 6), "memoryGBHour": round(31 / 60, 6),
                      "storageGBHour": 0.0}


def test_the_catalog_job_costs_about_a_cent_on_arm_in_us_east_1(card):
    """ARM, us-east-1 list rates from the rate card: 10 vCPU x 1 min + 31 GB x 1 min."""
    plan = plan_workers(spark_properties(CATALOG_PARAMETERS))
    total, billed = job_run_utilization(plan, 30.0)
    rates = card.serverless("us-east-1", "ARM64")
    component = price_serverless({"state": "SUCCESS", "billedResourceUtilization": billed,
                                  "totalResourceUtilization": total}, card, "us-east-1", "ARM64")
    expected = (10 * rates.vcpu_hour + 31 * rates.memory_gb_hour) / 60
    assert component.usd == pytest.approx(expected, rel=1e-5)
    assert 0.008 < expected < 0.012


def test_past_the_minimum_billed_equals_total_except_the_free_storage():
    plan = WorkerPlan(Worker("driver", 4, 16, 50), Worker("executor", 2, 5, 20), 2)
    total, billed = job_run_utilization(plan, 90.2)  # rounded up to 91 s
    assert total["vCPUHour"] == billed["vCPUHour"] == round(8 * 91 / 3600, 6)
    assert total["memoryGBHour"] == billed["memoryGBHour"] == round(26 * 91 / 3600, 6)
    assert total["storageGBHour"] == round(90 * 91 / 3600, 6)
    assert billed["storageGBHour"] == round(30 * 91 / 3600, 6)  # only the driver's 50 - 20 GB


def test_the_documented_twenty_seven_gb_example_fills_a_thirty_gb_worker():
    plan = plan_workers({"spark.executor.memory": "27g"})
    assert plan.executor.memory_gb == 30  # 27 + 2.7 = 29.7 -> 30
    with pytest.raises(WorkerConfigurationError, match="at most 30 GB"):
        plan_workers({"spark.executor.memory": "28g"})  # 30.8 GB > 30


def test_memory_steps_and_minimums_per_worker_size():
    # 8 vCPU: 16-60 GB in 4 GB steps: 20 + 2 = 22 -> 24
    assert plan_workers({"spark.driver.cores": "8", "spark.driver.memory": "20g"}
                        ).driver.memory_gb == 24
    # 1 vCPU: 1 GB + 384 MB = 1.375 GB -> the 2 GB minimum
    assert plan_workers({"spark.executor.cores": "1", "spark.executor.memory": "1g"}
                        ).executor.memory_gb == 2
    # an explicit overhead replaces the factor: 4 GB + 2048 MB = 6 GB
    assert plan_workers({"spark.executor.cores": "2", "spark.executor.memory": "4g",
                         "spark.executor.memoryOverhead": "2048"}).executor.memory_gb == 6


def test_executor_counts_under_dynamic_allocation_and_without_it():
    assert executor_count({"spark.dynamicAllocation.minExecutors": "6"}) == 6
    assert executor_count({"spark.dynamicAllocation.maxExecutors": "2"}) == 2
    assert executor_count({"spark.executor.instances": "5"}) == 5
    assert executor_count({"spark.dynamicAllocation.enabled": "false"}) == 3
    assert executor_count({"spark.dynamicAllocation.enabled": "false",
                           "spark.executor.instances": "1"}) == 1


def test_spark_submit_resource_options_count_as_properties():
    props = spark_properties("--driver-cores 2 --executor-memory 8g --num-executors 2 "
                             "--conf spark.dynamicAllocation.enabled=false --class x.Main")
    plan = plan_workers(props)
    assert plan.driver.vcpu == 2
    assert plan.executor.memory_gb == 9  # 8 + 0.8 = 8.8 -> 9
    assert plan.executors == 2


@pytest.mark.parametrize(("props", "message"), [
    ({"spark.executor.cores": "3"}, "1, 2, 4, 8, 16 vCPU"),
    ({"spark.emr-serverless.driver.disk": "10G"}, "from 20 to 200"),
    ({"spark.emr-serverless.executor.disk": "500g"}, "from 20 to 200"),
    ({"spark.executor.memory": "lots"}, "not a memory size"),
    ({"spark.dynamicAllocation.enabled": "maybe"}, "not true or false"),
    ({"spark.dynamicAllocation.minExecutors": "-1"}, "must not be negative"),
    ({"spark.emr-serverless.executor.disk.type": "shuffle_optimized"}, "standard disks"),
    ({"spark.dynamicAllocation.initialExecutors": "infinity"}, "not a whole number"),
])
def test_settings_no_worker_can_satisfy_are_refused_with_the_reason(props, message):
    with pytest.raises(WorkerConfigurationError, match=message):
        plan_workers(props)


def test_unparseable_submit_parameters_are_refused():
    with pytest.raises(WorkerConfigurationError, match="cannot be parsed"):
        spark_properties("--conf 'spark.x=1")
    with pytest.raises(WorkerConfigurationError, match="not key=value"):
        spark_properties("--conf spark.executor.cores")


def test_a_negative_lifetime_is_an_error():
    with pytest.raises(ValueError, match="cannot live"):
        job_run_utilization(plan_workers({}), -1.0)
