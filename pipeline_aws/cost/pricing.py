"""Usage -> dollars, as pure functions over the AWS API responses (no AWS calls here).

Each function returns a `Component`: its dollars (None when nothing could be priced), whether
every part was priced, the usage behind it, what of it is waste, and the errors that left parts
unpriced. A part that cannot be priced is an error in the component, never a zero.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline_aws.cost.rate_card import InstanceRates, RateCard, Unpriced

SECONDS_PER_HOUR = 3600.0
# EMR Serverless job run states after which the utilization figures are final.
FINAL_JOB_STATES = frozenset({"SUCCESS", "FAILED", "CANCELLED"})


@dataclass
class Component:
    name: str
    usd: float | None = None
    priced: bool = True
    usage: dict[str, float] = field(default_factory=dict)
    waste: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    def error(self, code: str, message: str, *, unpriced: bool = True) -> None:
        self.errors.append({"component": self.name, "code": code, "message": message})
        if unpriced:
            self.priced = False

    def add_usd(self, amount: float) -> None:
        self.usd = (self.usd or 0.0) + amount

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"usd": _round(self.usd), "priced": self.priced}
        if self.details:
            record["details"] = self.details
        return record


def _round(value: float | None, digits: int = 10) -> float | None:
    return None if value is None else round(value, digits)


def unpriced(name: str, code: str, message: str) -> Component:
    component = Component(name)
    component.error(code, message)
    return component


# ---------------------------------------------------------------------------------------------
# EMR Serverless


@dataclass(frozen=True)
class Utilization:
    vcpu_hours: float = 0.0
    memory_gb_hours: float = 0.0
    storage_gb_hours: float = 0.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Utilization | None:
        if not raw:
            return None
        return cls(float(raw.get("vCPUHour", 0.0)), float(raw.get("memoryGBHour", 0.0)),
                   float(raw.get("storageGBHour", 0.0)))


def price_serverless(job_run: Mapping[str, Any], card: RateCard, region: str,
                     architecture: str) -> Component:
    """Price a GetJobRun `jobRun`: billed usage x the region's rates for the architecture.

    `billedResourceUtilization` is what AWS bills: it includes the 1-minute minimum per worker
    and only the storage above the free 20 GB per worker. `totalResourceUtilization` is what
    the job used. The compute the minimum added (billed - used vCPU and memory) is waste; the
    storage above the free allowance is reported on its own, because more disk was asked for.
    """
    component = Component("serverless")
    state = str(job_run.get("state", "UNKNOWN"))
    component.details = {
        "application_id": job_run.get("applicationId"), "job_run_id": job_run.get("jobRunId"),
        "state": state, "architecture": architecture,
        "execution_seconds": job_run.get("totalExecutionDurationSeconds"),
    }
    try:
        rates = card.serverless(region, architecture)
    except Unpriced as e:
        component.error(e.code, e.message)
        return component
    billed = Utilization.parse(job_run.get("billedResourceUtilization"))
    used = Utilization.parse(job_run.get("totalResourceUtilization"))
    if state not in FINAL_JOB_STATES:
        component.error("JobRunNotFinished",
                        f"job run is {state}: its utilization is not final (a lower bound)",
                        unpriced=False)
    if billed is None:
        # A job that never got workers (rejected, cancelled while pending) is billed nothing.
        billed = Utilization()
        component.details["note"] = f"GetJobRun reported no billed utilization (state {state})"
    used = used or Utilization()

    component.usd = (billed.vcpu_hours * rates.vcpu_hour
                     + billed.memory_gb_hours * rates.memory_gb_hour
                     + billed.storage_gb_hours * rates.storage_gb_hour)
    component.usage = {
        "vcpu_hours": billed.vcpu_hours, "memory_gb_hours": billed.memory_gb_hours,
        "storage_gb_hours": billed.storage_gb_hours, "used_vcpu_hours": used.vcpu_hours,
        "used_memory_gb_hours": used.memory_gb_hours,
        "used_storage_gb_hours": used.storage_gb_hours,
    }
    min_vcpu = max(billed.vcpu_hours - used.vcpu_hours, 0.0)
    min_memory = max(billed.memory_gb_hours - used.memory_gb_hours, 0.0)
    component.waste = {
        "minimum_charge_usd": min_vcpu * rates.vcpu_hour + min_memory * rates.memory_gb_hour,
        "minimum_charge_vcpu_hours": min_vcpu,
        "minimum_charge_memory_gb_hours": min_memory,
        "storage_above_free_usd": billed.storage_gb_hours * rates.storage_gb_hour,
        "storage_above_free_gb_hours": billed.storage_gb_hours,
        "free_storage_gb_hours": max(used.storage_gb_hours - billed.storage_gb_hours, 0.0),
    }
    return component


# ---------------------------------------------------------------------------------------------
# EMR on EC2


def _volumes(block_devices: Iterable[Mapping[str, Any]] | None) -> list[tuple[str, float]]:
    out = []
    for device in block_devices or []:
        spec = device.get("VolumeSpecification", {})
        out.append((str(spec.get("VolumeType", "")), float(spec.get("SizeInGB", 0))))
    return out


def ebs_by_instance_source(groups: Iterable[Mapping[str, Any]] = (),
                           fleets: Iterable[Mapping[str, Any]] = ()
                           ) -> dict[tuple[str, str | None], list[tuple[str, float]]]:
    """(group id, None) or (fleet id, instance type) -> the EBS volumes each such instance has.

    ListInstances names an instance's volumes but not their sizes: sizes come from the group's
    (or the fleet's per-type) EbsBlockDevices, one entry per attached volume.
    """
    out: dict[tuple[str, str | None], list[tuple[str, float]]] = {}
    for group in groups:
        out[(group["Id"], None)] = _volumes(group.get("EbsBlockDevices"))
    for fleet in fleets:
        for spec in fleet.get("InstanceTypeSpecifications", []):
            out[(fleet["Id"], spec.get("InstanceType"))] = _volumes(spec.get("EbsBlockDevices"))
    return out


def billed_seconds(created: datetime | None, ended: datetime | None, now: datetime,
                   minimum: float) -> float:
    """Per-second billing with a minimum: whole seconds from creation to end (or now)."""
    if created is None:
        return 0.0  # never launched (e.g. Spot capacity never fulfilled): nothing billed
    end = ended or now
    return max(float(math.ceil(max((end - created).total_seconds(), 0.0))), minimum)


class _ClusterPricer:
    """Accumulates the cluster component one instance at a time (see price_cluster)."""

    _ROW = ("instances", "hours", "ec2_usd", "emr_usd", "ebs_usd")

    def __init__(self, cluster_id: str,
                 ebs: Mapping[tuple[str, str | None], list[tuple[str, float]]],
                 card: RateCard, region: str, now: datetime):
        self.component = Component("cluster", usd=0.0,
                                   details={"cluster_id": cluster_id, "by_type": {}})
        self.usage = dict.fromkeys(("instance_hours", "spot_instance_hours", "vcpu_hours",
                                    "memory_gb_hours", "ebs_gb_hours", "instances"), 0.0)
        self.by_type: dict[str, dict[str, float]] = self.component.details["by_type"]
        self.minimum_usd = 0.0
        self._unknown_types: set[str] = set()
        self._ebs, self._card, self._region, self._now = ebs, card, region, now

    def add(self, instance: Mapping[str, Any]) -> None:
        itype = str(instance.get("InstanceType", ""))
        market = str(instance.get("Market", "ON_DEMAND"))
        timeline = instance.get("Status", {}).get("Timeline", {})
        created, ended = timeline.get("CreationDateTime"), timeline.get("EndDateTime")
        seconds = billed_seconds(created, ended, self._now, self._card.ec2_minimum_seconds)
        if seconds == 0.0:
            return
        hours = seconds / SECONDS_PER_HOUR
        self.usage["instances"] += 1
        self.usage["instance_hours"] += hours
        if market == "SPOT":
            self.usage["spot_instance_hours"] += hours
        rates = self._rates(itype)
        if rates is None:
            return
        ec2_hour = rates.on_demand_hour * (rates.spot_fraction if market == "SPOT" else 1.0)
        ec2_usd, emr_usd = hours * ec2_hour, hours * rates.emr_uplift_hour
        if rates.vcpu is not None:
            self.usage["vcpu_hours"] += hours * rates.vcpu
        if rates.memory_gib is not None:
            self.usage["memory_gb_hours"] += hours * rates.memory_gib
        ebs_usd = self._ebs_usd(instance, itype, hours)
        actual = billed_seconds(created, ended, self._now, 0.0)
        if actual < seconds:
            self.minimum_usd += (seconds - actual) / seconds * (ec2_usd + emr_usd + ebs_usd)
        self.component.add_usd(ec2_usd + emr_usd + ebs_usd)
        row = self.by_type.setdefault(f"{itype}/{market}", dict.fromkeys(self._ROW, 0.0))
        for key, value in zip(self._ROW, (1, hours, ec2_usd, emr_usd, ebs_usd), strict=True):
            row[key] += value

    def _rates(self, itype: str) -> InstanceRates | None:
        """The type's rates; an unknown type is reported once and left unpriced."""
        try:
            return self._card.instance(self._region, itype)
        except Unpriced as e:
            if itype not in self._unknown_types:
                self._unknown_types.add(itype)
                self.component.error(e.code, e.message)
            return None

    def _ebs_usd(self, instance: Mapping[str, Any], itype: str, hours: float) -> float:
        source = ((instance["InstanceFleetId"], itype) if instance.get("InstanceFleetId")
                  else (instance.get("InstanceGroupId", ""), None))
        usd = 0.0
        for volume_type, size_gb in self._ebs.get(source, []):
            self.usage["ebs_gb_hours"] += size_gb * hours
            try:
                rate = self._card.ebs_gb_month(self._region, volume_type)
            except Unpriced as e:
                self.component.error(e.code, e.message)
                continue
            usd += size_gb * hours / self._card.hours_per_month * rate
        return usd

    def finish(self) -> Component:
        for row in self.by_type.values():
            for key in self._ROW[1:]:
                row[key] = round(row[key], 6)
        self.component.usage = self.usage
        self.component.waste = {"minimum_charge_usd": self.minimum_usd}
        if self.usage["spot_instance_hours"]:
            self.component.details["spot_pricing"] = (
                "rate card spot.fraction_of_on_demand (an estimate)")
        return self.component


def price_cluster(cluster_id: str, instances: Iterable[Mapping[str, Any]],
                  ebs: Mapping[tuple[str, str | None], list[tuple[str, float]]],
                  card: RateCard, region: str, now: datetime) -> Component:
    """Price every instance the cluster ever had, from its own lifetime.

    dollars = billed hours x (EC2 price + EMR uplift) + EBS GB x hours / hours-per-month x GB-month
    rate. The EC2 price of a Spot instance is the rate card's Spot fraction of on-demand (the
    uplift is the same for Spot). NormalizedInstanceHours is never used: it is a rounded-up
    size-weighted count, not a duration.
    """
    pricer = _ClusterPricer(cluster_id, ebs, card, region, now)
    for instance in instances:
        pricer.add(instance)
    return pricer.finish()


# ---------------------------------------------------------------------------------------------
# Orchestration: Step Functions transitions and the Lambda invocations of this execution

_SCHEDULED = ("LambdaFunctionScheduled", "TaskScheduled", "ActivityScheduled")
_LAMBDA_END = ("LambdaFunctionSucceeded", "LambdaFunctionFailed", "LambdaFunctionTimedOut")
_TASK_END = ("TaskSucceeded", "TaskFailed", "TaskTimedOut")


@dataclass
class HistoryFacts:
    transitions: int = 0
    retries: int = 0
    state_durations: dict[str, float] = field(default_factory=dict)
    # (function name, seconds it ran) per invocation that reached the function
    lambda_runs: list[tuple[str, float]] = field(default_factory=list)


def function_name(resource: str) -> str:
    """`arn:aws:lambda:r:a:function:NAME[:qualifier]` or a bare name -> NAME."""
    parts = resource.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6]
    return resource


def _lambda_resource(event: Mapping[str, Any]) -> str | None:
    """The Lambda function a scheduled task invokes, or None for any other task."""
    resource: Any = None
    if event["type"] == "LambdaFunctionScheduled":
        resource = event.get("lambdaFunctionScheduledEventDetails", {}).get("resource")
    details = event.get("taskScheduledEventDetails", {})
    if event["type"] == "TaskScheduled" and details.get("resourceType") == "lambda":
        try:
            resource = json.loads(details.get("parameters") or "{}").get("FunctionName")
        except json.JSONDecodeError:
            return None
    return resource if isinstance(resource, str) else None


class _HistoryWalk:
    """Reads GetExecutionHistory events in order (see analyse_history)."""

    def __init__(self) -> None:
        self.facts = HistoryFacts()
        self._open_states: dict[str, datetime] = {}
        self._scheduled_in_state: dict[str, int] = {}
        self._current_state: str | None = None
        # scheduled/started event id -> (function name, when it started)
        self._lambda_started: dict[int, tuple[str, datetime]] = {}

    def step(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            self._entered(event["stateEnteredEventDetails"]["name"], event["timestamp"])
        elif kind.endswith("StateExited"):
            self._exited(event["stateExitedEventDetails"]["name"], event["timestamp"])
        elif kind in _SCHEDULED:
            self._scheduled(event)
        elif kind in ("LambdaFunctionStarted", "TaskStarted"):
            previous = self._lambda_started.pop(event.get("previousEventId", -1), None)
            if previous is not None:  # run time starts here
                self._lambda_started[event["id"]] = (previous[0], event["timestamp"])
        elif kind in _LAMBDA_END or kind in _TASK_END:
            started = self._lambda_started.pop(event.get("previousEventId", -1), None)
            if started is not None:
                seconds = (event["timestamp"] - started[1]).total_seconds()
                self.facts.lambda_runs.append((started[0], max(seconds, 0.0)))

    def _entered(self, name: str, ts: datetime) -> None:
        self.facts.transitions += 1
        self._open_states[name] = ts
        self._scheduled_in_state[name] = 0
        self._current_state = name

    def _exited(self, name: str, ts: datetime) -> None:
        entered = self._open_states.pop(name, None)
        if entered is not None:
            durations = self.facts.state_durations
            durations[name] = durations.get(name, 0.0) + (ts - entered).total_seconds()

    def _scheduled(self, event: Mapping[str, Any]) -> None:
        state = self._current_state
        if state is not None:
            self._scheduled_in_state[state] = self._scheduled_in_state.get(state, 0) + 1
            if self._scheduled_in_state[state] > 1:
                self.facts.retries += 1
        resource = _lambda_resource(event)
        if resource:
            self._lambda_started[event["id"]] = (function_name(resource), event["timestamp"])

    def finish(self) -> HistoryFacts:
        self.facts.transitions += self.facts.retries
        self.facts.state_durations = {k: round(v, 3)
                                      for k, v in self.facts.state_durations.items()}
        return self.facts


def analyse_history(events: Iterable[Mapping[str, Any]]) -> HistoryFacts:
    """Transitions, per-state durations and Lambda run times from GetExecutionHistory events.

    Transitions are the states entered plus the retries of their tasks (Standard workflows bill
    each). A state entered several times (a polling loop) adds up its durations; the state still
    running (TrackCost itself) has no exit yet and is left out.
    """
    walk = _HistoryWalk()
    for event in sorted(events, key=lambda e: e["id"]):
        walk.step(event)
    return walk.finish()


def price_orchestration(facts: HistoryFacts, card: RateCard, region: str,
                        lambda_architecture: str,
                        memory_mb: Callable[[str], int | None]) -> Component:
    """Step Functions Standard transitions + Lambda GB-seconds and requests of this execution.

    Lambda bills run time rounded up to the millisecond x configured memory; the memory of each
    function comes from `memory_mb(function name)` (environment), since the history does not
    carry it.
    """
    component = Component("orchestration")
    try:
        rates = card.orchestration(region, lambda_architecture)
    except Unpriced as e:
        component.error(e.code, e.message)
        rates = None
    gb_seconds = 0.0
    unknown: set[str] = set()
    for name, seconds in facts.lambda_runs:
        memory = memory_mb(name)
        if memory is None:
            if name not in unknown:
                unknown.add(name)
                component.error("UnknownLambdaMemory",
                                f"no memory size configured for Lambda function {name!r} "
                                "(set LAMBDA_MEMORY_MB or LAMBDA_MEMORY_MAP)")
            continue
        gb_seconds += math.ceil(seconds * 1000) / 1000 * memory / 1024
    requests = len(facts.lambda_runs)
    component.usage = {"state_transitions": float(facts.transitions),
                       "task_retries": float(facts.retries),
                       "lambda_gb_seconds": gb_seconds, "lambda_requests": float(requests)}
    if rates is not None:
        component.usd = (facts.transitions * rates.transition + gb_seconds * rates.lambda_gb_second
                         + requests * rates.lambda_request)
        component.details = {
            "transitions_usd": _round(facts.transitions * rates.transition),
            "lambda_usd": _round(gb_seconds * rates.lambda_gb_second
                                 + requests * rates.lambda_request),
        }
    return component
