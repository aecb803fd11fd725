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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
)

from pipeline_aws.cleanup import (
    ACTIVE_CLUSTER_STATES,
    APP_TAG,
    ClusterInfo,
    EmrClusters,
    StepActivity,
)
from pipeline_core.errors import ConfigurationError, InvalidInput, PipelineError, TransientError

_MAX_MINUTES = 7 * 24 * 60
_CLUSTER_ID = re.compile(r"^j-[0-9A-Z]{1,64}$")


def _strict_bool(value: Any) -> bool:
    """Only "true" and "false" (any case): a typo must not silently mean "terminate"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"must be 'true' or 'false', not {value!r}")


def _whole_minutes(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    raise ValueError(f"must be a whole number of minutes, not {value!r}")


def _cluster_ids(value: Any) -> frozenset[str]:
    if isinstance(value, frozenset | set | list | tuple):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    else:
        raise ValueError("must be a comma-separated list of cluster ids")
    bad = [item for item in items if not _CLUSTER_ID.match(item)]
    if bad:
        raise ValueError(f"not EMR cluster ids (j-XXXXXXXXXXXXX): {', '.join(bad)}")
    return frozenset(items)


Minutes = Annotated[int, BeforeValidator(_whole_minutes), Field(gt=0, le=_MAX_MINUTES)]
StrictBoolText = Annotated[bool, BeforeValidator(_strict_bool)]
ClusterIds = Annotated[frozenset[str], BeforeValidator(_cluster_ids)]


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class Settings(BaseModel):
    """The auto_terminator's environment, validated at cold start (errors name the variable)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    environment: StrictStr = Field(alias="ENVIRONMENT", min_length=1)
    app_name: StrictStr = Field(alias="APP_NAME", min_length=1)
    idle_threshold_minutes: Minutes = Field(alias="IDLE_THRESHOLD_MINUTES")
    grace_period_minutes: Minutes = Field(alias="GRACE_PERIOD_MINUTES")
    dry_run: StrictBoolText = Field(alias="DRY_RUN")
    allow_protected_cluster_ids: ClusterIds = Field(
        alias="ALLOW_PROTECTED_CLUSTER_IDS", default=frozenset())

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        import os

        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as e:
            raise ConfigurationError(
                f"auto_terminator environment is invalid: {_validation_message(e)}") from e


class ScheduledEvent(BaseModel):
    """The EventBridge Scheduler / schedule rule event; only its id is used (correlation)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: StrictStr = Field(min_length=1)
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    time: StrictStr


def parse_scheduled_event(event: Any) -> ScheduledEvent:
    try:
        return ScheduledEvent.model_validate(event)
    except ValidationError as e:
        raise InvalidInput(f"auto_terminator input is invalid: {_validation_message(e)}") from e


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


class _Clusters(Protocol):
    def cluster_ids(self, states: Sequence[str] = ...) -> Any: ...
    def describe(self, cluster_id: str) -> ClusterInfo | None: ...
    def step_activity(self, cluster_id: str) -> StepActivity: ...
    def idle_timeout_seconds(self, cluster_id: str) -> int | None: ...
    def terminate(self, cluster: ClusterInfo, remove_protection: bool) -> str: ...


class _Metrics(Protocol):
    def publish(self, terminated: int, idle_minutes_saved: float) -> None: ...


class EmfTerminatorMetrics:
    """ClustersTerminated and IdleMinutesSaved, with the dimension `environment` only.

    The powertools Metrics given here must be built with service="" (see the handler), or
    powertools adds a `service` dimension of its own.
    """

    def __init__(self, metrics: Any, environment: str):
        self._metrics = metrics
        self._environment = environment

    def publish(self, terminated: int, idle_minutes_saved: float) -> None:
        self._metrics.add_dimension(name="environment", value=self._environment)
        self._metrics.add_metric(name="ClustersTerminated", unit="Count", value=terminated)
        self._metrics.add_metric(name="IdleMinutesSaved", unit="Count",
                                 value=round(idle_minutes_saved, 1))


def _minutes(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 60


class AutoTerminator:
    """One sweep over this app's clusters."""

    def __init__(self, clusters: _Clusters, settings: Settings, metrics: _Metrics,
                 logger: Any = None, clock: Callable[[], datetime] | None = None):
        self._clusters = clusters
        self._settings = settings
        self._metrics = metrics
        self._logger = logger or logging.getLogger(__name__)
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Any, logger: Any) -> AutoTerminator:
        import boto3

        return cls(clusters=EmrClusters(boto3.client("emr")), settings=settings,
                   metrics=EmfTerminatorMetrics(metrics, settings.environment), logger=logger)

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
        settings = self._settings
        cluster = self._clusters.describe(cluster_id)
        if cluster is None:
            return Decision(cluster_id=cluster_id, action="skip", reason="gone")
        common = {"cluster_id": cluster_id, "name": cluster.name, "state": cluster.state,
                  "termination_protected": cluster.termination_protected}
        if cluster.tags.get(APP_TAG) != settings.app_name:
            return Decision(action="skip", reason="not_ours", **common)
        age = _minutes(now, cluster.created_at) if cluster.created_at else None
        common["age_minutes"] = round(age, 1) if age is not None else None
        if cluster.state != "WAITING":
            return Decision(action="skip", reason="not_waiting", **common)
        if age is None or age < settings.grace_period_minutes:
            return Decision(action="skip", reason="in_grace_period", **common)
        steps = self._clusters.step_activity(cluster_id)
        if steps.active:
            return Decision(action="skip", reason="steps_active", **common)
        idle_since = steps.last_ended_at or cluster.ready_at or cluster.created_at
        assert idle_since is not None  # created_at is set: checked with the age
        idle = _minutes(now, idle_since)
        common["idle_minutes"] = round(idle, 1)
        if idle < settings.idle_threshold_minutes:
            return Decision(action="skip", reason="recently_active", **common)
        allowed = cluster_id in settings.allow_protected_cluster_ids
        if cluster.termination_protected and not allowed:
            return Decision(action="skip", reason="termination_protected", **common)
        saved = self._idle_minutes_saved(cluster_id, idle)
        if settings.dry_run:
            return Decision(action="terminate", reason="idle", dry_run=True, result="dry_run",
                            idle_minutes_saved=saved, **common)
        result = self._clusters.terminate(cluster, remove_protection=allowed)
        return Decision(action="terminate", reason="idle", result=result,
                        idle_minutes_saved=saved, **common)

    def _idle_minutes_saved(self, cluster_id: str, idle: float) -> float:
        """Minutes the cluster would still have idled before its own AutoTerminationPolicy
        ended it (EMR's idle clock is its own, so this is an estimate). Without a policy
        nothing else would stop it; we then count one more IDLE_THRESHOLD_MINUTES, a
        deliberately low estimate so the metric never over-claims."""
        timeout = self._clusters.idle_timeout_seconds(cluster_id)
        if timeout is None:
            return float(self._settings.idle_threshold_minutes)
        return round(max(0.0, timeout / 60 - idle), 1)
