"""The EMR ports' contract: FakeClusters / FakeJobRuns and EmrClusters / ServerlessJobRuns on
moto behave the same for everything cleanup, the auto-terminator and cost tracking rely on."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Protocol

import pytest

from pipeline_aws.emr import (
    ACTIVE_CLUSTER_STATES,
    ClustersPort,
    EmrClusters,
    JobRunsPort,
    ServerlessJobRuns,
)
from pipeline_core.errors import ConfigurationError
from tests.support.aws import APP
from tests.support.fakes.emr import FakeClusters, FakeJobRuns
from tests.unit.contracts.conftest import NOW, SIDES, client, fake_or_real
from tests.unit.contracts.moto_emr import MotoEmr

HOUR = timedelta(hours=1)
OURS = {"pipeline:app": APP, "pipeline:execution": "arn:aws:states:e"}


class ClusterWorld(Protocol):
    """Sets up clusters where the port under test reads them."""

    port: ClustersPort

    def add(self, *, created: datetime, ready: datetime, protected: bool = False) -> str: ...
    def finished_step(self, cluster_id: str, ended: datetime, state: str) -> None: ...
    def active_step(self, cluster_id: str, state: str) -> None: ...
    def idle_timeout(self, cluster_id: str, seconds: int) -> None: ...
    def state(self, cluster_id: str) -> str: ...
    def protected(self, cluster_id: str) -> bool: ...


class FakeClusterWorld:
    def __init__(self) -> None:
        self.port = self.fake = FakeClusters()

    def add(self, *, created: datetime, ready: datetime, protected: bool = False) -> str:
        # what EMR reports for the cluster MotoEmr creates: a MASTER and a CORE group
        groups = [{"Id": "ig-MASTER", "InstanceGroupType": "MASTER"},
                  {"Id": "ig-CORE", "InstanceGroupType": "CORE"}]
        return self.fake.add(tags=dict(OURS), created_at=created, ready_at=ready,
                             termination_protected=protected, instance_groups=groups)

    def finished_step(self, cluster_id: str, ended: datetime, state: str) -> None:
        self.fake.add_step(cluster_id, state, ended_at=ended)

    def active_step(self, cluster_id: str, state: str) -> None:
        self.fake.add_step(cluster_id, state)

    def idle_timeout(self, cluster_id: str, seconds: int) -> None:
        self.fake.clusters[cluster_id].idle_timeout_seconds = seconds

    def state(self, cluster_id: str) -> str:
        return self.fake.state(cluster_id)

    def protected(self, cluster_id: str) -> bool:
        return self.fake.clusters[cluster_id].termination_protected


class MotoClusterWorld:
    def __init__(self) -> None:
        self.moto = MotoEmr.create(client("emr"),
                                   client("emr-serverless"))
        self.port = EmrClusters(self.moto.emr)

    def add(self, *, created: datetime, ready: datetime, protected: bool = False) -> str:
        cluster_id = self.moto.cluster(tags=dict(OURS), protected=protected)
        self.moto.set_times(cluster_id, created=created, ready=ready)
        return cluster_id

    def finished_step(self, cluster_id: str, ended: datetime, state: str) -> None:
        self.moto.finish_step(cluster_id, self.moto.add_step(cluster_id), ended, state)

    def active_step(self, cluster_id: str, state: str) -> None:
        self.moto.set_step_state(cluster_id, self.moto.add_step(cluster_id), state)

    def idle_timeout(self, cluster_id: str, seconds: int) -> None:
        self.moto.idle_timeouts[cluster_id] = seconds

    def state(self, cluster_id: str) -> str:
        return self.moto.state(cluster_id)

    def protected(self, cluster_id: str) -> bool:
        return self.moto.protected(cluster_id)


@pytest.fixture(params=SIDES)
def clusters(request: pytest.FixtureRequest) -> ClusterWorld:
    return fake_or_real(request, FakeClusterWorld, MotoClusterWorld)


def waiting(world: ClusterWorld, **kwargs: Any) -> str:
    return world.add(created=NOW - 3 * HOUR, ready=NOW - 2 * HOUR, **kwargs)


def test_every_page_of_active_clusters_is_listed(clusters: ClusterWorld) -> None:
    ids = [waiting(clusters) for _ in range(53)]
    gone = ids.pop()
    info = clusters.port.describe(gone)
    assert info is not None
    clusters.port.terminate(info, remove_protection=False)
    if isinstance(clusters, MotoClusterWorld):  # EMR (and moto) list 50 clusters a page
        assert "Marker" in clusters.moto.emr.list_clusters(ClusterStates=["WAITING"])

    listed = list(clusters.port.cluster_ids(ACTIVE_CLUSTER_STATES))

    assert sorted(listed) == sorted(ids)
    assert list(clusters.port.cluster_ids(("RUNNING",))) == []


def test_describe_reads_state_tags_protection_and_times(clusters: ClusterWorld) -> None:
    cluster_id = waiting(clusters, protected=True)

    info = clusters.port.describe(cluster_id)

    assert info is not None
    assert (info.cluster_id, info.state, info.termination_protected) == (cluster_id, "WAITING",
                                                                         True)
    assert dict(info.tags) == OURS
    assert info.created_at == NOW - 3 * HOUR and info.ready_at == NOW - 2 * HOUR
    assert clusters.port.describe("j-NOSUCHCLUSTER1") is None


def test_step_activity_counts_active_steps_and_the_latest_end_on_every_page(
        clusters: ClusterWorld) -> None:
    quiet = waiting(clusters)
    assert clusters.port.step_activity(quiet).active == 0
    assert clusters.port.step_activity(quiet).last_ended_at is None
    cluster_id = waiting(clusters)
    # ListSteps lists newest first, 50 a page: the step that ended last is the oldest one,
    # on the second page.
    clusters.finished_step(cluster_id, NOW - timedelta(minutes=5), "COMPLETED")
    for _ in range(54):
        clusters.finished_step(cluster_id, NOW - 5 * HOUR, "FAILED")

    activity = clusters.port.step_activity(cluster_id)

    assert (activity.active, activity.last_ended_at) == (0, NOW - timedelta(minutes=5))
    clusters.active_step(cluster_id, "PENDING")
    clusters.active_step(cluster_id, "RUNNING")
    assert clusters.port.step_activity(cluster_id).active == 2


def test_idle_timeout_is_the_policy_or_none(clusters: ClusterWorld) -> None:
    with_policy, without = waiting(clusters), waiting(clusters)
    clusters.idle_timeout(with_policy, 7200)
    assert clusters.port.idle_timeout_seconds(with_policy) == 7200
    assert clusters.port.idle_timeout_seconds(without) is None


def test_terminate_respects_protection_unless_allowed(clusters: ClusterWorld) -> None:
    plain, protected = waiting(clusters), waiting(clusters, protected=True)
    plain_info, protected_info = clusters.port.describe(plain), clusters.port.describe(protected)
    assert plain_info is not None and protected_info is not None

    assert clusters.port.terminate(plain_info, remove_protection=False) == "terminated"
    with pytest.raises(ConfigurationError, match="termination protected"):
        clusters.port.terminate(protected_info, remove_protection=False)
    assert clusters.state(protected) == "WAITING" and clusters.protected(protected)
    assert clusters.port.terminate(protected_info, remove_protection=True) \
        == "terminated_after_removing_protection"

    assert clusters.state(plain) not in ACTIVE_CLUSTER_STATES
    assert clusters.state(protected) not in ACTIVE_CLUSTER_STATES
    assert not clusters.protected(protected)


def test_instance_groups_of_a_group_cluster(clusters: ClusterWorld) -> None:
    cluster_id = waiting(clusters)
    assert clusters.port.collection_type(cluster_id) == "INSTANCE_GROUP"
    groups = clusters.port.instance_groups(cluster_id)
    assert sorted(g["InstanceGroupType"] for g in groups) == ["CORE", "MASTER"]
    assert all(g["Id"] for g in groups)


# -- EMR Serverless job runs ------------------------------------------------------------------


class JobRunWorld(Protocol):
    port: JobRunsPort

    def add(self, tags: dict[str, str], state: str) -> str: ...
    def state(self, job_run_id: str) -> str: ...


class FakeJobRunWorld:
    def __init__(self) -> None:
        self.port = self.fake = FakeJobRuns()

    def add(self, tags: dict[str, str], state: str) -> str:
        return self.fake.add(tags, state)

    def state(self, job_run_id: str) -> str:
        return self.fake.state(job_run_id)


class MotoJobRunWorld:
    """moto cancels a run in any state; EMR Serverless refuses a run that already ended with a
    ValidationException, which a botocore hook reproduces here."""

    def __init__(self) -> None:
        self.moto = MotoEmr.create(client("emr"),
                                   client("emr-serverless"))
        self.port = ServerlessJobRuns(self.moto.serverless, self.moto.application_id)
        self.moto.serverless.meta.events.register(
            "before-call.emr-serverless.CancelJobRun", self._refuse_ended)

    def _refuse_ended(self, params: dict[str, Any], **_: Any) -> Any:
        job_run_id = params["url_path"].rstrip("/").rsplit("/", 1)[-1]
        try:
            state = self.moto.job_run_state(job_run_id)
        except self.moto.serverless.exceptions.ResourceNotFoundException:
            return None
        if state in ("SUCCESS", "FAILED", "CANCELLED"):
            body = {"Error": {"Code": "ValidationException",
                              "Message": f"Job run {job_run_id} is in a terminal state"}}
            return SimpleNamespace(status_code=400, headers={}, content=b"", raw=None), body
        return None

    def add(self, tags: dict[str, str], state: str) -> str:
        return self.moto.job_run(tags, state)

    def state(self, job_run_id: str) -> str:
        return self.moto.job_run_state(job_run_id)


@pytest.fixture(params=SIDES)
def job_runs(request: pytest.FixtureRequest) -> JobRunWorld:
    return fake_or_real(request, FakeJobRunWorld, MotoJobRunWorld)


def test_non_final_runs_are_listed_with_their_tags(job_runs: JobRunWorld) -> None:
    running = job_runs.add({"pipeline:app": APP}, "RUNNING")
    queued = job_runs.add({"k": "v"}, "QUEUED")
    job_runs.add({"k": "done"}, "SUCCESS")

    assert sorted(job_runs.port.non_final_ids()) == sorted([running, queued])
    info = job_runs.port.get(running)
    assert info is not None
    assert (info.job_run_id, info.state, dict(info.tags)) == (running, "RUNNING",
                                                              {"pipeline:app": APP})
    assert job_runs.port.get("00nosuchrun00000") is None


def test_cancel_says_what_happened(job_runs: JobRunWorld) -> None:
    running = job_runs.add({"k": "v"}, "RUNNING")
    ended = job_runs.add({"k": "w"}, "SUCCESS")

    assert job_runs.port.cancel(running) == "cancelled"
    assert job_runs.port.cancel(ended) == "already_final"
    assert job_runs.port.cancel("00nosuchrun00000") == "not_found"
    assert job_runs.state(running) == "CANCELLED"
    assert job_runs.state(ended) == "SUCCESS"


def test_a_deleted_application_has_no_runs_to_list(moto: None) -> None:
    runs = ServerlessJobRuns(client("emr-serverless"), "00nosuchapp")
    assert list(runs.non_final_ids()) == []
