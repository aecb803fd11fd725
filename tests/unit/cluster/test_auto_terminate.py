"""The auto-terminator's decisions on the in-memory FakeClusters (with an injected clock), its
settings, and its handler on moto's EMR."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from pipeline_aws.auto_terminate import AutoTerminator
from pipeline_aws.contracts import ScheduledEvent
from pipeline_aws.settings import AutoTerminatorSettings
from pipeline_core.errors import ConfigurationError, InvalidInput, TransientError
from tests.support.aws import APP, emf_blobs, read_event
from tests.support.fakes.emr import FakeClusters
from tests.unit.cluster.conftest import NOW, TERMINATOR_ENV, Aws, fresh_import

HOUR = timedelta(hours=1)
OURS = {"pipeline:app": APP, "pipeline:environment": "dev"}


class RecordingMetrics:
    def __init__(self) -> None:
        self.published: list[tuple[int, float]] = []

    def publish(self, terminated: int, idle_minutes_saved: float) -> None:
        self.published.append((terminated, idle_minutes_saved))


def settings(**overrides: str) -> AutoTerminatorSettings:
    environ = {"ENVIRONMENT": "dev", "APP_NAME": APP, **TERMINATOR_ENV}
    environ.update(overrides)
    return AutoTerminatorSettings.from_environ(environ)


def sweep(clusters: FakeClusters, now: datetime = NOW,
          **overrides: str) -> tuple[dict[str, Any], RecordingMetrics]:
    metrics = RecordingMetrics()
    terminator = AutoTerminator(clusters, settings(**overrides), metrics, clock=lambda: now)
    return terminator.run(), metrics


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["cluster_id"]: d for d in result["decisions"]}


def ours(clusters: FakeClusters, created: datetime, ready: datetime | None = None,
         **kwargs: Any) -> str:
    return clusters.add(tags=dict(OURS), created_at=created, ready_at=ready or created, **kwargs)


def idle_cluster(clusters: FakeClusters, idle_for: timedelta = 2 * HOUR, **kwargs: Any) -> str:
    return ours(clusters, created=NOW - idle_for - timedelta(minutes=90), ready=NOW - idle_for,
                **kwargs)


@pytest.fixture
def clusters() -> FakeClusters:
    return FakeClusters()


def test_idle_cluster_is_terminated_busy_and_foreign_ones_are_not(clusters: FakeClusters):
    idle = idle_cluster(clusters)
    busy = ours(clusters, created=NOW - 3 * HOUR, state="RUNNING")
    clusters.add_step(busy)  # as EMR: the step RUNNING, the cluster RUNNING
    untagged = clusters.add(name="someone-elses", created_at=NOW - 5 * HOUR)
    other_app = clusters.add(name="other-stack", tags={"pipeline:app": "emr-pipelines-prod"},
                             created_at=NOW - 5 * HOUR)

    result, metrics = sweep(clusters)

    decisions = by_id(result)
    assert decisions[idle]["action"] == "terminate"
    assert decisions[idle]["reason"] == "idle"
    assert decisions[idle]["result"] == "terminated"
    assert decisions[idle]["idle_minutes"] == 120.0
    assert decisions[busy]["action"] == "skip"
    assert decisions[busy]["reason"] == "not_waiting"
    assert decisions[untagged]["reason"] == "not_ours"
    assert decisions[other_app]["reason"] == "not_ours"
    assert clusters.state(idle) == "TERMINATED"
    assert {clusters.state(c) for c in (busy,)} == {"RUNNING"}
    assert {clusters.state(c) for c in (untagged, other_app)} == {"WAITING"}
    assert result["terminated"] == 1
    assert metrics.published[0][0] == 1


def test_a_waiting_cluster_with_a_pending_step_is_busy(clusters: FakeClusters):
    cluster_id = idle_cluster(clusters)
    clusters.add_step(cluster_id, state="PENDING")

    result, _ = sweep(clusters)

    assert by_id(result)[cluster_id]["reason"] == "steps_active"
    assert clusters.state(cluster_id) == "WAITING"


def test_idle_time_counts_from_the_last_step_end_not_from_ready(clusters: FakeClusters):
    recent = ours(clusters, created=NOW - 5 * HOUR)
    clusters.add_step(recent, "COMPLETED", ended_at=NOW - timedelta(minutes=10))
    old = ours(clusters, created=NOW - 5 * HOUR)
    clusters.add_step(old, "FAILED", ended_at=NOW - timedelta(minutes=45))

    result, _ = sweep(clusters)

    decisions = by_id(result)
    assert decisions[recent]["reason"] == "recently_active"
    assert decisions[recent]["idle_minutes"] == 10.0
    assert decisions[old]["reason"] == "idle"
    assert decisions[old]["idle_minutes"] == 45.0
    assert clusters.state(recent) == "WAITING"
    assert clusters.state(old) == "TERMINATED"


def test_a_cluster_inside_its_grace_period_is_kept_even_when_idle(clusters: FakeClusters):
    # Ready 40 minutes ago (idle past the 30 minute threshold) but created 50 minutes ago.
    young = ours(clusters, created=NOW - timedelta(minutes=50),
                 ready=NOW - timedelta(minutes=40))

    result, _ = sweep(clusters)

    assert by_id(result)[young]["reason"] == "in_grace_period"
    assert by_id(result)[young]["age_minutes"] == 50.0
    assert clusters.state(young) == "WAITING"

    later, _ = sweep(clusters, now=NOW + timedelta(minutes=15))
    assert by_id(later)[young]["reason"] == "idle"
    assert clusters.state(young) == "TERMINATED"


def test_protection_is_respected_unless_the_cluster_is_allowed(clusters: FakeClusters):
    kept = idle_cluster(clusters, termination_protected=True)
    allowed = idle_cluster(clusters, termination_protected=True)

    result, _ = sweep(clusters, ALLOW_PROTECTED_CLUSTER_IDS=f" {allowed} ,j-OTHERCLUSTER1")

    decisions = by_id(result)
    assert decisions[kept]["reason"] == "termination_protected"
    assert decisions[kept]["action"] == "skip"
    assert clusters.state(kept) == "WAITING" and clusters.clusters[kept].termination_protected
    assert decisions[allowed]["result"] == "terminated_after_removing_protection"
    assert clusters.state(allowed) == "TERMINATED"
    assert not clusters.clusters[allowed].termination_protected


def test_dry_run_decides_but_changes_nothing(clusters: FakeClusters):
    idle = idle_cluster(clusters)
    protected = idle_cluster(clusters, termination_protected=True)

    result, metrics = sweep(clusters, DRY_RUN="true", ALLOW_PROTECTED_CLUSTER_IDS=protected)

    decisions = by_id(result)
    assert result["dry_run"] is True
    for cluster_id in (idle, protected):
        assert decisions[cluster_id]["action"] == "terminate"
        assert decisions[cluster_id]["result"] == "dry_run"
        assert clusters.state(cluster_id) == "WAITING"
    assert clusters.clusters[protected].termination_protected
    assert result["terminated"] == 0
    assert metrics.published == [(0, 0.0)]


def test_every_cluster_is_swept(clusters: FakeClusters):
    # EmrClusters reads every page of ListClusters: tests/unit/contracts/test_emr_contract.py
    ids = [idle_cluster(clusters) for _ in range(53)]

    result, metrics = sweep(clusters)

    assert {d["cluster_id"] for d in result["decisions"]} == set(ids)
    assert result["terminated"] == 53
    assert {clusters.state(c) for c in ids} == {"TERMINATED"}
    assert metrics.published[0][0] == 53


def test_the_latest_step_end_counts_whatever_its_position(clusters: FakeClusters):
    # EmrClusters reads every page of ListSteps: tests/unit/contracts/test_emr_contract.py
    cluster_id = ours(clusters, created=NOW - 10 * HOUR)
    clusters.add_step(cluster_id, "COMPLETED", ended_at=NOW - timedelta(minutes=5))
    for _ in range(54):
        clusters.add_step(cluster_id, "COMPLETED", ended_at=NOW - 5 * HOUR)

    result, _ = sweep(clusters)

    assert by_id(result)[cluster_id]["reason"] == "recently_active"
    assert by_id(result)[cluster_id]["idle_minutes"] == 5.0


def test_idle_minutes_saved_come_from_the_auto_termination_policy(clusters: FakeClusters):
    with_policy = idle_cluster(clusters, idle_for=timedelta(minutes=45),
                               idle_timeout_seconds=7200)
    without_policy = idle_cluster(clusters, idle_for=timedelta(minutes=45))

    result, metrics = sweep(clusters)

    decisions = by_id(result)
    assert decisions[with_policy]["idle_minutes_saved"] == 75.0      # 120 - 45
    assert decisions[without_policy]["idle_minutes_saved"] == 30.0   # the threshold estimate
    assert metrics.published == [(2, 105.0)]


def test_a_failed_terminate_is_recorded_and_reported_after_the_others(clusters: FakeClusters,
                                                                       caplog):
    failing = idle_cluster(clusters)
    fine = idle_cluster(clusters)
    clusters.fail[("terminate", failing)] = TransientError(
        f"terminating EMR cluster {failing} failed (ThrottlingException): Rate exceeded")
    metrics = RecordingMetrics()
    terminator = AutoTerminator(clusters, settings(), metrics, clock=lambda: NOW)

    with caplog.at_level(logging.INFO), pytest.raises(TransientError, match=failing):
        terminator.run()

    assert clusters.state(fine) == "TERMINATED"
    assert clusters.state(failing) == "WAITING"
    assert metrics.published[0][0] == 1
    logged = {r.decision["cluster_id"]: r.decision for r in caplog.records
              if hasattr(r, "decision")}
    assert logged[failing]["reason"] == "error"
    assert "ThrottlingException" in logged[failing]["error"]
    assert logged[fine]["result"] == "terminated"


def test_a_cluster_gone_between_list_and_describe_is_skipped():
    class Vanishing(FakeClusters):
        def describe(self, cluster_id: str) -> None:
            return None  # terminated and deleted since the listing

    clusters = Vanishing()
    gone = idle_cluster(clusters)

    result, metrics = sweep(clusters)

    assert by_id(result)[gone] == {"cluster_id": gone, "action": "skip", "reason": "gone",
                                   "name": "", "state": "", "termination_protected": False,
                                   "dry_run": False}
    assert metrics.published == [(0, 0.0)]


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("false", False), ("true", True), ("TRUE", True), (" False ", False)])
def test_dry_run_accepts_only_true_and_false(text: str, expected: bool):
    assert settings(DRY_RUN=text).dry_run is expected


@pytest.mark.parametrize("text", ["maybe", "1", "0", "yes", "", "no"])
def test_dry_run_rejects_anything_else(text: str):
    with pytest.raises(ConfigurationError, match="DRY_RUN") as error:
        settings(DRY_RUN=text)
    assert "'true' or 'false'" in str(error.value)


@pytest.mark.parametrize("name", ["IDLE_THRESHOLD_MINUTES", "GRACE_PERIOD_MINUTES"])
@pytest.mark.parametrize("text", ["0", "-5", "1.5", "thirty", "", "20000"])
def test_minutes_must_be_positive_whole_numbers(name: str, text: str):
    with pytest.raises(ConfigurationError, match=name):
        settings(**{name: text})


def test_settings_parse_minutes_and_cluster_ids():
    parsed = settings(IDLE_THRESHOLD_MINUTES="45", GRACE_PERIOD_MINUTES=" 90 ",
                      ALLOW_PROTECTED_CLUSTER_IDS="j-ABC123,, j-2AB9XQ7 ")
    assert parsed.idle_threshold_minutes == 45
    assert parsed.grace_period_minutes == 90
    assert parsed.allow_protected_cluster_ids == frozenset({"j-ABC123", "j-2AB9XQ7"})


def test_a_malformed_allowed_cluster_id_is_an_error():
    with pytest.raises(ConfigurationError, match=r"ALLOW_PROTECTED_CLUSTER_IDS.*cluster-1"):
        settings(ALLOW_PROTECTED_CLUSTER_IDS="j-ABC123,cluster-1")


def test_missing_settings_are_named():
    with pytest.raises(ConfigurationError, match=r"APP_NAME.*DRY_RUN|DRY_RUN.*APP_NAME"):
        AutoTerminatorSettings.from_environ({"ENVIRONMENT": "dev",
                                             "IDLE_THRESHOLD_MINUTES": "30",
                                             "GRACE_PERIOD_MINUTES": "60"})


def test_the_schedule_event_is_validated():
    assert ScheduledEvent.parse(read_event("auto_terminator", "scheduled.json")).id
    with pytest.raises(InvalidInput, match="detail-type"):
        ScheduledEvent.parse({"id": "x", "time": "2026-11-21T10:15:00Z",
                              "detail-type": "Object Created"})


# -- the handler ------------------------------------------------------------------------------


def test_handler_terminates_and_publishes_emf_with_the_environment_dimension_only(
        aws: Aws, lambda_context, capsys, monkeypatch):
    now = datetime.now(UTC)
    idle = aws.ours()
    aws.set_times(idle, created=now - 3 * HOUR, ready=now - 2 * HOUR)
    young = aws.ours()
    aws.set_times(young, created=now - timedelta(minutes=5))
    # The handler's clients come from boto3's default session: answer the one EMR call moto
    # 5.2.5 lacks (GetAutoTerminationPolicy) there, with EMR's answer for "no policy".
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register(
        "before-call.emr.GetAutoTerminationPolicy",
        lambda **_: (SimpleNamespace(status_code=200, headers={}), {}))
    module = fresh_import("functions.auto_terminator.app")

    result = module.lambda_handler(read_event("auto_terminator", "scheduled.json"),
                                   lambda_context)

    assert result["trigger_id"] == "89d1a02d-5ec7-412e-82f5-13505f849b41"
    assert by_id(result)[idle]["result"] == "terminated"
    assert by_id(result)[young]["reason"] == "in_grace_period"
    assert aws.state(idle) == "TERMINATED"
    blobs = emf_blobs(capsys.readouterr().out)
    assert len(blobs) == 1
    blob = blobs[0]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["environment"]]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "EmrPipelines"
    assert blob["environment"] == "dev"
    assert blob["ClustersTerminated"] == [1.0]
    assert blob["IdleMinutesSaved"] == [30.0]  # moto has no policy: the threshold estimate
    assert "service" not in blob


def test_handler_refuses_to_start_with_a_bad_dry_run(env, monkeypatch):
    monkeypatch.setenv("DRY_RUN", "maybe")
    with pytest.raises(ConfigurationError, match="DRY_RUN"):
        fresh_import("functions.auto_terminator.app")
