"""The state machine's payloads: the run manifest, the execution reference, and each function's
input and output, as pydantic models (documented in docs/architecture.md).

Every function reads its event through `parse`, so a malformed payload is refused the same way
everywhere: an `InvalidInput` (the name the ASL's Catch matches) whose message names each bad
field. Models ignore fields they do not need, so a state that grows never breaks a reader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline_core.errors import InvalidInput, PipelineError

Model = TypeVar("Model", bound=BaseModel)


def validation_message(error: ValidationError, prefix: str = "") -> str:
    """One `path: problem` entry per problem, the path from the payload's top."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "") or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse(
    model: type[Model], data: Any, what: str, *, error: type[PipelineError] = InvalidInput,
    prefix: str = "",
) -> Model:
    """Validate `data` as `model`; on failure raise `error` ("<what>: <problems>")."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error(f"{what}: {validation_message(e, prefix)}") from e


# --- the run's payloads (ResolveRun, EvaluateQuality, StartLoad, RecordRun, HandleFailure) ---

S3_URI = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+"
Verdict = Literal["pass", "warn", "fail"]
Compute = Literal["serverless", "cluster"]


class _Model(BaseModel):
    """Every model here builds its validator on first use, not at import: a handler validates
    a few of these ~50 models, and building all of them was most of a cold import's own time."""

    model_config = ConfigDict(defer_build=True)


class _Payload(_Model):
    """A part of the state machine's data: fields it does not name are ignored."""

    model_config = ConfigDict(extra="ignore")


class ExecutionRef(_Payload):
    """`$$.Execution`, which the state machine passes to every function next to its input."""

    Id: str = Field(min_length=1)
    Name: str = Field(min_length=1)
    StartTime: str | None = None


# The run manifest (ResolveRun's result, `$.run`) and its parts.


class RunInput(_Payload):
    """The raw object the run reads; it is never changed. `version_id` is the S3 version the
    trigger named (None in an unversioned bucket); the job verifies it and `etag` before it
    reads (docs/architecture.md, The run manifest)."""

    bucket: str
    key: str
    etag: str
    size: int = Field(ge=0)
    uri: str
    version_id: str | None = None


class JobSpec(_Payload):
    """The Spark job as RunServerlessJob submits it (RunClusterStep runs the same arguments)."""

    name: str
    code_version: str
    entry_point: str
    py_files: str
    arguments: list[str]
    spark_submit_parameters: str
    client_token: str = Field(min_length=1, max_length=64)
    timeout_minutes: int = Field(ge=1)
    log_uri: str


class ClusterSpec(_Payload):
    """What CreateCluster and RunClusterStep pass to EMR (RunJobFlow / AddJobFlowSteps shapes)."""

    name: str
    release_label: str
    instances: dict[str, Any]
    log_uri: str
    idle_timeout_seconds: int
    tags: list[dict[str, str]]
    step_args: list[str]


class PartitionRun(_Payload):
    """One partition of a run: its own run id (the object version's, as a single run's), its
    object and where its outputs go. `refused` is why ResolveRun's input check refused the
    object: the job skips it and the gate fails it alone."""

    run_id: str = Field(min_length=1, max_length=128)
    partition: str = Field(min_length=1)
    attempt: int = Field(default=1, ge=1)
    input: RunInput
    outputs: dict[str, str]
    quarantine_uri: str = Field(pattern=S3_URI)
    metrics_uri: str = Field(pattern=S3_URI)
    quality_uri: str = Field(pattern=S3_URI)
    refused: str | None = None
    # A derived run that writes the days from this one to `partition` (rows_per_day).
    from_day: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")

    @property
    def days(self) -> list[str]:
        """The partition values the load replaces: the partition, or each day from
        `from_day` to it."""
        from pipeline_core.derived import range_days  # the catalog's import, only here

        return range_days(self.from_day, self.partition) if self.from_day else \
            [self.partition]


_PARTITION_FIELDS = ("run_id", "partition", "attempt", "input", "outputs", "quarantine_uri",
                     "metrics_uri", "quality_uri", "from_day")


class RunManifest(_Payload):
    """The run manifest: ResolveRun's result, at `$.run` for every later state.

    `partitions` lists what the run processes; a single-object run is a batch of one, whose
    partition is the manifest's own run_id, partition, input and paths (filled in when a
    manifest names no partitions). A batch's top-level `partition` is `<first>..<last>`."""

    run_id: str = Field(min_length=1, max_length=128)
    execution_id: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    partition: str = Field(min_length=1)
    trigger: Literal["s3", "schedule", "manual", "batch", "upstream"]
    duplicate: bool
    attempt: int = Field(ge=1)
    compute: Compute
    started_at: str
    # A single run's object and paths; None for a batch of several (see `partitions`).
    input: RunInput | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    quarantine_uri: str | None = Field(default=None, pattern=S3_URI)
    metrics_uri: str | None = Field(default=None, pattern=S3_URI)
    quality_uri: str | None = Field(default=None, pattern=S3_URI)
    from_day: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    # The ASL's part, passed to EMR as it is: ResolveRun builds it from JobSpec / ClusterSpec;
    # no function reads it back, so a reader does not refuse a state for it.
    job: dict[str, Any]
    cluster: dict[str, Any] | None = None
    tags: dict[str, str]
    partitions: list[PartitionRun] = Field(default_factory=list)
    batch_id: str | None = None
    # Partitions of a batch that were not run: already loaded from the same version.
    skipped: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _one_partition(cls, data: Any) -> Any:
        """A manifest without `partitions` is a batch of one: its own object and paths."""
        if isinstance(data, dict) and "partitions" not in data:
            data = {**data, "partitions": [{k: data.get(k) for k in _PARTITION_FIELDS
                                            if k in data}]}
        return data

    @property
    def loadable(self) -> list[PartitionRun]:
        """The partitions the job ran (not refused at ResolveRun)."""
        return [p for p in self.partitions if p.refused is None]

    def of_partition(self, part: PartitionRun) -> RunManifest:
        """This manifest as the single run of one of its partitions (what the gate and the
        ledger see per partition)."""
        return self.model_copy(update={
            "run_id": part.run_id, "partition": part.partition, "attempt": part.attempt,
            "input": part.input, "outputs": part.outputs, "quarantine_uri": part.quarantine_uri,
            "metrics_uri": part.metrics_uri, "quality_uri": part.quality_uri,
            "from_day": part.from_day,
            "partitions": [part]})


# What the states after the job leave in the state.


class LineCounts(_Payload):
    """The run's lines, `{"in", "out", "quarantined", "duplicates"}` (from metrics.json)."""

    model_config = ConfigDict(extra="ignore", validate_by_name=True, serialize_by_alias=True)

    read: int = Field(ge=0, validation_alias="in", serialization_alias="in")
    written: int = Field(ge=0, validation_alias="out", serialization_alias="out")
    quarantined: int = Field(ge=0)
    duplicates: int = Field(ge=0)


class RuleOutcome(_Payload):
    """A rule that failed or warned, as EvaluateQuality reports it."""

    rule: str
    line: int
    severity: str
    metric_name: str | None
    value: float | int | None
    threshold: str


class PartitionQuality(_Payload):
    """The gate's decision on one partition of the run."""

    run_id: str
    verdict: Verdict
    summary: str
    lines: LineCounts | None = None
    rows: dict[str, int] = Field(default_factory=dict)  # per output table, as the job wrote


class QualityResult(_Payload):
    """EvaluateQuality's result, at `$.quality` (the QualityGate Choice reads `verdict`).

    `partitions`: each partition's own verdict; those not `fail` are loaded. The run's
    verdict is `fail` only when every partition failed; a batch with failed partitions and
    loadable ones is `warn` (the failed ones alerted alone). `lines` and the rules are the
    sums and the union over the partitions."""

    verdict: Verdict
    summary: str
    failed_rules: list[RuleOutcome]
    warned_rules: list[RuleOutcome]
    lines: LineCounts
    partitions: dict[str, PartitionQuality] = Field(default_factory=dict)


class GateVerdicts(_Payload):
    """What the load reads of `$.quality`: which partitions pass the gate."""

    partitions: dict[str, PartitionQuality] = Field(default_factory=dict)


class LoadStarted(_Payload):
    """StartLoad's result (the load function's submit), at `$.load`.
    `tables`: table -> index of the sub-statement whose ResultRows is the rows inserted;
    `load_try`: 1, then one more for each resubmit after a serialization conflict;
    `snapshot_checks`: full_refresh table -> index of the sub-statement whose ResultRows > 0
    says the table holds a newer snapshot than the run's (pipeline_core.load_sql)."""

    statement_id: str = Field(min_length=1)
    tables: dict[str, int]
    migrations_applied: list[str] = Field(default_factory=list)
    load_try: int = Field(default=1, ge=1)
    snapshot_checks: dict[str, int] = Field(default_factory=dict)


class SubStatement(_Payload):
    Status: str | None = None
    ResultRows: int | None = None
    Error: str | None = None


LoadOutcome = Literal["finished", "failed", "aborted", "retry", "conflict", "timed_out",
                      "stale"]


class LoadStatus(_Payload):
    """AwaitLoad's result (what the load function sends with SendTaskSuccess when the
    statement ended), or DescribeLoad's (its describe after the wait ran out), at
    `$.load_status`: the DescribeStatement response's Id, Status, Error and SubStatements, and
    what it means (pipeline_aws.load_policy): `outcome` (the LoadStatus Choice reads it),
    `wait_seconds` (before the next try), `polls` (describes of this statement that were
    judged), `load_try`, `cause`."""

    Id: str | None = None
    Status: str
    Error: str | None = None
    SubStatements: list[SubStatement] = Field(default_factory=list)
    outcome: LoadOutcome | None = None
    wait_seconds: int = Field(default=0, ge=0)
    polls: int = Field(default=0, ge=0)
    load_try: int = Field(default=1, ge=1)
    cause: str | None = None


class LoadCancelled(_Payload):
    """CancelLoad's result (the load function's cancel), at `$.load_cancel`: one cleanup
    action, which HandleFailure records with its own."""

    action: Literal["cancel_statement"] = "cancel_statement"
    id: str
    result: str


class JobRunRef(_Payload):
    """`$.job_run`, after RunServerlessJob."""

    application_id: str | None = None
    job_run_id: str | None = None


class ClusterRef(_Payload):
    """`$.cluster`, after CreateCluster."""

    cluster_id: str | None = None


# Each function's input and result.


class _Parses(_Model):
    """A function's event model: `parse` refuses a malformed event as InvalidInput naming
    every missing or wrong field; `what` starts the message."""

    what: ClassVar[str]

    @classmethod
    def parse(cls, event: Any) -> Self:
        return parse(cls, event, cls.what)


class _FunctionInput(_Payload, _Parses):
    """`{"state": <the whole state>, "execution": $$.Execution, "state_name": <State>}`."""


class RunState(_Payload):
    """The state once ResolveRun succeeded."""

    run: RunManifest


class RunStepRequest(_FunctionInput):
    state: RunState
    execution: ExecutionRef
    state_name: str | None = None

    @property
    def run(self) -> RunManifest:
        return self.state.run


class EvaluateQualityRequest(RunStepRequest):
    what = "EvaluateQuality input"


class LoadStatementState(RunState):
    """What the load function reads: `load` after a submit, `load_status` after a describe;
    `quality` says which partitions pass the gate."""

    quality: GateVerdicts | None = None
    load: LoadStarted | None = None
    load_status: LoadStatus | None = None


class LoadStatementRequest(RunStepRequest):
    """The one function that owns the load statement: StartLoad (`submit`), AwaitLoad
    (`await`, with the task token), DescribeLoad (`describe`) and CancelLoad (`cancel`) call it,
    and so does the statement's completion event, so one principal submits, describes and
    cancels (the Data API scopes a statement to the identity that submitted it)."""

    what = "LoadStatement input"

    operation: Literal["submit", "await", "describe", "cancel"]
    state: LoadStatementState
    task_token: str | None = Field(default=None, min_length=1, max_length=2048)


class RecordRunState(RunState):
    load: LoadStarted
    load_status: LoadStatus
    quality: QualityResult | None = None
    job_run: JobRunRef | None = None
    cluster: ClusterRef | None = None


class RecordRunRequest(_FunctionInput):
    what = "RecordRun input"

    state: RecordRunState


class RunRecorded(_Payload):
    """RecordRun's result, at `$.record`."""

    status: Literal["SUCCEEDED"]
    rows_loaded: dict[str, int]


class HandleFailureRequest(_FunctionInput):
    """HandleFailure's input: the state as far as the run got (without `run` when ResolveRun
    failed), read defensively by the handler rather than refused."""

    what = "HandleFailure input"

    state: dict[str, Any]
    execution: ExecutionRef
    state_name: str | None = None


class FailureSummary(_Payload):
    """HandleFailure's result, at `$.failure_summary`."""

    failed_state: str
    error: str
    cause: str
    logs: str | None
    cleanup: list[dict[str, Any]]


# ResolveRun: the trigger events and its input.


class EventBridgeEvent(_Model):
    """The envelope every event delivered to an event bus has (EventBridge user guide, "AWS
    service event metadata", eb-events-structure.html). Our own model rather than powertools'
    parser models: importing one of those imports all of them (~40 services' models), which
    was a third of a handler's cold import."""

    model_config = ConfigDict(populate_by_name=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: Any
    replay_name: str | None = Field(default=None, alias="replay-name")


class _S3Bucket(_Model):
    name: str = Field(min_length=3)


class _S3Object(_Model):
    model_config = ConfigDict(populate_by_name=True)

    key: str = Field(min_length=1)
    size: float | None = Field(default=None, ge=0)
    etag: str = ""
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str | None = None


class _S3Detail(_Model):
    """`detail` of an S3 event (S3 user guide, "EventBridge event message structure",
    ev-events.html: version, bucket.name, object.key/size/etag/version-id/sequencer,
    request-id, requester, source-ip-address, reason)."""

    model_config = ConfigDict(populate_by_name=True)

    version: str
    bucket: _S3Bucket
    object: _S3Object
    request_id: str = Field(alias="request-id")
    requester: str
    source_ip_address: str | None = Field(default=None, alias="source-ip-address")
    reason: str | None = None


class S3ObjectCreated(EventBridgeEvent):
    """EventBridge "Object Created" from the raw bucket.

    `detail.object` carries `etag` and, in a versioned bucket, `version-id`: the object this
    event is about, which is what runs (S3 user guide, "EventBridge event message structure").
    """

    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    detail: _S3Detail

    @property
    def bucket(self) -> str:
        return self.detail.bucket.name

    @property
    def key(self) -> str:
        return self.detail.object.key

    @property
    def etag(self) -> str | None:
        return self.detail.object.etag.strip('"') or None

    @property
    def version_id(self) -> str | None:
        return self.detail.object.version_id or None

    @property
    def size(self) -> float | None:
        return self.detail.object.size


class RunIgnored(_Payload):
    """ResolveRun's result for an event that is nothing to run (a folder marker): the state
    machine ends in its Ignored state, without a run, a ledger item or an alert."""

    ignored: Literal[True] = True
    duplicate: Literal[False] = False
    reason: str
    bucket: str
    key: str


class ScheduleTrigger(_Payload):
    """The EventBridge Scheduler target's input (template.yaml): the dataset and the time."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["pipeline.schedule"]
    dataset: str = Field(min_length=1)
    scheduled_time: datetime


class ManualTrigger(_Payload):
    """A person or a backfill: dataset + date, or bucket + key; `rerun` replaces a day."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = None
    date: str | None = None
    bucket: str | None = None
    key: str | None = None
    rerun: bool = False
    # Run this one execution on the other compute path (backfills, local cluster-mode runs).
    compute: Compute | None = None

    @model_validator(mode="after")
    def _day_or_object(self) -> Self:
        by_day = self.dataset is not None and self.date is not None
        by_key = self.bucket is not None and self.key is not None
        if by_day == by_key:
            raise ValueError('a manual event gives either dataset and date, or bucket and key '
                             '(optionally with "rerun": true)')
        return self


class UpstreamRef(_Payload):
    """The upstream partition whose load started a derived run."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1)
    partition: str = Field(min_length=1)
    run_id: str = Field(min_length=1, max_length=128)


class UpstreamLoaded(_Payload):
    """A derived dataset's run for `as_of`, started because upstream partitions loaded
    (pipeline_aws.derived_trigger, on the pipeline's execution-succeeded event). `from_day`:
    the run writes every day from it to `as_of` (a rows_per_day dataset after a batch); the
    upstream of a batch is its run (`partition` `<first>..<last>`)."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["pipeline.upstream"]
    dataset: str = Field(min_length=1)
    as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    from_day: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    upstream: UpstreamRef

    @model_validator(mode="after")
    def _forward(self) -> Self:
        if self.from_day is not None and self.from_day >= self.as_of:
            raise ValueError(f"from_day {self.from_day} must be before as_of {self.as_of}")
        return self


_BATCH_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class BatchObject(_Payload):
    """One raw object of a batch: its key in the raw bucket and the version to run."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1)
    version_id: str | None = None
    size: int | None = Field(default=None, ge=0)


class BatchSpec(_Payload):
    """`{"dataset", "batch_id", "force", "objects": [...]}`: partitions of one dataset that
    one execution runs (one Spark application, one gate decision per partition, one load);
    at most the catalog's backfill.max_objects_per_batch objects (ResolveRun checks).
    `force` runs a partition again although its version's run exists (as `rerun`)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1)
    batch_id: str = Field(pattern=_BATCH_ID)
    force: bool = False
    objects: list[BatchObject] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        keys = [o.key for o in self.objects]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"objects name {', '.join(twice)} more than once")
        return self


class BatchTrigger(_Payload):
    """A batch run's input: `{"batch": BatchSpec}` (the backfill state machine starts it)."""

    model_config = ConfigDict(extra="forbid")

    batch: BatchSpec


Trigger = S3ObjectCreated | ScheduleTrigger | ManualTrigger | BatchTrigger | UpstreamLoaded
_TRIGGERS: dict[str | None, type[Trigger]] = {
    "aws.s3": S3ObjectCreated, "pipeline.schedule": ScheduleTrigger, None: ManualTrigger,
    "pipeline.upstream": UpstreamLoaded,
}


def trigger_model(event: Any) -> type[Trigger]:
    """Which trigger `event` is, by its `source` (none: a manual run, or a batch)."""
    if not isinstance(event, dict):
        raise InvalidInput(f"event: expected an object, got {type(event).__name__}")
    if "batch" in event and "source" not in event:
        return BatchTrigger
    source = event.get("source")
    if source not in _TRIGGERS:
        raise InvalidInput(f"event.source {source!r} is not supported (aws.s3, "
                           "pipeline.schedule, pipeline.upstream, or no source for a manual "
                           "run)")
    return _TRIGGERS[source]


class ResolveRunRequest(_Payload):
    """ResolveRun's input: `{"event": <trigger event>, "execution": $$.Execution}`."""

    trigger: Trigger
    execution: ExecutionRef

    @classmethod
    def parse(cls, payload: Any) -> ResolveRunRequest:
        """Validate the input; InvalidInput says what is wrong and where."""
        if not isinstance(payload, dict):
            raise InvalidInput(f"expected an object with 'event' and 'execution', got "
                               f"{type(payload).__name__}")
        missing = [k for k in ("event", "execution") if k not in payload]
        if missing:
            raise InvalidInput(f"missing {', '.join(missing)} (the state machine passes "
                               "{'event': $, 'execution': $$.Execution})")
        execution = parse(ExecutionRef, payload["execution"], "ResolveRun input",
                          prefix="execution")
        model = trigger_model(payload["event"])
        trigger = parse(model, payload["event"], model.__name__, prefix="event")
        return cls(trigger=trigger, execution=execution)

    @property
    def execution_arn(self) -> str:
        return self.execution.Id

    @property
    def trigger_kind(self) -> Literal["s3", "schedule", "manual", "batch", "upstream"]:
        if isinstance(self.trigger, S3ObjectCreated):
            return "s3"
        if isinstance(self.trigger, UpstreamLoaded):
            return "upstream"
        if isinstance(self.trigger, BatchTrigger):
            return "batch"
        return "schedule" if isinstance(self.trigger, ScheduleTrigger) else "manual"

    @property
    def rerun(self) -> bool:
        if isinstance(self.trigger, BatchTrigger):
            return self.trigger.batch.force
        return isinstance(self.trigger, ManualTrigger) and self.trigger.rerun

    @property
    def compute(self) -> Compute | None:
        """The compute path a manual trigger asks for, overriding the catalog's."""
        return self.trigger.compute if isinstance(self.trigger, ManualTrigger) else None

# --- events and payloads of CleanupExecution, AutoTerminator and TrackCost -------------------


_STATES_ARN = r"^arn:aws[\w-]*:states:"


class ScheduledEvent(EventBridgeEvent, _Parses):
    """The AutoTerminator's trigger: an EventBridge schedule (only its id is used, as the
    correlation id of the sweep's log lines)."""

    what: ClassVar[str] = "auto_terminator input is invalid"
    id: str = Field(min_length=1)
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")


class ExecutionStatus(_Payload):
    """`detail` of a "Step Functions Execution Status Change" event CleanupExecution acts on."""

    executionArn: str = Field(pattern=_STATES_ARN + r"[^:]+:\d{12}:execution:")
    stateMachineArn: str = Field(min_length=1)
    name: str = Field(min_length=1)
    status: Literal["ABORTED", "TIMED_OUT", "FAILED"]
    startDate: int | None = None
    stopDate: int | None = None
    error: str | None = None
    cause: str | None = None


class ExecutionStatusChange(EventBridgeEvent, _Parses):
    """CleanupExecution's trigger (source aws.states), for an execution that did not succeed."""

    what: ClassVar[str] = "cleanup_execution input is invalid"
    source: Literal["aws.states"]
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    detail: ExecutionStatus

    @property
    def stopped_at(self) -> datetime | None:
        if self.detail.stopDate is None:
            return None
        return datetime.fromtimestamp(self.detail.stopDate / 1000, tz=UTC)


class SucceededExecution(_Payload):
    """`detail` of a "Step Functions Execution Status Change" event for a SUCCEEDED
    execution (TriggerDerived's). `output` is the execution's output as JSON text when the
    event carries it (`outputDetails.included`), else None: read it with DescribeExecution."""

    executionArn: str = Field(pattern=_STATES_ARN + r"[^:]+:\d{12}:execution:")
    stateMachineArn: str = Field(min_length=1)
    name: str = Field(min_length=1)
    status: Literal["SUCCEEDED"]
    output: str | None = None


class ExecutionSucceeded(EventBridgeEvent, _Parses):
    """TriggerDerived's trigger (source aws.states): a pipeline execution that succeeded."""

    what: ClassVar[str] = "trigger_derived input is invalid"
    source: Literal["aws.states"]
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    detail: SucceededExecution


class CostRun(_Payload):
    """What TrackCost reads of the run manifest."""

    run_id: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    compute: Literal["serverless", "cluster"] | None = None
    started_at: str | None = None


class CostJobRun(JobRunRef):
    application_id: str = Field(min_length=1)
    job_run_id: str = Field(min_length=1)


class CostCluster(ClusterRef):
    cluster_id: str = Field(pattern=r"^j-[A-Z0-9]+$")


class CostState(_Payload):
    """The state as TrackCost (after a run) or TrackCostOnFailure (after any failure) sees it."""

    run: CostRun | None = None
    job_run: CostJobRun | None = None
    cluster: CostCluster | None = None
    failure: dict[str, Any] = Field(default_factory=dict)


class CostExecution(ExecutionRef):
    Id: str = Field(pattern=_STATES_ARN)


def _cause(failure: Any) -> dict[str, Any]:
    """The JSON object in a caught error's Cause, or {}."""
    if not isinstance(failure, Mapping) or not isinstance(failure.get("Cause"), str):
        return {}
    try:
        data = json.loads(failure["Cause"])
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class TrackCostRequest(_FunctionInput):
    """`{"state": <whole state>, "execution": $$.Execution, "state_name": ...}`."""

    what: ClassVar[str] = "track_cost input is invalid"

    state: CostState
    execution: CostExecution
    state_name: str = "TrackCost"

    @property
    def run_id(self) -> str:
        return self.state.run.run_id if self.state.run else self.execution.Name

    def job_run_ids(self) -> tuple[str, str] | None:
        """From $.job_run, or from a failed startJobRun.sync's Cause (the job still cost money)."""
        if self.state.job_run:
            return self.state.job_run.application_id, self.state.job_run.job_run_id
        cause = _cause(self.state.failure.get("RunServerlessJob"))
        cause = cause.get("jobRun") or cause.get("JobRun") or cause
        app = cause.get("applicationId") or cause.get("ApplicationId")
        job = cause.get("jobRunId") or cause.get("JobRunId")
        return (app, job) if isinstance(app, str) and isinstance(job, str) else None

    def cluster_id(self) -> str | None:
        """From $.cluster, or from a failed createCluster.sync's Cause (its instances ran)."""
        if self.state.cluster:
            return self.state.cluster.cluster_id
        cause = _cause(self.state.failure.get("CreateCluster"))
        found = cause.get("ClusterId") or (cause.get("Cluster") or {}).get("Id")
        return found if isinstance(found, str) and found.startswith("j-") else None


def loaded_partitions(state: LoadStatementState | RecordRunState) -> list[PartitionRun]:
    """The partitions the load replaces: those the job ran and the gate passed (all of them
    when `$.quality` names none), in partition order; InvalidInput when there is none (the
    QualityGate Choice stops such a run before)."""
    verdicts = state.quality.partitions if state.quality else {}
    loaded = [p for p in state.run.loadable
              if not verdicts or (p.partition in verdicts
                                  and verdicts[p.partition].verdict != "fail")]
    if not loaded:
        raise InvalidInput(f"run {state.run.run_id}: no partition passed the gate, nothing "
                           "to load")
    return sorted(loaded, key=lambda p: p.partition)
