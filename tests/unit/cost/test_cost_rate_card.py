"""The rate card file: its coverage, its provenance, overrides, and the budget rules."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from pipeline_aws.cost.budget import crossed_monthly_budget, month_start, over_run_ceiling
from pipeline_aws.cost.rate_card import RATE_CARD_FILE, Unpriced, load_rate_card
from pipeline_core.errors import ConfigurationError

REGIONS = ("us-east-1", "eu-west-1", "eu-west-2")
TYPES = [f"{family}.{size}" for family in ("m5", "m6g", "m7g", "r5", "r6g", "r7g", "c6g", "c7g")
         for size in ("xlarge", "2xlarge")]


def _prices(node, path=""):
    """Every {"usd": ...} or {"value": ...} leaf with its path."""
    if isinstance(node, dict):
        if "usd" in node or "value" in node:
            yield path, node
        else:
            for key, value in node.items():
                yield from _prices(value, f"{path}.{key}")


def test_every_price_names_a_known_source_and_the_date_it_was_taken():
    data = json.loads(RATE_CARD_FILE.read_text())
    leaves = list(_prices({"regions": data["regions"], "spot": data["spot"]}))
    assert len(leaves) > 3 * (18 * 2 + 6 + 2 + 1 + 3)
    for path, leaf in leaves:
        assert leaf["src"] in data["sources"], path
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", leaf["taken"]), path
    assert any("list prices" in line.lower() for line in data["_about"])
    assert any("RATE_CARD_PARAMETER" in line for line in data["_about"])


@pytest.mark.parametrize("region", REGIONS)
def test_required_regions_types_and_architectures_are_priced(card, region):
    for arch in ("ARM64", "X86_64"):
        rates = card.serverless(region, arch)
        assert rates.vcpu_hour > 0 and rates.memory_gb_hour > 0 and rates.storage_gb_hour > 0
    assert card.serverless(region, "ARM64").vcpu_hour < card.serverless(region, "X86_64").vcpu_hour
    for itype in TYPES:
        rates = card.instance(region, itype)
        assert 0 < rates.emr_uplift_hour < rates.on_demand_hour
        assert rates.vcpu in (4, 8)
    assert card.ebs_gb_month(region, "gp3") > 0
    orchestration = card.orchestration(region, "arm64")
    assert orchestration.transition == 0.000025
    assert orchestration.lambda_gb_second < card.orchestration(region, "x86_64").lambda_gb_second


def test_lookups_of_unknown_things_raise_unpriced(card):
    with pytest.raises(Unpriced) as e:
        card.instance("eu-west-1", "x9z.mega")
    assert e.value.code == "UnknownInstanceType"
    with pytest.raises(Unpriced) as e:
        card.orchestration("sa-east-1", "arm64")
    assert e.value.code == "UnknownRegion"
    with pytest.raises(Unpriced) as e:
        card.ebs_gb_month("eu-west-1", "io2")
    assert e.value.code == "UnknownVolumeType"


def test_override_is_merged_over_the_file_and_accepts_bare_numbers():
    card = load_rate_card({
        "regions": {"eu-west-1": {"ec2": {"m7g.xlarge": {"on_demand_hour": 0.1}},
                                  "emr_serverless": {"arm64": {"vcpu_hour": {"usd": 0.03}}}},
                    "ap-southeast-2": {"ec2": {"m7g.xlarge": {"on_demand_hour": 0.2,
                                                              "emr_uplift_hour": 0.05}}}},
        "spot": {"fraction_of_on_demand": {"m7g.xlarge": 0.3}},
    })
    rates = card.instance("eu-west-1", "m7g.xlarge")
    assert rates.on_demand_hour == 0.1 and rates.emr_uplift_hour == 0.0408  # kept from the file
    assert rates.spot_fraction == 0.3
    assert card.instance("eu-west-1", "m6g.xlarge").spot_fraction == 0.4
    assert card.serverless("eu-west-1", "ARM64").vcpu_hour == 0.03
    assert card.serverless("eu-west-1", "ARM64").memory_gb_hour == 0.004628
    assert card.instance("ap-southeast-2", "m7g.xlarge").on_demand_hour == 0.2


def test_a_broken_override_is_a_configuration_error():
    broken = {"regions": {"eu-west-1": {"ec2": {"m7g.xlarge": {"on_demand_hour": -1}}}}}
    card = load_rate_card(broken)
    with pytest.raises(ConfigurationError, match="on_demand_hour"):
        card.instance("eu-west-1", "m7g.xlarge")
    with pytest.raises(ConfigurationError):
        load_rate_card({"regions": "everywhere"})


def test_monthly_budget_alerts_only_for_the_run_that_crosses_it():
    assert crossed_monthly_budget(49.95, 0.07, 50.0)
    assert not crossed_monthly_budget(50.02, 0.07, 50.0)  # already over: no second alert
    assert not crossed_monthly_budget(10.0, 0.07, 50.0)
    assert crossed_monthly_budget(50.0, 0.01, 50.0)  # at the budget, then over it
    assert not crossed_monthly_budget(49.0, 1.0, 50.0)  # reaching it exactly is not over
    assert not crossed_monthly_budget(100.0, 1.0, None)


def test_run_ceiling_and_month_start():
    assert over_run_ceiling(2.01, 2.0) and not over_run_ceiling(2.0, 2.0)
    assert not over_run_ceiling(99.0, None)
    now = datetime(2026, 11, 21, tzinfo=UTC)
    assert month_start("2026-10-31T23:59:59Z", now) == "2026-10-01T00:00:00Z"
    assert month_start(None, now) == "2026-11-01T00:00:00Z"


def test_month_start_reads_a_zoneless_started_at_as_utc(monkeypatch):
    """A zoneless ledger time is UTC (pipeline_aws.ledger.parse_iso_utc), not the machine's zone:
    under TZ=America/New_York, 2026-10-31T23:30 must stay in October."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")  # UTC-4 then: a local reading is Nov 1, 03:30Z
    time.tzset()
    try:
        now = datetime(2026, 11, 21, tzinfo=UTC)
        assert month_start("2026-10-31T23:30:00", now) == "2026-10-01T00:00:00Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
