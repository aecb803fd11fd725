"""The files the Spark job writes for the gate (shapes in docs/architecture.md): `quality.json`,
one entry per DQDL rule, and `metrics.json`, the run's line counts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, StrictFloat, StrictInt, StrictStr

from pipeline_aws.contracts import LineCounts, RuleOutcome, parse
from pipeline_core.errors import InvalidInput

Number = StrictInt | StrictFloat


class _MeasuredRuleModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rule: StrictStr = Field(min_length=1)
    line: StrictInt = Field(ge=1)
    severity: Literal["error", "warn"]
    metric_name: StrictStr | None = None
    metric: Number | None = None
    threshold: StrictStr = ""
    outcome: Literal["pass", "fail", "deferred"]
    rule_type: StrictStr | None = None


class _QualityModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rules: list[_MeasuredRuleModel]
    metrics: dict[str, Number | None] = Field(default_factory=dict)
    reference_time: StrictStr | None = None


class _TableRows(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rows: NonNegativeInt


class _Sample(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: StrictStr
    line: StrictInt | None = None
    text: StrictStr = ""


class _RunMetricsModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lines_read: NonNegativeInt
    lines_written: NonNegativeInt
    lines_quarantined: NonNegativeInt
    duplicates: NonNegativeInt
    tables: dict[str, _TableRows] = Field(default_factory=dict)
    quarantine_reasons: dict[str, NonNegativeInt] = Field(default_factory=dict)
    quarantine_samples: list[_Sample] = Field(default_factory=list)
    model: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunOutputs:
    """What the job wrote: rows per output table, and why lines were quarantined (counts per
    reason, and a few sample lines) for the alert."""

    lines: LineCounts
    table_rows: Mapping[str, int]
    quarantine_reasons: Mapping[str, int]
    samples: tuple[tuple[str, int | None, str], ...]
    # A derived job's model record (spark_jobs.common.derived_job): trained, promoted, why.
    model: Mapping[str, Any] | None = None

    def top_reasons(self, n: int = 3) -> list[tuple[str, int]]:
        return sorted(self.quarantine_reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def finite(value: float | int | None) -> float | int | None:
    """NaN and infinities mean 'not measured': they can neither pass a rule nor be stored."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


class MeasuredRule(RuleOutcome):
    """One rule as the job reported it: the fields the gate's result lists, the job's outcome
    (pass, fail, or deferred to the gate) and the rule's type when the job named it."""

    outcome: str
    rule_type: str | None = None


@dataclass(frozen=True)
class QualityReport:
    rules: tuple[MeasuredRule, ...]
    metrics: Mapping[str, float | int]
    reference_time: str | None = None  # the evaluation time of DataFreshness and now()


def parse_quality_report(data: Any, uri: str) -> QualityReport:
    """quality.json -> QualityReport, or InvalidInput naming the URI and the bad field."""
    model = parse(_QualityModel, data, f"{uri} is not a valid quality.json")
    if not model.rules:
        raise InvalidInput(f"{uri} lists no rules: a run without measured rules cannot pass a gate")
    measured = {k: finite(v) for k, v in model.metrics.items()}
    metrics = {k: v for k, v in measured.items() if v is not None}
    rules = tuple(
        MeasuredRule(
            rule=r.rule.strip(),
            line=r.line,
            severity=r.severity,
            metric_name=r.metric_name,
            value=finite(r.metric) if r.metric is not None else metrics.get(r.metric_name or ""),
            threshold=r.threshold,
            outcome=r.outcome,
            rule_type=r.rule_type,
        )
        for r in model.rules
    )
    return QualityReport(rules=rules, metrics=metrics, reference_time=model.reference_time)


def parse_run_outputs(data: Any, uri: str) -> RunOutputs:
    """metrics.json -> what the run wrote, or InvalidInput naming the URI and the bad field."""
    model = parse(_RunMetricsModel, data, f"{uri} is not a valid metrics.json")
    lines = LineCounts(read=model.lines_read, written=model.lines_written,
                       quarantined=model.lines_quarantined, duplicates=model.duplicates)
    return RunOutputs(
        lines=lines, table_rows={t: v.rows for t, v in model.tables.items()},
        quarantine_reasons=dict(model.quarantine_reasons),
        samples=tuple((x.reason, x.line, x.text) for x in model.quarantine_samples[:5]),
        model=model.model)
