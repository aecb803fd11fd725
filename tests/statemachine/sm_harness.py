"""Executions of the real pipeline ASL in moto's interpreter, with every integration stubbed.

The Lambda functions, the Spark job runner and the Redshift Data API are scripted fakes plugged
into the local runtime's interpreter hooks, so these tests exercise the definition itself:
transitions, Retry, Catch, the wait for the load's completion event, the load retry and the
cluster teardown. The load function is the one scripted exception: its await, describe, cancel
and completion-event handling are the real pipeline_aws.load.LoadStatement (the outcomes the
state machine follows are computed there) on a scripted Data API, an in-memory ledger and
moto's SendTaskSuccess/SendTaskFailure; its submit is scripted. The completion event is
delivered as EventBridge would, shortly after AwaitLoad started waiting (`events` of them, 0 for
a lost event), and only for a statement that has ended.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ASL = REPO / "statemachines" / "pipeline.asl.json"
ACCOUNT, REGION = "123456789012", "us-east-1"
FUNCTIONS = ("ResolveRun", "EvaluateQuality", "LoadStatement", "RecordRun", "TrackCost",
             "HandleFailure")


class TransientError(Exception):
    """Same name as pipeline_core.errors.TransientError: the ASL retries it."""


class InvalidInput(Exception):
    """Same name as pipeline_core.errors.InvalidInput: not retried."""


def manifest(compute: str = "serverless", duplicate: bool = False) -> dict[str, Any]:
    run_id = "online_retail-2010-12-01-0123456789ab"
    curated = "s3://curated/online_retail"
    run = {
        "run_id": run_id, "dataset": "online_retail", "partition": "2010-12-01",
        "trigger": "s3", "duplicate": duplicate, "attempt": 1, "compute": compute,
        "execution_id": "arn:aws:states:us-east-1:123456789012:execution:pipeline:x",
        "started_at": "2026-11-21T10:00:00Z",
        "outputs": {"sales_line_items": f"{curated}/sales_line_items/partition=2010-12-01/"
                                        f"run_id={run_id}/"},
        "quarantine_uri": "s3://curated/quarantine/online_retail/partition=2010-12-01/",
        "metrics_uri": f"s3://curated/_runs/online_retail/{run_id}/metrics.json",
        "quality_uri": f"s3://curated/_runs/online_retail/{run_id}/quality.json",
        "input": {"bucket": "raw", "key": "online_retail/2010-12-01.csv", "etag": "e",
                  "size": 10, "uri": "s3://raw/online_retail/2010-12-01.csv"},
        "job": {"name": "online_retail", "code_version": "v1",
                "entry_point": "s3://artifacts/jobs/v1/spark_jobs/online_retail/main.py",
                "py_files": "s3://artifacts/jobs/v1/spark_jobs.zip",
                "arguments": ["--input", "s3://raw/online_retail/2010-12-01.csv"],
                "spark_submit_parameters": "--py-files s3://artifacts/jobs/v1/spark_jobs.zip",
                "client_token": f"{run_id}-a1", "timeout_minutes": 60,
                "log_uri": "s3://artifacts/logs/emr-serverless/"},
        "tags": {"pipeline:run-id": run_id, "pipeline:app": "pipeline-test"},
        "cluster": None,
    }
    if compute == "cluster":
        run["cluster"] = {
            "name": run_id, "release_label": "emr-7.0.0", "log_uri": "s3://artifacts/logs/emr/",
            "idle_timeout_seconds": 900,
            "instances": {"InstanceGroups": [
                {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
                {"InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 1}],
                "KeepJobFlowAliveWhenNoSteps": True},
            "tags": [{"Key": "pipeline:run-id", "Value": run_id}],
            "step_args": ["spark-submit", "s3://artifacts/jobs/v1/spark_jobs/online_retail/main.py"],
        }
    return run


@dataclass
class FakeLambdas:
    """Scripted Lambda results per function: a value, an exception, or a callable."""

    script: dict[str, list[Any]] = field(default_factory=dict)
    calls: dict[str, list[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, name: str, *results: Any) -> None:
        self.script[name] = list(results)

    def invoke(self, function_arn: str, payload: Any) -> dict[str, Any]:
        name = function_arn.rsplit(":", 1)[-1]
        with self.lock:
            self.calls.setdefault(name, []).append(payload)
            queue = self.script.get(name) or [{}]
            result = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(result) and not isinstance(result, type):
            try:
                result = result(payload)
            except Exception as e:  # raised by a real handler's logic: Lambda's error shape
                result = e
        if isinstance(result, BaseException | type):
            err = result if isinstance(result, BaseException) else result()
            return {"StatusCode": 200, "FunctionError": "Unhandled",
                    "Payload": {"errorType": type(err).__name__, "errorMessage": str(err)}}
        return {"StatusCode": 200, "Payload": result}


class FakeJobResult:
    def __init__(self) -> None:
        self.state, self.details, self.started_at, self.ended_at = "SUBMITTED", "", None, None
        self.work_dir = None
        self.wall_seconds = 0.0


@dataclass
class FakeJobRunner:
    """Stands in for local Spark: each job ends with the scripted outcome."""

    outcome: str = "SUCCESS"
    details: str = ""
    runs: list[str] = field(default_factory=list)

    def run(self, job_id: str, entry_point: str, args: list[str], *, result: Any,
            **_: Any) -> None:
        self.runs.append(job_id)
        result.started_at = time.time()
        result.state = self.outcome
        result.details = self.details
        result.ended_at = time.time()

    def cancel(self, job_id: str) -> bool:
        return True

    def job_seconds(self) -> float:
        return 0.0


@dataclass
class FakeDataApi:
    """The Data API as the load function sees it: DescribeStatement answers from a script of
    statuses (the last one repeats); a status may be an exception, raised instead; "FAILED" says
    `error`, or the next of `errors` while there are some."""

    statuses: list[Any] = field(default_factory=lambda: ["STARTED", "FINISHED"])
    error: str = "ERROR: relation \"analytics.sales_line_items\" does not exist"
    errors: list[str] = field(default_factory=list)
    described: int = 0
    cancelled: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self, statement_id: str) -> dict[str, Any]:
        with self.lock:
            self.described += 1
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            error = self.errors.pop(0) if status == "FAILED" and self.errors else self.error
        if isinstance(status, BaseException):
            raise status
        body = {"Id": statement_id, "Status": status, "HasResultSet": False,
                "SubStatements": [{"Id": f"{statement_id}:1", "Status": status,
                                   "ResultRows": 7}]}
        if status == "FAILED":
            body["Error"] = error
        return body

    def cancel(self, statement_id: str) -> str:
        self.cancelled.append(statement_id)
        return "cancelled"

    def query(self, sql: str, **_: Any) -> list[list[Any]]:
        return []

    # the moto Data API stand-in's side: the state machine itself must never reach it
    def get(self, statement_id: str, caller: str | None = None):
        raise AssertionError("the state machine must not call the Data API itself")

    def submit(self, *a: Any, **k: Any):
        raise AssertionError("the state machine must not submit SQL itself")

    def sql_seconds(self) -> float:
        return 0.0


APP = "pipeline-test"


def statement_event(name: str, statement_id: str, state: str) -> dict[str, Any]:
    """A "Redshift Data Statement Status Change" event, shaped as in "Monitoring events for the
    Amazon Redshift Data API in Amazon EventBridge" (Amazon Redshift Management Guide)."""
    return {"version": "0", "id": str(uuid.uuid4()),
            "detail-type": "Redshift Data Statement Status Change",
            "source": "aws.redshift-data", "account": ACCOUNT, "time": "2026-11-21T10:05:00Z",
            "region": REGION, "resources": [],
            "detail": {"principal": f"arn:aws:sts::{ACCOUNT}:assumed-role/load/LoadStatement",
                       "statementName": name, "statementId": statement_id,
                       "redshiftQueryId": -1, "state": state, "rows": 1,
                       "expireAt": 1801673265}}


class FakeLoadStatement:
    """The load function: submit scripted (a new statement id per load try, the try computed
    by the real next_load_try), await, describe, cancel and the completion event the real
    LoadStatement's. `events`: how many times EventBridge delivers each statement's
    completion event (0: lost)."""

    def __init__(self, data_api: FakeDataApi) -> None:
        import boto3

        from pipeline_aws.load import LoadStatement
        from pipeline_aws.task_tokens import TaskTokens
        from tests.support.fakes.ledger import FakeLedger

        self.data_api = data_api
        self.events = 1
        self.reports: list[dict[str, Any]] = []  # what each event delivery did
        self.submitted: list[tuple[int, str]] = []  # (load try, statement id)
        self.names: dict[str, str] = {}  # statement id -> StatementName
        self.ledger = FakeLedger()
        self.owner = LoadStatement(catalog=lambda: None, redshift=data_api,  # type: ignore
                                   migrations=[], copy_role_arn="unused", app_name=APP,
                                   ledger=self.ledger,
                                   tasks=TaskTokens(boto3.client("stepfunctions",
                                                                 region_name=REGION)),
                                   rng=lambda low, high: high)

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        from pipeline_aws.contracts import LoadStatementRequest
        from pipeline_aws.load import next_load_try, statement_name, waiting_run_id

        request = LoadStatementRequest.parse(payload)
        if request.operation == "await":
            result = self.owner.handle(request)
            if "waiting" in result:
                self._deliver_later(result["waiting"])
            return result
        if request.operation != "submit":
            return self.owner.handle(request)
        load_try = next_load_try(request.state)
        statement_id = f"statement-{load_try}-{uuid.uuid4().hex[:8]}"
        holder = waiting_run_id(request.state)
        if self.ledger.get(holder) is None:  # as ResolveRun created it
            self.ledger.create_run({"run_id": holder, "status": "RUNNING"})
        self.names[statement_id] = statement_name(APP, holder, load_try)
        self.submitted.append((load_try, statement_id))
        return {"statement_id": statement_id, "tables": {"sales_line_items": 0},
                "migrations_applied": [], "load_try": load_try}

    def _deliver_later(self, statement_id: str) -> None:
        """EventBridge: the event once the statement ended (the scripted describe says so)."""
        def deliver() -> None:
            for _ in range(self.events):
                time.sleep(0.05)
                event = statement_event(self.names[statement_id], statement_id, "FINISHED")
                self.reports.append(self.owner.handle_event(event))

        threading.Thread(target=deliver, daemon=True).start()


class FakeClusterRuntime:
    """Runs cluster steps instantly with the scripted outcome, keeping moto's EMR state."""

    def __init__(self, outcome: str = "COMPLETED"):
        self.outcome = outcome
        self.steps: list[str] = []

    def start_cluster_step(self, cluster_id: str, step_id: str, step: dict[str, Any]) -> None:
        from moto.emr.models import emr_backends

        cluster = emr_backends[ACCOUNT][REGION].clusters[cluster_id]
        for s in cluster.steps:
            if s.id == step_id:
                s.state = self.outcome
        self.steps.append(step_id)

    def step_result(self, step_id: str) -> Any:
        result = FakeJobResult()
        result.details = "JOB ERROR: scripted step failure"
        return result

    def cancel_cluster_step(self, cluster_id: str, step_id: str) -> None:
        return None


@dataclass
class Execution:
    status: str
    output: dict[str, Any]
    history: list[dict[str, Any]]

    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.history
                if "stateEnteredEventDetails" in e]


class Harness:
    def __init__(self) -> None:
        import boto3

        from local_runtime import moto_patches, sfn_hooks

        self.lambdas = FakeLambdas()
        self.jobs = FakeJobRunner()
        self.data_api = FakeDataApi()
        self.clusters = FakeClusterRuntime()
        moto_patches.install(self.jobs, self.data_api)
        sfn_hooks.install(invoke_lambda=self.lambdas.invoke, runtime=self.clusters,
                          time_factor=0.0)
        # install() keeps the first runner/engine it was given: point it at this harness's.
        moto_patches.STATE["runner"], moto_patches.STATE["engine"] = self.jobs, self.data_api
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.emr = boto3.client("emr", region_name=REGION)
        app = boto3.client("emr-serverless", region_name=REGION).create_application(
            name="pipeline", releaseLabel="emr-7.0.0", type="SPARK")
        definition = ASL.read_text()
        values = {name: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
                  for name in (f"{f}FunctionArn" for f in FUNCTIONS)}
        values.update(EmrServerlessApplicationId=app["applicationId"],
                      EmrJobRoleArn=f"arn:aws:iam::{ACCOUNT}:role/job",
                      EmrServiceRoleArn=f"arn:aws:iam::{ACCOUNT}:role/emr-service",
                      EmrInstanceProfileName="emr-instance-profile")
        definition = re.sub(r"\$\{(\w+)\}",
                            lambda m: values[m.group(1)].replace("FunctionArn", ""), definition)
        self.arn = self.sfn.create_state_machine(
            name=f"pipeline-{uuid.uuid4().hex[:8]}", definition=definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
        self.script_success()

    def script_success(self, compute: str = "serverless") -> None:
        self.lambdas.set("ResolveRun", manifest(compute))
        self.lambdas.set("EvaluateQuality", {"verdict": "pass", "summary": "all rules passed",
                                             "failed_rules": [], "warned_rules": []})
        self.load = FakeLoadStatement(self.data_api)
        self.lambdas.set("LoadStatement", self.load)
        self.lambdas.set("RecordRun", {"status": "SUCCEEDED"})
        self.lambdas.set("TrackCost", {"total_usd": 0.01, "components": {}, "errors": []})
        self.lambdas.set("HandleFailure", lambda p: {"failed_state": next(iter(
            p["state"].get("failure", {"?": 0}))), "cleanup": []})

    def run(self, event: dict[str, Any] | None = None, timeout: float = 60) -> Execution:
        # named, as Step Functions names every execution (moto leaves $$.Execution.Name null)
        arn = self.sfn.start_execution(stateMachineArn=self.arn, name=f"e-{uuid.uuid4().hex}",
                                       input=json.dumps(event or {"detail": {}}))["executionArn"]
        deadline = time.monotonic() + timeout
        while True:
            desc = self.sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                break
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.02)
        history = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return Execution(desc["status"], json.loads(desc.get("output") or "{}"), history)

    def active_clusters(self) -> list[str]:
        return [c["Id"] for c in self.emr.list_clusters(ClusterStates=[
            "STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING", "TERMINATING"])["Clusters"]]
