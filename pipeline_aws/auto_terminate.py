"""The auto-terminator: a scheduled sweep that terminates idle EMR clusters this app created.

A transient cluster normally ends with its run (TerminateCluster, cleanup_execution, its own
AutoTerminationPolicy). This sweep is the last safety net, for the cases those miss: a cluster
created by hand or by an older version without a policy, or a terminate call that failed.
It acts only on clusters tagged `pipeline:app` = APP_NAME, and every decision (terminate or
skip, with the reason) is logged and returned.

Idle means: state WAITING, no PENDING/RUNNING step, idle longer than IDLE_THRESHOLD_MINUTES
since its last step ended (or since ReadyDateTime when it never ran one), and older than
GRACE_PERIOD_MINUTES since CreationDateTime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pipeline_aws import clients
from pipeline_aws.contracts import ScheduledEvent
from pipeline_aws.emr import ACTIVE_CLUSTER_STATES, APP_TAG, ClustersPort, EmrClusters
from pipeline_aws.settings import AutoTerminatorSettings
from pipeline_core.errors import PipelineError, TransientError

Reason = Literal[
    "idle",                   # terminate
    "not_ours",               # no pipeline:app tag, or another app's
    "gone",                   # terminated or deleted between list and describe
    "not_waiting",            # STARTING / BOOTSTRAPPING / RUNNING
    "in_grace_period",        # younger than GRACE_PERIOD_MINUTES
    "steps_active",           # a PENDING / RUNNING step
    "recently_active",        # idle for less than IDLE_THRESHOLD_MINUTES
    "termination_protected",  # protected and not in ALLOW_PROTECTED_CLUSTER_IDS
    "error",                  # an AWS call failed; see `error`
]


@dataclass(frozen=True)
class Decision:
    cluster_id: str
    action: Literal["terminate", "skip"]
    reason: Reason
    name: str = ""
    state: str = ""
    age_minutes: float | None = None
    idle_minutes: float | None = None
    termination_protected: bool = False
    dry_run: bool = False
    result: str | None = None
    idle_minutes_saved: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class _Metrics(Protocol):
    def publish(self, terminated: int, idle_minutes_saved: float) -> None: ...


class EmfTerminatorMetrics:
    """ClustersTerminated and IdleMinutesSaved. The one dimension, `environment`, is the
    Metrics' default dimension, and the handler's Metrics has no `service` dimension (see
    pipeline_aws.observability)."""

    def __init__(self, metrics: Any):
        self._metrics = metrics

    def publish(self, terminated: int, idle_minutes_saved: float) -> None:
        self._metrics.add_metric(name="ClustersTerminated", unit="Count", value=terminated)
        self._metrics.add_metric(name="IdleMinutesSaved", unit="Count",
                                 value=round(idle_minutes_saved, 1))


def _minutes(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 60


class AutoTerminator:
    """One sweep over this app's clusters."""

    def __init__(self, clusters: ClustersPort, settings: AutoTerminatorSettings,
                 metrics: _Metrics, logger: Any = None,
                 clock: Callable[[], datetime] | None = None):
        self._clusters = clusters
        self._settings = settings
        self._metrics = metrics
        self._logger = logger or logging.getLogger(__name__)
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: AutoTerminatorSettings, metrics: Any,
                      logger: Any) -> AutoTerminator:
        return cls(clusters=EmrClusters(clients.client("emr")), settings=settings,
                   metrics=EmfTerminatorMetrics(metrics), logger=logger)

    def run(self, trigger: ScheduledEvent | None = None) -> dict[str, Any]:
        """Decide for every active cluster; returns {dry_run, decisions, terminated, ...}.

        Raises TransientError at the end (after logging and metrics) when any cluster could not
        be handled, so the failure is visible and the next invocation retries it.
        """
        now = self._clock()
        decisions = [self._decide_and_act(cluster_id, now)
                     for cluster_id in self._clusters.cluster_ids(ACTIVE_CLUSTER_STATES)]
        for decision in decisions:
            self._logger.info("auto-terminator decision", extra={"decision": decision.as_dict()})
        terminated = [d for d in decisions if d.action == "terminate" and not d.dry_run]
        saved = sum(d.idle_minutes_saved or 0.0 for d in terminated)
        self._metrics.publish(len(terminated), saved)
        result = {
            "trigger_id": trigger.id if trigger else None,
            "dry_run": self._settings.dry_run,
            "terminated": len(terminated),
            "idle_minutes_saved": round(saved, 1),
            "decisions": [d.as_dict() for d in decisions],
        }
        errors = [d for d in decisions if d.reason == "error"]
        if errors:
            raise TransientError(
                f"{len(errors)} cluster(s) could not be handled: "
                + "; ".join(f"{d.cluster_id}: {d.error}" for d in errors))
        return result

    def _decide_and_act(self, cluster_id: str, now: datetime) -> Decision:
        try:
            return self._decide(cluster_id, now)
        except PipelineError as e:
            return Decision(cluster_id=cluster_id, action="skip", reason="error", error=str(e))

    def _decide(self, cluster_id: str, now: datetime) -> Decision:
        cluster = self._clusters.describe(cluster_id)
        if cluster is None:
            return Decision(cluster_id=cluster_id, action="skip", reason="gone")
        skip = Decision(cluster_id=cluster_id, action="skip", reason="not_ours",
                        name=cluster.name, state=cluster.state,
                        termination_protected=cluster.termination_protected)
        if cluster.tags.get(APP_TAG) != self._settings.app_name:
            return skip
        age = _minutes(now, cluster.created_at) if cluster.created_at else None
        skip = replace(skip, age_minutes=round(age, 1) if age is not None else None)
        if cluster.state != "WAITING":
            return replace(skip, reason="not_waiting")
        if age is None or age < self._settings.grace_period_minutes:
            return replace(skip, reason="in_grace_period")
        steps = self._clusters.step_activity(cluster_id)
        if steps.active:
            return replace(skip, reason="steps_active")
        # Idle since its last step ended, or since it was ready when it never ran one.
        idle_since = steps.last_ended_at or cluster.ready_at or cluster.created_at
        assert idle_since is not None  # created_at is set: checked with the age
        idle = _minutes(now, idle_since)
        skip = replace(skip, idle_minutes=round(idle, 1))
        if idle < self._settings.idle_threshold_minutes:
            return replace(skip, reason="recently_active")
        allowed = cluster_id in self._settings.allow_protected_cluster_ids
        if cluster.termination_protected and not allowed:
            return replace(skip, reason="termination_protected")
        terminate = replace(skip, action="terminate", reason="idle",
                            idle_minutes_saved=self._idle_minutes_saved(cluster_id, idle))
        if self._settings.dry_run:
            return replace(terminate, dry_run=True, result="dry_run")
        return replace(terminate, result=self._clusters.terminate(cluster, allowed))

    def _idle_minutes_saved(self, cluster_id: str, idle: float) -> float:
        """Minutes the cluster would still have idled before its own AutoTerminationPolicy
        ended it (EMR's idle clock is its own, so this is an estimate). Without a policy
        nothing else would stop it; we then count one more IDLE_THRESHOLD_MINUTES, a
        deliberately low estimate so the metric never over-claims."""
        timeout = self._clusters.idle_timeout_seconds(cluster_id)
        if timeout is None:
            return float(self._settings.idle_threshold_minutes)
        return round(max(0.0, timeout / 60 - idle), 1)
