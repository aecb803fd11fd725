"""EMR adapters: EMR on EC2 clusters (`EmrClusters`) and EMR Serverless job runs
(`ServerlessJobRuns`), shared by cleanup, the auto-terminator and cost tracking.

Each adapter implements a port (`ClustersPort`, `JobRunsPort`); the logic depends on the port and
the tests use the in-memory fakes of tests/support/fakes/emr.py, which the contract tests in
tests/unit/contracts hold to the same behaviour as these adapters on moto.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pipeline_aws import aws_call, aws_pages
from pipeline_core.errors import ConfigurationError, PipelineError

APP_TAG = "pipeline:app"
EXECUTION_TAG = "pipeline:execution"
ACTIVE_CLUSTER_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
NON_FINAL_JOB_RUN_STATES = ("SUBMITTED", "PENDING", "SCHEDULED", "RUNNING", "QUEUED")
ACTIVE_STEP_STATES = frozenset({"PENDING", "CANCEL_PENDING", "RUNNING"})


class ResourceGone(PipelineError):
    """The cluster or job run no longer exists (or never did): nothing to act on."""


class AlreadyFinal(PipelineError):
    """The job run reached a final state before it could be cancelled."""


def aware(value: Any) -> datetime | None:
    """boto3 returns aware datetimes; keep them aware and in UTC."""
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# EMR on EC2 clusters


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str
    name: str
    state: str
    tags: Mapping[str, str]
    termination_protected: bool
    created_at: datetime | None
    ready_at: datetime | None


@dataclass(frozen=True)
class StepActivity:
    """What the auto-terminator needs from a cluster's steps."""

    active: int
    last_ended_at: datetime | None


class ClustersPort(Protocol):
    """What cleanup, the auto-terminator and cost tracking need from EMR on EC2."""

    def cluster_ids(self, states: Sequence[str] = ACTIVE_CLUSTER_STATES) -> Iterator[str]: ...

    def describe(self, cluster_id: str) -> ClusterInfo | None: ...

    def step_activity(self, cluster_id: str) -> StepActivity: ...

    def idle_timeout_seconds(self, cluster_id: str) -> int | None: ...

    def terminate(self, cluster: ClusterInfo, remove_protection: bool) -> str: ...

    def collection_type(self, cluster_id: str) -> str: ...

    def instance_groups(self, cluster_id: str) -> list[dict[str, Any]]: ...

    def instance_fleets(self, cluster_id: str) -> list[dict[str, Any]]: ...

    def instances(self, cluster_id: str) -> list[dict[str, Any]]: ...


class EmrClusters:
    """The EMR calls the functions make, with ClientErrors mapped to domain errors."""

    # EMR answers InvalidRequestException for an unknown cluster id.
    _GONE = dict.fromkeys(("InvalidRequestException", "ResourceNotFoundException"),
                          ResourceGone)

    def __init__(self, emr_client: Any):
        self._emr = emr_client

    def _call(self, what: str, operation: str, **kwargs: Any) -> Any:
        return aws_call(what, getattr(self._emr, operation), codes=self._GONE, **kwargs)

    def _pages(self, what: str, operation: str, items: str, **kwargs: Any) -> Iterator[Any]:
        return aws_pages(what, getattr(self._emr, operation), items, "Marker", codes=self._GONE,
                         **kwargs)

    def cluster_ids(self, states: Sequence[str] = ACTIVE_CLUSTER_STATES) -> Iterator[str]:
        """Ids of the clusters in `states`, every page (ListClusters pages by Marker)."""
        for summary in self._pages("listing EMR clusters", "list_clusters", "Clusters",
                                   ClusterStates=list(states)):
            yield summary["Id"]

    def _cluster(self, cluster_id: str) -> dict[str, Any]:
        cluster: dict[str, Any] = self._call(f"describing EMR cluster {cluster_id}",
                                             "describe_cluster", ClusterId=cluster_id)["Cluster"]
        return cluster

    def describe(self, cluster_id: str) -> ClusterInfo | None:
        """The cluster, or None when it is gone or this role may not read it (not ours)."""
        try:
            cluster = self._cluster(cluster_id)
        except ResourceGone:
            return None
        status = cluster.get("Status", {})
        timeline = status.get("Timeline", {})
        return ClusterInfo(
            cluster_id=cluster_id,
            name=str(cluster.get("Name", "")),
            state=str(status.get("State", "")),
            tags={t["Key"]: t.get("Value", "") for t in cluster.get("Tags", [])},
            termination_protected=bool(cluster.get("TerminationProtected", False)),
            created_at=aware(timeline.get("CreationDateTime")),
            ready_at=aware(timeline.get("ReadyDateTime")),
        )

    def step_activity(self, cluster_id: str) -> StepActivity:
        """Active steps and the latest step end, over every page of ListSteps."""
        active = 0
        last_end: datetime | None = None
        for step in self._pages(f"listing the steps of EMR cluster {cluster_id}", "list_steps",
                                "Steps", ClusterId=cluster_id):
            status = step.get("Status", {})
            if status.get("State") in ACTIVE_STEP_STATES:
                active += 1
            ended = aware(status.get("Timeline", {}).get("EndDateTime"))
            if ended is not None and (last_end is None or ended > last_end):
                last_end = ended
        return StepActivity(active=active, last_ended_at=last_end)

    def idle_timeout_seconds(self, cluster_id: str) -> int | None:
        """The cluster's AutoTerminationPolicy idle timeout, None when it has no policy."""
        try:
            policy = self._call(f"reading the auto-termination policy of {cluster_id}",
                                "get_auto_termination_policy", ClusterId=cluster_id)
        except PipelineError:
            # Only a metric estimate depends on this: never let it block a termination.
            return None
        timeout = policy.get("AutoTerminationPolicy", {}).get("IdleTimeout")
        return int(timeout) if timeout is not None else None

    def terminate(self, cluster: ClusterInfo, remove_protection: bool) -> str:
        """Terminate; switch protection off first when allowed. Returns what was done."""
        if cluster.termination_protected:
            if not remove_protection:
                raise ConfigurationError(
                    f"cluster {cluster.cluster_id} is termination protected and not allowed")
            self._call(f"removing termination protection from {cluster.cluster_id}",
                       "set_termination_protection",
                       JobFlowIds=[cluster.cluster_id], TerminationProtected=False)
        self._call(f"terminating EMR cluster {cluster.cluster_id}", "terminate_job_flows",
                   JobFlowIds=[cluster.cluster_id])
        return ("terminated_after_removing_protection" if cluster.termination_protected
                else "terminated")

    # -- what the cluster ran on (cost tracking) ------------------------------------------

    def collection_type(self, cluster_id: str) -> str:
        """INSTANCE_GROUP or INSTANCE_FLEET."""
        return str(self._cluster(cluster_id).get("InstanceCollectionType", "INSTANCE_GROUP"))

    def instance_groups(self, cluster_id: str) -> list[dict[str, Any]]:
        return list(self._pages(f"ListInstanceGroups {cluster_id}", "list_instance_groups",
                                "InstanceGroups", ClusterId=cluster_id))

    def instance_fleets(self, cluster_id: str) -> list[dict[str, Any]]:
        return list(self._pages(f"ListInstanceFleets {cluster_id}", "list_instance_fleets",
                                "InstanceFleets", ClusterId=cluster_id))

    def instances(self, cluster_id: str) -> list[dict[str, Any]]:
        """Every instance the cluster ever had (ListInstances, every page)."""
        return list(self._pages(f"ListInstances {cluster_id}", "list_instances", "Instances",
                                ClusterId=cluster_id))


# ---------------------------------------------------------------------------------------------
# EMR Serverless job runs


@dataclass(frozen=True)
class JobRunInfo:
    job_run_id: str
    state: str
    tags: Mapping[str, str]


class JobRunsPort(Protocol):
    """What cleanup needs from one EMR Serverless application's job runs."""

    def non_final_ids(self) -> Iterator[str]: ...

    def get(self, job_run_id: str) -> JobRunInfo | None: ...

    def cancel(self, job_run_id: str) -> str: ...


class ServerlessJobRuns:
    """The EMR Serverless calls cleanup makes for one application.

    Tags are read with GetJobRun (its JobRun carries `tags`) rather than ListTagsForResource:
    one call gives the tags and the current state, so a run that finished since the listing is
    left alone, and moto 5.2.5 implements GetJobRun but not emr-serverless ListTagsForResource.
    """

    # CancelJobRun documents only ValidationException, ResourceNotFoundException and
    # InternalServerException; our ids come from the listing, so a ValidationException means
    # the run left the cancellable states in between.
    _CODES: Mapping[str, type[PipelineError]] = {
        "ResourceNotFoundException": ResourceGone, "ValidationException": AlreadyFinal}

    def __init__(self, client: Any, application_id: str):
        self._client = client
        self._application_id = application_id

    def non_final_ids(self) -> Iterator[str]:
        runs = aws_pages("listing EMR Serverless job runs", self._client.list_job_runs,
                         "jobRuns", "nextToken", codes=self._CODES,
                         applicationId=self._application_id,
                         states=list(NON_FINAL_JOB_RUN_STATES))
        try:
            for run in runs:
                yield run["id"]
        except ResourceGone:
            return

    def get(self, job_run_id: str) -> JobRunInfo | None:
        try:
            run = aws_call(f"reading job run {job_run_id}", self._client.get_job_run,
                           codes=self._CODES, applicationId=self._application_id,
                           jobRunId=job_run_id)["jobRun"]
        except ResourceGone:
            return None
        return JobRunInfo(job_run_id=job_run_id, state=str(run.get("state", "")),
                          tags=dict(run.get("tags") or {}))

    def cancel(self, job_run_id: str) -> str:
        """cancelled, already_final (it ended first) or not_found."""
        try:
            aws_call(f"cancelling job run {job_run_id}", self._client.cancel_job_run,
                     codes=self._CODES, applicationId=self._application_id, jobRunId=job_run_id)
        except AlreadyFinal:
            return "already_final"
        except ResourceGone:
            return "not_found"
        return "cancelled"
