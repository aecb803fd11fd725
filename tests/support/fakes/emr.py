"""In-memory EMR: FakeClusters (pipeline_aws.emr.ClustersPort) and FakeJobRuns
(pipeline_aws.emr.JobRunsPort), with the behaviour of EmrClusters / ServerlessJobRuns on the
real services (tests/unit/contracts checks both against moto)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline_aws.emr import (
    ACTIVE_CLUSTER_STATES,
    ACTIVE_STEP_STATES,
    NON_FINAL_JOB_RUN_STATES,
    ClusterInfo,
    ClustersPort,
    JobRunInfo,
    JobRunsPort,
    StepActivity,
)
from pipeline_core.errors import ConfigurationError

_ids = itertools.count(1)


@dataclass
class FakeStep:
    state: str = "RUNNING"
    ended_at: datetime | None = None


@dataclass
class FakeCluster:
    cluster_id: str
    name: str = "run"
    state: str = "WAITING"
    tags: dict[str, str] = field(default_factory=dict)
    termination_protected: bool = False
    created_at: datetime | None = None
    ready_at: datetime | None = None
    steps: list[FakeStep] = field(default_factory=list)
    idle_timeout_seconds: int | None = None
    # what cost tracking reads: the raw EMR API shapes
    collection_type: str = "INSTANCE_GROUP"
    instance_groups: list[dict[str, Any]] = field(default_factory=list)
    instance_fleets: list[dict[str, Any]] = field(default_factory=list)
    instances: list[dict[str, Any]] = field(default_factory=list)


class _Failures:
    """`fail[operation]` or `fail[(operation, id)]` = an exception that call raises."""

    def __init__(self) -> None:
        self.fail: dict[str | tuple[str, str], Exception] = {}

    def _check(self, operation: str, resource_id: str = "") -> None:
        error = self.fail.get((operation, resource_id)) or self.fail.get(operation)
        if error is not None:
            raise error


class FakeClusters(_Failures):
    """EMR on EC2 clusters in memory; `clusters` by id, in creation order."""

    def __init__(self) -> None:
        super().__init__()
        self.clusters: dict[str, FakeCluster] = {}
        self.terminated: list[str] = []

    def add(self, cluster_id: str | None = None, **attributes: Any) -> str:
        """A cluster (WAITING unless `state` says otherwise); returns its id."""
        cluster_id = cluster_id or f"j-FAKE{next(_ids):09d}"
        self.clusters[cluster_id] = FakeCluster(cluster_id, **attributes)
        return cluster_id

    def add_step(self, cluster_id: str, state: str = "RUNNING",
                 ended_at: datetime | None = None) -> None:
        self.clusters[cluster_id].steps.append(FakeStep(state, ended_at))

    def state(self, cluster_id: str) -> str:
        return self.clusters[cluster_id].state

    # -- ClustersPort -----------------------------------------------------------------------

    def cluster_ids(self, states: Sequence[str] = ACTIVE_CLUSTER_STATES) -> Iterator[str]:
        self._check("cluster_ids")
        return iter([c.cluster_id for c in self.clusters.values() if c.state in states])

    def describe(self, cluster_id: str) -> ClusterInfo | None:
        self._check("describe", cluster_id)
        c = self.clusters.get(cluster_id)
        if c is None:
            return None
        return ClusterInfo(cluster_id=c.cluster_id, name=c.name, state=c.state,
                           tags=dict(c.tags), termination_protected=c.termination_protected,
                           created_at=c.created_at, ready_at=c.ready_at)

    def step_activity(self, cluster_id: str) -> StepActivity:
        self._check("step_activity", cluster_id)
        steps = self.clusters[cluster_id].steps
        ends = [s.ended_at for s in steps if s.ended_at is not None]
        return StepActivity(active=sum(1 for s in steps if s.state in ACTIVE_STEP_STATES),
                            last_ended_at=max(ends, default=None))

    def idle_timeout_seconds(self, cluster_id: str) -> int | None:
        cluster = self.clusters.get(cluster_id)
        return cluster.idle_timeout_seconds if cluster else None

    def terminate(self, cluster: ClusterInfo, remove_protection: bool) -> str:
        self._check("terminate", cluster.cluster_id)
        stored = self.clusters[cluster.cluster_id]
        if cluster.termination_protected and not remove_protection:
            raise ConfigurationError(
                f"cluster {cluster.cluster_id} is termination protected and not allowed")
        stored.termination_protected = False
        stored.state = "TERMINATED"
        self.terminated.append(cluster.cluster_id)
        return ("terminated_after_removing_protection" if cluster.termination_protected
                else "terminated")

    def collection_type(self, cluster_id: str) -> str:
        self._check("collection_type", cluster_id)
        return self.clusters[cluster_id].collection_type

    def instance_groups(self, cluster_id: str) -> list[dict[str, Any]]:
        self._check("instance_groups", cluster_id)
        return list(self.clusters[cluster_id].instance_groups)

    def instance_fleets(self, cluster_id: str) -> list[dict[str, Any]]:
        self._check("instance_fleets", cluster_id)
        return list(self.clusters[cluster_id].instance_fleets)

    def instances(self, cluster_id: str) -> list[dict[str, Any]]:
        self._check("instances", cluster_id)
        return list(self.clusters[cluster_id].instances)


@dataclass
class FakeJobRun:
    state: str
    tags: dict[str, str]


class FakeJobRuns(_Failures):
    """One EMR Serverless application's job runs in memory; `runs` by id."""

    _CANCELLABLE = frozenset(NON_FINAL_JOB_RUN_STATES)

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, FakeJobRun] = {}

    def add(self, tags: Mapping[str, str], state: str = "RUNNING",
            job_run_id: str | None = None) -> str:
        job_run_id = job_run_id or f"00fake{next(_ids):010d}"
        self.runs[job_run_id] = FakeJobRun(state, dict(tags))
        return job_run_id

    def state(self, job_run_id: str) -> str:
        return self.runs[job_run_id].state

    # -- JobRunsPort ------------------------------------------------------------------------

    def non_final_ids(self) -> Iterator[str]:
        self._check("non_final_ids")
        return iter([i for i, r in self.runs.items() if r.state in NON_FINAL_JOB_RUN_STATES])

    def get(self, job_run_id: str) -> JobRunInfo | None:
        self._check("get", job_run_id)
        run = self.runs.get(job_run_id)
        if run is None:
            return None
        return JobRunInfo(job_run_id=job_run_id, state=run.state, tags=dict(run.tags))

    def cancel(self, job_run_id: str) -> str:
        self._check("cancel", job_run_id)
        run = self.runs.get(job_run_id)
        if run is None:
            return "not_found"
        if run.state not in self._CANCELLABLE:
            return "already_final"  # EMR Serverless answers ValidationException
        run.state = "CANCELLED"
        return "cancelled"


def _conforms(clusters: FakeClusters, runs: FakeJobRuns) -> tuple[ClustersPort, JobRunsPort]:
    return clusters, runs  # mypy: the fakes implement the ports
