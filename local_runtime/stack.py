"""The local stack: template.yaml's resources in moto, the real handlers, Spark and PostgreSQL.

One LocalStack per process (moto, env vars and the interpreter hooks are process-global).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from local_runtime import cfn
from local_runtime.warehouse import Warehouse, missing_prerequisites, start_warehouse

LOG = logging.getLogger("local_runtime")
REPO = Path(__file__).resolve().parent.parent
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": cfn.REGION, "AWS_REGION": cfn.REGION,
    "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_DEV": "false",
    "MOTO_ALLOW_NONEXISTENT_REGION": "true",
}
# Parameter values a local run needs where the template's defaults are for AWS.
LOCAL_PARAMETER_HINTS = {"subnet": "subnet-0123456789abcdef0"}
LOCAL_PARAMETERS = {"RedshiftWorkgroupName": "local-workgroup"}


class LocalRuntimeError(Exception):
    """The local stack cannot be built or a run cannot be started (the message says why)."""


@dataclass
class LocalFunction:
    logical_id: str
    name: str
    arn: str
    module_name: str
    handler_attr: str
    env: dict[str, str]
    memory_mb: int
    timeout_s: int
    module: Any = None
    seconds: float = 0.0
    calls: int = 0


class LambdaContext:
    def __init__(self, fn: LocalFunction):
        self.function_name = fn.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = fn.arn
        self.memory_limit_in_mb = fn.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{fn.name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + fn.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class StepRecord:
    cluster_id: str
    step_id: str
    result: Any
    thread: threading.Thread | None = None


@dataclass
class LocalStack:
    repo: Path = REPO
    work_dir: Path | None = None
    warehouse_url: str | None = None
    time_factor: float = 0.01
    parameters: dict[str, str] = field(default_factory=dict)
    stack_name: str = cfn.STACK_NAME

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir or self.repo / ".local")
        self.template: dict[str, Any] = {}
        self.resolver: cfn.Resolver | None = None
        self.buckets: dict[str, str] = {}  # logical id -> bucket name
        self.tables: dict[str, str] = {}
        self.topics: dict[str, str] = {}  # logical id -> topic arn
        self.alert_queues: dict[str, str] = {}  # topic arn -> queue url
        self.functions: dict[str, LocalFunction] = {}  # arn and name -> fn
        self.state_machine_arn = ""
        self.state_machine_logical_id = ""
        self.event_patterns: list[dict[str, Any]] = []
        self.application_ids: dict[str, str] = {}
        self.code_version = "local"
        self.warehouse: Warehouse | None = None
        self.engine: Any = None
        self.runner: Any = None
        self._mock: Any = None
        self._lambda_lock = threading.Lock()
        self._steps: dict[str, StepRecord] = {}
        self._lambda_log: Any = None
        self.lambda_seconds = 0.0

    # -- start / stop ---------------------------------------------------------------------------
    def start(self) -> LocalStack:
        problems = missing_prerequisites()
        if self.warehouse_url:
            problems = [p for p in problems if "PostgreSQL" not in p]
        if problems:
            raise LocalRuntimeError("; ".join(problems))
        template_path = self.repo / "template.yaml"
        if not template_path.exists():
            raise LocalRuntimeError(f"{template_path} is missing: the local runtime builds the "
                                    "stack from it")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for k, v in FAKE_ENV.items():
            os.environ.setdefault(k, v)
        os.environ["AWS_DEFAULT_REGION"] = cfn.REGION
        if str(self.repo) not in sys.path:
            sys.path.insert(0, str(self.repo))
        self._lambda_log = open(self.work_dir / "lambda.log", "a", buffering=1)  # noqa: SIM115

        from moto import mock_aws

        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        import boto3

        self.session = boto3.session.Session(region_name=cfn.REGION)
        self.template = cfn.load_template(template_path)
        self.resolver = cfn.Resolver(self.template, parameters=self._parameter_values(),
                                     stack_name=self.stack_name)
        self._name_resources()
        self._create_resources()
        self._start_warehouse()
        self._install()
        self._publish_artifacts()
        self._create_state_machine()
        return self

    def stop(self, *, stop_warehouse: bool = False) -> None:
        if self._mock is not None:
            with contextlib.suppress(Exception):
                self._mock.stop()
            self._mock = None
        if stop_warehouse and self.warehouse is not None:
            self.warehouse.stop()
        if self._lambda_log:
            self._lambda_log.close()
            self._lambda_log = None

    def client(self, name: str) -> Any:
        return self.session.client(name, region_name=cfn.REGION)

    # -- template -> resources ------------------------------------------------------------------
    def _parameter_values(self) -> dict[str, str]:
        values = {}
        for name, spec in (self.template_params() or {}).items():
            if name in self.parameters:
                values[name] = self.parameters[name]
                continue
            default = spec.get("Default")
            if name in LOCAL_PARAMETERS and not default:
                values[name] = LOCAL_PARAMETERS[name]
            elif "subnet" in name.lower() and not default:
                values[name] = LOCAL_PARAMETER_HINTS["subnet"]
            elif default is None:
                values[name] = "local"
        values.update(self.parameters)
        return values

    def template_params(self) -> dict[str, Any]:
        return (self.template or cfn.load_template(self.repo / "template.yaml")).get(
            "Parameters") or {}

    def _props(self, lid: str) -> dict[str, Any]:
        return self.template["Resources"][lid].get("Properties") or {}

    def _name_or(self, lid: str, key: str, default: str) -> str:
        props = self._props(lid)
        if key in props:
            try:
                return str(self.resolver.resolve(props[key]))
            except cfn.TemplateError:
                pass
        return default

    def _name_resources(self) -> None:
        r = self.resolver
        acct, region, stack = r.account, r.region, self.stack_name
        # pass 1: names that do not depend on other resources
        pending = dict(self.template["Resources"])
        for _ in range(3):
            for lid, res in list(pending.items()):
                typ = res.get("Type", "")
                try:
                    self._name_one(lid, typ, acct, region, stack)
                    pending.pop(lid)
                except cfn.TemplateError:
                    continue
        for lid, res in pending.items():  # last pass: default names
            self._name_one(lid, res.get("Type", ""), acct, region, stack, use_props=False)

    def _name_one(self, lid: str, typ: str, acct: str, region: str, stack: str,
                  use_props: bool = True) -> None:
        r = self.resolver
        low = f"{stack}-{lid}".lower()

        def name(key: str, default: str) -> str:
            props = self._props(lid)
            if use_props and key in props:
                return str(r.resolve(props[key]))
            return default

        if typ == "AWS::S3::Bucket":
            n = name("BucketName", low)
            r.refs[lid] = n
            r.attrs[(lid, "Arn")] = f"arn:aws:s3:::{n}"
            r.attrs[(lid, "DomainName")] = f"{n}.s3.amazonaws.com"
            r.attrs[(lid, "RegionalDomainName")] = f"{n}.s3.{region}.amazonaws.com"
        elif typ in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"):
            n = name("TableName", f"{stack}-{lid}")
            r.refs[lid] = n
            r.attrs[(lid, "Arn")] = f"arn:aws:dynamodb:{region}:{acct}:table/{n}"
            r.attrs[(lid, "StreamArn")] = f"arn:aws:dynamodb:{region}:{acct}:table/{n}/stream/x"
        elif typ == "AWS::SNS::Topic":
            n = name("TopicName", f"{stack}-{lid}")
            arn = f"arn:aws:sns:{region}:{acct}:{n}"
            r.refs[lid] = arn
            r.attrs[(lid, "TopicArn")] = arn
            r.attrs[(lid, "TopicName")] = n
        elif typ == "AWS::SQS::Queue":
            n = name("QueueName", f"{stack}-{lid}")
            r.refs[lid] = f"https://sqs.{region}.amazonaws.com/{acct}/{n}"
            r.attrs[(lid, "Arn")] = f"arn:aws:sqs:{region}:{acct}:{n}"
            r.attrs[(lid, "QueueName")] = n
        elif typ in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            n = name("FunctionName", f"{stack}-{lid}")
            r.refs[lid] = n
            r.attrs[(lid, "Arn")] = f"arn:aws:lambda:{region}:{acct}:function:{n}"
        elif typ == "AWS::IAM::Role":
            n = name("RoleName", f"{stack}-{lid}")
            r.refs[lid] = n
            r.attrs[(lid, "Arn")] = f"arn:aws:iam::{acct}:role/{n}"
            r.attrs[(lid, "RoleId")] = f"AROA{lid.upper()[:16]}"
        elif typ == "AWS::IAM::InstanceProfile":
            n = name("InstanceProfileName", f"{stack}-{lid}")
            r.refs[lid] = n
            r.attrs[(lid, "Arn")] = f"arn:aws:iam::{acct}:instance-profile/{n}"
        elif typ in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            n = name("Name", name("StateMachineName", f"{stack}-{lid}"))
            arn = f"arn:aws:states:{region}:{acct}:stateMachine:{n}"
            r.refs[lid] = arn
            r.attrs[(lid, "Arn")] = arn
            r.attrs[(lid, "Name")] = n
        elif typ == "AWS::EMRServerless::Application":
            r.refs.setdefault(lid, f"00local{lid.lower()}"[:16])
            r.attrs.setdefault((lid, "ApplicationId"), r.refs[lid])
            r.attrs.setdefault((lid, "Arn"), f"arn:aws:emr-serverless:{region}:{acct}:"
                                              f"/applications/{r.refs[lid]}")
        elif typ == "AWS::SSM::Parameter":
            n = name("Name", f"/{stack}/{lid}")
            r.refs[lid] = n
            r.attrs[(lid, "Value")] = ""
        elif typ == "AWS::SecretsManager::Secret":
            n = name("Name", f"{stack}-{lid}")
            arn = f"arn:aws:secretsmanager:{region}:{acct}:secret:{n}-AbCdEf"
            r.refs[lid] = arn
            r.attrs[(lid, "Id")] = arn
        elif typ == "AWS::Events::Rule":
            n = name("Name", f"{stack}-{lid}")
            r.refs[lid] = n
            r.attrs[(lid, "Arn")] = f"arn:aws:events:{region}:{acct}:rule/{n}"
        elif typ == "AWS::Logs::LogGroup":
            n = name("LogGroupName", f"/aws/{stack}/{lid}")
            r.refs[lid] = n
            r.attrs[(lid, "Arn")] = f"arn:aws:logs:{region}:{acct}:log-group:{n}:*"
        else:
            service = typ.split("::")[1].lower() if typ.count("::") >= 2 else "local"
            r.refs.setdefault(lid, f"{stack}-{lid}")
            for attr in ("Arn", "Id", "Name"):
                r.attrs.setdefault((lid, attr), f"arn:aws:{service}:{region}:{acct}:{lid}"
                                   if attr == "Arn" else f"{stack}-{lid}")

    def _create_resources(self) -> None:
        r = self.resolver
        for lid, res in self.template["Resources"].items():
            typ = res.get("Type", "")
            props = res.get("Properties") or {}
            if "Condition" in res and not r.condition(res["Condition"]):
                continue
            if typ == "AWS::S3::Bucket":
                self.client("s3").create_bucket(Bucket=r.refs[lid])
                self.buckets[lid] = r.refs[lid]
                if (props.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration"):
                    pass  # events are built by the runtime from the rule's pattern
            elif typ == "AWS::DynamoDB::Table":
                p = r.resolve(props)
                kwargs: dict[str, Any] = {
                    "TableName": r.refs[lid], "KeySchema": p["KeySchema"],
                    "AttributeDefinitions": p["AttributeDefinitions"],
                    "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
                }
                if p.get("GlobalSecondaryIndexes"):
                    kwargs["GlobalSecondaryIndexes"] = [
                        {k: v for k, v in g.items() if k in (
                            "IndexName", "KeySchema", "Projection", "ProvisionedThroughput")}
                        for g in p["GlobalSecondaryIndexes"]]
                if p.get("LocalSecondaryIndexes"):
                    kwargs["LocalSecondaryIndexes"] = p["LocalSecondaryIndexes"]
                if kwargs["BillingMode"] == "PROVISIONED":
                    kwargs["ProvisionedThroughput"] = p.get("ProvisionedThroughput") or {
                        "ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
                self.client("dynamodb").create_table(**kwargs)
                self.tables[lid] = r.refs[lid]
            elif typ == "AWS::Serverless::SimpleTable":
                pk = r.resolve(props.get("PrimaryKey") or {"Name": "id", "Type": "String"})
                t = {"String": "S", "Number": "N", "Binary": "B"}[pk.get("Type", "String")]
                self.client("dynamodb").create_table(
                    TableName=r.refs[lid], KeySchema=[{"AttributeName": pk["Name"],
                                                        "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": pk["Name"], "AttributeType": t}],
                    BillingMode="PAY_PER_REQUEST")
                self.tables[lid] = r.refs[lid]
            elif typ == "AWS::SNS::Topic":
                sns, sqs = self.client("sns"), self.client("sqs")
                arn = sns.create_topic(Name=r.attrs[(lid, "TopicName")])["TopicArn"]
                q = sqs.create_queue(QueueName=f"{r.attrs[(lid, 'TopicName')]}-local-inbox")
                qarn = sqs.get_queue_attributes(QueueUrl=q["QueueUrl"], AttributeNames=[
                    "QueueArn"])["Attributes"]["QueueArn"]
                sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
                self.topics[lid] = arn
                self.alert_queues[arn] = q["QueueUrl"]
            elif typ == "AWS::SQS::Queue":
                self.client("sqs").create_queue(QueueName=r.attrs[(lid, "QueueName")])
            elif typ == "AWS::SSM::Parameter":
                p = r.resolve(props)
                self.client("ssm").put_parameter(Name=r.refs[lid], Value=str(p.get("Value", "")),
                                                 Type=p.get("Type", "String"), Overwrite=True)
                r.attrs[(lid, "Value")] = str(p.get("Value", ""))
            elif typ == "AWS::EMRServerless::Application":
                p = r.resolve(props)
                kwargs = {"name": p.get("Name", f"{self.stack_name}-{lid}"),
                          "releaseLabel": p.get("ReleaseLabel", "emr-7.0.0"),
                          "type": p.get("Type", "SPARK")}
                if p.get("Architecture"):
                    kwargs["architecture"] = p["Architecture"]
                if p.get("Tags"):
                    kwargs["tags"] = {t["Key"]: t["Value"] for t in p["Tags"]} if isinstance(
                        p["Tags"], list) else p["Tags"]
                emrs = self.client("emr-serverless")
                try:
                    resp = emrs.create_application(**kwargs)
                except emrs.exceptions.ValidationException:
                    # moto knows only older release labels: create, then set the template's
                    resp = emrs.create_application(**{**kwargs, "releaseLabel": "emr-7.0.0"})
                    from moto.emrserverless.models import emrserverless_backends

                    backend = emrserverless_backends[r.account][r.region]
                    backend.applications[resp["applicationId"]].release_label = kwargs[
                        "releaseLabel"]
                app_id = resp["applicationId"]
                r.refs[lid] = app_id
                r.attrs[(lid, "ApplicationId")] = app_id
                r.attrs[(lid, "Arn")] = resp["arn"]
                self.application_ids[lid] = app_id
            elif typ == "AWS::SecretsManager::Secret":
                with contextlib.suppress(Exception):
                    self.client("secretsmanager").create_secret(
                        Name=r.refs[lid].rsplit(":", 1)[-1][:-7], SecretString="{}")
        # functions (after the resources their environment refers to)
        for lid, res in self.template["Resources"].items():
            if res.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
                self._register_function(lid)
            elif res.get("Type") == "AWS::Events::Rule":
                props = res.get("Properties") or {}
                if props.get("EventPattern"):
                    self.event_patterns.append(r.resolve(props["EventPattern"]))

    def _register_function(self, lid: str) -> None:
        r = self.resolver
        props = cfn.function_properties(self.template, lid)
        code_uri = str(r.resolve(props.get("CodeUri", ""))).strip("/").strip()
        handler = str(r.resolve(props.get("Handler", "app.lambda_handler")))
        module_file, _, attr = handler.rpartition(".")
        module_name = ".".join([*Path(code_uri).parts, *module_file.split("/")])
        env = {k: "" if v is None else str(v) for k, v in
               r.resolve(props["Environment"]["Variables"]).items()}
        fn = LocalFunction(lid, r.refs[lid], r.attrs[(lid, "Arn")], module_name, attr, env,
                           int(r.resolve(props.get("MemorySize", 128))),
                           int(r.resolve(props.get("Timeout", 3))))
        self.functions[fn.arn] = fn
        self.functions[fn.name] = fn
        if env.get("JOB_CODE_VERSION"):
            self.code_version = env["JOB_CODE_VERSION"]
        for event in (props.get("Events") or {}).values():
            if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                self.event_patterns.append(r.resolve(event["Properties"]["Pattern"]))

    def bucket(self, hint: str) -> str:
        """The bucket whose logical id contains `hint` (raw, curated, artifacts)."""
        for lid, name in self.buckets.items():
            if hint.lower() in lid.lower():
                return name
        raise LocalRuntimeError(f"no bucket like {hint!r} in the template ({self.buckets})")

    @property
    def ledger_table(self) -> str:
        for fn in self.functions.values():
            if fn.env.get("LEDGER_TABLE"):
                return fn.env["LEDGER_TABLE"]
        for lid, name in self.tables.items():
            if "ledger" in lid.lower() or "run" in lid.lower():
                return name
        raise LocalRuntimeError("no ledger table in the template")

    # -- state machine --------------------------------------------------------------------------
    def _create_state_machine(self) -> None:
        r = self.resolver
        sms = cfn.resources_of_type(self.template, "AWS::Serverless::StateMachine",
                                    "AWS::StepFunctions::StateMachine")
        if not sms:
            raise LocalRuntimeError("template.yaml has no state machine")
        lid, res = next(iter(sms.items()))
        props = res.get("Properties") or {}
        uri = props.get("DefinitionUri")
        if uri:
            definition = (self.repo / str(r.resolve(uri))).read_text()
        else:
            definition = json.dumps(r.resolve(props.get("Definition")))
        subs = r.resolve(props.get("DefinitionSubstitutions") or {})
        for key, value in subs.items():
            definition = definition.replace("${" + key + "}", str(value))
        leftover = sorted(set(__import__("re").findall(r"\$\{(\w+)\}", definition)))
        if leftover:
            raise LocalRuntimeError(f"placeholders without a substitution: {leftover}")
        self.definition = definition
        role = r.resolve(props.get("Role")) if props.get("Role") else (
            f"arn:aws:iam::{r.account}:role/{self.stack_name}-{lid}Role")
        sfn = self.client("stepfunctions")
        resp = sfn.create_state_machine(name=r.attrs[(lid, "Name")], definition=definition,
                                        roleArn=str(role), type=props.get("Type", "STANDARD"))
        self.state_machine_arn = resp["stateMachineArn"]
        self.state_machine_logical_id = lid
        for event in (props.get("Events") or {}).values():
            if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                self.event_patterns.append(r.resolve(event["Properties"]["Pattern"]))

    # -- warehouse, hooks, artifacts ------------------------------------------------------------
    def _start_warehouse(self) -> None:
        from local_runtime.redshift import DataApiEngine, read_parquet_objects

        self.warehouse = start_warehouse(self.work_dir / "warehouse", self.warehouse_url)
        s3 = self.client("s3")
        wh = self.warehouse
        self.engine = DataApiEngine(wh.database_url, lambda uri: read_parquet_objects(s3, uri))

    def _install(self) -> None:
        from local_runtime import moto_patches, sfn_hooks
        from local_runtime.spark import SparkRunner

        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "POWERTOOLS_"))}
        self.runner = SparkRunner(self.client("s3"), self.work_dir / "jobs", base_env=base_env)
        moto_patches.install(self.runner, self.engine)
        sfn_hooks.install(invoke_lambda=self.invoke_lambda, runtime=self,
                          time_factor=self.time_factor)

    def _publish_artifacts(self) -> None:
        """Lay out the job code in the artifacts bucket as `make deploy` does."""
        s3 = self.client("s3")
        try:
            bucket = self.bucket("artifact")
        except LocalRuntimeError:
            return
        prefix = f"jobs/{self.code_version}"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for package in ("spark_jobs", "pipeline_core"):
                for path in sorted((self.repo / package).rglob("*.py")):
                    if "__pycache__" not in path.parts:
                        zf.write(path, path.relative_to(self.repo).as_posix())
        s3.put_object(Bucket=bucket, Key=f"{prefix}/spark_jobs.zip", Body=buf.getvalue())
        for package in ("spark_jobs", "datasets"):
            for path in sorted((self.repo / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    s3.upload_file(str(path), bucket,
                                   f"{prefix}/{path.relative_to(self.repo).as_posix()}")
        s3.put_object(Bucket=bucket, Key="jobs/current.json",
                      Body=json.dumps({"code_version": self.code_version}).encode())

    # -- Lambda ---------------------------------------------------------------------------------
    def _function(self, name_or_arn: str) -> LocalFunction:
        key = name_or_arn.split(":function:")[-1].split(":")[0] if ":function:" in name_or_arn \
            else name_or_arn
        fn = self.functions.get(name_or_arn) or self.functions.get(key)
        if fn is None:
            raise LocalRuntimeError(f"no function {name_or_arn} in the template")
        return fn

    @contextlib.contextmanager
    def _function_env(self, fn: LocalFunction):
        env = {**FAKE_ENV, **fn.env, "AWS_LAMBDA_FUNCTION_NAME": fn.name,
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
               "POWERTOOLS_TRACE_DISABLED": "true"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            with contextlib.redirect_stdout(self._lambda_log or sys.stdout), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def invoke_lambda(self, function: str, payload: Any) -> dict[str, Any]:
        """Run a handler in process; errors become Lambda's FunctionError/Payload shape."""
        fn = self._function(function)
        with self._lambda_lock, self._function_env(fn):
            t0 = time.monotonic()
            try:
                if fn.module is None:
                    fn.module = importlib.import_module(fn.module_name)
                handler = getattr(fn.module, fn.handler_attr)
                result = handler(payload, LambdaContext(fn))
                body = json.loads(json.dumps(result, default=_json_default))
                return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": body}
            except Exception as e:
                if fn.module is None:
                    sys.modules.pop(fn.module_name, None)
                tb = traceback.format_exception(type(e), e, e.__traceback__)
                print(f"[{fn.name}] {''.join(tb)}", file=self._lambda_log or sys.stderr)
                return {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion":
                        "$LATEST", "Payload": {"errorType": type(e).__name__,
                                               "errorMessage": str(e),
                                               "stackTrace": [ln.rstrip() for ln in tb[-6:]]}}
            finally:
                dt = time.monotonic() - t0
                fn.seconds += dt
                fn.calls += 1
                self.lambda_seconds += dt

    # -- EMR on EC2 steps -----------------------------------------------------------------------
    def _emr_backend(self) -> Any:
        from moto.emr.models import emr_backends

        return emr_backends[self.resolver.account][self.resolver.region]

    def _moto_step(self, cluster_id: str, step_id: str) -> Any:
        cluster = self._emr_backend().clusters[cluster_id]
        for step in cluster.steps:
            if step.id == step_id:
                return cluster, step
        raise KeyError(step_id)

    def start_cluster_step(self, cluster_id: str, step_id: str, step: dict[str, Any]) -> None:
        from datetime import datetime

        from local_runtime.spark import JobResult, parse_spark_submit

        args = list((step.get("HadoopJarStep") or {}).get("Args") or [])
        result = JobResult()
        record = StepRecord(cluster_id, step_id, result)
        self._steps[step_id] = record
        cluster, moto_step = self._moto_step(cluster_id, step_id)
        moto_step.state = "PENDING"

        def work() -> None:
            moto_step.state = "RUNNING"
            moto_step.start_date_time = datetime.now(UTC)
            try:
                entry, job_args, conf, py_files = parse_spark_submit(args)
                self.runner.run(step_id, entry, job_args, py_files=py_files, conf=conf,
                                result=result)
            except Exception as e:
                result.state, result.details = "FAILED", f"step could not run: {e}"
            moto_step.end_date_time = datetime.now(UTC)
            moto_step.state = {"SUCCESS": "COMPLETED", "CANCELLED": "CANCELLED"}.get(
                result.state, "FAILED")
            if cluster.state == "RUNNING":
                cluster.state = "WAITING"

        record.thread = threading.Thread(target=work, daemon=True, name=f"emr-step-{step_id}")
        record.thread.start()

    def cancel_cluster_step(self, cluster_id: str, step_id: str) -> None:
        self.runner.cancel(step_id)

    def step_result(self, step_id: str) -> Any:
        rec = self._steps.get(step_id)
        return rec.result if rec else None

    def running_clusters(self) -> list[str]:
        return [c.id for c in self._emr_backend().clusters.values()
                if c.state not in ("TERMINATED", "TERMINATED_WITH_ERRORS")]


def _json_default(value: Any) -> Any:
    import datetime as dt
    import decimal

    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
