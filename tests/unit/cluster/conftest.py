"""Fixtures for cluster cleanup and the auto-terminator: moto EMR, EMR Serverless, Step
Functions (executing real ASL) and the ledger table shaped like template.yaml.

Where moto 5.2.5 cannot produce a state the real services reach (a finished step with an end
time, a RUNNING serverless job run, a cluster created hours ago), the helpers set it on moto's
backend objects; where it lacks an API (emr GetAutoTerminationPolicy), `answer` stands in for
the service at the botocore layer with the real response shape.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.emr.models import emr_backends
from moto.emrserverless.models import emrserverless_backends

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
APP = "emr-pipelines-dev"
LEDGER = "emr-pipelines-dev-ledger"
STATE_MACHINE = "emr-pipelines-dev-pipeline"
JOB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/emr-pipelines-dev-job"


def execution_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STATE_MACHINE}:{name}"


def load_event(folder: str, name: str) -> dict[str, Any]:
    return json.loads((EVENTS / folder / name).read_text())


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "ENVIRONMENT": "dev",
        "APP_NAME": APP,
        "LEDGER_TABLE": LEDGER,
        "IDLE_THRESHOLD_MINUTES": "30",
        "GRACE_PERIOD_MINUTES": "60",
        "DRY_RUN": "false",
        "ALLOW_PROTECTED_CLUSTER_IDS": "",
        "POWERTOOLS_SERVICE_NAME": "cluster_tests",
        "POWERTOOLS_METRICS_NAMESPACE": "EmrPipelines",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("EMR_SERVERLESS_APPLICATION_ID", raising=False)
    return values


def _http(status: int) -> Any:
    return SimpleNamespace(status_code=status, headers={}, content=b"", raw=None)


@dataclass
class Aws:
    emr: Any
    serverless: Any
    sfn: Any
    table: Any
    application_id: str
    state_machine_arn: str
    # moto 5.2.5 lacks emr GetAutoTerminationPolicy: `aws` answers it from here (seconds),
    # and with EMR's empty answer for a cluster without a policy.
    idle_timeouts: dict[str, int] = field(default_factory=dict)

    # -- EMR -------------------------------------------------------------------------------

    def cluster(self, name: str = "run", tags: dict[str, str] | None = None,
                protected: bool = False) -> str:
        """A long-running cluster (KeepJobFlowAliveWhenNoSteps) like CreateCluster makes."""
        return self.emr.run_job_flow(
            Name=name,
            ReleaseLabel="emr-7.1.0",
            Instances={"MasterInstanceType": "m5.xlarge", "SlaveInstanceType": "m5.xlarge",
                       "InstanceCount": 2, "KeepJobFlowAliveWhenNoSteps": True,
                       "TerminationProtected": protected},
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
        )["JobFlowId"]

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
        return self.emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[{
            "Name": name, "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "main.py"]},
        }])["StepIds"][0]

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
        model = self._model(cluster_id)
        next(s for s in model.steps if s.id == step_id).state = state

    def set_cluster_state(self, cluster_id: str, state: str) -> None:
        self._model(cluster_id).state = state

    def state(self, cluster_id: str) -> str:
        return self.emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]

    def protected(self, cluster_id: str) -> bool:
        return self.emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["TerminationProtected"]

    # -- EMR Serverless --------------------------------------------------------------------

    def job_run(self, tags: dict[str, str], state: str = "RUNNING") -> str:
        run_id = self.serverless.start_job_run(
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
        return self.serverless.get_job_run(applicationId=self.application_id,
                                           jobRunId=run_id)["jobRun"]["state"]

    # -- Step Functions --------------------------------------------------------------------

    def start_execution(self, name: str, resolve_output: dict[str, Any] | None) -> str:
        """Start an execution whose ResolveRun exits with `run` = resolve_output."""
        return self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name,
            input=json.dumps({"resolve": resolve_output}),
        )["executionArn"]

    # -- botocore-level stand-ins ----------------------------------------------------------

    def answer(self, client: Any, operation: str,
               respond: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]) -> None:
        """Answer `operation` on `client` with respond(params) -> (status, parsed body)."""

        def hook(params: dict[str, Any], **_: Any) -> Any:
            status, parsed = respond(json.loads(params["body"] or b"{}"))
            return _http(status), parsed

        event = f"before-call.{client.meta.service_model.service_name}.{operation}"
        client.meta.events.register(event, hook)

    def answer_auto_termination_policies(self, client: Any) -> None:
        self.answer(client, "GetAutoTerminationPolicy", lambda p: (200, (
            {"AutoTerminationPolicy": {"IdleTimeout": self.idle_timeouts[p["ClusterId"]]}}
            if p["ClusterId"] in self.idle_timeouts else {})))

    def item(self, run_id: str) -> dict[str, Any] | None:
        return self.table.get_item(Key={"run_id": run_id}, ConsistentRead=True).get("Item")


# ResolveRun stands in as a Pass state: it exits with the test's run, or with `run` null the way
# a caught ResolveRun failure exits without a run; then the execution waits, as a job would.
_DEFINITION = {
    "StartAt": "ResolveRun",
    "States": {
        "ResolveRun": {"Type": "Pass", "InputPath": "$.resolve", "ResultPath": "$.run",
                       "Next": "RunJob"},
        "RunJob": {"Type": "Wait", "Seconds": 3600, "End": True},
    },
}


@pytest.fixture
def aws(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        table = dynamodb.create_table(
            TableName=LEDGER,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "run_id", "AttributeType": "S"},
                {"AttributeName": "dataset", "AttributeType": "S"},
                {"AttributeName": "started_at", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[{
                "IndexName": "by_dataset",
                "KeySchema": [{"AttributeName": "dataset", "KeyType": "HASH"},
                              {"AttributeName": "started_at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }],
        )
        serverless = boto3.client("emr-serverless", region_name=REGION)
        application_id = serverless.create_application(
            name=f"{APP}-spark", releaseLabel="emr-7.1.0", type="SPARK",
            tags={"pipeline:app": APP})["applicationId"]
        monkeypatch.setenv("EMR_SERVERLESS_APPLICATION_ID", application_id)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        state_machine_arn = sfn.create_state_machine(
            name=STATE_MACHINE, definition=json.dumps(_DEFINITION),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/{APP}-states")["stateMachineArn"]
        aws = Aws(emr=boto3.client("emr", region_name=REGION), serverless=serverless, sfn=sfn,
                  table=table, application_id=application_id,
                  state_machine_arn=state_machine_arn)
        aws.answer_auto_termination_policies(aws.emr)
        yield aws


def fresh_import(module: str) -> Any:
    """Handlers build settings and clients at import: import them inside the mocks."""
    sys.modules.pop(module, None)
    return importlib.import_module(module)


class FakeContext:
    function_name = "emr-pipelines-dev-Cluster"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
    aws_request_id = "5b0e7d0a-0000-4000-8000-000000000002"


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()


def emf_lines(text: str) -> list[dict[str, Any]]:
    """The EMF blobs powertools printed."""
    blobs = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "_aws" in data:
            blobs.append(data)
    return blobs


NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
