"""EMR and EMR Serverless inside moto, with the states the real services reach and moto 5.2.5
cannot produce set on its backend objects (a finished step with an end time, a RUNNING job run,
a cluster created hours ago), and `answer` standing in at the botocore layer for an API moto
lacks (emr GetAutoTerminationPolicy) with the real response shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from moto.emr.models import emr_backends
from moto.emrserverless.models import emrserverless_backends

from tests.support.aws import ACCOUNT, APP, REGION

JOB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/{APP}-job"


def answer(client: Any, operation: str,
           respond: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]) -> None:
    """Answer `operation` on `client` with respond(params) -> (status, parsed body)."""

    def hook(params: dict[str, Any], **_: Any) -> Any:
        status, parsed = respond(json.loads(params["body"] or b"{}"))
        return SimpleNamespace(status_code=status, headers={}, content=b"", raw=None), parsed

    event = f"before-call.{client.meta.service_model.service_name}.{operation}"
    client.meta.events.register(event, hook)


@dataclass
class MotoEmr:
    emr: Any
    serverless: Any
    application_id: str
    # moto 5.2.5 lacks emr GetAutoTerminationPolicy: it is answered from here (seconds), and
    # with EMR's empty answer for a cluster without a policy.
    idle_timeouts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, emr: Any, serverless: Any) -> MotoEmr:
        application_id = serverless.create_application(
            name=f"{APP}-spark", releaseLabel="emr-7.1.0", type="SPARK",
            tags={"pipeline:app": APP})["applicationId"]
        world = cls(emr, serverless, application_id)
        answer(emr, "GetAutoTerminationPolicy", lambda p: (200, (
            {"AutoTerminationPolicy": {"IdleTimeout": world.idle_timeouts[p["ClusterId"]]}}
            if p["ClusterId"] in world.idle_timeouts else {})))
        return world

    # -- EMR -------------------------------------------------------------------------------

    def cluster(self, name: str = "run", tags: dict[str, str] | None = None,
                protected: bool = False) -> str:
        """A long-running cluster (KeepJobFlowAliveWhenNoSteps) like CreateCluster makes."""
        cluster_id: str = self.emr.run_job_flow(
            Name=name,
            ReleaseLabel="emr-7.1.0",
            Instances={"MasterInstanceType": "m5.xlarge", "SlaveInstanceType": "m5.xlarge",
                       "InstanceCount": 2, "KeepJobFlowAliveWhenNoSteps": True,
                       "TerminationProtected": protected},
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
        )["JobFlowId"]
        return cluster_id

    def ours(self, execution: str | None = None, **kwargs: Any) -> str:
        tags = {"pipeline:app": APP, "pipeline:environment": "dev"}
        if execution:
            tags["pipeline:execution"] = execution
        return self.cluster(tags=tags, **kwargs)

    def _model(self, cluster_id: str) -> Any:
        return emr_backends[ACCOUNT][REGION].clusters[cluster_id]

    def set_times(self, cluster_id: str, created: datetime,
                  ready: datetime | None = None) -> None:
        """moto stamps clusters with the wall clock; tests need them hours old."""
        model = self._model(cluster_id)
        model.creation_datetime = created
        model.start_datetime = created
        model.ready_datetime = ready or created

    def add_step(self, cluster_id: str, name: str = "spark") -> str:
        """A step; moto makes it RUNNING and the cluster RUNNING."""
        step_id: str = self.emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[{
            "Name": name, "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "main.py"]},
        }])["StepIds"][0]
        return step_id

    def finish_step(self, cluster_id: str, step_id: str, ended: datetime,
                    state: str = "COMPLETED") -> None:
        """moto never finishes steps; set the end EMR would report, and the cluster back to
        WAITING as EMR does when its last step ends."""
        model = self._model(cluster_id)
        step = next(s for s in model.steps if s.id == step_id)
        step.state = state
        step.end_date_time = ended
        if all(s.state not in ("PENDING", "RUNNING") for s in model.steps):
            model.state = "WAITING"

    def set_step_state(self, cluster_id: str, step_id: str, state: str) -> None:
        next(s for s in self._model(cluster_id).steps if s.id == step_id).state = state

    def set_cluster_state(self, cluster_id: str, state: str) -> None:
        self._model(cluster_id).state = state

    def state(self, cluster_id: str) -> str:
        state: str = self.emr.describe_cluster(
            ClusterId=cluster_id)["Cluster"]["Status"]["State"]
        return state

    def protected(self, cluster_id: str) -> bool:
        return bool(self.emr.describe_cluster(
            ClusterId=cluster_id)["Cluster"]["TerminationProtected"])

    # -- EMR Serverless --------------------------------------------------------------------

    def job_run(self, tags: dict[str, str], state: str = "RUNNING") -> str:
        run_id: str = self.serverless.start_job_run(
            applicationId=self.application_id, executionRoleArn=JOB_ROLE,
            clientToken=f"token-{len(tags)}-{sorted(tags.items())}",
            jobDriver={"sparkSubmit": {"entryPoint": "s3://artifacts/jobs/v1/main.py"}},
            tags=tags,
        )["jobRunId"]
        # moto creates every run in SUCCESS; a run still going is what cleanup is about.
        backend = emrserverless_backends[ACCOUNT][REGION]
        next(r for r in backend.job_runs[self.application_id] if r.id == run_id).state = state
        return run_id

    def job_run_state(self, run_id: str) -> str:
        state: str = self.serverless.get_job_run(applicationId=self.application_id,
                                                 jobRunId=run_id)["jobRun"]["state"]
        return state
