"""Planning a backfill, as pure code: which raw objects of a dataset run, which are skipped and
why, which keys are refused, and how the rest group into batches (pipeline executions).

Input: the listed objects (the latest version of each key under the dataset's prefix), the
catalog dataset, an optional inclusive date range on the partition, `force`, and a lookup of the
versions the ledger already loaded. A partition already loaded from the object's version is
skipped (unless `force`); loaded from another version, it runs again. Batches are consecutive
partitions, cut at the catalog's `backfill` limits, each named by a digest of its content so that
a restarted backfill names the same batch the same way (the pipeline execution's name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline_core.catalog import Backfill, Dataset
from pipeline_core.errors import InvalidInput

# Step Functions execution names: at most 80 characters, none of whitespace, brackets,
# wildcards, `"#%\\^|~`$&,;:/` or control characters (StartExecution API reference); the
# pipeline's batch input takes a batch_id of at most 64 (pipeline_aws.contracts.BatchSpec).
MAX_EXECUTION_NAME = 64
# What the ledger answers: partition -> the object version it was loaded from (None: loaded
# from an unversioned object).
LoadedLookup = Callable[[list[str]], Mapping[str, str | None]]


@dataclass(frozen=True)
class RawObject:
    """One listed object: the key's latest version."""

    key: str
    version_id: str | None
    size: int
    last_modified: str | None = None


@dataclass(frozen=True)
class PlannedObject:
    key: str
    version_id: str | None
    size: int
    partition: str

    def batch_entry(self) -> dict[str, Any]:
        """The object as the pipeline's batch input names it."""
        return {"key": self.key, "version_id": self.version_id, "size": self.size}


@dataclass(frozen=True)
class Skipped:
    partition: str
    key: str
    version_id: str | None
    reason: str


@dataclass(frozen=True)
class Refused:
    key: str
    reason: str


@dataclass(frozen=True)
class Batch:
    batch_id: str
    objects: tuple[PlannedObject, ...]

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def partitions(self) -> list[str]:
        return [o.partition for o in self.objects]

    def to_dict(self, dataset: str, force: bool) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "dataset": dataset, "force": force,
                "partitions": self.partitions, "bytes": self.bytes,
                "objects": [o.batch_entry() for o in self.objects]}


@dataclass(frozen=True)
class BackfillPlan:
    dataset: str
    force: bool
    start: str | None
    end: str | None
    max_concurrency: int
    batches: tuple[Batch, ...]
    skipped: tuple[Skipped, ...]
    refused: tuple[Refused, ...]
    outside_range: int = 0
    reruns: dict[str, str] = field(default_factory=dict)  # partition -> why it runs again

    @property
    def partitions(self) -> list[str]:
        return [p for b in self.batches for p in b.partitions]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "force": self.force, "start": self.start, "end": self.end,
            "max_concurrency": self.max_concurrency,
            "partitions": self.partitions,
            "batches": [b.to_dict(self.dataset, self.force) for b in self.batches],
            "skipped": [asdict(s) for s in self.skipped],
            "refused": [asdict(r) for r in self.refused],
            "outside_range": self.outside_range, "reruns": dict(self.reruns),
        }


def parse_day(text: str | None, what: str) -> dt.date | None:
    """A range bound written YYYY-MM-DD, or InvalidInput naming it."""
    if text is None:
        return None
    if not isinstance(text, str) or len(text) != 10 or not text.isascii():
        raise InvalidInput(f"{what} {text!r} is not a date written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise InvalidInput(f"{what} {text!r} is not a real date: {e}") from None


def _partition_of(dataset: Dataset, obj: RawObject) -> str | Refused:
    """The object's partition, or why its key cannot be one of the dataset's raw files."""
    partition = dataset.partition_for_key(obj.key)
    if partition is None:
        return Refused(obj.key, f"does not match {dataset.name}'s key pattern "
                                f"{dataset.source.key_pattern.pattern}")
    if not partition.isascii():
        return Refused(obj.key, f"partition {partition!r} is not written with ASCII digits")
    try:
        dt.date.fromisoformat(partition)
    except ValueError:
        return Refused(obj.key, f"partition {partition} is not a real date")
    if obj.size <= 0:
        return Refused(obj.key, "the object is empty")
    return partition


def select_objects(dataset: Dataset, objects: Iterable[RawObject], start: dt.date | None,
                   end: dt.date | None) -> tuple[dict[str, PlannedObject], list[Refused], int]:
    """The one object of each partition in [start, end], the keys refused, and how many
    well-formed objects fell outside the range. Two objects of one partition (a day as .csv and
    as .csv.gz) are both refused: which one is the day is for a person to decide."""
    if start and end and start > end:
        raise InvalidInput(f"start {start} is after end {end}")
    found: dict[str, list[PlannedObject]] = {}
    refused: list[Refused] = []
    outside = 0
    for obj in objects:
        partition = _partition_of(dataset, obj)
        if isinstance(partition, Refused):
            refused.append(partition)
            continue
        day = dt.date.fromisoformat(partition)
        if (start and day < start) or (end and day > end):
            outside += 1
            continue
        found.setdefault(partition, []).append(
            PlannedObject(obj.key, obj.version_id, obj.size, partition))
    chosen: dict[str, PlannedObject] = {}
    for partition, candidates in sorted(found.items()):
        if len(candidates) == 1:
            chosen[partition] = candidates[0]
            continue
        keys = sorted(c.key for c in candidates)
        refused += [Refused(k, f"partition {partition} has {len(keys)} objects "
                               f"({', '.join(keys)}): keep one") for k in keys]
    return chosen, sorted(refused, key=lambda r: r.key), outside


def batch_id(dataset: str, objects: Iterable[PlannedObject], force: bool) -> str:
    """A deterministic execution name: the dataset, the first partition, the count and a digest
    of the objects (key and version) and `force`."""
    objs = sorted(objects, key=lambda o: o.partition)
    content = json.dumps({"dataset": dataset, "force": force,
                          "objects": [[o.key, o.version_id] for o in objs]},
                         sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    return f"{dataset[:30]}-{objs[0].partition}-n{len(objs)}-{digest}"


def make_batches(dataset: str, objects: list[PlannedObject], limits: Backfill,
                 force: bool) -> tuple[Batch, ...]:
    """Consecutive partitions, a new batch when the next object would pass either limit (an
    object larger than the byte limit runs alone)."""
    groups: list[list[PlannedObject]] = []
    size = 0
    for obj in sorted(objects, key=lambda o: o.partition):
        full = groups and (len(groups[-1]) >= limits.max_objects_per_batch
                           or size + obj.size > limits.max_bytes_per_batch)
        if not groups or full:
            groups.append([])
            size = 0
        groups[-1].append(obj)
        size += obj.size
    return tuple(Batch(batch_id(dataset, g, force), tuple(g)) for g in groups)


def _judge(chosen: dict[str, PlannedObject], loaded: Mapping[str, str | None], force: bool
           ) -> tuple[list[PlannedObject], list[Skipped], dict[str, str]]:
    to_run: list[PlannedObject] = []
    skipped: list[Skipped] = []
    reruns: dict[str, str] = {}
    for partition, obj in chosen.items():
        if partition not in loaded:
            to_run.append(obj)
            continue
        before = loaded[partition]
        if before == obj.version_id and not force:
            skipped.append(Skipped(partition, obj.key, obj.version_id,
                                   f"already loaded from version {before}"))
            continue
        to_run.append(obj)
        reruns[partition] = ("forced" if before == obj.version_id else
                             f"loaded from version {before}, the object is now version "
                             f"{obj.version_id}")
    return to_run, skipped, reruns


def plan_backfill(dataset: Dataset, objects: Iterable[RawObject], loaded_versions: LoadedLookup,
                  *, start: str | None = None, end: str | None = None,
                  force: bool = False) -> BackfillPlan:
    """The plan (module docstring). `loaded_versions(partitions)` is asked once, for the
    partitions that have an object in the range."""
    first, last = parse_day(start, "start"), parse_day(end, "end")
    chosen, refused, outside = select_objects(dataset, objects, first, last)
    loaded = loaded_versions(sorted(chosen)) if chosen else {}
    to_run, skipped, reruns = _judge(chosen, loaded, force)
    limits = dataset.backfill
    return BackfillPlan(
        dataset=dataset.name, force=force, start=start, end=end,
        max_concurrency=limits.max_concurrent_batches,
        batches=make_batches(dataset.name, to_run, limits, force),
        skipped=tuple(skipped), refused=tuple(refused), outside_range=outside, reruns=reruns)
