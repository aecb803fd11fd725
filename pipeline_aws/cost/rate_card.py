"""The rate card: list prices from `rate_card.json`, optionally overridden by an SSM parameter.

Every lookup either returns a price or raises `Unpriced` naming what is missing, so that a run
in an unknown region, on an unknown instance type or architecture is reported, never priced at
zero.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_core.errors import ConfigurationError

RATE_CARD_FILE = Path(__file__).resolve().parent / "rate_card.json"
ARCHITECTURES = ("arm64", "x86_64")


class Unpriced(Exception):
    """A price the rate card does not have: the component it belongs to stays unpriced."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def normalize_architecture(value: str) -> str:
    """EMR Serverless says ARM64 / X86_64, Lambda says arm64 / x86_64: one spelling here."""
    arch = (value or "").strip().lower().replace("-", "_")
    if arch not in ARCHITECTURES:
        raise Unpriced("UnknownArchitecture", f"architecture {value!r} is not one of ARM64, X86_64")
    return arch


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` wins key by key; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _amount(entry: Any, where: str, field: str = "usd") -> float:
    """A price is `{"usd": n, "src": ..., "taken": ...}`, or a bare number in an override."""
    value = entry.get(field) if isinstance(entry, Mapping) else entry
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigurationError(f"rate card {where}: expected a number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ServerlessRates:
    vcpu_hour: float
    memory_gb_hour: float
    storage_gb_hour: float


@dataclass(frozen=True)
class InstanceRates:
    on_demand_hour: float
    emr_uplift_hour: float
    spot_fraction: float
    vcpu: int | None
    memory_gib: float | None


@dataclass(frozen=True)
class OrchestrationRates:
    transition: float
    lambda_gb_second: float
    lambda_request: float


class RateCard:
    """Typed lookups over the merged rate card document."""

    def __init__(self, data: Mapping[str, Any]):
        if not isinstance(data, Mapping) or not isinstance(data.get("regions"), Mapping):
            raise ConfigurationError("rate card: a JSON object with a 'regions' object is required")
        self.data = data
        self.version = str(data.get("version", "unknown"))
        constants = data.get("constants", {})
        self.free_storage_gb_per_worker = _amount(
            constants.get("emr_serverless_free_storage_gb_per_worker", 20), "free storage", "value")
        self.ec2_minimum_seconds = _amount(
            constants.get("ec2_minimum_seconds", 60), "minimum", "value")
        self.hours_per_month = _amount(constants.get("hours_per_month", 730), "hours", "value")

    def _region(self, region: str) -> Mapping[str, Any]:
        regions: Mapping[str, Mapping[str, Any]] = self.data["regions"]
        if region not in regions:
            known = ", ".join(sorted(regions))
            raise Unpriced("UnknownRegion",
                           f"region {region!r} is not in the rate card (has: {known})")
        return regions[region]

    def _section(self, region: str, name: str) -> Mapping[str, Any]:
        section = self._region(region).get(name)
        if not isinstance(section, Mapping):
            raise Unpriced("UnknownRegion", f"the rate card has no {name} prices for {region}")
        return section

    def serverless(self, region: str, architecture: str) -> ServerlessRates:
        arch = normalize_architecture(architecture)
        rates = self._section(region, "emr_serverless").get(arch)
        if not isinstance(rates, Mapping):
            raise Unpriced("UnknownArchitecture",
                           f"the rate card has no EMR Serverless {arch} prices for {region}")
        where = f"regions.{region}.emr_serverless.{arch}"
        return ServerlessRates(
            vcpu_hour=_amount(rates.get("vcpu_hour"), f"{where}.vcpu_hour"),
            memory_gb_hour=_amount(rates.get("memory_gb_hour"), f"{where}.memory_gb_hour"),
            storage_gb_hour=_amount(rates.get("storage_gb_hour"), f"{where}.storage_gb_hour"),
        )

    def instance(self, region: str, instance_type: str) -> InstanceRates:
        entry = self._section(region, "ec2").get(instance_type)
        if not isinstance(entry, Mapping):
            raise Unpriced("UnknownInstanceType",
                           f"instance type {instance_type!r} has no EC2/EMR price for {region}")
        where = f"regions.{region}.ec2.{instance_type}"
        spot = self.data.get("spot", {}).get("fraction_of_on_demand", {})
        fraction_entry = spot.get(instance_type, spot.get("default"))
        if fraction_entry is None:
            raise ConfigurationError("rate card: spot.fraction_of_on_demand.default is missing")
        fraction = _amount(fraction_entry, f"spot.fraction_of_on_demand.{instance_type}", "value")
        spec = self.data.get("instance_types", {}).get(instance_type, {})
        return InstanceRates(
            on_demand_hour=_amount(entry.get("on_demand_hour"), f"{where}.on_demand_hour"),
            emr_uplift_hour=_amount(entry.get("emr_uplift_hour"), f"{where}.emr_uplift_hour"),
            spot_fraction=fraction,
            vcpu=spec.get("vcpu"),
            memory_gib=spec.get("memory_gib"),
        )

    def ebs_gb_month(self, region: str, volume_type: str) -> float:
        key = f"{(volume_type or '').lower()}_gb_month"
        ebs = self._section(region, "ebs")
        if key not in ebs:
            raise Unpriced("UnknownVolumeType",
                           f"EBS volume type {volume_type!r} has no price for {region}")
        return _amount(ebs[key], f"regions.{region}.ebs.{key}")

    def orchestration(self, region: str, lambda_architecture: str) -> OrchestrationRates:
        arch = normalize_architecture(lambda_architecture)
        sfn = self._section(region, "step_functions")
        lam = self._section(region, "lambda")
        if f"{arch}_gb_second" not in lam or "standard_transition" not in sfn:
            raise Unpriced("UnknownRegion",
                           f"the rate card lacks Step Functions/Lambda prices for {region}")
        return OrchestrationRates(
            transition=_amount(sfn["standard_transition"], f"regions.{region}.step_functions"),
            lambda_gb_second=_amount(lam[f"{arch}_gb_second"], f"regions.{region}.lambda"),
            lambda_request=_amount(lam.get("request"), f"regions.{region}.lambda.request"),
        )


def load_rate_card(override: Mapping[str, Any] | None = None,
                   path: Path | str | None = None) -> RateCard:
    """The packaged rate card, with `override` (same shape) deep-merged over it."""
    file = Path(path) if path else RATE_CARD_FILE
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigurationError(f"rate card {file} cannot be read: {e}") from e
    if override:
        if not isinstance(override, Mapping):
            raise ConfigurationError("rate card override: expected a JSON object")
        data = deep_merge(data, override)
    return RateCard(data)
