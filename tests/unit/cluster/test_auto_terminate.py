"""The auto-terminator against moto's EMR, with an injected clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto.emr.models import emr_backends

from pipeline_aws.auto_terminate import AutoTerminator, Settings, parse_scheduled_event
from pipeline_aws.cleanup import EmrClusters
from pipeline_core.errors import ConfigurationError, InvalidInput, TransientError
from tests.unit.cluster.conftest import (
    ACCOUNT,
    APP,
    NOW,
    REGION,
    Aws,
    emf_lines,
    fresh_import,
    load_event,
)

HOUR = timedelta(hours=1)


class RecordingMetrics:
    def __init__(self) -> None:
        self.published: list[tuple[int, float]] = []

    def publish(self, terminated: int, idle_minutes_saved: float) -> None:
        self.published.append((terminated, idle_minutes_saved))


def settings(**overrides: str) -> Settings:
    environ = {"ENVIRONMENT": "dev", "APP_NAME": APP, "IDLE_THRESHOLD_MINUTES": "30",
               "GRACE_PERIOD_MINUTES": "60", "DRY_RUN": "false",
               "ALLOW_PROTECTED_CLUSTER_IDS": ""}
    environ.update(overrides)
    return Settings.from_environ(environ)


def sweep(aws: Aws, now: datetime = NOW, **overrides: str) -> tuple[dict[str, Any],
                                                                    RecordingMetrics]:
    metrics = RecordingMetrics()
    terminator = AutoTerminator(EmrClusters(aws.emr), settings(**overrides), metrics,
                                clock=lambda: now)
    return terminator.run(), metrics


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["cluster_id"]: d for d in result["decisions"]}


def idle_cluster(aws: Aws, idle_for: timedelta = 2 * HOUR, **kwargs: Any) -> str:
    cluster_id = aws.ours(**kwargs)
    aws.set_times(cluster_id, created=NOW - idle_for - timedelta(minutes=90),
                  ready=NOW - idle_for)
    return cluster_id


def test_idle_cluster_is_terminated_busy_and_foreign_ones_are_not(aws: Aws):
    idle = idle_cluster(aws)
    busy = aws.ours()
    aws.set_times(busy, created=NOW - 3 * HOUR)
    aws.add_step(busy)  # moto: the step RUNNING, the cluster RUNNING
    untagged = aws.cluster(name="someone-elses")
    other_app = aws.cluster(name="other-stack", tags={"pipeline:app": "emr-pipelines-prod"})
    for foreign in (untagged, other_app):
        aws.set_times(foreign, created=NOW - 5 * HOUR)

    result, metrics = sweep(aws)

    decisions = by_id(result)
    assert decisions[idle]["action"] == "terminate"
    assert decisions[idle]["reason"] == "idle"
    assert decisions[idle]["result"] == "terminated"
    assert decisions[idle]["idle_minutes"] == 120.0
    assert decisions[busy]["action"] == "skip"
    assert decisions[busy]["reason"] == "not_waiting"
    assert decisions[untagged]["reason"] == "not_ours"
    assert decisions[other_app]["reason"] == "not_ours"
    assert aws.state(idle) == "TERMINATED"
    assert {aws.state(c) for c in (busy,)} == {"RUNNING"}
    assert {aws.state(c) for c in (untagged, other_app)} == {"WAITING"}
    assert result["terminated"] == 1
    assert metrics.published[0][0] == 1


def test_a_waiting_cluster_with_a_pending_step_is_busy(aws: Aws):
    cluster_id = idle_cluster(aws)
    step_id = aws.add_step(cluster_id)
    aws.set_step_state(cluster_id, step_id, "PENDING")
    aws.set_cluster_state(cluster_id, "WAITING")

    result, _ = sweep(aws)

    assert by_id(result)[cluster_id]["reason"] == "steps_active"
    assert aws.state(cluster_id) == "WAITING"


def test_idle_time_counts_from_the_last_step_end_not_from_ready(aws: Aws):
    recent = aws.ours()
    aws.set_times(recent, created=NOW - 5 * HOUR)
    aws.finish_step(recent, aws.add_step(recent), ended=NOW - timedelta(minutes=10))
    old = aws.ours()
    aws.set_times(old, created=NOW - 5 * HOUR)
    aws.finish_step(old, aws.add_step(old), ended=NOW - timedelta(minutes=45), state="FAILED")

    result, _ = sweep(aws)

    decisions = by_id(result)
    assert decisions[recent]["reason"] == "recently_active"
    assert decisions[recent]["idle_minutes"] == 10.0
    assert decisions[old]["reason"] == "idle"
    assert decisions[old]["idle_minutes"] == 45.0
    assert aws.state(recent) == "WAITING"
    assert aws.state(old) == "TERMINATED"


def test_a_cluster_inside_its_grace_period_is_kept_even_when_idle(aws: Aws):
    young = aws.ours()
    # Ready 40 minutes ago (idle past the 30 minute threshold) but created 50 minutes ago.
    aws.set_times(young, created=NOW - timedelta(minutes=50), ready=NOW - timedelta(minutes=40))

    result, _ = sweep(aws)

    assert by_id(result)[young]["reason"] == "in_grace_period"
    assert by_id(result)[young]["age_minutes"] == 50.0
    assert aws.state(young) == "WAITING"

    later, _ = sweep(aws, now=NOW + timedelta(minutes=15))
    assert by_id(later)[young]["reason"] == "idle"
    assert aws.state(young) == "TERMINATED"


def test_protection_is_respected_unless_the_cluster_is_allowed(aws: Aws):
    kept = idle_cluster(aws, protected=True)
    allowed = idle_cluster(aws, protected=True)

    result, _ = sweep(aws, ALLOW_PROTECTED_CLUSTER_IDS=f" {allowed} ,j-OTHERCLUSTER1")

    decisions = by_id(result)
    assert decisions[kept]["reason"] == "termination_protected"
    assert decisions[kept]["action"] == "skip"
    assert aws.state(kept) == "WAITING" and aws.protected(kept)
    assert decisions[allowed]["result"] == "terminated_after_removing_protection"
    assert aws.state(allowed) == "TERMINATED"
    assert not aws.protected(allowed)


def test_dry_run_decides_but_changes_nothing(aws: Aws):
    idle = idle_cluster(aws)
    protected = idle_cluster(aws, protected=True)

    result, metrics = sweep(aws, DRY_RUN="true", ALLOW_PROTECTED_CLUSTER_IDS=protected)

    decisions = by_id(result)
    assert result["dry_run"] is True
    for cluster_id in (idle, protected):
        assert decisions[cluster_id]["action"] == "terminate"
        assert decisions[cluster_id]["result"] == "dry_run"
        assert aws.state(cluster_id) == "WAITING"
    assert aws.protected(protected)
    assert result["terminated"] == 0
    assert metrics.published == [(0, 0.0)]


def test_every_page_of_clusters_is_swept(aws: Aws):
    # moto (like EMR) returns ListClusters in pages of 50.
    first_page = aws.emr.list_clusters()
    assert "Marker" not in first_page
    ids = [idle_cluster(aws) for _ in range(53)]
    assert len(aws.emr.list_clusters()["Clusters"]) == 50

    result, metrics = sweep(aws)

    assert {d["cluster_id"] for d in result["decisions"]} == set(ids)
    assert result["terminated"] == 53
    assert {aws.state(c) for c in ids} == {"TERMINATED"}
    assert metrics.published[0][0] == 53


def test_every_page_of_steps_is_read(aws: Aws):
    cluster_id = aws.ours()
    aws.set_times(cluster_id, created=NOW - 10 * HOUR)
    step_ids = [aws.add_step(cluster_id, name=f"s{i}") for i in range(55)]
    # ListSteps lists newest first, 50 a page: the oldest step is on the second page, and it
    # is the one that ended last (it ran long).
    for step_id in step_ids[1:]:
        aws.finish_step(cluster_id, step_id, ended=NOW - 5 * HOUR)
    aws.finish_step(cluster_id, step_ids[0], ended=NOW - timedelta(minutes=5))
    assert len(aws.emr.list_steps(ClusterId=cluster_id)["Steps"]) == 50

    result, _ = sweep(aws)

    assert by_id(result)[cluster_id]["reason"] == "recently_active"
    assert by_id(result)[cluster_id]["idle_minutes"] == 5.0


def test_idle_minutes_saved_come_from_the_auto_termination_policy(aws: Aws):
    with_policy = idle_cluster(aws, idle_for=timedelta(minutes=45))
    without_policy = idle_cluster(aws, idle_for=timedelta(minutes=45))
    aws.idle_timeouts[with_policy] = 7200

    result, metrics = sweep(aws)

    decisions = by_id(result)
    assert decisions[with_policy]["idle_minutes_saved"] == 75.0      # 120 - 45
    assert decisions[without_policy]["idle_minutes_saved"] == 30.0   # the threshold estimate
    assert metrics.published == [(2, 105.0)]


def test_a_failed_terminate_is_recorded_and_reported_after_the_others(aws: Aws, caplog):
    failing = idle_cluster(aws)
    fine = idle_cluster(aws)
    backend = emr_backends[ACCOUNT][REGION]

    def terminate(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if params["JobFlowIds"] == [failing]:
            return 400, {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
        backend.terminate_job_flows(params["JobFlowIds"])
        return 200, {}

    aws.answer(aws.emr, "TerminateJobFlows", terminate)
    metrics = RecordingMetrics()
    terminator = AutoTerminator(EmrClusters(aws.emr), settings(), metrics, clock=lambda: NOW)

    with caplog.at_level(logging.INFO), pytest.raises(TransientError, match=failing):
        terminator.run()

    assert aws.state(fine) == "TERMINATED"
    assert aws.state(failing) == "WAITING"
    assert metrics.published[0][0] == 1
    logged = {r.decision["cluster_id"]: r.decision for r in caplog.records
              if hasattr(r, "decision")}
    assert logged[failing]["reason"] == "error"
    assert "ThrottlingException" in logged[failing]["error"]
    assert logged[fine]["result"] == "terminated"


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
        Settings.from_environ({"ENVIRONMENT": "dev", "IDLE_THRESHOLD_MINUTES": "30",
                               "GRACE_PERIOD_MINUTES": "60"})


def test_the_schedule_event_is_validated():
    assert parse_scheduled_event(load_event("auto_terminator", "scheduled.json")).id
    with pytest.raises(InvalidInput, match="detail-type"):
        parse_scheduled_event({"id": "x", "time": "2026-11-21T10:15:00Z",
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

    result = module.lambda_handler(load_event("auto_terminator", "scheduled.json"),
                                   lambda_context)

    assert result["trigger_id"] == "89d1a02d-5ec7-412e-82f5-13505f849b41"
    assert by_id(result)[idle]["result"] == "terminated"
    assert by_id(result)[young]["reason"] == "in_grace_period"
    assert aws.state(idle) == "TERMINATED"
    blobs = emf_lines(capsys.readouterr().out)
    assert len(blobs) == 1
    blob = blobs[0]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["environment"]]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "EmrPipelines"
    assert blob["environment"] == "dev"
    assert blob["ClustersTerminated"] == [1.0]
    assert blob["IdleMinutesSaved"] == [30.0]  # moto has no policy: the threshold estimate
    assert "service" not in blob


def test_handler_refuses_to_start_with_a_bad_dry_run(aws: Aws, monkeypatch):
    monkeypatch.setenv("DRY_RUN", "maybe")
    with pytest.raises(ConfigurationError, match="DRY_RUN"):
        fresh_import("functions.auto_terminator.app")
