"""AdmitObjects: raw "Object Created" events, taken from the burst queue in batches, become a
few batched pipeline executions instead of one execution (and one job run) per object.

Path: S3 -> EventBridge rule -> SQS queue (dead-letter queue after `maxReceiveCount` receives)
-> this function (SQS event source mapping: batching window, batch size, maximum concurrency,
ReportBatchItemFailures) -> StartExecution of the pipeline state machine. Per invocation:

- Each record's body is the EventBridge event. An object of a dataset (its key matches a
  catalog key pattern, in the raw bucket) joins its dataset's objects; the same object version
  delivered twice counts once. A dataset's objects become batches of consecutive partitions cut
  at the catalog's `backfill.max_objects_per_batch` and `max_bytes_per_batch`
  (pipeline_core.backfill_plan.make_batches), one object per partition: a second object of a
  partition (a newer upload, a .csv beside a .csv.gz) waits for a later delivery.
- Per-dataset concurrency limit: the dataset's batch executions RUNNING now (ListExecutions of
  the pipeline machine, names matching the batch name pattern, which the backfill machine uses
  too) plus those this invocation started must stay within the catalog's
  `backfill.max_concurrent_batches`. Batches beyond it are not started: their records are
  reported as failures (ReportBatchItemFailures) and come back after the queue's visibility
  timeout; nothing is lost, and the queue's redrive policy gives them `maxReceiveCount`
  receives before the dead-letter queue.
- Each batch is one execution named by its content (dataset, first partition, count, digest of
  key, version and ETag of each object) with input `{"batch": ...}` (contracts.BatchTrigger);
  a batch of one object runs with its own S3 event as input (trigger "s3", the path every
  object took before the queue).
  StartExecution is idempotent on name and input while the execution runs and refuses the name
  once it has ended (ExecutionAlreadyExists): a redelivered batch starts nothing new. Both are
  success. ResolveRun's ledger claim keeps every object version to one run across executions
  (a batch regrouped differently on redelivery ends in DuplicateDelivery).
- A record that is not a data object of a dataset (a folder marker, a key outside the key
  pattern...) starts a single-object execution with the event as its input (named by the
  object), so it ends as before: Ignored, or failed with an alert. A body that is not an S3
  "Object Created" event is reported as a failure: it reaches the dead-letter queue.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline_aws.contracts import S3ObjectCreated
from pipeline_aws.settings import _CatalogEnv
from pipeline_core.backfill_plan import Batch, PlannedObject, make_batches
from pipeline_core.catalog import Catalog, Dataset
from pipeline_core.errors import InvalidInput, PipelineError

_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class AdmitObjectsSettings(_CatalogEnv):
    raw_bucket: str = Field(alias="RAW_BUCKET", pattern=_BUCKET)
    pipeline_state_machine_arn: str = Field(alias="PIPELINE_STATE_MACHINE_ARN",
                                            pattern=r"^arn:aws[\w-]*:states:.+:stateMachine:.+")


class SqsRecord(BaseModel):
    """The part of an SQS event record this function reads."""

    model_config = ConfigDict(extra="ignore")

    messageId: str = Field(min_length=1)  # SQS's own field name
    body: str


def parse_records(event: Any) -> list[SqsRecord]:
    """The SQS event's records; InvalidInput when it is not an SQS event at all (then every
    record returns to the queue, as for any error of the function)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise InvalidInput("AdmitObjects event: expected an SQS event with Records")
    try:
        return [SqsRecord.model_validate(r) for r in records]
    except ValidationError as e:
        raise InvalidInput(f"AdmitObjects event: a record is malformed: {e}") from e


# -- ports -----------------------------------------------------------------------------------------

class Starter(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> str:
        """StartExecution; `started`, or `exists` for ExecutionAlreadyExists."""

    def running_names(self) -> list[str]:
        """The names of the pipeline machine's RUNNING executions."""


# -- grouping --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arrival:
    """One data object named by one or more records."""

    dataset: str
    obj: PlannedObject
    etag: str | None
    sequencer: str
    event: dict[str, Any]  # the first record's event, as delivered


@dataclass
class Sorted:
    """The records of one invocation, by what happens to them."""

    arrivals: dict[tuple[str, str | None, str | None], list[str]] = field(default_factory=dict)
    objects: dict[tuple[str, str | None, str | None], Arrival] = field(default_factory=dict)
    # (message id, the event, its JSON as delivered: the single execution's input)
    singles: list[tuple[str, S3ObjectCreated, dict[str, Any]]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def _event(body: str) -> tuple[S3ObjectCreated, dict[str, Any]] | None:
    try:
        data = json.loads(body)
        return S3ObjectCreated.model_validate(data), data
    except (ValueError, ValidationError):
        return None


def _data_object(catalog: Catalog, raw_bucket: str, event: S3ObjectCreated
                 ) -> tuple[Dataset, str, str] | None:
    """(dataset, partition, key) when the event is about a data object of a dataset in the
    raw bucket (the key as is, else URL-decoded as S3 notifications may encode it)."""
    if event.bucket != raw_bucket or not event.size:
        return None
    for key in dict.fromkeys([event.key, unquote_plus(event.key)]):
        try:
            dataset, partition = catalog.match_key(key)
        except PipelineError:
            continue
        return dataset, partition, key
    return None


def sort_records(records: Iterable[SqsRecord], catalog: Catalog, raw_bucket: str) -> Sorted:
    out = Sorted()
    for record in records:
        parsed = _event(record.body)
        if parsed is None:
            out.invalid.append(record.messageId)
            continue
        event, data = parsed
        found = _data_object(catalog, raw_bucket, event)
        if found is None:
            out.singles.append((record.messageId, event, data))
            continue
        dataset, partition, key = found
        ident = (key, event.version_id, event.etag)
        out.arrivals.setdefault(ident, []).append(record.messageId)
        if ident not in out.objects:
            obj = PlannedObject(key, event.version_id, int(event.size or 0), partition)
            out.objects[ident] = Arrival(dataset.name, obj, event.etag,
                                         event.detail.object.sequencer or "", data)
    return out


def burst_batch_id(dataset: str, objects: Iterable[PlannedObject],
                   etags: dict[tuple[str, str | None], str | None]) -> str:
    """`<dataset[:30]>-<first partition>-n<count>-<16 hex>`: the backfill's batch name shape
    (so one count covers both), with a digest of each object's key, version and ETag (an
    unversioned key uploaded again is another object)."""
    objs = sorted(objects, key=lambda o: o.partition)
    content = json.dumps({"dataset": dataset, "source": "s3-events", "objects": [
        [o.key, o.version_id, etags.get((o.key, o.version_id))] for o in objs]},
        sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    return f"{dataset[:30]}-{objs[0].partition}-n{len(objs)}-{digest}"


def batch_name_pattern(dataset: str) -> re.Pattern[str]:
    """Execution names of the dataset's batches (this function's and the backfill's)."""
    return re.compile(rf"^{re.escape(dataset[:30])}-\d{{4}}-\d{{2}}-\d{{2}}-n\d+-[0-9a-f]{{16}}$")


def single_name(event: S3ObjectCreated) -> str:
    """A single-object execution's name: the same object version, the same name."""
    ident = json.dumps([event.bucket, event.key, event.version_id, event.etag])
    return f"s3-{hashlib.sha256(ident.encode()).hexdigest()[:32]}"


def group(dataset: Dataset, arrivals: list[Arrival]) -> tuple[list[Batch], list[Arrival]]:
    """The dataset's batches (one object per partition, earliest event first) and the objects
    left for a later delivery (a second object of a partition)."""
    chosen: dict[str, Arrival] = {}
    later: list[Arrival] = []
    for a in sorted(arrivals, key=lambda a: (a.sequencer.rjust(32, "0"), a.obj.key)):
        if a.obj.partition in chosen:
            later.append(a)
        else:
            chosen[a.obj.partition] = a
    batches = make_batches(dataset.name, [a.obj for a in chosen.values()], dataset.backfill,
                           force=False)
    etags = {(a.obj.key, a.obj.version_id): a.etag for a in chosen.values()}
    named = [Batch(burst_batch_id(dataset.name, b.objects, etags), b.objects) for b in batches]
    return named, later


def batch_input(dataset: str, batch: Batch) -> dict[str, Any]:
    """The execution input (contracts.BatchTrigger); the same batch, the same input."""
    return {"batch": {"dataset": dataset, "batch_id": batch.batch_id, "force": False,
                      "objects": [o.batch_entry() for o in batch.objects]}}


# -- admission -------------------------------------------------------------------------------------

@dataclass
class Outcome:
    started: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        """The partial batch response: the records that return to the queue."""
        ids = list(dict.fromkeys(self.failed_ids))
        return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


class Admission:
    def __init__(self, *, catalog: Callable[[], Catalog], starter: Starter, raw_bucket: str,
                 logger: Any = None):
        self.catalog, self.starter, self.raw_bucket = catalog, starter, raw_bucket
        self.logger = logger

    def handle(self, event: Any) -> dict[str, Any]:
        records = parse_records(event)
        catalog = self.catalog()
        found = sort_records(records, catalog, self.raw_bucket)
        outcome = Outcome(failed_ids=list(found.invalid))
        by_dataset: dict[str, list[Arrival]] = {}
        for arrival in found.objects.values():
            by_dataset.setdefault(arrival.dataset, []).append(arrival)
        running = self._running() if by_dataset else []
        for name, arrivals in sorted(by_dataset.items()):
            self._admit(catalog.get(name), arrivals, found, running, outcome)
        for message_id, s3_event, data in found.singles:
            self._start(single_name(s3_event), data, [message_id], outcome)
        if self.logger:
            self.logger.info("admitted", extra={
                "records": len(records), "started": outcome.started, "already": outcome.already,
                "deferred": outcome.deferred, "failed": len(outcome.failed_ids)})
        return outcome.response()

    def _running(self) -> list[str]:
        return self.starter.running_names()

    def _admit(self, dataset: Dataset, arrivals: list[Arrival], found: Sorted,
               running: list[str], outcome: Outcome) -> None:
        batches, later = group(dataset, arrivals)
        pattern = batch_name_pattern(dataset.name)
        busy = {n for n in running if pattern.match(n)}
        limit = dataset.backfill.max_concurrent_batches
        for a in later:
            outcome.failed_ids += found.arrivals[_ident(a)]
        by_object = {id(a.obj): a for a in arrivals}
        for batch in batches:
            ids = [m for o in batch.objects for m in found.arrivals[_ident(by_object[id(o)])]]
            if batch.batch_id not in busy and len(busy) >= limit:
                outcome.deferred.append(batch.batch_id)
                outcome.failed_ids += ids
                continue
            # One object runs as its own S3 event (trigger "s3", as before bursts were queued).
            payload = by_object[id(batch.objects[0])].event if len(batch.objects) == 1 \
                else batch_input(dataset.name, batch)
            if self._start(batch.batch_id, payload, ids, outcome):
                busy.add(batch.batch_id)

    def _start(self, name: str, payload: dict[str, Any], ids: list[str],
               outcome: Outcome) -> bool:
        try:
            result = self.starter.start(name, payload)
        except PipelineError as e:
            if self.logger:
                self.logger.warning("start failed", extra={"name": name, "error": str(e)})
            outcome.failed_ids += ids
            return False
        (outcome.started if result == "started" else outcome.already).append(name)
        return result == "started"


def _ident(a: Arrival) -> tuple[str, str | None, str | None]:
    return (a.obj.key, a.obj.version_id, a.etag)
