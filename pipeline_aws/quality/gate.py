"""QualityGate: decides a run's verdict, records it on the run's ledger item, alerts on warn and
fail, and publishes one metric per rule outcome. Its adapters come in through the constructor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ConfigDict

from pipeline_aws.alerts import Alert, AlertPort, clip
from pipeline_aws.contracts import (
    EvaluateQualityRequest,
    LineCounts,
    PartitionQuality,
    QualityResult,
    RuleOutcome,
    RunManifest,
    Verdict,
)
from pipeline_aws.ledger import LedgerPort, parse_iso_utc
from pipeline_aws.quality.reports import (
    MeasuredRule,
    QualityReport,
    RunOutputs,
    finite,
    parse_quality_report,
    parse_run_outputs,
)
from pipeline_aws.quality.rules import RuleEngine
from pipeline_core.catalog import Quality

SUMMARY_MAX = 4000
_RULES_IN_ALERT = 25  # one line each in the alert; the quality report has them all

# ---------------------------------------------------------------------------------------------
# Ports


class JsonReader(Protocol):
    def read(self, uri: str) -> Any: ...


class QualityMetrics(Protocol):
    def publish(self, dataset: str, run_id: str, verdict: str,
                outcomes: Iterable[tuple[str, str]]) -> None: ...


def metric_history(items: Iterable[Mapping[str, Any]], runs: int, exclude_run_id: str
                   ) -> list[dict[str, float]]:
    """The `quality_metrics` of ledger items (newest first), numbers only, at most `runs`."""
    history = []
    for item in items:
        if item.get("run_id") == exclude_run_id:
            continue
        raw = item.get("quality_metrics") or {}
        history.append({str(k): float(v) for k, v in raw.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)})
    return history[:runs]


# ---------------------------------------------------------------------------------------------
# Rule results and how people read them


class RuleResult(RuleOutcome):
    """A rule the gate decided: what its result lists, plus the rule's type, whether it passed
    and, when it passed without proof or failed on history, why."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rule_type: str
    passed: bool
    reason: str | None = None

    def outcome(self) -> RuleOutcome:
        """The rule as EvaluateQuality's result lists it."""
        return RuleOutcome.model_validate(self.model_dump())

    def as_contract(self) -> dict[str, Any]:
        return self.outcome().model_dump(mode="json")

    @property
    def outcome_metric(self) -> str:
        if self.passed:
            return "RulePassed"
        return "RuleFailed" if self.severity == "error" else "RuleWarned"


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


def summarize(run: RunManifest, verdict: str, results: Sequence[RuleResult],
              failed: Sequence[RuleResult], warned: Sequence[RuleResult]) -> str:
    """One paragraph naming every failed and warned rule: the execution's failure cause."""
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


def output_checks(quality: Quality, tables: Sequence[str], outputs: RunOutputs
                  ) -> list[RuleResult]:
    """The catalog's checks of what the run wrote, decided like rules (line 0: the catalog).

    The rules file measures the parsed input; these measure the outputs, so a day whose every
    line is quarantined, or whose tables are empty, cannot pass as a green run that loads
    nothing."""
    checks = []
    if quality.min_output_rows > 0:
        for table in sorted(tables):
            rows = outputs.table_rows.get(table)
            checks.append(RuleResult(
                rule=f'OutputRowCount "{table}" >= {quality.min_output_rows}', line=0,
                severity=quality.output_severity, rule_type="OutputRowCount",
                metric_name=f"Output.{table}.RowCount", value=rows,
                threshold=f">= {quality.min_output_rows}",
                passed=rows is not None and rows >= quality.min_output_rows))
    if quality.max_quarantined_ratio < 1.0:
        lines = outputs.lines
        ratio = lines.quarantined / lines.read if lines.read else 0.0
        checks.append(RuleResult(
            rule=f"QuarantinedRatio <= {quality.max_quarantined_ratio:g}", line=0,
            severity=quality.output_severity, rule_type="QuarantinedRatio",
            metric_name="Output.QuarantinedRatio", value=round(ratio, 6),
            threshold=f"<= {quality.max_quarantined_ratio:g}",
            passed=ratio <= quality.max_quarantined_ratio))
    return checks


def model_check(outputs: RunOutputs) -> list[RuleResult]:
    """A derived run that trained a model: a warning when the model was not promoted (the run
    scored with the current one), naming both models' metric (line 0: the catalog's model
    rule). The run still loads: its scores are the current model's."""
    model = outputs.model
    if not model or not model.get("trained"):
        return []
    metric = str(model.get("metric") or "metric")
    new = (model.get("metrics") or {}).get(metric)
    held = (model.get("current_metrics") or {}).get(metric)
    promoted = bool(model.get("promoted"))
    return [RuleResult(
        rule=f'ModelPromotion "{metric}"', line=0, severity="warn", rule_type="ModelPromotion",
        metric_name=f"Model.{metric}",
        value=finite(new) if isinstance(new, int | float) else None,
        threshold="current " + (fmt_value(held) if isinstance(held, int | float) else "none"),
        passed=promoted,
        reason=None if promoted else (
            f"ModelNotPromoted: {model.get('reason')}; this run scored with the current model "
            f"{model.get('current_model')}"))]


def _instant(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return parse_iso_utc(text)
    except ValueError:
        return None


def evaluation_time_check(quality: Quality, run: RunManifest, report: QualityReport
                          ) -> list[RuleResult]:
    """DataFreshness and now() must have been measured against the evaluation time the catalog
    declares (quality.freshness_reference); a job told another instant (or none) would pass or
    fail those rules for the wrong reason, so the run fails instead (line 0: the catalog)."""
    if not any(r.rule_type == "DataFreshness" or "DataFreshness" in r.rule or "now()" in r.rule
               for r in report.rules):
        return []
    started = _instant(run.started_at)
    expected = quality.evaluation_time(run.partition, started) if started else None
    measured = _instant(report.reference_time)
    passed = (expected is not None and measured is not None
              and abs((measured - expected).total_seconds()) < 1)
    shown = expected.isoformat().replace("+00:00", "Z") if expected else "unknown"
    return [RuleResult(
        rule=f"EvaluationTime = {quality.freshness_reference}", line=0, severity="error",
        rule_type="EvaluationTime", metric_name=None, value=None, threshold=f"= {shown}",
        passed=passed,
        reason=None if passed else (
            f"the job measured DataFreshness and now() against {report.reference_time or 'no'}"
            f" reference time; the catalog's freshness_reference "
            f"{quality.freshness_reference!r} means {shown}"))]


def quarantine_fields(outputs: RunOutputs) -> dict[str, Any]:
    """The alert's view of the quarantine: the top reasons with counts, and sample lines."""
    if not outputs.lines.quarantined:
        return {}
    fields: dict[str, Any] = {"top quarantine reasons": "; ".join(
        f"{reason} ({count})" for reason, count in outputs.top_reasons())}
    if outputs.samples:
        fields["sample quarantined lines"] = [
            f"line {line}: {reason}: {clip(text, 200)}" for reason, line, text in outputs.samples]
    return fields


@dataclass(frozen=True)
class _Decided:
    """The gate's outcome for one run."""

    verdict: Verdict
    results: list[RuleResult]
    failed: list[RuleResult]
    warned: list[RuleResult]
    summary: str


# ---------------------------------------------------------------------------------------------
# Logic


class QualityGate:
    """Decides a run's verdict, records it in the ledger, alerts on warn/fail, and publishes
    one metric per rule outcome."""

    def __init__(self, *, reader: JsonReader, ledger: LedgerPort, alerts: AlertPort,
                 metrics: QualityMetrics, engine: RuleEngine,
                 catalog_quality: Callable[[str], Quality], environment: str = "",
                 logger: Any = None):
        self._reader = reader
        self._ledger = ledger
        self._alerts = alerts
        self._metrics = metrics
        self._engine = engine
        self._catalog_quality = catalog_quality
        self._environment = environment
        self._logger = logger

    def evaluate(self, request: EvaluateQualityRequest) -> dict[str, Any]:
        """contracts.QualityResult for the run the request names: one decision per partition
        (each recorded and alerted alone), the run's verdict `fail` only when all fail."""
        run = request.run
        decided: dict[str, QualityResult] = {}
        rows: dict[str, dict[str, int]] = {}
        ledger_reads: dict[int, list[dict[str, Any]]] = {}  # one history query for a batch
        for part in run.partitions:
            one = run.of_partition(part)
            refusal = part.refused or self._job_refusal(one)
            if refusal:
                decided[part.partition] = self._refused(request, one, refusal)
            else:
                decided[part.partition], rows[part.partition] = self._evaluate_run(
                    request, one, ledger_reads)
        if len(decided) == 1:
            [result] = decided.values()
            return result.model_copy(update={"partitions": _verdicts(run, decided, rows)}
                                     ).model_dump(mode="json")
        return batch_result(run, decided, rows).model_dump(mode="json")

    def _job_refusal(self, run: RunManifest) -> str | None:
        """Why the job refused the partition's input (its metrics.json's `error`), or None."""
        metrics = self._reader.read(str(run.metrics_uri))
        error = metrics.get("error") if isinstance(metrics, Mapping) else None
        return str(error) if error else None

    def _refused(self, request: EvaluateQualityRequest, run: RunManifest, reason: str
                 ) -> QualityResult:
        """A partition whose input was refused fails alone: FAILED in the ledger (when others
        of its batch go on; a single run is recorded by HandleFailure) and alerted."""
        summary = clip(f"{run.dataset} partition {run.partition} (run {run.run_id}) was not "
                       f"processed: {reason}", SUMMARY_MAX)
        if len(request.run.partitions) > 1:
            self._ledger.mark_failed(run.run_id, {"state": "EvaluateQuality",
                                                  "error": "InvalidInput", "cause": summary})
        env = f" [{self._environment}]" if self._environment else ""
        self._alerts.publish(Alert(
            subject=f"Input refused{env}: {run.dataset} {run.partition}",
            title=f"The input of {run.dataset} partition {run.partition} was refused: nothing "
                  "from it reached the warehouse.",
            fields={"dataset": run.dataset, "partition": run.partition, "run_id": run.run_id,
                    "reason": reason, "input": run.input.uri if run.input else None,
                    "execution": request.execution.Id},
            attributes={"dataset": run.dataset, "environment": self._environment,
                        "event": "input_refused", "verdict": "fail", "run_id": run.run_id}))
        return QualityResult(verdict="fail", summary=summary, failed_rules=[], warned_rules=[],
                             lines=LineCounts(read=0, written=0, quarantined=0, duplicates=0))

    def _evaluate_run(self, request: EvaluateQualityRequest, run: RunManifest,
                      ledger_reads: dict[int, list[dict[str, Any]]]
                      ) -> tuple[QualityResult, dict[str, int]]:
        """The gate's decision on one partition (`run`: the manifest of that partition), and
        the rows the job wrote to each table."""
        report = parse_quality_report(self._reader.read(str(run.quality_uri)),
                                      str(run.quality_uri))
        outputs = parse_run_outputs(self._reader.read(str(run.metrics_uri)),
                                    str(run.metrics_uri))
        lines = outputs.lines
        quality = self._catalog_quality(run.dataset)
        default_runs = quality.history_runs if any(
            r.outcome == "deferred" for r in report.rules) else 0
        history = self._history(run, report, default_runs, ledger_reads)
        checks = [*output_checks(quality, list(run.outputs), outputs),
                  *evaluation_time_check(quality, run, report), *model_check(outputs)]
        decided = self._decide_all(run, report, history, default_runs, checks)
        self._record(run, report, decided, lines)
        if outputs.model is not None:
            # The model's path, params, metrics, training range and promotion on the ledger
            # item; ResolveRun's next runs take the newest promoted one as current.
            self._ledger.update(run.run_id, {"model": dict(outputs.model)})
        if decided.verdict == "fail" and len(request.run.partitions) > 1:
            self._ledger.mark_failed(run.run_id, {"state": "EvaluateQuality",
                                                  "error": "QualityGateFailed",
                                                  "cause": decided.summary})
        if decided.verdict != "pass":
            self._alerts.publish(self._alert(request, run, decided, outputs))
        self._metrics.publish(run.dataset, run.run_id, decided.verdict,
                              [(r.rule_type, r.outcome_metric) for r in decided.results])
        if self._logger:
            self._logger.info("quality gate decided", extra={
                "run_id": run.run_id, "verdict": decided.verdict, "history_runs": len(history),
                "rules": [{**r.as_contract(), "passed": r.passed, "reason": r.reason}
                          for r in decided.results],
            })
        return QualityResult(
            verdict=decided.verdict, summary=decided.summary,
            failed_rules=[r.outcome() for r in decided.failed],
            warned_rules=[r.outcome() for r in decided.warned],
            lines=lines,
        ), dict(outputs.table_rows)

    def _decide_all(self, run: RunManifest, report: QualityReport,
                    history: Sequence[Mapping[str, float]], default_runs: int,
                    checks: Sequence[RuleResult] = ()) -> _Decided:
        results = [*(self._decide(rule, history, default_runs) for rule in report.rules),
                   *checks]
        failed = [r for r in results if not r.passed and r.severity == "error"]
        warned = [r for r in results if not r.passed and r.severity == "warn"]
        verdict: Verdict = "fail" if failed else "warn" if warned else "pass"
        # The summary becomes the execution's failure cause: keep it far below the 32 KiB limit.
        summary = clip(summarize(run, verdict, results, failed, warned), SUMMARY_MAX)
        return _Decided(verdict, results, failed, warned, summary)

    def _record(self, run: RunManifest, report: QualityReport, decided: _Decided,
                lines: LineCounts) -> None:
        """The run's metrics (the next runs' history), verdict, failed rules and lines on its
        ledger item (InvalidInput if it has none)."""
        measured = dict(report.metrics)
        for r in decided.results:
            if r.metric_name and r.value is not None:
                measured.setdefault(r.metric_name, r.value)
        self._ledger.update(run.run_id, {
            "quality_metrics": measured,
            "quality_verdict": decided.verdict,
            "quality_failed_rules": [
                {**r.as_contract(), "reason": r.reason} if r.reason else r.as_contract()
                for r in [*decided.failed, *decided.warned]],
            "lines": lines.model_dump(mode="json"),
        })

    def _window(self, rule: MeasuredRule, default_runs: int) -> tuple[int, int]:
        """(values to use, values needed) for a deferred rule."""
        needed = self._engine.minimum_history(rule.rule)
        return max(self._engine.history_window(rule.rule) or default_runs, needed), needed

    def _history(self, run: RunManifest, report: QualityReport, default_runs: int,
                 ledger_reads: dict[int, list[dict[str, Any]]]) -> list[dict[str, float]]:
        """quality_metrics of the newest SUCCEEDED runs of the dataset, newest first.

        The partitions of a batch share one ledger query (`ledger_reads`, by window size):
        none of them is SUCCEEDED before the load, so each would read the same runs. Only
        run_id and quality_metrics are read, not whole items."""
        deferred = [r for r in report.rules if r.outcome == "deferred"]
        if not deferred:
            return []
        # A rule asking for more runs (last(k)) than the catalog's default still gets them.
        runs = max(self._window(r, default_runs)[0] for r in deferred)
        if runs not in ledger_reads:
            ledger_reads[runs] = self._ledger.query_by_dataset(
                run.dataset, limit=runs + 1, status="SUCCEEDED",
                fields=("run_id", "quality_metrics"))
        return metric_history(ledger_reads[runs], runs, run.run_id)

    def _decide(self, rule: MeasuredRule, history: Sequence[Mapping[str, float]],
                default_runs: int) -> RuleResult:
        result = RuleResult(rule=rule.rule, line=rule.line, severity=rule.severity,
                            rule_type=rule.rule_type or self._engine.rule_type(rule.rule),
                            metric_name=rule.metric_name, value=rule.value,
                            threshold=rule.threshold, passed=False)
        if rule.outcome != "deferred":
            return result.model_copy(update={"passed": rule.outcome == "pass"})
        if rule.value is None:
            return result
        window, needed = self._window(rule, default_runs)
        points = [h[rule.metric_name] for h in history
                  if rule.metric_name and rule.metric_name in h][:window]
        if len(points) < needed:
            # Never fail for lack of history: a new dataset (or metric) has to be able to start.
            return result.model_copy(update={
                "passed": True, "reason": f"insufficient history ({len(points)} of {needed} runs)"})
        decision = self._engine.decide(rule.rule, rule.value, points)
        return result.model_copy(update={"threshold": decision.threshold,
                                         "passed": decision.passed, "reason": decision.reason})

    def _alert(self, request: EvaluateQualityRequest, run: RunManifest, decided: _Decided,
               outputs: RunOutputs) -> Alert:
        lines = outputs.lines
        env = f" [{self._environment}]" if self._environment else ""
        word = "FAILED" if decided.verdict == "fail" else "WARNING"
        consequence = ("the load was stopped; nothing from this run reached the warehouse"
                       if decided.verdict == "fail" else "the load continues")
        if decided.verdict == "fail" and len(request.run.partitions) > 1:
            consequence = ("this partition is not loaded; the other partitions of batch "
                           f"{request.run.batch_id} are decided alone")
        fields: dict[str, Any] = {"dataset": run.dataset, "partition": run.partition,
                                  "run_id": run.run_id, "verdict": decided.verdict}
        judged = [*decided.failed, *decided.warned]
        for r in judged[:_RULES_IN_ALERT]:
            label = "failed rule" if r.severity == "error" else "warning"
            fields[f"{label} (line {r.line})"] = (
                f"{r.rule} | value {fmt_value(r.value)} ({r.metric_name or 'no metric'}) | "
                f"threshold {r.threshold or 'unknown'}" + (f" | {r.reason}" if r.reason else "")
            )
        if len(judged) > _RULES_IN_ALERT:
            fields["more rules"] = (f"{len(judged) - _RULES_IN_ALERT} more failed or warned "
                                    "rules: see the quality report")
        fields.update({
            "lines": (f"in {lines.read}, out {lines.written}, quarantined {lines.quarantined}, "
                      f"duplicates {lines.duplicates}"),
            **quarantine_fields(outputs),
            "quarantine": run.quarantine_uri,
            "quality report": run.quality_uri,
            "execution": request.execution.Id,
            "summary": decided.summary,
            "failed_rules": [r.as_contract() for r in decided.failed],
            "warned_rules": [r.as_contract() for r in decided.warned],
        })
        return Alert(
            subject=f"Data quality {word}{env}: {run.dataset} {run.partition}",
            title=f"Data quality gate {word} for {run.dataset} partition {run.partition}: "
                  f"{consequence}.",
            fields=fields,
            attributes={"dataset": run.dataset, "environment": self._environment,
                        "event": f"quality_{decided.verdict}", "verdict": decided.verdict,
                        "run_id": run.run_id},
        )


def _verdicts(run: RunManifest, decided: Mapping[str, QualityResult],
              rows: Mapping[str, Mapping[str, int]]) -> dict[str, PartitionQuality]:
    ids = {p.partition: p.run_id for p in run.partitions}
    return {day: PartitionQuality(run_id=ids[day], verdict=r.verdict, summary=r.summary,
                                  lines=r.lines, rows=dict(rows.get(day, {})))
            for day, r in decided.items()}


def batch_result(run: RunManifest, decided: Mapping[str, QualityResult],
                 rows: Mapping[str, Mapping[str, int]]) -> QualityResult:
    """A batch's result: `fail` only when every partition failed (nothing to load), `warn`
    when some failed or warned, else `pass`; the lines summed over the partitions."""
    verdicts = [r.verdict for r in decided.values()]
    failed = sorted(day for day, r in decided.items() if r.verdict == "fail")
    verdict: Verdict = ("fail" if all(v == "fail" for v in verdicts)
                        else "warn" if failed or "warn" in verdicts else "pass")
    loaded = len(verdicts) - len(failed)
    text = (f"Batch {run.batch_id} of {run.dataset} ({run.run_id}): {loaded} of "
            f"{len(verdicts)} partitions pass the gate")
    if failed:
        text += "; failed: " + "; ".join(
            f"{day}: {decided[day].summary}" for day in failed)
    lines = [r.lines for r in decided.values()]
    return QualityResult(
        verdict=verdict, summary=clip(text + ".", SUMMARY_MAX),
        failed_rules=[x for r in decided.values() for x in r.failed_rules],
        warned_rules=[x for r in decided.values() for x in r.warned_rules],
        lines=LineCounts(read=sum(x.read for x in lines),
                         written=sum(x.written for x in lines),
                         quarantined=sum(x.quarantined for x in lines),
                         duplicates=sum(x.duplicates for x in lines)),
        partitions=_verdicts(run, decided, rows))
