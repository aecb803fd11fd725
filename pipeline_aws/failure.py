"""HandleFailure: stop what the run started, record why it failed, and tell a person.

Order matters: stopping the EMR resources comes first (they cost money and may still write),
then the ledger, then the alert. Each step is idempotent, so a retried invocation repeats them
safely. The input object is never touched. A running Redshift load statement is cancelled
before this, by CancelLoad: only the function that submitted a statement may cancel it (the
Data API scopes statements to their owner), so this function only records that action.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from pipeline_aws.alerts import Alert, AlertPort, clip
from pipeline_aws.contracts import FailureSummary, HandleFailureRequest
from pipeline_aws.lazy import Lazy
from pipeline_aws.ledger import LedgerPort
from pipeline_aws.settings import HandleFailureSettings
from pipeline_core.errors import PipelineError
from pipeline_core.failure_causes import classify_text

if TYPE_CHECKING:  # read on first use (pipeline_aws.lazy): only some failures need it
    from pipeline_core.catalog import Catalog

CAUSE_MAX = 2000
# States that run after the EMR work started; a failure before them started nothing on EMR.
_NOTHING_STARTED = ("ResolveRun",)
_SECONDARY = ("TerminateClusterOnFailure",)
# States whose cause is what EMR reported about the Spark job (its stateDetails or FailureDetails)
_JOB_STATES = ("RunServerlessJob", "RunClusterStep")


@dataclass(frozen=True)
class FailureInfo:
    state: str
    error: str
    cause: str
    raw_cause: Any
    also_failed: dict[str, str]
    logs: str | None = None  # where EMR's report says the logs are (a step's LogFile)


class _Cleaner(Protocol):
    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]: ...


def section(state: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`state[name]` when it is an object, else an empty one: the state may be partial."""
    value = state.get(name)
    return value if isinstance(value, Mapping) else {}


def default_cleaner(settings: HandleFailureSettings) -> _Cleaner:
    """The EMR cleaner of pipeline_aws.cleanup (imported here so tests can inject a fake)."""
    from pipeline_aws.cleanup import Cleaner

    return Cleaner.from_settings(settings)


def _find(data: Any, names: tuple[str, ...], depth: int = 0) -> Any:
    """The first value under any of `names` (case-insensitive) in nested JSON."""
    if depth > 6:
        return None
    wanted = {n.lower() for n in names}
    if isinstance(data, Mapping):
        for key, value in data.items():
            if str(key).lower() in wanted and value not in (None, "", {}, []):
                return value
        for value in data.values():
            found = _find(value, names, depth + 1)
            if found is not None:
                return found
    elif isinstance(data, list):
        for value in data:
            found = _find(value, names, depth + 1)
            if found is not None:
                return found
    return None


def _parse_json(text: Any) -> Any:
    if isinstance(text, Mapping | list):
        return text
    if isinstance(text, str) and text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return None
    return None


def summarize_cause(cause: Any) -> str:
    """A readable cause: a Lambda's `Type: message` without its stack, EMR's state details, or
    the text itself, clipped to CAUSE_MAX characters."""
    if cause is None or cause == "":
        return ""
    data = _parse_json(cause)
    if isinstance(data, Mapping):
        if "errorMessage" in data:
            kind = data.get("errorType") or "Error"
            return clip(f"{kind}: {data['errorMessage']}", CAUSE_MAX)
        for names in (("StateDetails", "stateDetails"), ("FailureDetails",), ("Message",),
                      ("Error",)):
            found = _find(data, names)
            if isinstance(found, Mapping):
                found = found.get("Message") or found.get("Reason") or json.dumps(found)
            if found:
                return clip(str(found), CAUSE_MAX)
    text = cause if isinstance(cause, str) else json.dumps(cause, default=str)
    return clip(text, CAUSE_MAX)


def job_cause(cause: Any) -> tuple[str, str | None]:
    """What EMR reported about a failed Spark job, as one line (pipeline_core.failure_causes),
    and where that report says the logs are (an EMR step's FailureDetails.LogFile)."""
    data = _parse_json(cause)
    logs = None
    text: Any = cause
    if isinstance(data, Mapping):
        details = _find(data, ("FailureDetails",))
        state_details = _find(data, ("StateDetails", "stateDetails"))
        if isinstance(details, Mapping):
            text = "\n".join(str(details.get(k) or "") for k in ("Message", "Reason")).strip()
            logs = details.get("LogFile") or None
        elif state_details:
            text = state_details
    if not isinstance(text, str):
        text = json.dumps(text, default=str)
    found = classify_text(text)
    return clip(found.line, CAUSE_MAX), (str(logs) if logs else found.logs)


def failure_of(state: Mapping[str, Any], state_name: str | None) -> FailureInfo:
    """Which state failed and how, from `state.failure` ({<State>: {Error, Cause}})."""
    failures = state.get("failure")
    if not isinstance(failures, Mapping) or not failures:
        return FailureInfo(state_name or "unknown", "Unknown",
                           "the state machine passed no failure details", None, {})
    names = list(failures)
    primary = next((n for n in names if n not in _SECONDARY), names[0])
    detail = failures[primary] if isinstance(failures[primary], Mapping) else {}
    also = {}
    for name in names:
        if name != primary:
            other = failures[name] if isinstance(failures[name], Mapping) else {}
            also[name] = f"{other.get('Error', 'Unknown')}: {summarize_cause(other.get('Cause'))}"
    if primary in _JOB_STATES and detail.get("Cause"):
        cause, logs = job_cause(detail.get("Cause"))
        return FailureInfo(primary, str(detail.get("Error") or "Unknown"), cause,
                           detail.get("Cause"), also, logs)
    return FailureInfo(primary, str(detail.get("Error") or "Unknown"),
                       summarize_cause(detail.get("Cause")), detail.get("Cause"), also)


def log_location(state: Mapping[str, Any], failure: FailureInfo, artifacts_bucket: str
                 ) -> str | None:
    """Where the job's logs are, when a job ran: EMR Serverless or EMR cluster layout."""
    cause = _parse_json(failure.raw_cause)
    job_run = section(state, "job_run")
    app_id = job_run.get("application_id") or _find(cause, ("ApplicationId",))
    job_run_id = job_run.get("job_run_id") or _find(cause, ("JobRunId",))
    if isinstance(app_id, str) and isinstance(job_run_id, str):
        return (f"s3://{artifacts_bucket}/logs/emr-serverless/applications/{app_id}/jobs/"
                f"{job_run_id}/")
    cluster_id = section(state, "cluster").get("cluster_id") or _find(cause, ("ClusterId",))
    if isinstance(cluster_id, str) and re.fullmatch(r"j-[A-Z0-9]+", cluster_id):
        step_id = _step_id(state, cause)
        base = f"s3://{artifacts_bucket}/logs/emr/{cluster_id}/"
        return f"{base}steps/{step_id}/" if isinstance(step_id, str) else base
    return None


def _step_id(state: Mapping[str, Any], cause: Any) -> Any:
    """The cluster step's id: from `$.cluster_step`, else from the failed step's description."""
    step_id = section(state, "cluster_step").get("step_id") or _find(cause, ("StepId",))
    if not step_id and isinstance(cause, Mapping):
        step = _find(cause, ("Step",))
        step_id = step.get("Id") if isinstance(step, Mapping) else None
    return step_id


def located(state: Mapping[str, Any], failure: FailureInfo, artifacts_bucket: str
            ) -> tuple[FailureInfo, str | None]:
    """Where the logs are (EMR's own LogFile, else the log layout of log_location); a failed
    job's cause then ends with them, so its one line says what happened and where to look."""
    logs = failure.logs or log_location(state, failure, artifacts_bucket)
    if failure.state in _JOB_STATES and logs:
        failure = replace(failure, cause=clip(f"{failure.cause}; logs: {logs}", CAUSE_MAX))
    return failure, logs


def load_cancel_action(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """What CancelLoad did to the load statement (`$.load_cancel`), as a cleanup action: its
    result, or its error when the cancel itself failed; None when it did not run."""
    cancel = section(state, "load_cancel")
    if not cancel:
        return None
    statement_id = cancel.get("id") or section(state, "load").get("statement_id")
    action: dict[str, Any] = {"action": "cancel_statement", "id": statement_id}
    if cancel.get("result"):
        action["result"] = cancel["result"]
    else:
        action.update(result="failed", error=f"{cancel.get('Error', 'Unknown')}: "
                                             f"{summarize_cause(cancel.get('Cause'))}")
    return action


class FailureHandler:
    def __init__(self, *, settings: HandleFailureSettings, ledger: LedgerPort,
                 alerts: AlertPort, cleaner: _Cleaner,
                 catalog: Catalog | Callable[[], Catalog] | None = None, logger: Any = None,
                 metrics: Any = None):
        self._settings = settings
        self._ledger = ledger
        self._alerts = alerts
        self._cleaner = cleaner
        self._catalog = Lazy(catalog) if catalog is not None else None
        self._logger = logger
        self._metrics = metrics

    def _where(self, state: Mapping[str, Any]) -> tuple[str, str | None]:
        """Dataset and partition: from the manifest, else from the trigger, else "unknown"."""
        run = section(state, "run")
        if run.get("dataset"):
            return str(run["dataset"]), run.get("partition")
        key = _find(state.get("detail"), ("key",)) or state.get("key")
        try:
            if isinstance(key, str) and self._catalog is not None:
                dataset, partition = self._catalog.get().match_key(key)
                return dataset.name, partition
        except PipelineError:
            pass
        name = state.get("dataset")
        if isinstance(name, str) and re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            date = state.get("date")
            return name, date if isinstance(date, str) else None
        return "unknown", None

    def _cleanup(self, request: HandleFailureRequest, failure: FailureInfo
                 ) -> list[Mapping[str, Any]]:
        state = request.state
        actions: list[Mapping[str, Any]] = []
        cancel = load_cancel_action(state)
        if cancel is not None:
            actions.append(cancel)
        if failure.state not in _NOTHING_STARTED and isinstance(state.get("run"), Mapping):
            try:
                actions.extend(self._cleaner.cleanup_execution(request.execution.Id))
            except PipelineError as e:
                actions.append({"action": "cleanup_execution", "id": request.execution.Id,
                                "result": "failed", "error": str(e)})
        return actions

    def handle(self, request: HandleFailureRequest) -> dict[str, Any]:
        state = request.state
        failure = failure_of(state, request.state_name)
        run = section(state, "run")
        run_id = str(run.get("run_id") or request.execution.Name)
        where = self._where(state)
        failure, logs = located(state, failure, self._settings.artifacts_bucket)
        cleanup = self._cleanup(request, failure)
        self._record(request, run_id, where, failure, logs, cleanup)
        self._alerts.publish(self._alert(request, run_id, where, failure, logs, cleanup))
        if self._metrics:
            self._metrics.add_metric(name="RunsFailed", unit="Count", value=1)
        if self._logger:
            self._logger.error("run failed", extra={"run_id": run_id, "failed_state": failure.state,
                                                    "error": failure.error, "logs": logs,
                                                    "cleanup": cleanup})
        return FailureSummary(failed_state=failure.state, error=failure.error,
                              cause=failure.cause, logs=logs,
                              cleanup=[dict(a) for a in cleanup]).model_dump(mode="json")

    def _record(self, request: HandleFailureRequest, run_id: str, where: tuple[str, str | None],
                failure: FailureInfo, logs: str | None, cleanup: list[Mapping[str, Any]]
                ) -> None:
        """FAILED on the run's item; an item for a run without one (ResolveRun failed)."""
        run = section(request.state, "run")
        record: dict[str, Any] = {"state": failure.state, "error": failure.error,
                                  "cause": failure.cause, "logs": logs}
        if failure.also_failed:
            record["also_failed"] = failure.also_failed
        inp = section(run, "input")
        defaults = {"dataset": where[0], "partition": where[1],
                    "execution_arn": request.execution.Id,
                    "started_at": run.get("started_at") or request.execution.StartTime,
                    "trigger": run.get("trigger"), "attempt": run.get("attempt"),
                    "input": ({k: inp.get(k) for k in ("bucket", "key", "etag", "size")}
                              if inp else None)}
        self._ledger.mark_failed(run_id, record, cleanup=cleanup, defaults=defaults)
        for part_id, partition in batch_partitions(request.state, run_id):
            self._ledger.mark_failed(part_id, record, defaults={
                "dataset": where[0], "partition": partition,
                "execution_arn": request.execution.Id})


    def _alert(self, request: HandleFailureRequest, run_id: str, where: tuple[str, str | None],
               failure: FailureInfo, logs: str | None, cleanup: list[Mapping[str, Any]]
               ) -> Alert:
        run = section(request.state, "run")
        dataset, partition = where
        env = self._settings.environment
        return Alert(
            subject=f"[{env}] {dataset} {partition or ''} failed at {failure.state}: "
                    f"{failure.error}",
            title=f"Pipeline run failed in {failure.state} ({self._settings.app_name}, {env})",
            fields={
                "Dataset": dataset,
                "Partition": partition,
                "Run id": run_id,
                "Attempt": run.get("attempt"),
                "Failed state": failure.state,
                "Error": failure.error,
                "Cause": failure.cause,
                "Logs": logs or "no job ran; see the execution history",
                "Also failed": failure.also_failed or None,
                "Input (kept in place)": section(run, "input").get("uri"),
                "Execution": request.execution.Id,
                "Cleanup": cleanup,
                "Re-run": (f'start the state machine with {{"dataset": "{dataset}", '
                           f'"date": "{partition}", "rerun": true}}') if partition else None,
            },
            attributes={"dataset": dataset, "environment": env, "event": "run_failed",
                        "failed_state": failure.state},
        )


def batch_partitions(state: Mapping[str, Any], run_id: str) -> list[tuple[str, str]]:
    """(run id, partition) of each partition of a failed batch that the gate did not fail
    already (it recorded those with their own cause): they end with the batch's failure."""
    run = section(state, "run")
    parts = run.get("partitions")
    if not isinstance(parts, list):
        return []
    decided = section(section(state, "quality"), "partitions")
    out = []
    for part in parts:
        if not isinstance(part, Mapping) or part.get("run_id") in (None, run_id):
            continue
        if part.get("refused") or section(decided, str(part.get("partition"))).get(
                "verdict") == "fail":
            continue
        out.append((str(part["run_id"]), str(part.get("partition"))))
    return out
