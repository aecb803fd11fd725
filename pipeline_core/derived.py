"""Derived datasets (catalog `derived:`): what a run reads, its run id, and whether its model
is promoted. Pure: ResolveRun, the upstream trigger and the Spark jobs share it.

A derived run's partition is its `as_of` day. Its inputs are, for each upstream table the
catalog names, the folder of each upstream partition in the catalog's range that the ledger
has as loaded (its newest SUCCEEDED run). The run id digests those run ids: the same inputs
are the same run (a second delivery is a duplicate, nothing changes), and a newly loaded or
re-loaded upstream day makes a new run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline_core.catalog import Dataset, Derived, ModelPolicy
from pipeline_core.errors import ConfigurationError, InvalidInput

INPUTS_FILE = "inputs.json"
INPUTS_VERSION = 1
# Step Functions execution names: 1-80 characters (StartExecution, Step Functions API
# reference); the name doubles as the idempotency key of an upstream-triggered run.
MAX_EXECUTION_NAME = 80
# The most days one run of a rows_per_day dataset writes (the load names each day it
# replaces); an upstream execution whose loaded days span more starts one run per span.
MAX_RANGE_DAYS = 366


@dataclass(frozen=True, order=True)
class UpstreamRun:
    """A loaded partition of an upstream dataset: its newest SUCCEEDED run and the curated
    folder of each of its tables."""

    dataset: str
    partition: str
    run_id: str
    outputs: tuple[tuple[str, str], ...]  # (table, folder URI), sorted

    def output(self, table: str) -> str | None:
        return dict(self.outputs).get(table)


def derived_of(dataset: Dataset) -> Derived:
    """The dataset's `derived` block, or ConfigurationError for a raw dataset."""
    if dataset.derived is None:
        raise ConfigurationError(f"dataset {dataset.name} is not derived (it has a raw source)")
    return dataset.derived


def inputs_document(dataset: Dataset, as_of: str, runs: Sequence[UpstreamRun],
                    from_day: str | None = None) -> dict[str, Any]:
    """inputs.json: per upstream table (`<dataset>.<table>`), its partitions' folders in day
    order; InvalidInput when no upstream partition in the range is loaded, or a loaded one
    lacks a table's folder. `from_day`: the run writes the days from it to `as_of`
    (range_days), so it reads the lookback of `from_day`; the document then says so."""
    derived = derived_of(dataset)
    first = derived.first_day(as_of, from_day)
    wanted = sorted(r for r in runs if r.partition <= as_of
                    and (first is None or r.partition >= first))
    span = f"from {first} to {as_of}" if first else f"up to {as_of}"
    tables: dict[str, list[dict[str, str]]] = {}
    for item in derived.inputs:
        chosen = [r for r in wanted if r.dataset == item.dataset]
        if not chosen:
            raise InvalidInput(
                f"{dataset.name} {as_of}: upstream {item.dataset} has no loaded partition "
                f"{span} (the ledger has no SUCCEEDED run there): load its days first")
        folders = []
        for run in chosen:
            uri = run.output(item.table)
            if not uri:
                raise InvalidInput(f"{dataset.name} {as_of}: {item.dataset} run {run.run_id} "
                                   f"recorded no {item.table} output")
            folders.append({"partition": run.partition, "run_id": run.run_id, "uri": uri})
        tables[f"{item.dataset}.{item.table}"] = folders
    document = {"version": INPUTS_VERSION, "dataset": dataset.name, "as_of": as_of,
                "first_day": first, "tables": tables}
    return document | ({"from_day": from_day} if from_day else {})


def range_days(from_day: str | None, as_of: str) -> list[str]:
    """The days a run writes: `from_day` to `as_of` (just `as_of` without a `from_day`);
    InvalidInput when the range is backwards or longer than MAX_RANGE_DAYS."""
    last = dt.date.fromisoformat(as_of)
    first = dt.date.fromisoformat(from_day) if from_day else last
    days = (last - first).days + 1
    if not 1 <= days <= MAX_RANGE_DAYS:
        raise InvalidInput(f"the days from {first} to {as_of} are not a range of 1 to "
                           f"{MAX_RANGE_DAYS} days")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]


def inputs_bytes(document: Mapping[str, Any]) -> bytes:
    """The document as stored: canonical JSON, so the same inputs are the same bytes (and
    the same ETag)."""
    return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()


def derived_run_id(dataset: str, as_of: str, document: Mapping[str, Any]) -> str:
    """`<dataset>-<as_of>-<12 hex>` of every input folder's run id: the same inputs are the
    same run; a newly loaded upstream day is another."""
    identity = "/".join(f"{table}:{f['partition']}:{f['run_id']}"
                        for table, folders in sorted(document["tables"].items())
                        for f in folders)
    if document.get("from_day"):  # the same inputs written from another day are another run
        identity = f"from:{document['from_day']}/{identity}"
    return f"{dataset}-{as_of}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def upstream_execution_name(dataset: str, as_of: str,
                            upstream_run_ids: str | Sequence[str]) -> str:
    """The execution name of the derived run that an upstream execution's loads start (the
    run ids of the partitions it loaded): deterministic, so the same loads delivered twice
    start one execution (StartExecution refuses a second execution of a name)."""
    ids = [upstream_run_ids] if isinstance(upstream_run_ids, str) else sorted(upstream_run_ids)
    digest = hashlib.sha256(f"{dataset}/{','.join(ids)}".encode()).hexdigest()[:12]
    name = f"{dataset}-{as_of}-u{digest}"
    if len(name) > MAX_EXECUTION_NAME:
        name = f"{dataset[:MAX_EXECUTION_NAME - 26]}-{as_of}-u{digest}"
    return name


@dataclass(frozen=True)
class UpstreamStart:
    """One derived run an upstream execution's loads start: for `as_of` (the newest loaded
    day), writing the days from `from_day` (a rows_per_day dataset; None: `as_of` only), named
    by the loaded partitions' run ids."""

    as_of: str
    from_day: str | None
    partitions: tuple[str, ...]
    run_ids: tuple[str, ...]


def upstream_starts(dataset: Dataset, loaded: Sequence[tuple[str, str]]
                    ) -> list[UpstreamStart]:
    """The runs of `dataset` that an upstream execution's loaded (partition, run id) pairs
    start: one for the whole execution (a 31-day backfill batch is one run, not 31), for its
    newest day; a rows_per_day dataset's run covers the first loaded day to the newest, one
    run per MAX_RANGE_DAYS span when they span more."""
    parts = sorted(loaded)
    if not parts:
        return []
    if not derived_of(dataset).rows_per_day:
        spans = [parts]
    else:
        spans = []
        for part in parts:
            if not spans or (dt.date.fromisoformat(part[0])
                             - dt.date.fromisoformat(spans[-1][0][0])).days >= MAX_RANGE_DAYS:
                spans.append([])
            spans[-1].append(part)
    rows_per_day = derived_of(dataset).rows_per_day
    return [UpstreamStart(span[-1][0], span[0][0] if rows_per_day and len(span) > 1 else None,
                          tuple(p for p, _ in span), tuple(r for _, r in span))
            for span in spans]


def parse_inputs(text: str, where: str) -> dict[str, list[dict[str, str]]]:
    """inputs.json's `tables`, or InvalidInput naming what is wrong (the job reads it)."""
    try:
        document = json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"{where} is not JSON: {e}") from e
    if not isinstance(document, dict) or document.get("version") != INPUTS_VERSION:
        raise InvalidInput(f"{where} is not a version {INPUTS_VERSION} inputs document")
    tables = document.get("tables")
    ok = isinstance(tables, dict) and tables and all(
        isinstance(v, list) and v and all(isinstance(f, dict) and isinstance(f.get("uri"), str)
                                          for f in v) for v in tables.values())
    if not ok:
        raise InvalidInput(f"{where}: `tables` must map each input table to its folders")
    return tables  # type: ignore[return-value]


# -- models ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Promotion:
    """Whether a newly trained model replaces the current one, and why."""

    promoted: bool
    reason: str
    metric: str
    new_value: float | None
    current_value: float | None


def promotion(policy: ModelPolicy, new: Mapping[str, float],
              current: Mapping[str, float] | None) -> Promotion:
    """The catalog's rule: the new model is promoted unless its metric is worse than the
    current model's (measured on the same held-back period) by more than `tolerance` times
    the current value's magnitude. No current model: promoted. A new model without the
    metric, or with a value that is not finite, is never promoted."""
    name = policy.metric
    value = new.get(name)
    if value is None or not math.isfinite(value):
        return Promotion(False, f"the new model has no finite {name} ({value!r}): kept the "
                         "current model", name, value, _get(current, name))
    if current is None:
        return Promotion(True, f"first model ({name} {value:.6g})", name, value, None)
    held = current.get(name)
    if held is None or not math.isfinite(held):
        return Promotion(True, f"the current model has no finite {name}: replaced by the new "
                         f"one ({name} {value:.6g})", name, value, held)
    allowed = policy.tolerance * abs(held)
    higher = policy.direction == "higher_is_better"
    worse_by = (held - value) if higher else (value - held)
    shown = (f"new {name} {value:.6g} vs current {held:.6g} "
             f"({'higher' if higher else 'lower'} is better, tolerance "
             f"{policy.tolerance:g} = {allowed:.6g})")
    if worse_by > allowed:
        return Promotion(False, f"not promoted: {shown}; worse by {worse_by:.6g}", name, value,
                         held)
    return Promotion(True, f"promoted: {shown}", name, value, held)


def _get(metrics: Mapping[str, float] | None, name: str) -> float | None:
    return None if metrics is None else metrics.get(name)


def needs_training(policy: ModelPolicy, as_of: str, current_trained_as_of: str | None) -> bool:
    """Whether a run for `as_of` trains a new model: always without a current model or with
    `retrain_days` 0; else when the current model's as_of is `retrain_days` or more before.
    Otherwise the run only scores with the current model."""
    if current_trained_as_of is None or policy.retrain_days == 0:
        return True
    age = (dt.date.fromisoformat(as_of) - dt.date.fromisoformat(current_trained_as_of)).days
    return age >= policy.retrain_days
