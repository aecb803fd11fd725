"""The data-quality gate: turns the rules the Spark job measured into pass / warn / fail.

The job measures every DQDL rule it can decide on its own and writes `quality.json`; rules whose
threshold depends on earlier runs (`RowCount > median(last(10)) * 0.3`, `DetectAnomalies`) come
back `deferred` and are decided here against the metrics that earlier SUCCEEDED runs of the
dataset left in the run ledger. A failed `error` rule stops the load; a failed `warn` rule only
alerts. Missing history never fails a rule: a new dataset has to be able to start.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

from aws_lambda_powertools.metrics import EphemeralMetrics
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from pipeline_aws import domain_error, error_code
from pipeline_aws.alerts import Alert, clip
from pipeline_aws.settings import _LedgerEnv
from pipeline_core.errors import InvalidInput

Verdict = Literal["pass", "warn", "fail"]
Number = StrictInt | StrictFloat

_S3_URI = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+"
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
SUMMARY_MAX = 4000


def _problems(error: ValidationError) -> str:
    """One entry per problem, each naming the field path."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class EvaluateQualitySettings(_LedgerEnv):
    """The function's environment (ENVIRONMENT, APP_NAME, LEDGER_TABLE, ALERT_TOPIC_ARN,
    optional CATALOG_DIR), validated at cold start."""

    alert_topic_arn: str = Field(alias="ALERT_TOPIC_ARN", pattern=r"^arn:aws[\w-]*:sns:")
    catalog_dir: str | None = Field(alias="CATALOG_DIR", default=None)


# ---------------------------------------------------------------------------------------------
# Input: the state machine's event


class RunRef(BaseModel):
    """The parts of the run manifest (`$.run`) the gate needs; the rest is ignored."""

    model_config = ConfigDict(extra="ignore")

    run_id: StrictStr = Field(min_length=1, max_length=128)
    dataset: StrictStr = Field(min_length=1)
    partition: StrictStr = Field(min_length=1)
    metrics_uri: StrictStr = Field(pattern=_S3_URI)
    quality_uri: StrictStr = Field(pattern=_S3_URI)
    quarantine_uri: StrictStr = Field(pattern=_S3_URI)


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")
    run: RunRef


class _Execution(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Id: StrictStr = Field(min_length=1)


class GateRequest(BaseModel):
    """`{"state": <whole state>, "execution": $$.Execution, "state_name": ...}`."""

    model_config = ConfigDict(extra="ignore")

    state: _State
    execution: _Execution

    @property
    def run(self) -> RunRef:
        return self.state.run

    @classmethod
    def parse(cls, event: Any) -> GateRequest:
        """Validate the Lambda event, naming every missing or wrong field (InvalidInput)."""
        try:
            return cls.model_validate(event)
        except ValidationError as e:
            raise InvalidInput(f"EvaluateQuality input: {_problems(e)}") from e


# ---------------------------------------------------------------------------------------------
# The files the Spark job wrote (shapes in docs/architecture.md)


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


class _RunMetricsModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lines_read: NonNegativeInt
    lines_written: NonNegativeInt
    lines_quarantined: NonNegativeInt
    duplicates: NonNegativeInt


def _finite(value: float | int | None) -> float | int | None:
    """NaN and infinities mean 'not measured': they can neither pass a rule nor be stored."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


@dataclass(frozen=True)
class MeasuredRule:
    """One rule as the job reported it."""

    rule: str
    line: int
    severity: str
    metric_name: str | None
    value: float | int | None
    threshold: str
    outcome: str
    rule_type: str | None = None


@dataclass(frozen=True)
class QualityReport:
    rules: tuple[MeasuredRule, ...]
    metrics: Mapping[str, float | int]


@dataclass(frozen=True)
class LineCounts:
    read: int
    written: int
    quarantined: int
    duplicates: int

    def as_dict(self) -> dict[str, int]:
        return {"in": self.read, "out": self.written, "quarantined": self.quarantined,
                "duplicates": self.duplicates}


def parse_quality_report(data: Any, uri: str) -> QualityReport:
    """quality.json -> QualityReport, or InvalidInput naming the URI and the bad field."""
    try:
        model = _QualityModel.model_validate(data)
    except ValidationError as e:
        raise InvalidInput(f"{uri} is not a valid quality.json: {_problems(e)}") from e
    if not model.rules:
        raise InvalidInput(f"{uri} lists no rules: a run without measured rules cannot pass a gate")
    metrics = {k: v for k, v in model.metrics.items() if _finite(v) is not None}
    rules = tuple(
        MeasuredRule(
            rule=r.rule.strip(),
            line=r.line,
            severity=r.severity,
            metric_name=r.metric_name,
            value=_finite(r.metric) if r.metric is not None else metrics.get(r.metric_name or ""),
            threshold=r.threshold,
            outcome=r.outcome,
            rule_type=r.rule_type,
        )
        for r in model.rules
    )
    return QualityReport(rules=rules, metrics=metrics)


def parse_line_counts(data: Any, uri: str) -> LineCounts:
    """metrics.json -> LineCounts, or InvalidInput naming the URI and the bad field."""
    try:
        model = _RunMetricsModel.model_validate(data)
    except ValidationError as e:
        raise InvalidInput(f"{uri} is not a valid metrics.json: {_problems(e)}") from e
    return LineCounts(model.lines_read, model.lines_written, model.lines_quarantined,
                      model.duplicates)


# ---------------------------------------------------------------------------------------------
# The DQDL seam: pipeline_core.dqdl parses rules and decides thresholds


@dataclass(frozen=True)
class RuleDecision:
    passed: bool
    threshold: str
    reason: str | None = None


class RuleEngine(Protocol):
    """What the gate needs from the DQDL implementation."""

    def rule_type(self, text: str) -> str: ...

    def history_window(self, text: str) -> int | None:
        """Earlier values the rule looks at (`last(k)`: k); None: the catalog decides
        (DetectAnomalies)."""

    def minimum_history(self, text: str) -> int:
        """Earlier values the rule needs before it can fail."""

    def decide(self, text: str, value: float | None, history: Sequence[float]
               ) -> RuleDecision:
        """Decide a history rule; `history` holds earlier values, newest first."""


class DqdlRuleEngine:
    """pipeline_core.dqdl behind the gate's seam.

    Rules are re-parsed from the text the job reported, so the gate decides exactly the rule
    that was measured even if the catalog changed while the run was going.
    """

    def __init__(self) -> None:
        from pipeline_core import dqdl

        self._dqdl = dqdl
        self._parsed: dict[str, Any] = {}

    def _rule(self, text: str) -> Any:
        if text not in self._parsed:
            self._parsed[text] = self._dqdl.parse_rule(text, source="quality.json")
        return self._parsed[text]

    def rule_type(self, text: str) -> str:
        return str(self._rule(text).rule_type)

    def history_window(self, text: str) -> int | None:
        return self._rule(text).history_window

    def minimum_history(self, text: str) -> int:
        # The whole window for last(k): a median of 2 runs is not what "median(last(10))" says.
        rule = self._rule(text)
        return rule.history_window or self._dqdl.MIN_ANOMALY_HISTORY

    def decide(self, text: str, value: float | None, history: Sequence[float]
               ) -> RuleDecision:
        rule = self._rule(text)
        if not rule.needs_history:
            raise InvalidInput(f"quality.json marks {text!r} deferred, but it does not depend on "
                               "earlier runs: the job should have decided it")
        outcome = self._dqdl.evaluate_threshold(rule, value, list(history))
        return RuleDecision(bool(outcome.passed), str(outcome.threshold), outcome.reason)


# ---------------------------------------------------------------------------------------------
# Adapters


class S3JsonReader:
    """Reads one JSON document from S3; a missing or broken file is InvalidInput naming it."""

    def __init__(self, s3_client: Any):
        self._s3 = s3_client

    def read(self, uri: str) -> Any:
        parsed = urlparse(uri)
        try:
            body = self._s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
            raw = body.read()
        except ClientError as e:
            if error_code(e) in _NOT_FOUND:
                raise InvalidInput(f"{uri} does not exist: the Spark job did not write it") from e
            raise domain_error(e, f"reading {uri}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"reading {uri}") from e
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidInput(f"{uri} is not valid JSON: {e}") from e


class QualityLedger:
    """The gate's view of the run ledger (a pipeline_aws.ledger.RunLedger)."""

    def __init__(self, ledger: Any):
        self._ledger = ledger

    def metric_history(self, dataset: str, runs: int, exclude_run_id: str
                       ) -> list[Mapping[str, float]]:
        """quality_metrics of the `runs` newest SUCCEEDED runs of the dataset, newest first."""
        items = self._ledger.query_by_dataset(dataset, limit=runs + 1, status="SUCCEEDED")
        history = []
        for item in items:
            if item.get("run_id") == exclude_run_id:
                continue
            raw = item.get("quality_metrics") or {}
            history.append({k: float(v) for k, v in raw.items()
                            if isinstance(v, int | float) and not isinstance(v, bool)})
        return history[:runs]

    def record(self, run_id: str, metrics: Mapping[str, float | int], verdict: str,
               failed_rules: Sequence[Mapping[str, Any]], lines: Mapping[str, int]) -> None:
        """Write this run's gate outcome on its ledger item (InvalidInput if it has none)."""
        self._ledger.update(run_id, {
            "quality_metrics": dict(metrics),
            "quality_verdict": verdict,
            "quality_failed_rules": list(failed_rules),
            "lines": dict(lines),
        })


class EmfQualityMetrics:
    """CloudWatch metrics in EMF: per rule type, how many rules passed, warned and failed,
    plus the gate's verdict. Dimensions stay low-cardinality (service, environment, dataset,
    rule_type); the run id is metadata, searchable in the log but never a dimension."""

    OUTCOMES = ("RulePassed", "RuleWarned", "RuleFailed")
    VERDICTS = (("pass", "QualityGatePassed"), ("warn", "QualityGateWarned"),
                ("fail", "QualityGateFailed"))

    def __init__(self, metrics: Any, environment: str | None = None,
                 blob_factory: Callable[[], Any] | None = None):
        self._metrics = metrics
        self._environment = environment
        self._blob_factory = blob_factory or (
            lambda: EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
        )

    def publish(self, dataset: str, run_id: str, verdict: str,
                outcomes: Iterable[tuple[str, str]]) -> None:
        """`outcomes`: one (rule_type, one of OUTCOMES) pair per rule."""
        counts = Counter(outcomes)
        for rule_type in sorted({t for t, _ in counts}):
            blob = self._blob_factory()
            if self._environment:
                blob.add_dimension(name="environment", value=self._environment)
            blob.add_dimension(name="dataset", value=dataset)
            blob.add_dimension(name="rule_type", value=rule_type)
            for name in self.OUTCOMES:
                blob.add_metric(name=name, unit="Count", value=counts[(rule_type, name)])
            blob.add_metadata(key="run_id", value=run_id)
            blob.flush_metrics()
        self._metrics.add_dimension(name="dataset", value=dataset)
        self._metrics.add_metadata(key="run_id", value=run_id)
        for this, name in self.VERDICTS:
            self._metrics.add_metric(name=name, unit="Count", value=int(verdict == this))


def catalog_history_runs(catalog_dir: str | None = None) -> Callable[[str], int]:
    """dataset name -> quality.history_runs, reading the catalog once, on first use.

    Loading lazily makes a catalog problem a ConfigurationError of the invocation (recorded by
    the state machine) rather than a crash at cold start.
    """
    from pipeline_core.catalog import load_catalog

    loaded: list[Any] = []

    def history_runs(dataset: str) -> int:
        if not loaded:
            loaded.append(load_catalog(catalog_dir))
        return loaded[0].get(dataset).quality.history_runs

    return history_runs


# ---------------------------------------------------------------------------------------------
# Logic


@dataclass(frozen=True)
class RuleResult:
    rule: str
    line: int
    severity: str
    rule_type: str
    metric_name: str | None
    value: float | int | None
    threshold: str
    passed: bool
    reason: str | None = None

    def as_contract(self) -> dict[str, Any]:
        return {"rule": self.rule, "line": self.line, "severity": self.severity,
                "metric_name": self.metric_name, "value": self.value,
                "threshold": self.threshold}

    @property
    def outcome_metric(self) -> str:
        if self.passed:
            return "RulePassed"
        return "RuleFailed" if self.severity == "error" else "RuleWarned"


class _Reader(Protocol):
    def read(self, uri: str) -> Any: ...


class _Ledger(Protocol):
    def metric_history(self, dataset: str, runs: int, exclude_run_id: str
                       ) -> list[Mapping[str, float]]: ...

    def record(self, run_id: str, metrics: Mapping[str, float | int], verdict: str,
               failed_rules: Sequence[Mapping[str, Any]], lines: Mapping[str, int]) -> None: ...


class _Alerts(Protocol):
    def publish(self, alert: Alert) -> str: ...


class _Metrics(Protocol):
    def publish(self, dataset: str, run_id: str, verdict: str,
                outcomes: Iterable[tuple[str, str]]) -> None: ...


def fmt_value(value: float | int | None) -> str:
    """A measured value as people read it: integers without '.0', others to 6 digits."""
    if value is None:
        return "not measured"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _describe(r: RuleResult) -> str:
    measured = "was not measured" if r.value is None else f"measured {fmt_value(r.value)}"
    text = f"{r.rule} (line {r.line}) {measured} against threshold {r.threshold or 'unknown'}"
    return text + (f", {r.reason}" if r.reason else "")


class QualityGate:
    """Decides a run's verdict, records it in the ledger, alerts on warn/fail, and publishes
    one metric per rule outcome."""

    def __init__(self, *, reader: _Reader, ledger: _Ledger, alerts: _Alerts, metrics: _Metrics,
                 engine: RuleEngine, history_runs: Callable[[str], int], environment: str = "",
                 logger: Any = None):
        self._reader = reader
        self._ledger = ledger
        self._alerts = alerts
        self._metrics = metrics
        self._engine = engine
        self._history_runs = history_runs
        self._environment = environment
        self._logger = logger

    def evaluate(self, request: GateRequest) -> dict[str, Any]:
        run = request.run
        report = parse_quality_report(self._reader.read(run.quality_uri), run.quality_uri)
        lines = parse_line_counts(self._reader.read(run.metrics_uri), run.metrics_uri)

        default_runs = self._history_runs(run.dataset) if any(
            r.outcome == "deferred" for r in report.rules) else 0
        history = self._history(run, report, default_runs)
        results = [self._decide(rule, history, default_runs) for rule in report.rules]
        failed = [r for r in results if not r.passed and r.severity == "error"]
        warned = [r for r in results if not r.passed and r.severity == "warn"]
        verdict: Verdict = "fail" if failed else "warn" if warned else "pass"
        # The summary becomes the execution's failure cause: keep it far below the 32 KiB limit.
        summary = clip(self._summary(run, verdict, results, failed, warned), SUMMARY_MAX)

        measured = dict(report.metrics)
        for r in results:
            if r.metric_name and r.value is not None:
                measured.setdefault(r.metric_name, r.value)
        self._ledger.record(
            run.run_id, measured, verdict,
            [{**r.as_contract(), "reason": r.reason} if r.reason else r.as_contract()
             for r in failed + warned],
            lines.as_dict(),
        )
        if verdict != "pass":
            self._alerts.publish(self._alert(request, verdict, summary, failed, warned, lines))
        self._metrics.publish(run.dataset, run.run_id, verdict,
                              [(r.rule_type, r.outcome_metric) for r in results])
        if self._logger:
            self._logger.info("quality gate decided", extra={
                "run_id": run.run_id, "verdict": verdict, "history_runs": len(history),
                "rules": [{**r.as_contract(), "passed": r.passed, "reason": r.reason}
                          for r in results],
            })
        return {
            "verdict": verdict,
            "summary": summary,
            "failed_rules": [r.as_contract() for r in failed],
            "warned_rules": [r.as_contract() for r in warned],
            "lines": lines.as_dict(),
        }

    def _window(self, rule: MeasuredRule, default_runs: int) -> tuple[int, int]:
        """(values to use, values needed) for a deferred rule."""
        needed = self._engine.minimum_history(rule.rule)
        return max(self._engine.history_window(rule.rule) or default_runs, needed), needed

    def _history(self, run: RunRef, report: QualityReport, default_runs: int
                 ) -> list[Mapping[str, float]]:
        deferred = [r for r in report.rules if r.outcome == "deferred"]
        if not deferred:
            return []
        # A rule asking for more runs (last(k)) than the catalog's default still gets them.
        runs = max(self._window(r, default_runs)[0] for r in deferred)
        return self._ledger.metric_history(run.dataset, runs, run.run_id)

    def _decide(self, rule: MeasuredRule, history: Sequence[Mapping[str, float]],
                default_runs: int) -> RuleResult:
        rule_type = rule.rule_type or self._engine.rule_type(rule.rule)
        common = {"rule": rule.rule, "line": rule.line, "severity": rule.severity,
                  "rule_type": rule_type, "metric_name": rule.metric_name, "value": rule.value}
        if rule.outcome != "deferred":
            return RuleResult(**common, threshold=rule.threshold, passed=rule.outcome == "pass")
        if rule.value is None:
            return RuleResult(**common, threshold=rule.threshold, passed=False)
        window, needed = self._window(rule, default_runs)
        points = [h[rule.metric_name] for h in history
                  if rule.metric_name and rule.metric_name in h][:window]
        if len(points) < needed:
            # Never fail for lack of history: a new dataset (or metric) has to be able to start.
            return RuleResult(**common, threshold=rule.threshold, passed=True,
                              reason=f"insufficient history ({len(points)} of {needed} runs)")
        decision = self._engine.decide(rule.rule, rule.value, points)
        return RuleResult(**common, threshold=decision.threshold, passed=decision.passed,
                          reason=decision.reason)

    @staticmethod
    def _summary(run: RunRef, verdict: str, results: Sequence[RuleResult],
                 failed: Sequence[RuleResult], warned: Sequence[RuleResult]) -> str:
        what = f"{run.dataset} partition {run.partition} (run {run.run_id})"
        warnings = (f"{_plural(len(warned), 'warning rule')} failed: "
                    + "; ".join(_describe(r) for r in warned))
        if verdict == "fail":
            text = (f"Data quality gate failed for {what}: {_plural(len(failed), 'error rule')} "
                    "failed: " + "; ".join(_describe(r) for r in failed))
            return text + (f". Also {warnings}." if warned else ".")
        if verdict == "warn":
            return f"Data quality gate passed with warnings for {what}: {warnings}."
        text = f"Data quality gate passed for {what}: all {_plural(len(results), 'rule')} passed"
        unproven = [r for r in results if r.reason]
        if unproven:
            text += " (" + "; ".join(f"{r.rule} (line {r.line}): {r.reason}"
                                     for r in unproven) + ")"
        return text + "."

    def _alert(self, request: GateRequest, verdict: str, summary: str,
               failed: Sequence[RuleResult], warned: Sequence[RuleResult], lines: LineCounts
               ) -> Alert:
        run = request.run
        env = f" [{self._environment}]" if self._environment else ""
        word = "FAILED" if verdict == "fail" else "WARNING"
        consequence = ("the load was stopped; nothing from this run reached the warehouse"
                       if verdict == "fail" else "the load continues")
        fields: dict[str, Any] = {
            "dataset": run.dataset,
            "partition": run.partition,
            "run_id": run.run_id,
            "verdict": verdict,
        }
        for r in failed + warned:
            label = "failed rule" if r.severity == "error" else "warning"
            fields[f"{label} (line {r.line})"] = (
                f"{r.rule} | value {fmt_value(r.value)} ({r.metric_name or 'no metric'}) | "
                f"threshold {r.threshold or 'unknown'}" + (f" | {r.reason}" if r.reason else "")
            )
        fields.update({
            "lines": (f"in {lines.read}, out {lines.written}, quarantined {lines.quarantined}, "
                      f"duplicates {lines.duplicates}"),
            "quarantine": run.quarantine_uri,
            "quality report": run.quality_uri,
            "execution": request.execution.Id,
            "summary": summary,
            "failed_rules": [r.as_contract() for r in failed],
            "warned_rules": [r.as_contract() for r in warned],
        })
        return Alert(
            subject=f"Data quality {word}{env}: {run.dataset} {run.partition}",
            title=f"Data quality gate {word} for {run.dataset} partition {run.partition}: "
                  f"{consequence}.",
            fields=fields,
            attributes={"dataset": run.dataset, "environment": self._environment,
                        "event": f"quality_{verdict}", "verdict": verdict, "run_id": run.run_id},
        )
