"""A derived job's arguments (docs/architecture.md, "Derived datasets"): the run's inputs.json
and where its outputs, metrics.json and quality.json go, plus its model's options. A bad
argument is InvalidInput, reported before Spark starts any work."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import NoReturn

from pipeline_core.catalog import MODEL_DIRECTIONS, ModelPolicy, validate_partition
from pipeline_core.errors import InvalidInput
from spark_jobs.common.args import TABLE_PLACEHOLDER

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_OPTION = re.compile(r"^--[a-z][a-z0-9-]{0,40}\Z")


@dataclass(frozen=True)
class DerivedArgs:
    input: str  # inputs.json
    output_root: str
    metrics: str
    quality: str
    rules: str
    run_id: str
    partition: str  # the as_of day
    reference_time: dt.datetime
    input_etag: str | None = None
    input_source: str | None = None
    model_root: str | None = None
    current_model: str | None = None
    train: bool = True
    policy: ModelPolicy | None = None
    extra: dict[str, str] = field(default_factory=dict)  # the catalog's job.arguments
    # The first day a rows_per_day job writes (an upstream batch's first loaded day).
    from_day: str | None = None

    @property
    def as_of(self) -> dt.date:
        return dt.date.fromisoformat(self.partition)

    @property
    def first_day(self) -> dt.date:
        """The first day the run writes: `--from-day`, else the as_of day."""
        return dt.date.fromisoformat(self.from_day) if self.from_day else self.as_of

    @property
    def input_object(self) -> str:
        return self.input_source or self.input

    def output_uri(self, table: str) -> str:
        return self.output_root.replace(TABLE_PLACEHOLDER, table)

    def int_option(self, name: str, default: int, minimum: int = 1) -> int:
        """The catalog's `job.arguments` option `name` as an integer (`default` when absent)."""
        text = self.extra.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise InvalidInput(f"--{name} {text!r} is not an integer") from None
        if value < minimum:
            raise InvalidInput(f"--{name} {value}: must be at least {minimum}")
        return value

    def ints_option(self, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
        """A comma-separated list of integers (e.g. `--k-values 2,3,4`)."""
        text = self.extra.get(name)
        if text is None:
            return default
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise InvalidInput(f"--{name} {text!r} is not comma-separated integers") from None

    def model_path(self) -> str:
        """Where this run saves a model it trains: `<model root><run id>/`."""
        if not self.model_root:
            raise InvalidInput("this job trains a model: --model-root is required")
        return self.model_root.rstrip("/") + f"/{self.run_id}/"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"bad job arguments: {message}")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Spark job: upstream curated tables in, outputs out.")
    for name in ("--input", "--output-root", "--metrics", "--quality", "--rules", "--run-id",
                 "--partition"):
        p.add_argument(name, required=True)
    for name in ("--reference-time", "--input-etag", "--input-source", "--model-root",
                 "--current-model", "--promotion-metric", "--promotion-tolerance",
                 "--from-day"):
        p.add_argument(name, default=None)
    p.add_argument("--train", choices=["true", "false"], default="true")
    p.add_argument("--promotion-direction", choices=MODEL_DIRECTIONS,
                   default="higher_is_better")
    return p


def _extra(rest: list[str]) -> dict[str, str]:
    """The catalog's extra `--name value` options."""
    if len(rest) % 2:
        raise InvalidInput(f"bad job arguments: {rest} are not `--name value` pairs")
    pairs = dict(zip(rest[::2], rest[1::2], strict=True))
    bad = [k for k in pairs if not _OPTION.fullmatch(k)]
    if bad:
        raise InvalidInput(f"bad job arguments: {', '.join(bad)} are not option names")
    return {k[2:]: v for k, v in pairs.items()}


def _policy(metric: str | None, direction: str, tolerance: str | None) -> ModelPolicy | None:
    if metric is None:
        return None
    try:
        value = float(tolerance or 0)
    except ValueError:
        raise InvalidInput(f"--promotion-tolerance {tolerance!r} is not a number") from None
    return ModelPolicy(metric, direction, value)


def parse_derived_args(argv: list[str], prog: str = "job") -> DerivedArgs:
    ns, rest = _parser(prog).parse_known_args(argv)
    if TABLE_PLACEHOLDER not in ns.output_root:
        raise InvalidInput(f"--output-root must contain {TABLE_PLACEHOLDER}: {ns.output_root!r}")
    if not _RUN_ID.match(ns.run_id):
        raise InvalidInput(f"--run-id {ns.run_id!r} must be 1-128 letters, digits, '.', '_', '-'")
    partition = validate_partition(ns.partition)
    from_day = validate_partition(ns.from_day) if ns.from_day is not None else None
    if from_day is not None and from_day > partition:
        raise InvalidInput(f"--from-day {from_day} is after --partition {partition}")
    if ns.reference_time is None:
        day = dt.date.fromisoformat(partition) + dt.timedelta(days=1)
        reference = dt.datetime.combine(day, dt.time(), dt.UTC)
    else:
        try:
            reference = dt.datetime.fromisoformat(ns.reference_time.replace("Z", "+00:00"))
        except ValueError as e:
            raise InvalidInput(f"--reference-time {ns.reference_time!r} is not ISO-8601") from e
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=dt.UTC)
    return DerivedArgs(
        ns.input, ns.output_root, ns.metrics, ns.quality, ns.rules, ns.run_id, partition,
        reference.astimezone(dt.UTC), ns.input_etag or None, ns.input_source or None,
        ns.model_root, ns.current_model, ns.train == "true",
        _policy(ns.promotion_metric, ns.promotion_direction, ns.promotion_tolerance),
        _extra(rest), from_day)
