"""ResolveRun: turn a trigger (S3 event, schedule, manual request) into the run manifest.

The raw object is checked before any compute is paid for (exists, not empty, gzip when `.gz`,
header as the catalog says), and the ledger's conditional writes make the run id the unit of
idempotency: the same object delivered twice starts at most one load.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline_aws.ledger import ENDED_UNSUCCESSFULLY, RunLedger, utc_now_iso
from pipeline_aws.s3_objects import ObjectInfo, S3Objects
from pipeline_aws.settings import ResolveRunSettings
from pipeline_core.catalog import Catalog, Dataset, NodeGroup, validate_partition
from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.identifiers import safe_identifier

_ARG_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_CONF_VALUE = re.compile(r"^[^\s'\"]{1,256}$")
_CONF_KEY = re.compile(r"^spark\.[A-Za-z0-9._-]{1,200}$")


def _problems(error: ValidationError, prefix: str) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        parts.append(f"{where}: {item['msg'].lower()}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# The request: what the state machine passes, and the three trigger shapes inside it


class _Execution(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Id: str = Field(min_length=1)
    Name: str = Field(min_length=1)


class _S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=3)


class _S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str = Field(min_length=1)


class _S3Detail(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucket: _S3Bucket
    object: _S3Object


class S3Trigger(BaseModel):
    """EventBridge "Object Created" from the raw bucket."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    detail: _S3Detail


class ScheduleTrigger(BaseModel):
    """EventBridge Scheduler input: the dataset and the scheduled time."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["pipeline.schedule"]
    dataset: str = Field(min_length=1)
    scheduled_time: datetime


class ManualTrigger(BaseModel):
    """A person or a backfill: dataset + date, or bucket + key; `rerun` replaces a day."""

    model_config = ConfigDict(extra="forbid")
    dataset: str | None = None
    date: str | None = None
    bucket: str | None = None
    key: str | None = None
    rerun: bool = False
    # Run this one execution on the other compute path (backfills, local cluster-mode runs).
    compute: Literal["serverless", "cluster"] | None = None


def compute_mode(dataset: Dataset, request: ResolveRequest) -> str:
    """The catalog's compute mode, unless a manual trigger asks for the other path."""
    override = getattr(request.trigger, "compute", None)
    return override or dataset.compute.mode


@dataclass(frozen=True)
class ResolveRequest:
    trigger: S3Trigger | ScheduleTrigger | ManualTrigger
    execution_arn: str
    execution_name: str

    @classmethod
    def parse(cls, payload: Any) -> ResolveRequest:
        """Validate `{"event": <trigger>, "execution": $$.Execution}`; InvalidInput says why."""
        if not isinstance(payload, dict):
            raise InvalidInput(f"expected an object with 'event' and 'execution', got "
                               f"{type(payload).__name__}")
        missing = [k for k in ("event", "execution") if k not in payload]
        if missing:
            raise InvalidInput(f"missing {', '.join(missing)} (the state machine passes "
                               "{'event': $, 'execution': $$.Execution})")
        try:
            execution = _Execution.model_validate(payload["execution"])
        except ValidationError as e:
            raise InvalidInput(_problems(e, "execution")) from e
        event = payload["event"]
        if not isinstance(event, dict):
            raise InvalidInput(f"event: expected an object, got {type(event).__name__}")
        source = event.get("source")
        model: type[BaseModel]
        if source == "aws.s3":
            model = S3Trigger
        elif source == "pipeline.schedule":
            model = ScheduleTrigger
        elif source is None:
            model = ManualTrigger
        else:
            raise InvalidInput(f"event.source {source!r} is not supported (aws.s3, "
                               "pipeline.schedule, or no source for a manual run)")
        try:
            trigger = model.model_validate(event)
        except ValidationError as e:
            raise InvalidInput(f"{model.__name__}: {_problems(e, 'event')}") from e
        if isinstance(trigger, ManualTrigger):
            by_day = trigger.dataset is not None and trigger.date is not None
            by_key = trigger.bucket is not None and trigger.key is not None
            if by_day == by_key:
                raise InvalidInput("a manual event gives either dataset and date, or bucket and "
                                   "key (optionally with \"rerun\": true)")
        return cls(trigger, execution.Id, execution.Name)

    @property
    def trigger_kind(self) -> str:
        if isinstance(self.trigger, S3Trigger):
            return "s3"
        return "schedule" if isinstance(self.trigger, ScheduleTrigger) else "manual"

    @property
    def rerun(self) -> bool:
        return isinstance(self.trigger, ManualTrigger) and self.trigger.rerun


# ---------------------------------------------------------------------------------------------
# Pure pieces of the manifest


def run_id_for(dataset: str, partition: str, bucket: str, key: str, etag: str) -> str:
    digest = hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).hexdigest()[:12]
    return f"{dataset}-{partition}-{digest}"


def attempt_run_id(base_run_id: str, attempt: int) -> str:
    return base_run_id if attempt == 1 else f"{base_run_id}-r{attempt}"


def job_token(run_id: str, attempt: int) -> str:
    """`<run_id>-a<attempt>`, kept within EMR Serverless' 64 characters [A-Za-z0-9._-]."""
    token = f"{run_id}-a{attempt}"
    if len(token) <= 64:
        return token
    digest = hashlib.sha256(token.encode()).hexdigest()[:12]
    return f"{token[:51]}-{digest}"


def _fleet(name: str, kind: str, group: NodeGroup, timeout_minutes: int = 10) -> dict[str, Any]:
    fleet: dict[str, Any] = {
        "Name": name,
        "InstanceFleetType": kind,
        "InstanceTypeConfigs": [{"InstanceType": t} for t in group.instance_types],
    }
    if group.spot:
        fleet["TargetSpotCapacity"] = group.capacity
        fleet["LaunchSpecifications"] = {
            "SpotSpecification": {
                "TimeoutDurationMinutes": timeout_minutes,
                "TimeoutAction": "SWITCH_TO_ON_DEMAND",
                "AllocationStrategy": "price-capacity-optimized",
            }
        }
    else:
        fleet["TargetOnDemandCapacity"] = group.capacity
    return fleet


def spark_conf_pairs(dataset: Dataset) -> list[tuple[str, str]]:
    pairs = []
    for key, value in dataset.job.spark_conf.items():
        if not _CONF_KEY.match(key) or not _CONF_VALUE.match(value):
            raise ConfigurationError(
                f"{dataset.name}.job.spark_conf: {key}={value!r} must be spark.<name> with a "
                "value without spaces or quotes"
            )
        pairs.append((key, value))
    return pairs


def job_arguments(dataset: Dataset, *, input_uri: str, output_root: str, quarantine: str,
                  metrics: str, quality: str, rules: str, run_id: str, partition: str
                  ) -> list[str]:
    """The Spark job contract's arguments, then the catalog's extra `--name value` pairs."""
    args = ["--input", input_uri, "--output-root", output_root, "--quarantine", quarantine,
            "--metrics", metrics, "--quality", quality, "--rules", rules, "--run-id", run_id,
            "--partition", partition]
    reserved = {a[2:] for a in args[::2]}
    for name, value in dataset.job.arguments.items():
        if not _ARG_NAME.match(name) or name in reserved:
            raise ConfigurationError(
                f"{dataset.name}.job.arguments: {name!r} must be a lower-case option name and "
                f"not one of the contract's ({', '.join(sorted(reserved))})"
            )
        args.extend([f"--{name}", value])
    return args


# ---------------------------------------------------------------------------------------------
# The logic


class RunResolver:
    """Builds and registers the run manifest. Adapters come in through the constructor."""

    def __init__(self, settings: ResolveRunSettings, catalog: Catalog | Callable[[], Catalog],
                 objects: S3Objects, ledger: RunLedger,
                 clock: Callable[[], datetime] | None = None, logger: Any = None,
                 metrics: Any = None):
        self._settings = settings
        self._catalog = catalog
        self._objects = objects
        self._ledger = ledger
        self._clock = clock or (lambda: datetime.now(UTC))
        self._logger = logger
        self._metrics = metrics

    @property
    def catalog(self) -> Catalog:
        if callable(self._catalog):
            self._catalog = self._catalog()
        return self._catalog

    # -- finding the object ---------------------------------------------------------------

    def _locate(self, request: ResolveRequest) -> tuple[Dataset, str, ObjectInfo]:
        trigger = request.trigger
        if isinstance(trigger, ScheduleTrigger):
            dataset = self.catalog.get(trigger.dataset)
            when = trigger.scheduled_time
            day = (when.astimezone(UTC) if when.tzinfo else when).date()
            partition = (day + timedelta(days=dataset.schedule.date_offset_days)).isoformat()
            return self._find_day(dataset, partition)
        if isinstance(trigger, ManualTrigger) and trigger.dataset is not None:
            dataset = self.catalog.get(trigger.dataset)
            return self._find_day(dataset, validate_partition(str(trigger.date)))
        if isinstance(trigger, S3Trigger):
            bucket, key = trigger.detail.bucket.name, trigger.detail.object.key
        else:
            bucket, key = str(trigger.bucket), str(trigger.key)
        if bucket != self._settings.raw_bucket:
            raise InvalidInput(f"bucket {bucket!r} is not the raw bucket "
                               f"{self._settings.raw_bucket!r}; the pipeline reads only that one")
        obj = self._objects.head(bucket, key)
        if obj is None and isinstance(trigger, S3Trigger) and unquote_plus(key) != key:
            # S3 notifications URL-encode keys; try the decoded form before giving up.
            key = unquote_plus(key)
            obj = self._objects.head(bucket, key)
        dataset, partition = self.catalog.match_key(key)
        if obj is None:
            raise InvalidInput(f"s3://{bucket}/{key} does not exist (deleted after the event?)")
        return dataset, partition, obj

    def _find_day(self, dataset: Dataset, partition: str) -> tuple[Dataset, str, ObjectInfo]:
        bucket = self._settings.raw_bucket
        found = []
        for ext in (".csv", ".csv.gz"):
            key = f"{dataset.source.prefix}{partition}{ext}"
            if dataset.partition_for_key(key) != partition:
                continue
            obj = self._objects.head(bucket, key)
            if obj is not None:
                found.append(obj)
        if not found:
            raise InvalidInput(
                f"no raw object for {dataset.name} {partition}: neither "
                f"s3://{bucket}/{dataset.source.prefix}{partition}.csv nor .csv.gz exists"
            )
        if len(found) > 1:
            raise InvalidInput(
                f"both {found[0].uri} and {found[1].uri} exist for {dataset.name} {partition}; "
                "start a manual run with bucket and key to say which one to process"
            )
        return dataset, partition, found[0]

    # -- the manifest ---------------------------------------------------------------------

    def build_manifest(self, *, dataset: Dataset, partition: str, obj: ObjectInfo,
                       run_id: str, attempt: int, request: ResolveRequest, started_at: str,
                       duplicate: bool) -> dict[str, Any]:
        s = self._settings
        name = safe_identifier(dataset.name, "dataset name")
        curated = f"s3://{s.curated_bucket}"
        jobs = f"s3://{s.artifacts_bucket}/jobs/{s.job_code_version}"
        tables = [safe_identifier(t.name, "load table") for t in dataset.load.tables]
        run_path = f"partition={partition}/run_id={run_id}/"
        outputs = {t: f"{curated}/{name}/{t}/{run_path}" for t in tables}
        quarantine = f"{curated}/quarantine/{name}/{run_path}"
        metrics_uri = f"{curated}/_runs/{name}/{run_id}/metrics.json"
        quality_uri = f"{curated}/_runs/{name}/{run_id}/quality.json"
        job_name = safe_identifier(dataset.job.name, "job name")
        entry_point = f"{jobs}/spark_jobs/{job_name}/main.py"
        py_files = f"{jobs}/spark_jobs.zip"
        arguments = job_arguments(
            dataset, input_uri=obj.uri, output_root=f"{curated}/{name}/{{table}}/{run_path}",
            quarantine=quarantine, metrics=metrics_uri, quality=quality_uri,
            rules=f"{jobs}/datasets/{dataset.quality.rules_file}", run_id=run_id,
            partition=partition,
        )
        conf = spark_conf_pairs(dataset)
        submit = " ".join([f"--py-files {py_files}", *(f"--conf {k}={v}" for k, v in conf)])
        tags = {
            "pipeline:app": s.app_name,
            "pipeline:environment": s.environment,
            "pipeline:dataset": name,
            "pipeline:run-id": run_id,
            "pipeline:execution": request.execution_arn,
        }
        manifest: dict[str, Any] = {
            "run_id": run_id,
            "execution_id": request.execution_arn,
            "dataset": name,
            "partition": partition,
            "trigger": request.trigger_kind,
            "duplicate": duplicate,
            "attempt": attempt,
            "compute": compute_mode(dataset, request),
            "started_at": started_at,
            "input": {"bucket": obj.bucket, "key": obj.key, "etag": obj.etag, "size": obj.size,
                      "uri": obj.uri},
            "outputs": outputs,
            "quarantine_uri": quarantine,
            "metrics_uri": metrics_uri,
            "quality_uri": quality_uri,
            "job": {
                "name": job_name,
                "code_version": s.job_code_version,
                "entry_point": entry_point,
                "py_files": py_files,
                "arguments": arguments,
                "spark_submit_parameters": submit,
                "client_token": job_token(run_id, attempt),
                "timeout_minutes": dataset.job.timeout_minutes,
                "log_uri": f"s3://{s.artifacts_bucket}/logs/emr-serverless/",
            },
            "cluster": None,
            "tags": tags,
        }
        if manifest["compute"] == "cluster":
            manifest["cluster"] = self._cluster_section(dataset, run_id, tags, py_files, conf,
                                                        entry_point, arguments)
        return manifest

    def _cluster_section(self, dataset: Dataset, run_id: str, tags: dict[str, str],
                         py_files: str, conf: list[tuple[str, str]], entry_point: str,
                         arguments: list[str]) -> dict[str, Any]:
        cluster = dataset.compute.cluster
        if cluster is None:
            raise ConfigurationError(f"{dataset.name}: compute mode cluster needs a cluster")
        if not self._settings.emr_subnet_ids:
            raise ConfigurationError(
                f"{dataset.name} runs on a cluster but EMR_SUBNET_IDS is empty: set the stack's "
                "subnet parameter"
            )
        if cluster.master.capacity != 1:
            raise ConfigurationError(f"{dataset.name}.compute.cluster.master.capacity must be 1")
        fleets = [_fleet("master", "MASTER", NodeGroup(cluster.master.instance_types, 1)),
                  _fleet("core", "CORE", NodeGroup(cluster.core.instance_types,
                                                   cluster.core.capacity))]
        if cluster.task is not None:
            fleets.append(_fleet("task", "TASK", cluster.task))
        step_args = ["spark-submit", "--deploy-mode", "cluster", "--py-files", py_files]
        for key, value in conf:
            step_args.extend(["--conf", f"{key}={value}"])
        step_args.append(entry_point)
        step_args.extend(arguments)
        return {
            "name": f"{self._settings.app_name}-{run_id}"[:256],
            "release_label": cluster.release_label,
            "instances": {
                "InstanceFleets": fleets,
                "Ec2SubnetIds": list(self._settings.emr_subnet_ids),
                "KeepJobFlowAliveWhenNoSteps": True,
            },
            "log_uri": f"s3://{self._settings.artifacts_bucket}/logs/emr/",
            "idle_timeout_seconds": cluster.idle_timeout_minutes * 60,
            "tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            "step_args": step_args,
        }

    # -- registering the run ----------------------------------------------------------------

    def resolve(self, request: ResolveRequest) -> dict[str, Any]:
        dataset, partition, obj = self._locate(request)
        self._objects.check_csv(obj, dataset.source.header)
        base_run_id = run_id_for(dataset.name, partition, obj.bucket, obj.key, obj.etag)
        now = utc_now_iso(self._clock)

        def manifest(run_id: str, attempt: int, started_at: str, duplicate: bool) -> dict:
            return self.build_manifest(dataset=dataset, partition=partition, obj=obj,
                                       run_id=run_id, attempt=attempt, request=request,
                                       started_at=started_at, duplicate=duplicate)

        def item(run_id: str, attempt: int, m: dict[str, Any]) -> dict[str, Any]:
            record = {
                "run_id": run_id, "dataset": dataset.name, "partition": partition,
                "trigger": request.trigger_kind, "compute": compute_mode(dataset, request),
                "code_version": self._settings.job_code_version, "status": "RUNNING",
                "attempt": attempt, "execution_arn": request.execution_arn, "started_at": now,
                "input": {"bucket": obj.bucket, "key": obj.key, "etag": obj.etag,
                          "size": obj.size},
                "outputs": m["outputs"],
            }
            if attempt == 1:
                record["latest_attempt"] = 1
                record["latest_run_id"] = run_id
            else:
                record["base_run_id"] = base_run_id
            return record

        first = manifest(base_run_id, 1, now, False)
        if self._ledger.create_run(item(base_run_id, 1, first)):
            return self._started(first)

        base = self._ledger.get(base_run_id)
        if base is None:  # created and removed between our two calls: treat as taken
            return self._duplicate(manifest(base_run_id, 1, now, True), "vanished")
        latest_attempt = int(base.get("latest_attempt") or base.get("attempt") or 1)
        latest_id = str(base.get("latest_run_id") or attempt_run_id(base_run_id, latest_attempt))
        latest = base if latest_id == base_run_id else self._ledger.get(latest_id)
        if latest is None:  # the claim was made but the item not written yet
            return self._duplicate(manifest(latest_id, latest_attempt, now, True), "starting")
        status = str(latest.get("status"))
        started = str(latest.get("started_at") or now)
        if latest.get("execution_arn") == request.execution_arn:
            # This execution created it (ResolveRun retried after its write): same run, not a copy.
            return manifest(latest_id, latest_attempt, started, False)
        may_rerun = status in ENDED_UNSUCCESSFULLY or status == "SUCCEEDED"
        if not request.rerun or not may_rerun:
            return self._duplicate(manifest(latest_id, latest_attempt, started, True), status)

        attempt = latest_attempt + 1
        run_id = attempt_run_id(base_run_id, attempt)
        if not self._ledger.claim_attempt(base_run_id, latest_attempt, attempt, run_id):
            return self._duplicate(manifest(latest_id, latest_attempt, started, True),
                                   "claimed by another re-run")
        m = manifest(run_id, attempt, now, False)
        if not self._ledger.create_run(item(run_id, attempt, m)):
            return self._duplicate(manifest(run_id, attempt, now, True), "RUNNING")
        return self._started(m)

    def _started(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if self._logger:
            self._logger.info("run registered", extra={
                "run_id": manifest["run_id"], "attempt": manifest["attempt"],
                "dataset": manifest["dataset"], "partition": manifest["partition"]})
        if self._metrics:
            self._metrics.add_metric(name="RunsStarted", unit="Count", value=1)
        return manifest

    def _duplicate(self, manifest: dict[str, Any], status: str) -> dict[str, Any]:
        if self._logger:
            self._logger.warning("duplicate delivery: run exists, nothing started", extra={
                "run_id": manifest["run_id"], "existing_status": status,
                "hint": 'send a manual event with "rerun": true to process it again'})
        if self._metrics:
            self._metrics.add_metric(name="DuplicateDeliveries", unit="Count", value=1)
        return manifest
