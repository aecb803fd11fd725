"""The local EMR Serverless stand-in's maximum capacity (local_runtime.moto_patches.CapacityGate):
a job run whose initial workers do not fit beside the running ones waits (SCHEDULED) until
enough end; one that could never fit fails at once; a cancelled waiting run never starts.

AWS: "Understanding application behavior in EMR Serverless", Maximum capacity
(https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/app-behavior.html#max-capacity):
an application scales up to its maximum CPU, memory and disk; "Job run states"
(https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/job-states.html): SCHEDULED is
a run whose resources are being allocated."""

from __future__ import annotations

import threading
import time

from local_runtime.moto_patches import CapacityGate, capacity_need, parse_capacity
from local_runtime.spark import JobResult
from pipeline_aws.cost.workers import plan_workers, spark_properties

# online_retail's job: driver 4 vCPU (EMR's default) + 3 initial executors of 2 vCPU
RETAIL = ("--conf spark.executor.cores=2 --conf spark.executor.memory=4g "
          "--conf spark.dynamicAllocation.maxExecutors=4")


def test_the_template_capacity_parses():
    assert parse_capacity({"cpu": "32 vCPU", "memory": "128 GB", "disk": "500 GB"}) == {
        "cpu": 32.0, "memory": 128.0, "disk": 500.0}
    assert parse_capacity(None) is None


def test_a_job_beyond_the_capacity_waits_until_one_ends():
    need = capacity_need(plan_workers(spark_properties(RETAIL)))
    assert need["cpu"] == 10.0
    gate = CapacityGate({"cpu": 32.0, "memory": 128.0, "disk": 500.0})
    for i in range(3):
        assert gate.acquire(f"j{i}", need, JobResult())
    fourth = JobResult()
    admitted = threading.Event()
    threading.Thread(target=lambda: gate.acquire("j3", need, fourth) and admitted.set(),
                     daemon=True).start()
    time.sleep(0.5)
    assert not admitted.is_set() and fourth.state == "SCHEDULED"
    gate.release("j0")
    assert admitted.wait(5)
    assert gate.peak_jobs == 3


def test_a_job_that_never_fits_fails_saying_why():
    result = JobResult()
    gate = CapacityGate({"cpu": 8.0})
    assert not gate.acquire("big", {"cpu": 10.0}, result)
    assert result.state == "FAILED" and "cpu 10 > 8" in result.details


def test_a_cancelled_waiting_run_never_starts():
    gate = CapacityGate({"cpu": 10.0})
    assert gate.acquire("a", {"cpu": 10.0}, JobResult())
    waiting = JobResult()
    out: list[bool] = []
    t = threading.Thread(target=lambda: out.append(gate.acquire("b", {"cpu": 10.0}, waiting)))
    t.start()
    time.sleep(0.3)
    waiting.state = "CANCELLED"
    t.join(5)
    assert out == [False]
    gate.release("a")
    assert "b" not in gate.used


def test_no_capacity_no_gate():
    assert CapacityGate(None).acquire("x", {"cpu": 1000.0}, JobResult())
