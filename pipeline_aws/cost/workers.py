"""The workers an EMR Serverless Spark job run is given, and the utilization AWS reports for them.

Pure functions (no AWS calls): the local EMR Serverless stand-in reports its GetJobRun
`totalResourceUtilization` and `billedResourceUtilization` from them, so a local run costs what
the same job would on AWS.

Rules, from AWS's documents:
- "Using Spark configurations when you run EMR Serverless jobs" (EMR Serverless User Guide,
  https://docs.aws.amazon.com/emr/latest/EMR-Serverless-UserGuide/jobs-spark.html#spark-defaults):
  driver and executor 4 cores and 14G each, 20G disk each, memory overhead factor 0.1, dynamic
  allocation on with 3 initial executors, 0 minimum, no maximum (6.10.0 and later);
  spark.executor.instances 3.
- "Supported worker configurations" (EMR Serverless User Guide, app-behavior.html#worker-configs):
  1, 2, 4, 8 or 16 vCPU; memory ranges and increments per vCPU; 20-200 GB disk; the memory
  overhead (default 10% of the memory, at least 384 MB) counts towards the worker's memory.
- "Amazon EMR Serverless pricing" (https://aws.amazon.com/emr/pricing/) and the JobRun API
  reference (billedResourceUtilization): workers are billed for vCPU, memory and storage from
  the time they start until they stop, per second with a one-minute minimum per worker; the
  first 20 GB of storage per worker is free. totalResourceUtilization is the same aggregate
  without the minimum and with all the storage, rounded up to the second.

The model of one job run: the driver and the initial executors live for the whole run
(startedAt to endedAt). Executors that dynamic allocation adds later for a large job, or removes
when idle, are not modelled: for the small jobs this project runs it is the allocation AWS makes.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

MINIMUM_BILLED_SECONDS = 60
FREE_STORAGE_GB = 20
SECONDS_PER_HOUR = 3600.0
MIN_OVERHEAD_MIB = 384

# jobs-spark.html#spark-defaults (EMR 6.10.0 and later)
SPARK_DEFAULTS: Mapping[str, str] = {
    "spark.driver.cores": "4",
    "spark.driver.memory": "14G",
    "spark.emr-serverless.driver.disk": "20G",
    "spark.executor.cores": "4",
    "spark.executor.memory": "14G",
    "spark.emr-serverless.executor.disk": "20G",
    "spark.emr-serverless.memoryOverheadFactor": "0.1",
    "spark.dynamicAllocation.enabled": "true",
    "spark.dynamicAllocation.initialExecutors": "3",
    "spark.dynamicAllocation.minExecutors": "0",
    "spark.dynamicAllocation.maxExecutors": "infinity",
    "spark.executor.instances": "3",
}

# app-behavior.html#worker-configs: vCPU -> (minimum GB, maximum GB, increment GB)
WORKER_MEMORY_GB: Mapping[int, tuple[int, int, int]] = {
    1: (2, 8, 1), 2: (4, 16, 1), 4: (8, 30, 1), 8: (16, 60, 4), 16: (32, 120, 8),
}
DISK_GB = (20, 200)

# spark-submit options that stand for a Spark property
_SUBMIT_OPTIONS = {
    "--driver-cores": "spark.driver.cores", "--driver-memory": "spark.driver.memory",
    "--executor-cores": "spark.executor.cores", "--executor-memory": "spark.executor.memory",
    "--num-executors": "spark.executor.instances",
}
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)b?$", re.IGNORECASE)
_MIB_PER_UNIT = {"k": 1 / 1024, "m": 1, "": 1, "g": 1024, "t": 1024 * 1024}


class WorkerConfigurationError(ValueError):
    """Spark settings EMR Serverless cannot give a worker for."""


@dataclass(frozen=True)
class Worker:
    role: str  # driver | executor
    vcpu: int
    memory_gb: int
    storage_gb: int


@dataclass(frozen=True)
class WorkerPlan:
    driver: Worker
    executor: Worker
    executors: int

    def workers(self) -> list[Worker]:
        return [self.driver, *([self.executor] * self.executors)]


def spark_properties(submit_parameters: str | None) -> dict[str, str]:
    """sparkSubmitParameters -> the Spark properties it sets (`--conf k=v` and the spark-submit
    resource options); other options (--py-files, --class, ...) say nothing about workers."""
    try:
        tokens = shlex.split(submit_parameters or "")
    except ValueError as e:
        raise WorkerConfigurationError(f"sparkSubmitParameters cannot be parsed: {e}") from e
    props: dict[str, str] = {}
    for option, value in zip(tokens, [*tokens[1:], ""], strict=True):
        if option == "--conf":
            key, sep, conf_value = value.partition("=")
            if not sep:
                raise WorkerConfigurationError(f"--conf {value!r} is not key=value")
            props[key] = conf_value
        elif option in _SUBMIT_OPTIONS:
            props[_SUBMIT_OPTIONS[option]] = value
    return props


def memory_mib(value: str, what: str) -> float:
    """A Spark memory size ("14G", "512m", "2048": MiB without a unit) in MiB."""
    match = _MEMORY.match(value.strip())
    if not match:
        raise WorkerConfigurationError(f"{what}={value!r} is not a memory size such as 14g")
    return float(match.group(1)) * _MIB_PER_UNIT[match.group(2).lower()]


def _number(props: Mapping[str, str], key: str) -> float:
    value = props.get(key, SPARK_DEFAULTS[key]).strip().lower()
    if value == "infinity":
        return math.inf
    try:
        number = float(value)
    except ValueError as e:
        raise WorkerConfigurationError(f"{key}={value!r} is not a number") from e
    if number < 0:
        raise WorkerConfigurationError(f"{key}={value!r} must not be negative")
    return number


def _worker_memory_gb(props: Mapping[str, str], role: str, vcpu: int) -> int:
    """Spark memory + overhead, rounded up to a size the worker's vCPU allows."""
    key = f"spark.{role}.memory"
    heap = memory_mib(props.get(key, SPARK_DEFAULTS[key]), key)
    explicit = props.get(f"spark.{role}.memoryOverhead")
    if explicit is not None:
        overhead = memory_mib(explicit, f"spark.{role}.memoryOverhead")
    else:
        factor = _number(props, "spark.emr-serverless.memoryOverheadFactor")
        overhead = max(heap * factor, MIN_OVERHEAD_MIB)
    low, high, step = WORKER_MEMORY_GB[vcpu]
    needed = math.ceil(round((heap + overhead) / 1024, 6))
    memory = max(low, math.ceil(needed / step) * step)
    if memory > high:
        raise WorkerConfigurationError(
            f"{role}: {key} plus overhead needs {needed} GB; a {vcpu}-vCPU worker has at most "
            f"{high} GB")
    return memory


def _worker(props: Mapping[str, str], role: str) -> Worker:
    cores_key = f"spark.{role}.cores"
    cores = _number(props, cores_key)
    if cores not in WORKER_MEMORY_GB:
        raise WorkerConfigurationError(
            f"{cores_key}={props.get(cores_key)!r}: an EMR Serverless worker has "
            f"{', '.join(map(str, WORKER_MEMORY_GB))} vCPU")
    vcpu = int(cores)
    disk_key = f"spark.emr-serverless.{role}.disk"
    disk_type = props.get(f"{disk_key}.type", "standard").lower()
    if disk_type != "standard":
        raise WorkerConfigurationError(
            f"{disk_key}.type={disk_type}: only standard disks (20 GB free per worker) are "
            "modelled")
    disk = memory_mib(props.get(disk_key, SPARK_DEFAULTS[disk_key]), disk_key) / 1024
    if not DISK_GB[0] <= disk <= DISK_GB[1] or disk != int(disk):
        raise WorkerConfigurationError(
            f"{disk_key}={props.get(disk_key)!r}: a worker's disk is a whole number of GB from "
            f"{DISK_GB[0]} to {DISK_GB[1]}")
    return Worker(role, vcpu, _worker_memory_gb(props, role, vcpu), int(disk))


def executor_count(props: Mapping[str, str]) -> int:
    """Executors at the start: Spark's initial count under dynamic allocation (the largest of
    initialExecutors, minExecutors and spark.executor.instances when set, capped at
    maxExecutors), else spark.executor.instances."""
    dynamic = props.get("spark.dynamicAllocation.enabled",
                        SPARK_DEFAULTS["spark.dynamicAllocation.enabled"]).strip().lower()
    if dynamic not in ("true", "false"):
        raise WorkerConfigurationError(
            f"spark.dynamicAllocation.enabled={dynamic!r} is not true or false")
    if dynamic == "false":
        count = _number(props, "spark.executor.instances")
    else:
        count = max(_number(props, "spark.dynamicAllocation.initialExecutors"),
                    _number(props, "spark.dynamicAllocation.minExecutors"),
                    _number(props, "spark.executor.instances")
                    if "spark.executor.instances" in props else 0.0)
        count = min(count, _number(props, "spark.dynamicAllocation.maxExecutors"))
    if math.isinf(count) or count != int(count):
        raise WorkerConfigurationError(f"the executor count {count} is not a whole number")
    return int(count)


def plan_workers(props: Mapping[str, str]) -> WorkerPlan:
    """The driver and executor workers EMR Serverless allocates for these Spark properties."""
    return WorkerPlan(_worker(props, "driver"), _worker(props, "executor"),
                      executor_count(props))


def job_run_utilization(plan: WorkerPlan, lifetime_seconds: float
                        ) -> tuple[dict[str, float], dict[str, float]]:
    """(totalResourceUtilization, billedResourceUtilization) of a run whose workers lived
    `lifetime_seconds`: the total with every worker's full disk and no minimum; the billed with
    the one-minute minimum per worker and only the disk above the free 20 GB."""
    if lifetime_seconds < 0:
        raise ValueError(f"a worker cannot live {lifetime_seconds} seconds")
    used = math.ceil(round(lifetime_seconds, 6)) / SECONDS_PER_HOUR
    billed = max(math.ceil(round(lifetime_seconds, 6)), MINIMUM_BILLED_SECONDS) / SECONDS_PER_HOUR
    workers = plan.workers()
    vcpu = sum(w.vcpu for w in workers)
    memory = sum(w.memory_gb for w in workers)
    storage = sum(w.storage_gb for w in workers)
    storage_above_free = sum(max(w.storage_gb - FREE_STORAGE_GB, 0) for w in workers)
    total = {"vCPUHour": vcpu * used, "memoryGBHour": memory * used,
             "storageGBHour": storage * used}
    billed_usage = {"vCPUHour": vcpu * billed, "memoryGBHour": memory * billed,
                    "storageGBHour": storage_above_free * billed}
    return ({k: round(v, 6) for k, v in total.items()},
            {k: round(v, 6) for k, v in billed_usage.items()})
