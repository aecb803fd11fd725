"""The job framework of every derived dataset: the upstream curated tables of the run's
inputs.json in; its output tables, metrics.json and quality.json out (and, for a dataset with
a model, the model trained this run). A job module declares a `DerivedJob`; everything else
happens here, once:

1. the inputs: inputs.json (ResolveRun wrote it: the folders of the upstream partitions the
   ledger has as loaded in the catalog's range), checked by its ETag (--input-etag), then one
   DataFrame per upstream table (`<dataset>.<table>`);
2. the model (`ModelHooks`): load the current one (--current-model); train a new one unless
   the run only scores (--train false), save it under `<model root><run id>/`, measure the
   current one on this run's held-back period and decide promotion by the catalog's rule
   (pipeline_core.derived.promotion); score with the promoted model (else the current one);
3. the outputs, each held to its warehouse table (columns, order, types), written as zstd
   parquet; the DQDL rules measured on one of them (`rules_on`) or on the model's metrics
   (`rules_on="model"`: one row, a column per metric, the current model's as `current_<m>`);
4. metrics.json (the gate's line counts: rows read and written, nothing quarantined; the
   inputs' range; the model's record) and quality.json, as raw jobs write them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession

from pipeline_core.derived import Promotion, parse_inputs, promotion
from pipeline_core.errors import ConfigurationError, InvalidInput
from spark_jobs.common import outputs, warehouse
from spark_jobs.common.derived_args import DerivedArgs, parse_derived_args
from spark_jobs.common.entry import report_job_error, run_job_with
from spark_jobs.common.quality import QualityEngine, QualityReport
from spark_jobs.common.raw_job import json_value
from spark_jobs.common.storage import (
    ObjectVersion,
    Storage,
    head_s3_object,
    verify_input_version,
)

MODEL_TABLE = "model"
Inputs = Mapping[str, DataFrame]


class Model(Protocol):
    """What the framework needs of a trained model (the ML jobs' *Model classes)."""

    @property
    def metrics(self) -> dict[str, float]: ...

    @property
    def params(self) -> dict[str, str | int | float]: ...

    def save(self, path: str) -> None: ...


@dataclass(frozen=True)
class ModelHooks:
    """A job's model: train on the inputs, load a saved one, score with one, and measure the
    current model on this run's held-back period (`compare`, the new model's compare_to)."""

    train: Callable[[Inputs, DerivedArgs], Model]
    load: Callable[[str], Model]
    score: Callable[[Inputs, DerivedArgs, Model], dict[str, DataFrame]]
    compare: Callable[[Model, Model, Inputs, DerivedArgs], dict[str, float]]


@dataclass(frozen=True)
class DerivedJob:
    """A derived dataset's job. Without `model`, `compute` makes the outputs from the inputs;
    with it, `model.score` does (and `compute` is not used)."""

    dataset: str
    outputs: tuple[str, ...]
    rules_on: str
    compute: Callable[[Inputs, DerivedArgs], dict[str, DataFrame]] | None = None
    model: ModelHooks | None = None

    def __post_init__(self) -> None:
        if (self.compute is None) == (self.model is None):
            raise ConfigurationError(f"{self.dataset}: declare compute or model (one of them)")
        if self.rules_on not in (*self.outputs, MODEL_TABLE) or (
                self.rules_on == MODEL_TABLE and self.model is None):
            raise ConfigurationError(f"{self.dataset}: rules_on names an output (or 'model' "
                                     "for a job with a model)")

    def run(self, spark: SparkSession, args: DerivedArgs) -> dict[str, Any]:
        """The whole job; metrics.json's content (also written, with quality.json)."""
        return _Run(self, spark, args).run()

    def main(self, argv: list[str] | None = None) -> int:
        """The job's entry point: its exit code (spark_jobs.common.entry's)."""
        given = sys.argv[1:] if argv is None else argv
        try:
            args = parse_derived_args(given, self.dataset)
        except InvalidInput as e:
            report_job_error(e)
            return 2
        code, metrics = run_job_with(
            lambda spark, cleanups: self.run(spark, args),
            app_name=f"{self.dataset}-{args.run_id}")
        if metrics:
            print(f"{self.dataset} {args.run_id}: read {metrics['lines_read']} rows, wrote "
                  f"{metrics['tables']}; rules {metrics['quality']}")
        return code


def read_inputs(spark: SparkSession, storage: Storage, args: DerivedArgs) -> dict[str, DataFrame]:
    """inputs.json's tables as DataFrames (after its ETag is checked against the run's)."""
    if args.input_etag is not None:
        verify_input_version(args.input_object, ObjectVersion(args.input_etag, None),
                             head_s3_object)
    tables = parse_inputs(storage.read_text(args.input), args.input_object)
    return {name: spark.read.parquet(*[f["uri"] for f in folders])
            for name, folders in sorted(tables.items())}


def input_range(storage: Storage, args: DerivedArgs) -> dict[str, Any]:
    """metrics.json's `inputs`: per table, how many partitions, the first and the last."""
    tables = parse_inputs(storage.read_text(args.input), args.input_object)
    return {name: {"partitions": len(f), "first": f[0]["partition"], "last": f[-1]["partition"]}
            for name, f in sorted(tables.items())}


class _Run:
    def __init__(self, job: DerivedJob, spark: SparkSession, args: DerivedArgs):
        self.job, self.spark, self.args = job, spark, args
        self.storage = Storage(spark)
        self.rules_file, self.engine = QualityEngine.from_rules_file(
            self.storage, args.rules, args.reference_time)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        inputs = read_inputs(self.spark, self.storage, self.args)
        record: dict[str, Any] | None = None
        if self.job.model is not None:
            frames, record, model_row = self.with_model(self.job.model, inputs)
        else:
            assert self.job.compute is not None  # __post_init__: one of the two
            frames, model_row = self.job.compute(inputs, self.args), {}
        rows = self.write(frames)
        report = self.measure(frames, model_row)
        metrics = {
            "run_id": self.args.run_id, "dataset": self.job.dataset,
            "partition": self.args.partition, "input": self.args.input_object,
            "inputs": input_range(self.storage, self.args),
            "lines_read": sum(int(f.count()) for f in inputs.values()),
            "lines_written": sum(rows.values()), "lines_quarantined": 0, "duplicates": 0,
            "quarantine_reasons": {}, "quarantine_samples": [],
            "tables": {t: {"rows": rows[t], "uri": self.args.output_uri(t)} for t in rows},
            **({"model": record} if record is not None else {}),
            "duration_seconds": round(time.monotonic() - started, 3),
            "spark_version": self.spark.version,
            "quality": {o: [r.outcome for r in report.results].count(o)
                        for o in ("pass", "fail", "deferred")},
        }
        self.storage.write_text(self.args.quality, json.dumps(
            report.as_dict(self.rules_file, self.args.reference_time), indent=2,
            default=json_value) + "\n")
        self.storage.write_text(self.args.metrics, json.dumps(
            metrics, indent=2, default=json_value) + "\n")
        return metrics

    def with_model(self, hooks: ModelHooks, inputs: Inputs
                   ) -> tuple[dict[str, DataFrame], dict[str, Any], dict[str, float]]:
        """Train (unless scoring only), decide promotion, score with the chosen model: the
        outputs, the model's record for metrics.json and the ledger, and its metrics row."""
        args = self.args
        current = hooks.load(args.current_model) if args.current_model else None
        if not args.train:
            if current is None:
                raise InvalidInput(f"{self.job.dataset} {args.partition}: a scoring-only run "
                                   "(--train false) needs the current model (--current-model)")
            record = {"trained": False, "promoted": False, "path": args.current_model,
                      "scored_with": args.current_model, "metrics": current.metrics,
                      "reason": "scoring only: the current model is not retrained this run"}
            return hooks.score(inputs, args, current), record, dict(current.metrics)
        new = hooks.train(inputs, args)
        path = args.model_path()
        new.save(path)
        held = hooks.compare(new, current, inputs, args) if current is not None else None
        if args.policy is None:
            raise InvalidInput("a job that trains a model needs --promotion-metric")
        decision = promotion(args.policy, new.metrics, held)
        chosen = new if decision.promoted or current is None else current
        record = _record(new, path, args, decision, held)
        record["scored_with"] = path if chosen is new else args.current_model
        row = {**new.metrics, **{f"current_{k}": v for k, v in (held or {}).items()}}
        return hooks.score(inputs, args, chosen), record, row

    def write(self, frames: dict[str, DataFrame]) -> dict[str, int]:
        if sorted(frames) != sorted(self.job.outputs):
            raise ConfigurationError(f"{self.job.dataset}: the job made {sorted(frames)}, its "
                                     f"outputs are {sorted(self.job.outputs)}")
        tables = warehouse.shipped_tables()
        rows: dict[str, int] = {}
        for name in self.job.outputs:
            frame = frames[name]
            warehouse.check_schema(frame.schema, tables.table("analytics", name))
            rows[name] = outputs.write_parquet(frame, self.args.output_uri(name),
                                               f"{self.args.run_id}-{name}")
        return rows

    def measure(self, frames: dict[str, DataFrame], model_row: dict[str, float]
                ) -> QualityReport:
        """The rules on the written rows of `rules_on` (read back: what loads), or on the
        model's one row of metrics."""
        if self.job.rules_on == MODEL_TABLE:
            names = sorted(model_row)
            frame = self.spark.createDataFrame(
                [tuple(float(model_row[n]) for n in names)],
                ", ".join(f"`{n}` double" for n in names))
        else:
            frame = self.spark.read.parquet(self.args.output_uri(self.job.rules_on))
        report, _ = self.engine.measure(frame)
        return report


def _record(new: Model, path: str, args: DerivedArgs, decision: Promotion,
            held: Mapping[str, float] | None) -> dict[str, Any]:
    """The model's record (metrics.json's `model`; the gate puts it on the ledger item)."""
    return {"trained": True, "promoted": decision.promoted, "path": path,
            "trained_as_of": args.partition, "params": dict(new.params),
            "metrics": dict(new.metrics), "current_model": args.current_model,
            "current_metrics": dict(held) if held is not None else None,
            "metric": decision.metric, "reason": decision.reason}
