"""The EMR on EC2 stand-in's instances: what a cluster made of instance fleets runs, and for how
long, so the cost tracker bills it as AWS would (moto 5.2.5 keeps no instances for fleets).

RunJobFlow with `Instances.InstanceFleets` gives each fleet its instances: the fleet's first
instance type (WeightedCapacity 1 unless given), as many as its on-demand and Spot targets ask
for, each with the type's EBS volumes. They start when the cluster is created and end when it
terminates. ListInstances, ListInstanceFleets and DescribeCluster (InstanceCollectionType
INSTANCE_FLEET) answer from them. The tracker (pipeline_aws.cost.pricing.price_cluster) turns
those lifetimes into per-second billed time with EC2's one-minute minimum ("Amazon EMR pricing":
https://aws.amazon.com/emr/pricing/, per-second billing with a one-minute minimum).
"""

from __future__ import annotations

import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult

from local_runtime.sfn_hooks import EMR_RESPONSES, current

_lock = threading.Lock()


@dataclass
class LocalFleet:
    fleet_id: str
    name: str
    fleet_type: str
    # (instance type, market) of each instance the fleet launched
    instances: list[tuple[str, str]]
    type_specs: list[dict[str, Any]]
    ids: list[str] = field(default_factory=list)


def _volumes(type_config: dict[str, Any]) -> list[dict[str, Any]]:
    """EbsBlockDevices as ListInstanceFleets names them: one entry per attached volume."""
    out: list[dict[str, Any]] = []
    ebs = type_config.get("EbsConfiguration") or {}
    for device in ebs.get("EbsBlockDeviceConfigs") or []:
        spec = dict(device.get("VolumeSpecification") or {})
        out.extend({"VolumeSpecification": spec, "Device": f"/dev/sd{chr(ord('b') + i)}"}
                   for i in range(int(device.get("VolumesPerInstance", 1))))
    return out


def fleet_instances(fleet: dict[str, Any]) -> LocalFleet:
    """One RunJobFlow InstanceFleetConfig -> the instances it launches."""
    configs = fleet.get("InstanceTypeConfigs") or []
    if not configs:
        raise ValueError(f"instance fleet {fleet.get('Name')!r} has no InstanceTypeConfigs")
    chosen = configs[0]
    weight = float(chosen.get("WeightedCapacity", 1))
    instances: list[tuple[str, str]] = []
    for market, target in (("ON_DEMAND", fleet.get("TargetOnDemandCapacity", 0)),
                           ("SPOT", fleet.get("TargetSpotCapacity", 0))):
        count = math.ceil(float(target or 0) / weight)
        instances += [(chosen["InstanceType"], market)] * count
    specs = [{"InstanceType": c["InstanceType"],
              "WeightedCapacity": int(c.get("WeightedCapacity", 1)),
              "EbsBlockDevices": _volumes(c)} for c in configs]
    return LocalFleet("if-" + uuid.uuid4().hex[:13].upper(), str(fleet.get("Name", "")),
                      str(fleet.get("InstanceFleetType", "")), instances, specs)


FLEETS: dict[str, list[LocalFleet]] = {}  # cluster id -> its fleets


def instances_of(cluster: Any) -> list[dict[str, Any]]:
    """ListInstances of a fleet cluster: every instance, with the cluster's lifetime."""
    ended: datetime | None = cluster.end_datetime
    state = "TERMINATED" if ended is not None else "RUNNING"
    out = []
    for fleet in FLEETS.get(cluster.id, []):
        for instance_id, (itype, market) in zip(fleet.ids, fleet.instances, strict=True):
            timeline: dict[str, Any] = {"CreationDateTime": cluster.creation_datetime,
                                        "ReadyDateTime": cluster.creation_datetime}
            if ended is not None:
                timeline["EndDateTime"] = ended
            out.append({"Id": instance_id, "Ec2InstanceId": instance_id,
                        "InstanceFleetId": fleet.fleet_id, "InstanceType": itype,
                        "Market": market, "Status": {"State": state, "Timeline": timeline}})
    return out


def fleets_of(cluster: Any) -> list[dict[str, Any]]:
    out = []
    for fleet in FLEETS.get(cluster.id, []):
        on_demand = sum(1 for _, market in fleet.instances if market == "ON_DEMAND")
        out.append({"Id": fleet.fleet_id, "Name": fleet.name,
                    "InstanceFleetType": fleet.fleet_type,
                    "ProvisionedOnDemandCapacity": on_demand,
                    "ProvisionedSpotCapacity": len(fleet.instances) - on_demand,
                    "InstanceTypeSpecifications": fleet.type_specs,
                    "Status": {"State": "TERMINATED" if cluster.end_datetime else "RUNNING"}})
    return out


def install() -> None:
    """Wrap moto's EMR responses (idempotent: the originals are kept once)."""
    responses = current(EMR_RESPONSES)
    with _lock:
        if getattr(responses, "_local_fleets", False):
            return
        original_run = responses.run_job_flow
        original_list = responses.list_instances

        def run_job_flow(self: Any) -> ActionResult:
            fleets = [fleet_instances(f)
                      for f in self._get_param("Instances.InstanceFleets") or []]
            result = original_run(self)
            if fleets:
                cluster_id = result.result["JobFlowId"]
                for fleet in fleets:
                    fleet.ids = ["i-" + uuid.uuid4().hex[:17] for _ in fleet.instances]
                FLEETS[cluster_id] = fleets
                self.backend.clusters[cluster_id].instance_collection_type = "INSTANCE_FLEET"
            return result

        def list_instances(self: Any) -> ActionResult:
            cluster = self.backend.describe_cluster(self._get_param("ClusterId"))
            if cluster.id not in FLEETS:
                return original_list(self)
            return ActionResult({"Instances": instances_of(cluster)})

        def list_instance_fleets(self: Any) -> ActionResult:
            cluster = self.backend.describe_cluster(self._get_param("ClusterId"))
            return ActionResult({"InstanceFleets": fleets_of(cluster)})

        responses.run_job_flow = run_job_flow
        responses.list_instances = list_instances
        responses.list_instance_fleets = list_instance_fleets
        responses._local_fleets = True
