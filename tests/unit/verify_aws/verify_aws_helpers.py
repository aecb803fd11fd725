"""The world `make verify-aws` meets, inside moto: a FakeSam whose deploy creates a stack shaped
like template.yaml's (the resources and outputs the verification reads, with the template's
DeletionPolicy: Retain on the raw and curated buckets and the ledger), an S3 client that plays
the raw bucket's EventBridge rule (an upload under online_retail/ starts an execution with the
Object Created event of events/resolve_run/s3_object_created.json), a stand-in "pipeline" state
machine (Pass states that set $.run, or a Fail), and what the pipeline would have written (the
ledger item, the rows FakeRedshiftData returns)."""

from __future__ import annotations

import copy
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import boto3

from local_runtime.cfn import load_template
from pipeline_aws.ledger import RunLedger
from tests.e2e.e2e_expected import expected_day
from tests.support.aws import ACCOUNT, REGION, REPO, ledger_table_properties, read_event
from tests.support.fakes.redshift_data import FakeRedshiftData
from verify_aws import config as cfg
from verify_aws import pipeline_run
from verify_aws.verify import Clients

DAY = "2010-12-01"
SAMPLE = cfg.SAMPLES / f"{DAY}.csv"
RUN_ID = "online_retail-2010-12-01-3f2a9c1b7d10"
VERSION = "2026.11.30-test"
EXPECTED = expected_day(SAMPLE)
SANDBOX_ENV = {
    "VERIFY_AWS_ACCOUNT": ACCOUNT,
    "VERIFY_AWS_REGION": REGION,
    "VERIFY_REDSHIFT_WORKGROUP": "sandbox",
    "VERIFY_REDSHIFT_DATABASE": "dev",
}  # an independent count of the day, straight from the CSV


@cache
def template_resource(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = load_template(REPO / "template.yaml")["Resources"][name]
    return resource


def _bucket(name: str) -> dict[str, Any]:
    """A bucket as template.yaml declares it: versioning and deletion policy included."""
    declared = template_resource(name)
    props = {k: v for k, v in declared["Properties"].items()
             if k == "VersioningConfiguration"}
    resource: dict[str, Any] = {"Type": "AWS::S3::Bucket", "Properties": props}
    if "DeletionPolicy" in declared:
        resource["DeletionPolicy"] = declared["DeletionPolicy"]
    return resource


def pipeline_definition(outcome: str) -> dict[str, Any]:
    if outcome == "fail":
        return {"StartAt": "Failed", "States": {"Failed": {
            "Type": "Fail", "Error": "QualityGateFailed", "Cause": "2 rules failed"}}}
    duplicate = outcome == "duplicate"
    return {"StartAt": "ResolveRun", "States": {"ResolveRun": {
        "Type": "Pass", "Result": {"run_id": RUN_ID, "duplicate": duplicate},
        "ResultPath": "$.run", "End": True}}}


def stack_template(application_id: str, machine_arn: str) -> str:
    """The stack's shape. The state machine and the EMR Serverless application are made by
    FakeSam and named here: moto's CloudFormation puts state machines where its executing
    Step Functions backend does not look, and it has no EMR Serverless resource."""
    ledger = {"Type": "AWS::DynamoDB::Table",
              "DeletionPolicy": template_resource("RunLedger")["DeletionPolicy"],
              "Properties": ledger_table_properties()}
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    resources = {
        "RawBucket": _bucket("RawBucket"), "CuratedBucket": _bucket("CuratedBucket"),
        "ArtifactsBucket": _bucket("ArtifactsBucket"), "RunLedger": ledger,
        "RedshiftCopyRole": {"Type": "AWS::IAM::Role",
                             "Properties": {"AssumeRolePolicyDocument": trust}},
    }
    outputs = {
        "RawBucketName": {"Value": {"Ref": "RawBucket"}},
        "CuratedBucketName": {"Value": {"Ref": "CuratedBucket"}},
        "ArtifactsBucketName": {"Value": {"Ref": "ArtifactsBucket"}},
        "PipelineStateMachineArn": {"Value": machine_arn},
        "RunLedgerTableName": {"Value": {"Ref": "RunLedger"}},
        "RedshiftCopyRoleArn": {"Value": {"Fn::GetAtt": ["RedshiftCopyRole", "Arn"]}},
        "EmrServerlessApplicationId": {"Value": application_id},
    }
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources,
                       "Outputs": outputs})


@dataclass
class FakeSam:
    """Stands in for the SAM CLI: records each call; `deploy` creates the stack in moto."""

    outcome: str = "succeed"
    fail_on: str = ""
    calls: list[list[str]] = field(default_factory=list)

    def run(self, args: Sequence[str]) -> None:
        self.calls.append(list(args))
        if args[0] == "deploy":
            stack = args[list(args).index("--stack-name") + 1]
            serverless = boto3.client("emr-serverless", region_name=REGION)
            app = serverless.create_application(name=f"{stack}-spark", releaseLabel="emr-7.0.0",
                                                type="SPARK")
            # the application's earlier, finished job run (moto ends job runs SUCCESS at once)
            serverless.start_job_run(applicationId=app["applicationId"], clientToken="t1",
                                     executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/job",
                                     jobDriver={"sparkSubmit": {"entryPoint": "s3://a/m.py"}})
            machine = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
                name=f"{stack}-pipeline", definition=json.dumps(pipeline_definition(self.outcome)),
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/{stack}-pipeline")["stateMachineArn"]
            boto3.client("cloudformation", region_name=REGION).create_stack(
                StackName=stack, TemplateBody=stack_template(app["applicationId"], machine))
        if args[0] == self.fail_on:
            raise RuntimeError(f"sam {args[0]} exited 1")
        if f"{args[0]}:interrupt" == self.fail_on:
            raise KeyboardInterrupt


class Pipeline:
    """What the deployed pipeline does with an upload: the EventBridge rule starts the state
    machine; the run (when `writes` is set) records its ledger item and loads its rows."""

    def __init__(self, redshift: FakeRedshiftData, rows_in_redshift: int | None = None):
        self.redshift = redshift
        self.rows_in_redshift = rows_in_redshift
        self.started: list[str] = []

    def object_created(self, bucket: str, key: str) -> None:
        cfn = boto3.client("cloudformation", region_name=REGION)
        stack = cfn.describe_stacks()["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        if bucket != outputs["RawBucketName"] or not key.startswith(cfg.DATASET_PREFIX):
            return
        event = copy.deepcopy(read_event("resolve_run", "s3_object_created.json")["event"])
        event["detail"]["bucket"]["name"] = bucket
        event["detail"]["object"]["key"] = key
        sfn = boto3.client("stepfunctions", region_name=REGION)
        started = sfn.start_execution(stateMachineArn=outputs["PipelineStateMachineArn"],
                                      name=str(uuid.uuid4()), input=json.dumps(event))
        self.started.append(started["executionArn"])
        self._record(outputs["RunLedgerTableName"], key)

    def _record(self, table: str, key: str) -> None:
        day = key.removeprefix(cfg.DATASET_PREFIX).removesuffix(".csv")
        out = EXPECTED["line_items"]
        ledger = RunLedger(boto3.resource("dynamodb", region_name=REGION).Table(table))
        ledger.create_run({"run_id": RUN_ID, "dataset": "online_retail", "partition": day,
                           "started_at": "2026-11-30T10:00:00Z", "status": "SUCCEEDED",
                           "lines": {"in": EXPECTED["lines"], "out": out,
                                     "quarantined": EXPECTED["quarantined"],
                                     "duplicates": EXPECTED["duplicates"]},
                           "rows_loaded": {"sales_line_items": out}})
        loaded = out if self.rows_in_redshift is None else self.rows_in_redshift
        self.redshift.rows[pipeline_run.count_sql(day, RUN_ID)] = [[loaded, loaded]]


class S3WithEvents:
    """A moto S3 client whose put_object also delivers the Object Created event."""

    def __init__(self, client: Any, pipeline: Pipeline):
        self._client = client
        self._pipeline = pipeline
        self.put_keys: list[str] = []

    def put_object(self, **kwargs: Any) -> Any:
        response = self._client.put_object(**kwargs)
        self.put_keys.append(f"{kwargs['Bucket']}/{kwargs['Key']}")
        self._pipeline.object_created(kwargs["Bucket"], kwargs["Key"])
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@dataclass
class FakeCopyRoles:
    """The warehouse's role associations (no Redshift in moto)."""

    roles: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def attach(self, role_arn: str) -> bool:
        self.events.append(f"attach {role_arn}")
        if role_arn in self.roles:
            return False
        self.roles.append(role_arn)
        return True

    def detach(self, role_arn: str) -> None:
        self.events.append(f"detach {role_arn}")
        if role_arn in self.roles:
            self.roles.remove(role_arn)


def moto_clients(pipeline: Pipeline, roles: FakeCopyRoles) -> tuple[Clients, S3WithEvents]:
    s3 = S3WithEvents(boto3.client("s3", region_name=REGION), pipeline)
    clients = Clients(
        cloudformation=boto3.client("cloudformation", region_name=REGION), s3=s3,
        stepfunctions=boto3.client("stepfunctions", region_name=REGION),
        dynamodb=boto3.resource("dynamodb", region_name=REGION),
        emr=boto3.client("emr", region_name=REGION),
        emr_serverless=boto3.client("emr-serverless", region_name=REGION),
        redshift_data=pipeline.redshift, copy_roles=roles)
    return clients, s3


def job_package(root: Path) -> Path:
    """A packaged build/jobs/<version>/ as scripts/package_jobs.py lays it out (small)."""
    package = root / VERSION
    (package / "spark_jobs" / "online_retail").mkdir(parents=True)
    (package / "spark_jobs" / "online_retail" / "main.py").write_text("print('job')\n")
    (package / "spark_jobs.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    (package / "manifest.json").write_text(json.dumps({"version": VERSION}))
    return root


def last_line(out: io.StringIO) -> str:
    return out.getvalue().strip().splitlines()[-1]
