"""ResolveRun: turn a trigger (S3 event, schedule, manual request) into the run manifest.

The raw object is checked before any compute is paid for (exists, not empty, gzip when `.gz`,
the start its format promises: a csv header as the catalog says, a JSON object, text), and the
ledger's conditional writes make the run id the unit of idempotency: the same object delivered
twice starts at most one load. An S3 event's object version (its `version-id` and `etag`) is
what runs: a newer upload of the key is its own run. A folder marker (a key ending in "/" with
0 bytes) is ignored, not refused. The request and the manifest are the models of
pipeline_aws.contracts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo

from pipeline_aws.contracts import (
    BatchSpec,
    BatchTrigger,
    ClusterSpec,
    Compute,
    JobSpec,
    ManualTrigger,
    PartitionRun,
    ResolveRunRequest,
    RunIgnored,
    RunInput,
    RunManifest,
    S3ObjectCreated,
    ScheduleTrigger,
    UpstreamLoaded,
)
from pipeline_aws.derived_inputs import DerivedInputs
from pipeline_aws.lazy import Lazy
from pipeline_aws.ledger import ENDED_UNSUCCESSFULLY, LedgerPort, parse_iso_utc, utc_now_iso
from pipeline_aws.s3_objects import ObjectInfo, RawObjectsPort
from pipeline_aws.settings import ResolveRunSettings
from pipeline_core.catalog import Catalog, Dataset, NodeGroup, validate_partition
from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.identifiers import safe_identifier

_ARG_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}\Z")
_CONF_VALUE = re.compile(r"^[^\s'\"]{1,256}$")
_CONF_KEY = re.compile(r"^spark\.[A-Za-z0-9._-]{1,200}\Z")


# ---------------------------------------------------------------------------------------------
# Pure pieces of the manifest


def compute_mode(dataset: Dataset, request: ResolveRunRequest) -> Compute:
    """The catalog's compute mode (one of catalog.COMPUTE_MODES), unless a manual trigger asks
    for the other path."""
    mode = request.compute or dataset.compute.mode
    return "cluster" if mode == "cluster" else "serverless"


def run_id_for(dataset: str, partition: str, bucket: str, key: str, etag: str,
               version_id: str | None = None) -> str:
    """`<dataset>-<partition>-<12 hex>` of the object's bucket, key, ETag and version: every
    upload of a key (a new version, even of the same bytes) is its own run; the same version
    delivered again is the same run. Unversioned objects keep the bucket/key/etag digest."""
    identity = f"{bucket}/{key}/{etag}" + (f"/{version_id}" if version_id else "")
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
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


def scheduled_partition(scheduled_time: datetime, offset_days: int,
                        timezone: str = "UTC") -> str:
    """The partition a schedule processes: the day of its scheduled time as a calendar in the
    schedule's `timezone` reads it, moved by the catalog's offset.

    EventBridge Scheduler gives `<aws.scheduler.scheduled-time>` in UTC (a time without a zone
    is taken as UTC) while the schedule fires in its ScheduleExpressionTimezone: 06:00 in
    Tokyo on the 10th is 21:00 UTC on the 9th, and its day is the 10th.
    """
    when = scheduled_time if scheduled_time.tzinfo else scheduled_time.replace(tzinfo=UTC)
    try:
        local = when.astimezone(UTC if timezone == "UTC" else ZoneInfo(timezone))
        return (local.date() + timedelta(days=offset_days)).isoformat()
    except (OverflowError, ValueError) as e:
        raise InvalidInput(
            f"scheduled_time {scheduled_time.isoformat()}: its day in {timezone} moved by "
            f"{offset_days} day(s) is outside the calendar (years 1 to 9999)") from e


def is_folder_marker(key: str, size: float | None) -> bool:
    """What the S3 console's "Create folder" writes: a key ending in "/" with no bytes."""
    return key.endswith("/") and not size


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
        if not _CONF_KEY.fullmatch(key) or not _CONF_VALUE.fullmatch(value):
            raise ConfigurationError(
                f"{dataset.name}.job.spark_conf: {key}={value!r} must be spark.<name> with a "
                "value without spaces or quotes"
            )
        pairs.append((key, value))
    return pairs


def job_arguments(dataset: Dataset, *, obj: ObjectInfo, output_root: str, quarantine: str,
                  metrics: str, quality: str, rules: str, run_id: str, partition: str,
                  started_at: datetime) -> list[str]:
    """The Spark job contract's arguments, then the catalog's extra `--name value` pairs.

    `--input-etag` (and `--input-version-id` in a versioned bucket) name the object version
    the run is for: the job refuses to read the input if the key holds another one by then.
    `--reference-time` is the evaluation time of DataFreshness and now() the catalog declares
    (the gate checks the job used it)."""
    reference = dataset.quality.evaluation_time(partition, started_at)
    args = ["--input", obj.uri, "--output-root", output_root, "--quarantine", quarantine,
            "--metrics", metrics, "--quality", quality, "--rules", rules, "--run-id", run_id,
            "--partition", partition, "--encoding", dataset.source.encoding,
            "--reference-time", reference.isoformat().replace("+00:00", "Z"),
            "--input-etag", obj.etag]
    if obj.version_id:
        args.extend(["--input-version-id", obj.version_id])
    return args + _catalog_arguments(dataset, args)


def derived_job_arguments(dataset: Dataset, *, obj: ObjectInfo, output_root: str,
                          quarantine: str, metrics: str, quality: str, rules: str, run_id: str,
                          partition: str, started_at: datetime) -> list[str]:
    """A derived job's arguments (docs/architecture.md, "Derived datasets"): `--input` is the
    run's inputs.json (the upstream folders), checked by its ETag; no encoding and no
    quarantine (its inputs are curated tables, not lines of a file)."""
    del quarantine  # a derived job refuses no line: the layout's path stays unused
    reference = dataset.quality.evaluation_time(partition, started_at)
    args = ["--input", obj.uri, "--output-root", output_root, "--metrics", metrics,
            "--quality", quality, "--rules", rules, "--run-id", run_id,
            "--partition", partition,
            "--reference-time", reference.isoformat().replace("+00:00", "Z"),
            "--input-etag", obj.etag]
    return args + _catalog_arguments(dataset, args)


def _catalog_arguments(dataset: Dataset, args: Sequence[str]) -> list[str]:
    reserved = {a[2:] for a in args[::2]} | {"input-version-id"}
    out: list[str] = []
    for name, value in dataset.job.arguments.items():
        if not _ARG_NAME.fullmatch(name) or name in reserved:
            raise ConfigurationError(
                f"{dataset.name}.job.arguments: {name!r} must be a lower-case option name and "
                f"not one of the contract's ({', '.join(sorted(reserved))})"
            )
        out.extend([f"--{name}", value])
    return out


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes in the curated bucket (docs/architecture.md, Buckets and keys)."""

    outputs: dict[str, str]
    output_root: str
    quarantine: str
    metrics: str
    quality: str

    @classmethod
    def of(cls, curated_bucket: str, dataset: str, tables: Sequence[str], partition: str,
           run_id: str, batch_run_id: str | None = None) -> RunPaths:
        """A partition of a batch writes under `batch=<batch run id>/partition=<p>/`, so
        that the batch's load COPYs each table from one prefix (one statement, whatever the
        batch's size) and the job writes each table for every partition at once
        (spark_jobs.common.batch_writes). A partition has one run in its batch: no run level
        (a batch run again replaces its folders whole)."""
        curated = f"s3://{curated_bucket}"
        run_path = (f"batch={batch_run_id}/partition={partition}/" if batch_run_id
                    else f"partition={partition}/run_id={run_id}/")
        return cls(
            outputs={t: f"{curated}/{dataset}/{t}/{run_path}" for t in tables},
            output_root=f"{curated}/{dataset}/{{table}}/{run_path}",
            quarantine=f"{curated}/quarantine/{dataset}/{run_path}",
            metrics=f"{curated}/_runs/{dataset}/{run_id}/metrics.json",
            quality=f"{curated}/_runs/{dataset}/{run_id}/quality.json",
        )


@dataclass(frozen=True)
class _Target:
    """The raw object a trigger points at, and the dataset and partition it belongs to."""

    dataset: Dataset
    partition: str
    obj: ObjectInfo
    # A derived run's id (its inputs' digest) and job options (the model's); None for raw.
    run_id: str | None = None
    options: tuple[str, ...] = ()
    # A derived run that writes the days from this one to its partition (rows_per_day).
    from_day: str | None = None


@dataclass(frozen=True)
class _Resolution:
    """One ResolveRun call: the request, its object, the object's run id and the time."""

    request: ResolveRunRequest
    target: _Target
    base_run_id: str
    now: str


# ---------------------------------------------------------------------------------------------
# The logic


class RunResolver:
    """Builds and registers the run manifest. Adapters come in through the constructor."""

    def __init__(self, settings: ResolveRunSettings, catalog: Catalog | Callable[[], Catalog],
                 objects: RawObjectsPort, ledger: LedgerPort,
                 clock: Callable[[], datetime] | None = None, logger: Any = None,
                 metrics: Any = None):
        self._settings = settings
        self._catalog = Lazy(catalog)
        self._objects = objects
        self._ledger = ledger
        self._clock = clock or (lambda: datetime.now(UTC))
        self._logger = logger
        self._metrics = metrics

    @property
    def catalog(self) -> Catalog:
        return self._catalog.get()

    # -- finding the object ---------------------------------------------------------------

    def _locate(self, request: ResolveRunRequest) -> _Target:
        trigger = request.trigger
        if isinstance(trigger, ScheduleTrigger):
            dataset = self.catalog.get(trigger.dataset)
            schedule = dataset.schedule
            if schedule is None:
                raise InvalidInput(
                    f"dataset {dataset.name} has no schedule in the catalog (it runs when its "
                    "files are dropped or its upstream loads): a scheduled trigger for it is "
                    "a mistake; start a manual run with its dataset and date instead")
            return self._find_day(dataset, validate_partition(scheduled_partition(
                trigger.scheduled_time, schedule.date_offset_days, schedule.timezone)))
        if isinstance(trigger, ManualTrigger) and trigger.dataset is not None:
            return self._find_day(self.catalog.get(trigger.dataset),
                                  validate_partition(str(trigger.date)))
        if isinstance(trigger, UpstreamLoaded):
            return self._upstream_day(trigger)
        if isinstance(trigger, S3ObjectCreated):
            return self._find_event_object(trigger)
        if isinstance(trigger, BatchTrigger):
            raise InvalidInput("a batch has no single object (resolve() runs it)")
        return self._find_object(str(trigger.bucket), str(trigger.key))

    def _find_object(self, bucket: str, key: str, version_id: str | None = None,
                     *, url_encoded: bool = False) -> _Target:
        if bucket != self._settings.raw_bucket:
            raise InvalidInput(f"bucket {bucket!r} is not the raw bucket "
                               f"{self._settings.raw_bucket!r}; the pipeline reads only that one")
        obj = self._objects.head(bucket, key, version_id)
        if obj is None and url_encoded and unquote_plus(key) != key:
            # S3 notifications URL-encode keys; try the decoded form before giving up.
            key = unquote_plus(key)
            obj = self._objects.head(bucket, key, version_id)
        dataset, partition = self.catalog.match_key(key)
        if obj is None:
            what = f"version {version_id} of " if version_id else ""
            raise InvalidInput(f"{what}s3://{bucket}/{key} does not exist (deleted after the "
                               "event?)")
        return _Target(dataset, partition, obj)

    def _find_event_object(self, event: S3ObjectCreated) -> _Target:
        """The object version the event is about (HeadObject with its VersionId), whose ETag
        must be the event's: otherwise the object changed since the event."""
        target = self._find_object(event.bucket, event.key, event.version_id, url_encoded=True)
        obj = target.obj
        if event.etag and obj.etag != event.etag:
            if event.version_id:
                raise InvalidInput(
                    f"{obj.uri} version {event.version_id} has ETag {obj.etag}, but the event "
                    f"says {event.etag}: not the object the event is about")
            raise InvalidInput(
                f"{obj.uri} changed since the event: the event's ETag is {event.etag}, the "
                f"object's is now {obj.etag} (an unversioned bucket keeps only the newest; "
                "the newer upload's own event runs it)")
        return target

    def _upstream_day(self, trigger: UpstreamLoaded) -> _Target:
        dataset = self.catalog.get(trigger.dataset)
        upstream = trigger.upstream.dataset
        if dataset.derived is None or upstream not in dataset.derived.upstream:
            raise InvalidInput(f"dataset {dataset.name} does not read {upstream}: an upstream "
                               "trigger names a derived dataset and one of its upstreams")
        as_of = validate_partition(trigger.as_of)
        if trigger.from_day is None:
            return self._find_day(dataset, as_of)
        if not dataset.derived.rows_per_day:
            raise InvalidInput(f"dataset {dataset.name} writes a snapshot as of a day, not "
                               f"rows per day: a run from {trigger.from_day} to {as_of} is "
                               "for rows_per_day datasets only")
        return self._derived_day(dataset, as_of, validate_partition(trigger.from_day))

    def _derived_day(self, dataset: Dataset, as_of: str, from_day: str | None = None
                     ) -> _Target:
        """A derived run for `as_of` (writing the days from `from_day`): its inputs (written
        as inputs.json in the curated bucket, the run's `input`), its run id, and its job
        options (the model's, the first day's)."""
        found = DerivedInputs(self._settings, self._objects, self._ledger).resolve(
            dataset, as_of, from_day)
        return _Target(dataset, as_of, found.obj, found.run_id, found.options, from_day)

    def _find_day(self, dataset: Dataset, partition: str) -> _Target:
        """The day's one raw object, under any of the keys the catalog's key pattern allows
        for it (one per file suffix); for a derived dataset, its inputs."""
        if dataset.derived is not None:
            return self._derived_day(dataset, partition)
        bucket = self._settings.raw_bucket
        keys = dataset.source.day_keys(partition)
        found = [obj for obj in (self._objects.head(bucket, key) for key in keys)
                 if obj is not None]
        if not found:
            tried = ", ".join(f"s3://{bucket}/{key}" for key in keys) or "no key"
            raise InvalidInput(f"no raw object for {dataset.name} {partition}: none of {tried} "
                               "exists")
        if len(found) > 1:
            raise InvalidInput(
                f"{' and '.join(obj.uri for obj in found)} exist for {dataset.name} "
                f"{partition}; start a manual run with bucket and key to say which one to "
                "process"
            )
        return _Target(dataset, partition, found[0])

    # -- the manifest ---------------------------------------------------------------------

    def build_manifest(self, *, dataset: Dataset, partition: str, obj: ObjectInfo,
                       run_id: str, attempt: int, request: ResolveRunRequest, started_at: str,
                       duplicate: bool, batch_run_id: str | None = None,
                       options: Sequence[str] = (), from_day: str | None = None
                       ) -> dict[str, Any]:
        """The run manifest (contracts.RunManifest) as the state machine receives it."""
        s = self._settings
        name = safe_identifier(dataset.name, "dataset name")
        tables = [safe_identifier(t.name, "load table") for t in dataset.load.tables]
        paths = RunPaths.of(s.curated_bucket, name, tables, partition, run_id, batch_run_id)
        conf = spark_conf_pairs(dataset)
        job = self._job(dataset, obj, paths, conf, run_id=run_id, attempt=attempt,
                        partition=partition, started_at=started_at, options=options)
        tags = {
            "pipeline:app": s.app_name,
            "pipeline:environment": s.environment,
            "pipeline:dataset": name,
            "pipeline:run-id": run_id,
            "pipeline:execution": request.execution_arn,
        }
        compute = compute_mode(dataset, request)
        cluster = (self._cluster_section(dataset, run_id, tags, job, conf)
                   if compute == "cluster" else None)
        return RunManifest(
            run_id=run_id, execution_id=request.execution_arn, dataset=name,
            partition=partition, trigger=request.trigger_kind, duplicate=duplicate,
            attempt=attempt, compute=compute, started_at=started_at,
            input=RunInput(bucket=obj.bucket, key=obj.key, etag=obj.etag, size=obj.size,
                           uri=obj.uri, version_id=obj.version_id),
            outputs=paths.outputs, quarantine_uri=paths.quarantine, metrics_uri=paths.metrics,
            quality_uri=paths.quality, from_day=from_day, job=job.model_dump(mode="json"),
            cluster=cluster.model_dump(mode="json") if cluster else None, tags=tags,
        ).model_dump(mode="json")

    def _job(self, dataset: Dataset, obj: ObjectInfo, paths: RunPaths,
             conf: list[tuple[str, str]], *, run_id: str, attempt: int, partition: str,
             started_at: str, options: Sequence[str] = ()) -> JobSpec:
        s = self._settings
        jobs = f"s3://{s.artifacts_bucket}/jobs/{s.job_code_version}"
        job_name = safe_identifier(dataset.job.name, "job name")
        py_files = f"{jobs}/spark_jobs.zip"
        build = derived_job_arguments if dataset.derived is not None else job_arguments
        arguments = build(
            dataset, obj=obj, output_root=paths.output_root,
            quarantine=paths.quarantine, metrics=paths.metrics, quality=paths.quality,
            rules=f"{jobs}/datasets/{dataset.quality.rules_file}", run_id=run_id,
            partition=partition, started_at=parse_iso_utc(started_at),
        ) + list(options)
        return JobSpec(
            name=job_name,
            code_version=s.job_code_version,
            entry_point=f"{jobs}/spark_jobs/{job_name}/main.py",
            py_files=py_files,
            arguments=arguments,
            spark_submit_parameters=" ".join(
                [f"--py-files {py_files}", *(f"--conf {k}={v}" for k, v in conf)]),
            client_token=job_token(run_id, attempt),
            timeout_minutes=dataset.job.timeout_minutes,
            log_uri=f"s3://{s.artifacts_bucket}/logs/emr-serverless/",
        )

    def _cluster_section(self, dataset: Dataset, run_id: str, tags: dict[str, str], job: JobSpec,
                         conf: list[tuple[str, str]]) -> ClusterSpec:
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
        step_args = ["spark-submit", "--deploy-mode", "cluster", "--py-files", job.py_files]
        for key, value in conf:
            step_args.extend(["--conf", f"{key}={value}"])
        step_args.append(job.entry_point)
        step_args.extend(job.arguments)
        return ClusterSpec(
            name=f"{self._settings.app_name}-{run_id}"[:256],
            release_label=cluster.release_label,
            instances={
                "InstanceFleets": fleets,
                "Ec2SubnetIds": list(self._settings.emr_subnet_ids),
                "KeepJobFlowAliveWhenNoSteps": True,
            },
            log_uri=f"s3://{self._settings.artifacts_bucket}/logs/emr/",
            idle_timeout_seconds=cluster.idle_timeout_minutes * 60,
            tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            step_args=step_args,
        )

    # -- registering the run ----------------------------------------------------------------

    def resolve(self, request: ResolveRunRequest) -> dict[str, Any]:
        """The run manifest; `duplicate` when the object's run exists and no re-run is due;
        RunIgnored for a folder marker."""
        trigger = request.trigger
        if isinstance(trigger, BatchTrigger):
            return self._resolve_batch(request, trigger.batch)
        if isinstance(trigger, S3ObjectCreated) and is_folder_marker(trigger.key, trigger.size):
            return self._ignored(trigger)
        target = self._locate(request)
        obj = target.obj
        if target.run_id is None:
            self._objects.check_input(target.obj, target.dataset.source)
        base_run_id = target.run_id or run_id_for(
            target.dataset.name, target.partition, obj.bucket, obj.key, obj.etag,
            obj.version_id)
        run = _Resolution(request, target, base_run_id, utc_now_iso(self._clock))
        first = self._manifest(run, run.base_run_id, 1, run.now, duplicate=False)
        if self._ledger.create_run(self._item(run, first)):
            return self._started(first)
        return self._existing(run)

    def _existing(self, run: _Resolution, *, resume_broken: bool = False) -> dict[str, Any]:
        """The object's run exists: the same run again, a duplicate, or the next attempt.
        `resume_broken` (a batch): a run that ended unsuccessfully for another reason than
        its data (`failed_on_data`) is run again, so a backfill resumes what a crash left."""
        base = self._ledger.get(run.base_run_id)
        if base is None:  # created and removed between our two calls: treat as taken
            return self._duplicate(self._manifest(run, run.base_run_id, 1, run.now, True),
                                   "vanished")
        latest_attempt = int(base.get("latest_attempt") or base.get("attempt") or 1)
        latest_id = str(base.get("latest_run_id") or attempt_run_id(run.base_run_id,
                                                                    latest_attempt))
        latest = base if latest_id == run.base_run_id else self._ledger.get(latest_id)
        if latest is None:  # the claim was made but the item not written yet
            return self._duplicate(self._manifest(run, latest_id, latest_attempt, run.now, True),
                                   "starting")
        status = str(latest.get("status"))
        started = str(latest.get("started_at") or run.now)
        if latest.get("execution_arn") == run.request.execution_arn:
            # This execution created it (ResolveRun retried after its write): same run, not a copy.
            return self._manifest(run, latest_id, latest_attempt, started, False)
        if run.request.rerun and (status in ENDED_UNSUCCESSFULLY or status == "SUCCEEDED"):
            return self._rerun(run, latest_id, latest_attempt, started)
        if resume_broken and status in ENDED_UNSUCCESSFULLY and not failed_on_data(latest):
            return self._rerun(run, latest_id, latest_attempt, started)
        return self._duplicate(self._manifest(run, latest_id, latest_attempt, started, True),
                               status)

    def _rerun(self, run: _Resolution, latest_id: str, latest_attempt: int, started: str
               ) -> dict[str, Any]:
        """Claim the next attempt on the base item, then register its own run item."""
        attempt = latest_attempt + 1
        run_id = attempt_run_id(run.base_run_id, attempt)
        if not self._ledger.claim_attempt(run.base_run_id, latest_attempt, attempt, run_id):
            return self._duplicate(self._manifest(run, latest_id, latest_attempt, started, True),
                                   "claimed by another re-run")
        manifest = self._manifest(run, run_id, attempt, run.now, False)
        if not self._ledger.create_run(self._item(run, manifest)):
            return self._duplicate(self._manifest(run, run_id, attempt, run.now, True), "RUNNING")
        return self._started(manifest)

    def _manifest(self, run: _Resolution, run_id: str, attempt: int, started_at: str,
                  duplicate: bool) -> dict[str, Any]:
        target = run.target
        return self.build_manifest(dataset=target.dataset, partition=target.partition,
                                   obj=target.obj, run_id=run_id, attempt=attempt,
                                   request=run.request, started_at=started_at,
                                   duplicate=duplicate, options=target.options,
                                   from_day=target.from_day)

    def _item(self, run: _Resolution, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The run's ledger item (docs/architecture.md, The run ledger)."""
        obj, attempt = run.target.obj, int(manifest["attempt"])
        record: dict[str, Any] = {
            "run_id": manifest["run_id"], "dataset": run.target.dataset.name,
            "partition": run.target.partition, "trigger": run.request.trigger_kind,
            "compute": manifest["compute"], "code_version": self._settings.job_code_version,
            "status": "RUNNING", "attempt": attempt,
            "execution_arn": run.request.execution_arn, "started_at": run.now,
            "input": {"bucket": obj.bucket, "key": obj.key, "etag": obj.etag, "size": obj.size,
                      **({"version_id": obj.version_id} if obj.version_id else {})},
            "outputs": manifest["outputs"],
        }
        if isinstance(run.request.trigger, BatchTrigger):
            record["batch_id"] = run.request.trigger.batch.batch_id
        if run.target.from_day:
            record["from_day"] = run.target.from_day
        if attempt == 1:
            record["latest_attempt"] = 1
            record["latest_run_id"] = manifest["run_id"]
        else:
            record["base_run_id"] = run.base_run_id
        return record

    def _started(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if self._logger:
            self._logger.info("run registered", extra={
                "run_id": manifest["run_id"], "attempt": manifest["attempt"],
                "dataset": manifest["dataset"], "partition": manifest["partition"]})
        if self._metrics:
            self._metrics.add_metric(name="RunsStarted", unit="Count", value=1)
        return manifest

    def _resolve_batch(self, request: ResolveRunRequest, spec: BatchSpec) -> dict[str, Any]:
        return _BatchResolver(self, request, spec).resolve()

    def _ignored(self, event: S3ObjectCreated) -> dict[str, Any]:
        """A folder marker: nothing to run, nothing registered, no alert."""
        reason = (f"s3://{event.bucket}/{event.key} is a folder marker (a key ending in '/' "
                  "with 0 bytes, as the S3 console's Create folder writes): nothing to run")
        if self._logger:
            self._logger.info("event ignored", extra={"reason": reason})
        if self._metrics:
            self._metrics.add_metric(name="EventsIgnored", unit="Count", value=1)
        return RunIgnored(reason=reason, bucket=event.bucket, key=event.key).model_dump(
            mode="json")

    def _duplicate(self, manifest: dict[str, Any], status: str) -> dict[str, Any]:
        if self._logger:
            self._logger.warning("duplicate delivery: run exists, nothing started", extra={
                "run_id": manifest["run_id"], "existing_status": status,
                "hint": 'send a manual event with "rerun": true to process it again'})
        if self._metrics:
            self._metrics.add_metric(name="DuplicateDeliveries", unit="Count", value=1)
        return manifest


# ---------------------------------------------------------------------------------------------
# Batches: many partitions of one dataset in one execution


def failed_on_data(item: Mapping[str, Any]) -> bool:
    """The run failed on what its object holds (the gate's verdict, a refused input): the
    same bytes fail the same way, so a batch does not run it again unless forced."""
    failure = item.get("failure")
    error = failure.get("error") if isinstance(failure, Mapping) else None
    return error in ("QualityGateFailed", "InvalidInput")


def batch_run_id(dataset: str, batch_id: str, run_ids: Sequence[str]) -> str:
    """`<dataset>-batch-<12 hex>` of the batch id and its partitions' run ids: the same batch
    of the same versions is the same run; a forced re-run (new attempt ids) is another."""
    identity = "/".join([batch_id, *sorted(run_ids)])
    return f"{dataset}-batch-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def batch_arguments(parts: Sequence[tuple[PartitionRun, list[str]]]) -> list[str]:
    """The job's arguments for a batch: the first partition's full argument list, then for
    each other partition its own options from `--input` on (the Spark job contract: the job
    splits its arguments at each `--input`)."""
    first = parts[0][1]
    out = list(first)
    for _, args in parts[1:]:
        pairs = list(zip(args[::2], args[1::2], strict=True))
        out.extend(x for name, value in pairs if name in PARTITION_OPTIONS
                   for x in (name, value))
    return out


PARTITION_OPTIONS = frozenset({
    "--input", "--output-root", "--quarantine", "--metrics", "--quality", "--run-id",
    "--partition", "--reference-time", "--input-etag", "--input-version-id"})


class _BatchResolver:
    """ResolveRun for a BatchTrigger: each object resolved as its own run (its own run id and
    ledger item, so a batch and an S3 event of one version never both load it), then one
    manifest listing the partitions that are not already done."""

    def __init__(self, resolver: RunResolver, request: ResolveRunRequest, spec: BatchSpec):
        self.r, self.request, self.spec = resolver, request, spec
        self.dataset = resolver.catalog.get(spec.dataset)

    def targets(self) -> list[_Target]:
        limit = self.dataset.backfill.max_objects_per_batch
        if len(self.spec.objects) > limit:
            raise InvalidInput(f"batch {self.spec.batch_id} has {len(self.spec.objects)} "
                               f"objects; {self.dataset.name} takes at most {limit} per batch")
        bucket = self.r._settings.raw_bucket
        targets = [self.r._find_object(bucket, o.key, o.version_id) for o in self.spec.objects]
        other = [t.obj.key for t in targets if t.dataset.name != self.dataset.name]
        if other:
            raise InvalidInput(f"batch {self.spec.batch_id} is for {self.dataset.name} but "
                               f"{', '.join(other)} belong to another dataset")
        days = [t.partition for t in targets]
        twice = sorted({d for d in days if days.count(d) > 1})
        if twice:
            raise InvalidInput(f"batch {self.spec.batch_id} names two objects of partition(s) "
                               f"{', '.join(twice)}: one object per partition")
        return sorted(targets, key=lambda t: t.partition)

    def refusal(self, target: _Target) -> str | None:
        """Why the object's input check refuses it (None: it runs)."""
        try:
            self.r._objects.check_input(target.obj, target.dataset.source)
        except InvalidInput as e:
            return str(e)
        return None

    def claim(self, target: _Target, now: str, refused: str | None
              ) -> tuple[dict[str, Any], str | None]:
        """The partition's single-run manifest (duplicate or not) and why its input is
        refused (None: it runs)."""
        obj = target.obj
        run = _Resolution(self.request, target, run_id_for(
            target.dataset.name, target.partition, obj.bucket, obj.key, obj.etag,
            obj.version_id), now)
        first = self.r._manifest(run, run.base_run_id, 1, now, duplicate=False)
        if self.r._ledger.create_run(self.r._item(run, first)):
            return first, refused
        return self.r._existing(run, resume_broken=True), refused

    def resolve(self) -> dict[str, Any]:
        now = utc_now_iso(self.r._clock)
        claimed: list[tuple[_Target, PartitionRun, str | None]] = []
        skipped: list[dict[str, Any]] = []
        targets = self.targets()
        refusals = [self.refusal(t) for t in targets]
        if all(refusals):
            # Before any ledger item: nothing of this batch stays RUNNING.
            raise InvalidInput("every object of batch " + self.spec.batch_id + " was refused: "
                               + "; ".join(str(r) for r in refusals))
        for target, refused_by in zip(targets, refusals, strict=True):
            single, refusal = self.claim(target, now, refused_by)
            part = PartitionRun.model_validate(single["partitions"][0])
            if single["duplicate"]:
                skipped.append({"partition": part.partition, "run_id": part.run_id,
                                "key": part.input.key, "reason": "its run exists"})
            else:
                claimed.append((target, part, refusal))
        if claimed and all(refusal for _, _, refusal in claimed):
            # Only refused objects are new (the others ran before): end their items, fail.
            for _, part, refusal in claimed:
                self.r._ledger.mark_failed(part.run_id, {
                    "state": "ResolveRun", "error": "InvalidInput", "cause": str(refusal)})
            raise InvalidInput("every object of batch " + self.spec.batch_id + " still to "
                               "run was refused: "
                               + "; ".join(str(refusal) for _, _, refusal in claimed))
        run_ids = [p.run_id for _, p, _ in claimed] or [s["run_id"] for s in skipped]
        run_id = batch_run_id(self.dataset.name, self.spec.batch_id, run_ids)
        parts: list[tuple[PartitionRun, list[str]]] = []
        refused: list[PartitionRun] = []
        for target, part, refusal in claimed:
            own = self.r.build_manifest(
                dataset=self.dataset, partition=part.partition, obj=target.obj,
                run_id=part.run_id, attempt=part.attempt, request=self.request,
                started_at=now, duplicate=False, batch_run_id=run_id)
            placed = PartitionRun.model_validate(own["partitions"][0])
            if refusal:
                refused.append(placed.model_copy(update={"refused": refusal}))
            else:
                parts.append((placed, list(own["job"]["arguments"])))
        return self.manifest(run_id, targets[0].obj, parts, refused, skipped, now)

    def manifest(self, run_id: str, first: ObjectInfo,
                 parts: list[tuple[PartitionRun, list[str]]], refused: list[PartitionRun],
                 skipped: list[dict[str, Any]], now: str) -> dict[str, Any]:
        every = sorted([p for p, _ in parts] + refused, key=lambda p: p.partition)
        days = [p.partition for p in every] or [s["partition"] for s in skipped]
        label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
        base = self.r.build_manifest(
            dataset=self.dataset, partition=days[0], obj=first, run_id=run_id, attempt=1,
            request=self.request, started_at=now, duplicate=not parts)
        base["job"]["arguments"] = batch_arguments(parts) if parts else []
        if base.get("cluster"):
            step = base["cluster"]["step_args"]
            base["cluster"]["step_args"] = step[:step.index(base["job"]["entry_point"]) + 1] + \
                base["job"]["arguments"]
        base.update(partition=label, input=None, outputs={}, quarantine_uri=None,
                    metrics_uri=None, quality_uri=None, batch_id=self.spec.batch_id,
                    partitions=[p.model_dump(mode="json") for p in every], skipped=skipped)
        if self.r._logger:
            self.r._logger.info("batch resolved", extra={
                "run_id": run_id, "partitions": [p.partition for p, _ in parts],
                "refused": [p.partition for p in refused],
                "skipped": [s["partition"] for s in skipped]})
        return RunManifest.model_validate(base).model_dump(mode="json")

