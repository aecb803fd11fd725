"""ResolveRun's part for a derived dataset: the upstream partitions the ledger has as loaded in
the catalog's range, written as the run's inputs.json in the curated bucket (the run's
`input`), the run id they give, and the job options of its model (the current one, whether to
train, the promotion rule)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_aws.ledger import LedgerPort
from pipeline_aws.s3_objects import ObjectInfo, RawObjectsPort
from pipeline_aws.settings import ResolveRunSettings
from pipeline_core.catalog import Dataset, ModelPolicy
from pipeline_core.derived import (
    INPUTS_FILE,
    UpstreamRun,
    derived_of,
    derived_run_id,
    inputs_bytes,
    inputs_document,
    needs_training,
    range_days,
)

# How many of a dataset's newest SUCCEEDED runs are searched for its current model.
MODEL_HISTORY_RUNS = 100


@dataclass(frozen=True)
class ResolvedInputs:
    obj: ObjectInfo  # the run's inputs.json
    run_id: str
    options: tuple[str, ...]


def upstream_runs(dataset: str, items: Mapping[str, Mapping[str, Any]]) -> list[UpstreamRun]:
    """The ledger's loaded partitions (LedgerPort.loaded_runs) as UpstreamRun."""
    return [UpstreamRun(dataset, partition, str(item["run_id"]),
                        tuple(sorted((str(t), str(u)) for t, u in item["outputs"].items())))
            for partition, item in items.items()]


def current_model(items: list[dict[str, Any]], as_of: str) -> Mapping[str, Any] | None:
    """The newest promoted model (a SUCCEEDED run's `model` with `promoted`) trained on an
    as_of no later than `as_of`; `items` newest first."""
    for item in items:
        model = item.get("model")
        if isinstance(model, Mapping) and model.get("promoted") and model.get("path") and \
                str(model.get("trained_as_of") or "") <= as_of:
            return model
    return None


def model_options(policy: ModelPolicy, model_root: str, as_of: str,
                  current: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The job options of a dataset with a model: where models go, the current one (if any),
    whether this run trains (ModelPolicy.retrain_days) and the promotion rule."""
    trained = str(current["trained_as_of"]) if current and current.get("trained_as_of") \
        else None
    train = needs_training(policy, as_of, trained if current else None)
    options = ["--model-root", model_root, "--train", "true" if train else "false",
               "--promotion-metric", policy.metric, "--promotion-direction", policy.direction,
               "--promotion-tolerance", repr(policy.tolerance)]
    if current:
        options += ["--current-model", str(current["path"])]
    return tuple(options)


class DerivedInputs:
    def __init__(self, settings: ResolveRunSettings, objects: RawObjectsPort,
                 ledger: LedgerPort):
        self._settings, self._objects, self._ledger = settings, objects, ledger

    def resolve(self, dataset: Dataset, as_of: str, from_day: str | None = None
                ) -> ResolvedInputs:
        """InvalidInput (pipeline_core.derived.inputs_document) when no upstream partition in
        the range is loaded. `from_day`: the run writes the days from it to `as_of`
        (`--from-day`), reading the lookback of its first day."""
        derived = derived_of(dataset)
        range_days(from_day, as_of)  # InvalidInput when backwards or too long
        first = derived.first_day(as_of, from_day)
        runs = [run for upstream in derived.upstream
                for run in upstream_runs(upstream,
                                         self._ledger.loaded_runs(upstream, first, as_of))]
        document = inputs_document(dataset, as_of, runs, from_day)
        run_id = derived_run_id(dataset.name, as_of, document)
        bucket = self._settings.curated_bucket
        obj = self._objects.write(bucket, f"_runs/{dataset.name}/{run_id}/{INPUTS_FILE}",
                                  inputs_bytes(document))
        options: tuple[str, ...] = ("--from-day", from_day) if from_day else ()
        if derived.model is not None:
            history = self._ledger.query_by_dataset(
                dataset.name, limit=MODEL_HISTORY_RUNS, status="SUCCEEDED",
                fields=("run_id", "status", "started_at", "model"))
            options += model_options(derived.model, f"s3://{bucket}/models/{dataset.name}/",
                                    as_of, current_model(history, as_of))
        return ResolvedInputs(obj, run_id, options)
