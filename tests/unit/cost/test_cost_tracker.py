"""The TrackCost logic on in-memory fakes (ledger, alerts, EMR, EMR Serverless, execution
history, rate card override), fed with the recorded API responses of tests/unit/cost/fixtures.
The handler wiring and the real adapters are tested in test_cost_handler.py and
tests/unit/contracts."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cost_helpers import load_event, recorded, set_catalog_cost

from pipeline_aws.contracts import TrackCostRequest
from pipeline_aws.cost.tracker import CostTracker, catalog_cost_limits
from pipeline_aws.settings import TrackCostSettings
from pipeline_core.errors import ConfigurationError, InvalidInput, TransientError
from tests.support.fakes import (
    FakeAlerts,
    FakeClusters,
    FakeHistory,
    FakeLedger,
    FakeRateCardOverride,
    FakeServerless,
)

APP, JOB, CLUSTER = "00fabc123def4567", "00fabc987zyx6543", "j-2AXXXXXXGAPLF"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
# hand-computed in test_cost_pricing.py
SERVERLESS_OK = 1.167 * 0.042094 + 4.668 * 0.004628  # 0.070727202
ORCH_SERVERLESS = 18 * 0.000025 + 2.5 * 0.0000133334 + 5 * 0.0000002
ORCH_CLUSTER = 8 * 0.000025 + (1.0 + 2.0) * 0.5 * 0.0000133334 + 2 * 0.0000002


def _events(*pages: str) -> list[dict[str, Any]]:
    return [e for page in pages for e in recorded(page)["events"]]


class RecordingMetrics:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **values: Any) -> None:
        self.published.append(values)


@dataclass
class World:
    environ: dict[str, str]
    ledger: FakeLedger = field(default_factory=lambda: FakeLedger(clock=lambda: NOW))
    alerts: FakeAlerts = field(default_factory=FakeAlerts)
    clusters: FakeClusters = field(default_factory=FakeClusters)
    serverless: FakeServerless = field(default_factory=FakeServerless)
    history: FakeHistory = field(default_factory=FakeHistory)
    metrics: RecordingMetrics = field(default_factory=RecordingMetrics)
    override: FakeRateCardOverride | None = None

    def tracker(self) -> CostTracker:
        settings = TrackCostSettings.from_environ(self.environ)
        return CostTracker(settings=settings, serverless=self.serverless,
                           clusters=self.clusters, history=self.history, ledger=self.ledger,
                           alerts=self.alerts, metrics=self.metrics,
                           cost_limits=catalog_cost_limits(settings.catalog_dir),
                           override=self.override, clock=lambda: NOW)

    def track(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.tracker().track(TrackCostRequest.parse(event))

    def serverless_run(self, event: dict[str, Any]) -> None:
        """What a succeeded serverless run left behind: its job run and its history."""
        self.serverless.job_runs[(APP, JOB)] = recorded("get_job_run_arm_success.json")["jobRun"]
        self.history.histories[event["execution"]["Id"]] = _events(
            "history_serverless_page1.json", "history_serverless_page2.json")

    def put_run(self, event: dict[str, Any], **extra: Any) -> None:
        run = event["state"]["run"]
        self.ledger.put({"run_id": run["run_id"], "dataset": run["dataset"],
                         "started_at": run["started_at"], "status": "RUNNING", **extra})

    def cost(self, run_id: str) -> dict[str, Any]:
        item = self.ledger.get(run_id)
        assert item is not None
        cost: dict[str, Any] = item["cost"]
        return cost


@pytest.fixture
def world(env: dict[str, str]) -> World:
    return World(dict(env))


def test_a_serverless_run_is_priced_recorded_and_published(world: World):
    event = load_event("serverless_succeeded.json")
    world.serverless_run(event)
    world.put_run(event)

    result = world.track(event)

    assert result["components"] == {"serverless": pytest.approx(SERVERLESS_OK),
                                    "orchestration": pytest.approx(ORCH_SERVERLESS)}
    assert result["errors"] == []
    cost = world.cost(event["state"]["run"]["run_id"])
    assert cost["complete"] is True and cost["compute"] == "serverless"
    assert cost["tracked_at"] == "2026-11-21T12:00:00Z"
    [published] = world.metrics.published
    assert published["dataset"] == "online_retail" and published["compute"] == "serverless"
    assert published["total_usd"] == pytest.approx(result["total_usd"])
    assert world.alerts.published == []


def test_ended_at_set_by_an_earlier_writer_is_kept(world: World):
    event = load_event("serverless_succeeded.json")
    world.serverless_run(event)
    world.put_run(event, ended_at="2026-11-21T10:07:59Z")
    world.track(event)
    item = world.ledger.item(event["state"]["run"]["run_id"])
    assert item is not None
    assert item["ended_at"] == "2026-11-21T10:07:59Z"
    assert item["state_durations"]["WaitForLoad"] == Decimal("6.0")


def test_run_over_its_ceiling_alerts(world: World, catalog_dir: Path):
    set_catalog_cost(catalog_dir, max_run_usd=0.05, monthly_budget_usd=50.0)
    event = load_event("serverless_succeeded.json")
    world.serverless_run(event)
    world.put_run(event)
    world.track(event)
    alerts = world.alerts.published
    assert len(alerts) == 1
    assert alerts[0].attributes["budget"] == "run"
    assert "over the per-run ceiling" in json.dumps(alerts[0].document())
    assert world.alerts.subjects() == ["[dev] online_retail: run cost $0.07 over its ceiling"]
    budget = world.cost(event["state"]["run"]["run_id"])["budget"]
    assert budget["over_run_ceiling"] is True and budget["crossed_monthly_budget"] is False


def test_monthly_budget_alerts_once_when_crossed(world: World):
    # earlier runs this month cost 49.95 of the 50.00 budget; one run of last month is ignored
    for i, (started, usd) in enumerate([("2026-11-02T10:00:00Z", "30.00"),
                                        ("2026-11-12T10:00:00Z", "19.95"),
                                        ("2026-10-30T10:00:00Z", "40.00")]):
        world.ledger.put({"run_id": f"online_retail-earlier-{i}", "dataset": "online_retail",
                          "started_at": started, "status": "SUCCEEDED",
                          "cost": {"total_usd": Decimal(usd)}})
    first = load_event("serverless_succeeded.json")
    second = copy.deepcopy(first)
    second["state"]["run"]["run_id"] += "-r2"
    second["state"]["run"]["started_at"] = "2026-11-21T12:00:00Z"
    second["execution"]["Id"] += "-r2"
    second["execution"]["Name"] += "-r2"
    for event in (first, second):
        world.serverless_run(event)
        world.put_run(event)

    world.track(first)
    alerts = world.alerts.published
    assert [a.attributes["budget"] for a in alerts] == ["monthly"]
    assert "$50.02" in json.dumps(alerts[0].document())

    world.track(second)
    assert len(world.alerts.published) == 1  # already over: this crossing was alerted once
    budget = world.cost(second["state"]["run"]["run_id"])["budget"]
    assert budget["month"] == "2026-11"
    assert float(budget["month_total_usd"]) == pytest.approx(49.95 + 2 * SERVERLESS_OK
                                                             + 2 * ORCH_SERVERLESS, abs=1e-5)
    assert budget["crossed_monthly_budget"] is False


def test_rate_card_override(world: World):
    world.override = FakeRateCardOverride("/emr-pipelines/dev/rate-card", json.dumps(
        {"regions": {"eu-west-1": {"emr_serverless": {"arm64": {"vcpu_hour": 0.03}}}}}))
    event = load_event("serverless_succeeded.json")
    world.serverless_run(event)
    result = world.track(event)
    assert result["components"]["serverless"] == pytest.approx(1.167 * 0.03 + 4.668 * 0.004628)


def test_missing_override_uses_list_prices_and_says_so(world: World):
    world.override = FakeRateCardOverride("/emr-pipelines/dev/missing", None)
    event = load_event("serverless_succeeded.json")
    world.serverless_run(event)
    result = world.track(event)
    assert result["components"]["serverless"] == pytest.approx(SERVERLESS_OK)
    assert [e["code"] for e in result["errors"]] == ["RateCardOverrideUnavailable"]


def test_architecture_from_get_application_when_not_configured(world: World):
    del world.environ["EMR_SERVERLESS_ARCHITECTURE"]
    world.serverless.architectures[APP] = recorded("get_application.json")["application"][
        "architecture"]
    event = load_event("serverless_succeeded.json")
    world.serverless_run(event)
    result = world.track(event)
    assert world.serverless.calls == ["job_run", "architecture"]
    assert result["components"]["serverless"] == pytest.approx(SERVERLESS_OK)


def test_throttling_escapes_for_the_state_machine_to_retry(world: World):
    event = load_event("serverless_succeeded.json")
    world.serverless_run(event)
    world.serverless.fail["job_run"] = TransientError(
        f"GetJobRun {APP}/{JOB} failed (ThrottlingException): Rate exceeded")
    with pytest.raises(TransientError):
        world.track(event)


def test_unreadable_cluster_is_recorded_unpriced_and_the_rest_is_kept(world: World):
    event = load_event("cluster_step_failed.json")
    world.clusters.fail["collection_type"] = ConfigurationError(
        f"describing EMR cluster {CLUSTER} failed (AccessDeniedException): not authorized to "
        "perform: elasticmapreduce:DescribeCluster: the function's role lacks this permission")
    world.history.histories[event["execution"]["Id"]] = _events("history_cluster_failed.json")
    world.put_run(event)
    result = world.track(event)
    assert result["components"] == {"cluster": None,
                                    "orchestration": pytest.approx(ORCH_CLUSTER, abs=1e-9)}
    assert [(e["component"], e["code"]) for e in result["errors"]] == [
        ("cluster", "ConfigurationError")]
    cost = world.cost(event["state"]["run"]["run_id"])
    assert cost["complete"] is False and cost["components"]["cluster"]["priced"] is False


def test_a_cluster_is_priced_from_its_fleet_and_instances(world: World):
    event = load_event("cluster_step_failed.json")
    world.clusters.add(
        CLUSTER, collection_type=recorded("describe_cluster_fleet.json")["Cluster"][
            "InstanceCollectionType"],
        instance_fleets=recorded("list_instance_fleets.json")["InstanceFleets"],
        instances=(recorded("list_instances_fleet_page1.json")["Instances"]
                   + recorded("list_instances_fleet_page2.json")["Instances"]))
    world.history.histories[event["execution"]["Id"]] = _events("history_cluster_failed.json")
    result = world.track(event)
    assert result["components"]["cluster"] == pytest.approx(0.21027459977, abs=1e-6)
    assert world.metrics.published[0]["compute"] == "cluster"


def test_invalid_event_is_invalid_input():
    with pytest.raises(InvalidInput, match="execution"):
        TrackCostRequest.parse({"state": {}, "state_name": "TrackCost"})
