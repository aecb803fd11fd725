"""The local deployment: template.yaml deployed on this machine, in moto, with the real handlers,
local Spark and PostgreSQL.

One LocalDeployment per process (moto, env vars and the interpreter hooks are process-global).
Its state outlives the process in its work directory (`.local/` by default): `start()` takes
the work directory's lock and restores the run ledger into moto's table, every execution
writes the ledger back, and `stop()` releases the lock (local_runtime.state says how and why).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from local_runtime import cfn, resources, state
from local_runtime.errors import LocalRuntimeError
from local_runtime.identity import LOCAL_SECRET_KEY, PRINCIPALS
from local_runtime.redshift import DataApiEngine, read_parquet_objects
from local_runtime.spark import JobResult, SparkRunner, parse_spark_submit
from local_runtime.warehouse import Warehouse, missing_prerequisites, start_warehouse

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
LOG = logging.getLogger("local_runtime.stack")
T = TypeVar("T")
__all__ = ["REPO", "LocalDeployment", "LocalRuntimeError"]


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
    access_key: str = ""  # its role session's key (local_runtime.identity)
    session: Any = None  # its boto3 default session, signed with that key


class _LambdaStdout(io.TextIOBase):
    """The stdout of the in-process Lambda handlers, one object for the life of the process.

    What a handler's module binds at import outlives the deployment that imported it: powertools'
    Logger keeps the sys.stdout it found in a StreamHandler of a process-wide logger (one per
    service name, never configured twice). Bound to a deployment's lambda.log, a later
    deployment of the same process (the demo benchmark's rounds) logged into the closed file: a
    "--- Logging error ---" traceback, and the line lost. Bound to this object, every write goes
    to the log of the deployment whose handler runs now."""

    def __init__(self) -> None:
        super().__init__()
        self.target: TextIO | None = None

    def _out(self) -> TextIO:
        return self.target or sys.__stdout__ or sys.stderr

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._out().write(text)

    def flush(self) -> None:
        self._out().flush()

    @contextlib.contextmanager
    def writing_to(self, out: TextIO | _LambdaStdout) -> Iterator[None]:
        """Writes go to `out` (and sys.stdout is this object) within the block."""
        previous = self.target
        if not isinstance(out, _LambdaStdout):  # else sys.stdout while another handler runs
            self.target = out
        try:
            with contextlib.redirect_stdout(self):
                yield
        finally:
            self.target = previous


LAMBDA_STDOUT = _LambdaStdout()


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
    result: JobResult
    thread: threading.Thread | None = None


def _started(value: T | None, what: str) -> T:
    if value is None:
        raise LocalRuntimeError(f"{what} is not running: start() the local deployment first")
    return value


def _load_template(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise LocalRuntimeError(f"{path} is missing: the local runtime builds the "
                                "stack from it")
    return cfn.load_template(path)


class LocalDeployment:
    """template.yaml deployed on this machine: construct (reads the template), then start()."""

    session: Any  # boto3 Session on moto, set by start()

    def __init__(self, *, repo: Path = REPO, work_dir: Path | None = None,
                 warehouse_url: str | None = None, time_factor: float = 0.01,
                 parameters: dict[str, str] | None = None, stack_name: str = cfn.STACK_NAME,
                 lock_timeout: float | None = None, messages: TextIO | None = None):
        self.repo = repo
        self.work_dir = Path(work_dir or repo / ".local")
        # held from start() to stop(); timeout None: wait for another process as long as it runs
        # (`messages`, default stderr, gets one line saying whom it waits for)
        self.lock = state.StateLock(self.work_dir, timeout=lock_timeout, out=messages)
        self.restored_runs = 0
        # (bucket, key) -> (etag, version id): raw objects of earlier processes (state.py)
        self.raw_versions: dict[tuple[str, str], tuple[str, str]] = {}
        self.warehouse_url = warehouse_url
        self.time_factor = time_factor
        self.parameters = dict(parameters or {})
        self.stack_name = stack_name
        self.template = _load_template(repo / "template.yaml")
        self.resolver = cfn.Resolver(self.template, parameters=self._parameter_values(),
                                     stack_name=stack_name)
        self.buckets: dict[str, str] = {}  # logical id -> bucket name
        self.tables: dict[str, str] = {}
        self.topics: dict[str, str] = {}  # logical id -> topic arn
        self.alert_queues: dict[str, str] = {}  # topic arn -> queue url
        self.functions: dict[str, LocalFunction] = {}  # arn and name -> fn
        # After a SUCCEEDED execution, play the template's TriggerDerived rule (the product's
        # behaviour). The e2e session turns it off for the tests not about derived datasets,
        # so an online_retail run there is not followed by a sales_trends run each time.
        self.derived_triggers = True
        self.state_machine_arn = ""
        self.state_machine_logical_id = ""
        self.state_machine_arns: dict[str, str] = {}  # logical id -> ARN, every machine
        self.definition = ""  # the state machine's ASL, as deployed
        self.event_patterns: list[dict[str, Any]] = []
        # (pattern, function name): the EventBridge rules of functions' Events, which
        # put_event delivers to (the Redshift Data API stand-in's completion events)
        self.function_rules: list[tuple[dict[str, Any], str]] = []
        self.delivered_events: list[tuple[str, dict[str, Any]]] = []  # (function, event)
        self.application_ids: dict[str, str] = {}
        self.code_version = "local"
        self.lambda_seconds = 0.0
        self._warehouse: Warehouse | None = None
        self._data_api: DataApiEngine | None = None
        self._spark_runner: SparkRunner | None = None
        self._mock: Any = None
        self._moto_server: Any = None
        self.s3_endpoint = ""  # moto's server, for the Spark job's processes
        self._lambda_lock = threading.Lock()
        self._steps: dict[str, StepRecord] = {}
        self._lambda_log: TextIO | None = None

    @property
    def warehouse(self) -> Warehouse:
        return _started(self._warehouse, "the warehouse")

    @property
    def data_api(self) -> DataApiEngine:
        """The Redshift Data API stand-in (PostgreSQL)."""
        return _started(self._data_api, "the Redshift Data API stand-in")

    @property
    def spark_runner(self) -> SparkRunner:
        return _started(self._spark_runner, "the local Spark runner")

    # -- start / stop ---------------------------------------------------------------------------
    def start(self) -> LocalDeployment:
        """Take the work directory's lock (waiting for another process that holds it), reach
        the warehouse, deploy the template into moto and restore the run ledger. On any error
        everything started is stopped again and the lock released."""
        problems = missing_prerequisites()
        if self.warehouse_url:
            problems = [p for p in problems if "PostgreSQL" not in p]
        if problems:
            raise LocalRuntimeError("; ".join(problems))
        self.lock.acquire()
        try:
            ledger_items = state.read_ledger(self.ledger_path)
            self._prepare_process()
            self._start_warehouse()  # before moto: an unreachable warehouse fails fast
            self._start_moto()
            self._name_resources()
            self._create_resources()
            self._restore_ledger(ledger_items)
            self._start_data_api()
            self._install_hooks()
            self._publish_artifacts()
            self._create_state_machine()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def ledger_path(self) -> Path:
        return state.ledger_path(self.work_dir)

    def _restore_ledger(self, items: list[dict[str, Any]]) -> None:
        """The runs of earlier processes (`<work dir>/ledger.json`) into moto's ledger table,
        and the raw object versions they ran (runner.put_raw_object restores one when its bytes
        are delivered again)."""
        self.raw_versions = state.known_raw_versions(items)
        self.restored_runs = state.restore_ledger(self.client("dynamodb"), self.ledger_table,
                                                  self.ledger_path, items)
        LOG.info("restored %d run(s) from %s", self.restored_runs, self.ledger_path)

    def dump_ledger(self) -> int:
        """The ledger table back to `<work dir>/ledger.json` (after every execution)."""
        return state.dump_ledger(self.client("dynamodb"), self.ledger_table, self.ledger_path)

    def _prepare_process(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for k, v in FAKE_ENV.items():
            os.environ.setdefault(k, v)
        os.environ["AWS_DEFAULT_REGION"] = cfn.REGION
        if str(self.repo) not in sys.path:
            sys.path.insert(0, str(self.repo))
        self._lambda_log = open(self.work_dir / "lambda.log", "a", buffering=1)  # noqa: SIM115

    def _start_moto(self) -> None:
        from moto import mock_aws

        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self._start_s3_endpoint()
        import boto3

        # made after moto is imported, so its clients carry moto's request hook
        self.session = boto3.session.Session(region_name=cfn.REGION)

    def _start_s3_endpoint(self) -> None:
        """moto's server on a free local port, over the same in-process state: the Spark job
        (another process) heads its input object there (spark_jobs.common.storage)."""
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto_server.start()
        host, port = self._moto_server.get_host_and_port()
        self.s3_endpoint = f"http://{host}:{port}"

    def stop(self, *, stop_warehouse: bool = False) -> None:
        """Stop moto (its tables are gone: the ledger file was written after each execution)
        and release the lock; the warehouse keeps running unless `stop_warehouse`."""
        try:
            if self._moto_server is not None:
                with contextlib.suppress(Exception):
                    self._moto_server.stop()
                self._moto_server = None
            if self._mock is not None:
                with contextlib.suppress(Exception):
                    self._mock.stop()
                self._mock = None
            if stop_warehouse and self._warehouse is not None:
                self._warehouse.stop()
            if self._lambda_log:
                self._lambda_log.close()
                self._lambda_log = None
        finally:
            self.lock.release()

    def client(self, name: str) -> Any:
        return self.session.client(name, region_name=cfn.REGION)

    # -- template -> resources ------------------------------------------------------------------
    def _parameter_values(self) -> dict[str, str]:
        values = {}
        for name, spec in (self.template.get("Parameters") or {}).items():
            if name in self.parameters:
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

    def _name_resources(self) -> None:
        """What !Ref and !GetAtt give for every resource. A name property that refers to another
        resource waits for that one to be named (three passes), then the default name is used."""
        pending = dict(self.template["Resources"])
        for _ in range(3):
            for lid, res in list(pending.items()):
                with contextlib.suppress(cfn.TemplateError):
                    resources.name_resource(self.resolver, lid, res)
                    pending.pop(lid)
        for lid, res in pending.items():
            resources.name_resource(self.resolver, lid, res, use_properties=False)

    def _create_resources(self) -> None:
        r = self.resolver
        for lid, res in self.template["Resources"].items():
            if "Condition" in res and not r.condition(res["Condition"]):
                continue
            create = resources.resource_type(res.get("Type", "")).create
            if create is not None:
                create(self, lid, res.get("Properties") or {})
        # functions and rules after the resources their properties refer to
        for lid, res in self.template["Resources"].items():
            if res.get("Type") in resources.FUNCTION_TYPES:
                self._register_function(lid)
            elif res.get("Type") == "AWS::Events::Rule":
                pattern = (res.get("Properties") or {}).get("EventPattern")
                if pattern:
                    self.event_patterns.append(r.resolve(pattern))

    def _add_event_patterns(self, props: dict[str, Any], function: str | None = None) -> None:
        """The EventBridge patterns of a SAM function's or state machine's Events; a
        function's rules are also kept to deliver events to (put_event)."""
        for event in (props.get("Events") or {}).values():
            if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                pattern = self.resolver.resolve(event["Properties"]["Pattern"])
                self.event_patterns.append(pattern)
                if function is not None:
                    self.function_rules.append((pattern, function))

    def put_event(self, event: dict[str, Any]) -> int:
        """EventBridge: deliver `event` to every function whose rule matches it, each
        asynchronously (an asynchronous Lambda invoke, as a rule's Lambda target is); the
        number of deliveries."""
        from local_runtime.runner import pattern_matches

        targets = [fn for pattern, fn in self.function_rules if pattern_matches(pattern, event)]
        for fn in targets:
            threading.Thread(target=self._deliver, args=(fn, event), daemon=True,
                             name=f"event-{fn}").start()
        return len(targets)

    def _deliver(self, function: str, event: dict[str, Any]) -> None:
        self.delivered_events.append((function, event))
        result = self.invoke_lambda(function, event)
        if result.get("FunctionError"):
            LOG.warning("event %s: %s failed: %s", event.get("id"), function,
                        result.get("Payload"))

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
        # Lambda runs a function as its role's session named after the function
        role = (str(r.resolve(props["Role"])) if props.get("Role") else
                f"arn:aws:iam::{r.account}:role/{self.stack_name}-{lid}Role")
        fn.access_key = PRINCIPALS.register(fn.name, role, fn.name)
        self.functions[fn.arn] = fn
        self.functions[fn.name] = fn
        if env.get("JOB_CODE_VERSION"):
            self.code_version = env["JOB_CODE_VERSION"]
        self._add_event_patterns(props, fn.name)

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
        """Every state machine of the template; the first is the pipeline (state_machine_arn,
        what events start), the others are kept by logical id in state_machine_arns (the
        backfill machine: BackfillStateMachine)."""
        machines = cfn.resources_of_type(self.template, *resources.STATE_MACHINE_TYPES)
        if not machines:
            raise LocalRuntimeError("template.yaml has no state machine")
        for i, (lid, res) in enumerate(machines.items()):
            arn, definition = self._create_one_state_machine(lid, res, sign_sdk_tasks=i == 0)
            self.state_machine_arns[lid] = arn
            if i == 0:
                self.state_machine_arn, self.state_machine_logical_id = arn, lid
                self.definition = definition

    def _create_one_state_machine(self, lid: str, res: dict[str, Any], *,
                                  sign_sdk_tasks: bool) -> tuple[str, str]:
        r = self.resolver
        props = res.get("Properties") or {}
        role = r.resolve(props.get("Role")) if props.get("Role") else (
            f"arn:aws:iam::{r.account}:role/{self.stack_name}-{lid}Role")
        definition = self._state_machine_definition(props)
        resp = self.client("stepfunctions").create_state_machine(
            name=r.attrs[(lid, "Name")], definition=definition, roleArn=str(role),
            type=props.get("Type", "STANDARD"))
        arn = str(resp["stateMachineArn"])
        if sign_sdk_tasks:  # only the pipeline has aws-sdk tasks (the Redshift Data API)
            from local_runtime import sfn_hooks

            # its service tasks sign as its role, not as any function
            sfn_hooks.STATE.sdk_access_key = PRINCIPALS.register(
                arn, str(role), f"states-{r.attrs[(lid, 'Name')]}")
        self._add_event_patterns(props)
        return arn, definition

    def _state_machine_definition(self, props: dict[str, Any]) -> str:
        """The ASL with DefinitionSubstitutions applied; every placeholder must have a value."""
        r = self.resolver
        uri = props.get("DefinitionUri")
        if uri:
            definition = (self.repo / str(r.resolve(uri))).read_text()
        else:
            definition = json.dumps(r.resolve(props.get("Definition")))
        for key, value in r.resolve(props.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        leftover = sorted(set(re.findall(r"\$\{(\w+)\}", definition)))
        if leftover:
            raise LocalRuntimeError(f"placeholders without a substitution: {leftover}")
        return definition

    # -- warehouse, hooks, artifacts ------------------------------------------------------------
    def _start_warehouse(self) -> None:
        self._warehouse = start_warehouse(self.work_dir / "warehouse", self.warehouse_url)

    def _start_data_api(self) -> None:
        s3 = self.client("s3")
        self._data_api = DataApiEngine(self.warehouse.database_url,
                                       lambda uri: read_parquet_objects(s3, uri))
        self._data_api.account, self._data_api.region = self.resolver.account, cfn.REGION
        self._data_api.on_event = self.put_event

    def _install_hooks(self) -> None:
        """Local Spark behind moto's EMR Serverless, PostgreSQL behind its Redshift Data API, and
        the Step Functions interpreter's Lambda, EMR and timing hooks."""
        from local_runtime import moto_patches, sfn_hooks  # they import moto

        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "POWERTOOLS_"))}
        # The job reaches S3 as on EMR (boto3), here moto's server with moto's credentials.
        s3_env = {"AWS_ENDPOINT_URL_S3": self.s3_endpoint, "AWS_DEFAULT_REGION": cfn.REGION,
                  "AWS_ACCESS_KEY_ID": FAKE_ENV["AWS_ACCESS_KEY_ID"],
                  "AWS_SECRET_ACCESS_KEY": FAKE_ENV["AWS_SECRET_ACCESS_KEY"]}
        self._spark_runner = SparkRunner(self.client("s3"), self.work_dir / "jobs",
                                         base_env=base_env, extra_env=s3_env)
        moto_patches.install(self._spark_runner, self.data_api)
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
        s3.put_object(Bucket=bucket, Key=f"{prefix}/spark_jobs.zip", Body=self._job_archive())
        for package in ("spark_jobs", "datasets"):
            for path in self._package_files(package, "*"):
                s3.upload_file(str(path), bucket,
                               f"{prefix}/{path.relative_to(self.repo).as_posix()}")
        s3.put_object(Bucket=bucket, Key="jobs/current.json",
                      Body=json.dumps({"code_version": self.code_version}).encode())

    def _package_files(self, package: str, pattern: str) -> list[Path]:
        return [path for path in sorted((self.repo / package).rglob(pattern))
                if path.is_file() and "__pycache__" not in path.parts]

    def _job_archive(self) -> bytes:
        """spark_jobs.zip: the job packages' Python files (the --py-files of every job) and the
        warehouse migrations beside pipeline_core/ (the jobs read their tables' limits from
        them: spark_jobs.common.warehouse)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for package in ("spark_jobs", "pipeline_core"):
                for path in self._package_files(package, "*.py"):
                    zf.write(path, path.relative_to(self.repo).as_posix())
            for path in sorted((self.repo / "warehouse" / "migrations").glob("*.sql")):
                zf.write(path, path.relative_to(self.repo).as_posix())
        return buf.getvalue()

    # -- Lambda ---------------------------------------------------------------------------------
    def _find_function(self, name_or_arn: str) -> LocalFunction:
        key = name_or_arn.split(":function:")[-1].split(":")[0] if ":function:" in name_or_arn \
            else name_or_arn
        fn = self.functions.get(name_or_arn) or self.functions.get(key)
        if fn is None:
            raise LocalRuntimeError(f"no function {name_or_arn} in the template")
        return fn

    @contextlib.contextmanager
    def _function_env(self, fn: LocalFunction) -> Iterator[None]:
        """The function's environment, credentials included: boto3 clients it makes (at import
        or later) sign with its own key, as its role session would (local_runtime.identity)."""
        import boto3

        env = {**FAKE_ENV, **fn.env, "AWS_LAMBDA_FUNCTION_NAME": fn.name,
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
               "POWERTOOLS_TRACE_DISABLED": "true"}
        if fn.access_key:
            env.update(AWS_ACCESS_KEY_ID=fn.access_key, AWS_SECRET_ACCESS_KEY=LOCAL_SECRET_KEY)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        previous_session = boto3.DEFAULT_SESSION
        if fn.session is None:
            fn.session = boto3.session.Session()  # reads the function's keys, once
        boto3.DEFAULT_SESSION = fn.session
        try:
            with LAMBDA_STDOUT.writing_to(self._lambda_log or sys.stdout), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                yield
        finally:
            boto3.DEFAULT_SESSION = previous_session
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def invoke_lambda(self, function: str, payload: Any) -> dict[str, Any]:
        """Run a handler in process; errors become Lambda's FunctionError/Payload shape."""
        fn = self._find_function(function)
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
                return self._function_error(fn, e)
            finally:
                dt = time.monotonic() - t0
                fn.seconds += dt
                fn.calls += 1
                self.lambda_seconds += dt

    def _function_error(self, fn: LocalFunction, e: Exception) -> dict[str, Any]:
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        print(f"[{fn.name}] {''.join(tb)}", file=self._lambda_log or sys.stderr)
        return {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion": "$LATEST",
                "Payload": {"errorType": type(e).__name__, "errorMessage": str(e),
                            "stackTrace": [ln.rstrip() for ln in tb[-6:]]}}

    # -- EMR on EC2 steps (the `runtime` of sfn_services) ---------------------------------------
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
        args = list((step.get("HadoopJarStep") or {}).get("Args") or [])
        result = JobResult()
        record = StepRecord(cluster_id, step_id, result)
        self._steps[step_id] = record
        cluster, moto_step = self._moto_step(cluster_id, step_id)
        moto_step.state = "PENDING"
        runner = self.spark_runner

        def work() -> None:
            moto_step.state = "RUNNING"
            moto_step.start_date_time = datetime.now(UTC)
            try:
                entry, job_args, conf, py_files = parse_spark_submit(args)
                runner.run(step_id, entry, job_args, py_files=py_files, conf=conf,
                           result=result)
            except Exception as e:
                result.details, result.state = f"step could not run: {e}", "FAILED"
            moto_step.end_date_time = datetime.now(UTC)
            moto_step.state = {"SUCCESS": "COMPLETED", "CANCELLED": "CANCELLED"}.get(
                result.state, "FAILED")
            if cluster.state == "RUNNING":
                cluster.state = "WAITING"

        record.thread = threading.Thread(target=work, daemon=True, name=f"emr-step-{step_id}")
        record.thread.start()

    def cancel_cluster_step(self, cluster_id: str, step_id: str) -> None:
        self.spark_runner.cancel(step_id)

    def await_step(self, step_id: str, seconds: float) -> None:
        """Wait at most `seconds` for a step started here to end."""
        rec = self._steps.get(step_id)
        if rec is not None and rec.thread is not None:
            rec.thread.join(seconds)

    def step_result(self, step_id: str) -> JobResult | None:
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
