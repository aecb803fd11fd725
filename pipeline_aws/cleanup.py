"""Cleanup of what a pipeline execution started: transient EMR clusters and EMR Serverless runs.

Step Functions does not terminate a cluster or cancel a job run when an execution is stopped or
times out, so the state machine's own TerminateClusterOnFailure is not enough. Everything an
execution starts carries the tags `pipeline:app` and `pipeline:execution` (docs/architecture.md),
and this module finds resources by those tags only, so it can never touch another stack's or a
person's resources. Every step is idempotent: a repeated event finds nothing left to do.

Two callers: HandleFailure (through `Cleaner`) and the `cleanup_execution` function, which reacts
to the state machine's "Execution Status Change" events (ABORTED, TIMED_OUT, FAILED) and records
what it did in the run ledger (`ExecutionCleanup`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pipeline_aws import aws_pages, clients
from pipeline_aws.contracts import ExecutionStatusChange
from pipeline_aws.emr import (
    ACTIVE_CLUSTER_STATES,
    APP_TAG,
    EXECUTION_TAG,
    NON_FINAL_JOB_RUN_STATES,
    ClustersPort,
    EmrClusters,
    JobRunsPort,
    ResourceGone,
    ServerlessJobRuns,
)
from pipeline_aws.ledger import LedgerPort, RunLedger, iso_utc
from pipeline_aws.settings import CleanupExecutionSettings
from pipeline_core.errors import ConfigurationError, InvalidInput, PipelineError, TransientError

DONE_RESULTS = ("terminated", "terminated_after_removing_protection", "cancelled")

# ---------------------------------------------------------------------------------------------
# The cleaner (also called by HandleFailure)


class _CleanerSettings(Protocol):
    @property
    def app_name(self) -> str: ...

    @property
    def emr_serverless_application_id(self) -> str | None: ...


class Cleaner:
    """Terminates the clusters and cancels the job runs one execution started."""

    def __init__(self, clusters: ClustersPort, job_runs: JobRunsPort | None, app_name: str):
        if not app_name:
            raise ConfigurationError("Cleaner needs the app name (the pipeline:app tag value)")
        self._clusters = clusters
        self._job_runs = job_runs
        self._app_name = app_name

    @classmethod
    def from_settings(cls, settings: _CleanerSettings) -> Cleaner:
        """The real adapters: EMR, and the job runs of EMR_SERVERLESS_APPLICATION_ID if set."""
        application_id = settings.emr_serverless_application_id or None
        job_runs = (ServerlessJobRuns(clients.client("emr-serverless"), application_id)
                    if application_id else None)
        return cls(EmrClusters(clients.client("emr")), job_runs, settings.app_name)

    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]:
        """Terminate and cancel everything tagged with this execution; returns the actions.

        A resource that fails is reported with result "failed" and an "error", and the others
        are still handled; callers decide whether that is worth a retry.
        """
        if not execution_arn:
            raise InvalidInput("cleanup needs the execution ARN")
        actions = [a for cluster_id in self._clusters.cluster_ids(ACTIVE_CLUSTER_STATES)
                   if (a := self._act("terminate_cluster", cluster_id, execution_arn))]
        if self._job_runs is not None:
            actions.extend(a for job_run_id in self._job_runs.non_final_ids()
                           if (a := self._act("cancel_job_run", job_run_id, execution_arn)))
        return actions

    def _act(self, action: str, resource_id: str, execution_arn: str) -> dict[str, Any] | None:
        """One resource: the action taken, or None when it is not this execution's."""
        act = self._terminate if action == "terminate_cluster" else self._cancel
        try:
            result = act(resource_id, execution_arn)
        except PipelineError as e:
            return {"action": action, "id": resource_id, "result": "failed", "error": str(e)}
        return {"action": action, "id": resource_id, "result": result} if result else None

    def _terminate(self, cluster_id: str, execution_arn: str) -> str | None:
        cluster = self._clusters.describe(cluster_id)
        if cluster is None or cluster.state not in ACTIVE_CLUSTER_STATES:
            return None
        if (cluster.tags.get(APP_TAG) != self._app_name
                or cluster.tags.get(EXECUTION_TAG) != execution_arn):
            return None
        # Tagged with our app and this execution: we created it, so protection that someone
        # switched on must not keep it (and its bill) alive.
        return self._clusters.terminate(cluster, remove_protection=True)

    def _cancel(self, job_run_id: str, execution_arn: str) -> str | None:
        assert self._job_runs is not None
        run = self._job_runs.get(job_run_id)
        if run is None or run.tags.get(EXECUTION_TAG) != execution_arn:
            return None
        # The application is ours; a run that names another app is not.
        if run.tags.get(APP_TAG, self._app_name) != self._app_name:
            return None
        if run.state not in NON_FINAL_JOB_RUN_STATES:
            return None
        return self._job_runs.cancel(job_run_id)


# ---------------------------------------------------------------------------------------------
# cleanup_execution: the EventBridge-triggered function


@dataclass(frozen=True)
class RunRef:
    run_id: str
    duplicate: bool


class RunsPort(Protocol):
    def run_of(self, execution_arn: str) -> RunRef | None: ...


class ExecutionRuns:
    """Finds the run an execution resolved, from its history (ResolveRun's output).

    Why the history and not the event: the event's `input` is the trigger event (and is left
    out above 256 KiB), and recomputing the run_id from it would repeat ResolveRun's rule,
    which also depends on the ledger (re-runs get `-r<attempt>`); duplicate deliveries even
    resolve to another execution's run_id. The history holds the run_id ResolveRun decided.
    """

    RESOLVE_STATE = "ResolveRun"
    _GONE = dict.fromkeys(("ExecutionDoesNotExist", "InvalidArn"), ResourceGone)

    def __init__(self, sfn_client: Any):
        self._sfn = sfn_client

    def run_of(self, execution_arn: str) -> RunRef | None:
        events = aws_pages(f"reading the history of {execution_arn}",
                           self._sfn.get_execution_history, "events", "nextToken",
                           codes=self._GONE, executionArn=execution_arn, maxResults=1000,
                           reverseOrder=False, includeExecutionData=True)
        try:
            return next((run for event in events if (run := self._resolved(event))), None)
        except ResourceGone:
            return None

    def _resolved(self, event: Mapping[str, Any]) -> RunRef | None:
        if not str(event.get("type", "")).endswith("StateExited"):
            return None
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") != self.RESOLVE_STATE:
            return None
        try:
            output = json.loads(details.get("output") or "null")
        except ValueError:
            return None  # truncated output: not parseable
        run = output.get("run") if isinstance(output, dict) else None
        # A caught ResolveRun failure exits too, without `run`.
        if not isinstance(run, dict) or not isinstance(run.get("run_id"), str):
            return None
        return RunRef(run_id=run["run_id"], duplicate=bool(run.get("duplicate", False)))


class _Cleaner(Protocol):
    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]: ...


class _CleanupMetrics(Protocol):
    def publish(self, actions: Sequence[Mapping[str, Any]]) -> None: ...


class EmfCleanupMetrics:
    """ResourcesCleanedUp and CleanupFailures per invocation (the dimension, environment, is
    the Metrics' default dimension: see pipeline_aws.observability)."""

    def __init__(self, metrics: Any):
        self._metrics = metrics

    def publish(self, actions: Sequence[Mapping[str, Any]]) -> None:
        failed = sum(1 for a in actions if a.get("result") == "failed")
        done = sum(1 for a in actions if a.get("result") in DONE_RESULTS)
        self._metrics.add_metric(name="ResourcesCleanedUp", unit="Count", value=done)
        self._metrics.add_metric(name="CleanupFailures", unit="Count", value=failed)


class ExecutionCleanup:
    """Cleans up after an execution that ended ABORTED, TIMED_OUT or FAILED, and records it."""

    def __init__(self, cleaner: _Cleaner, runs: RunsPort, ledger: LedgerPort,
                 metrics: _CleanupMetrics, logger: Any,
                 clock: Callable[[], datetime] | None = None):
        self._cleaner = cleaner
        self._runs = runs
        self._ledger = ledger
        self._metrics = metrics
        self._logger = logger
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: CleanupExecutionSettings, metrics: Any,
                      logger: Any) -> ExecutionCleanup:
        return cls(
            cleaner=Cleaner.from_settings(settings),
            runs=ExecutionRuns(clients.client("stepfunctions")),
            ledger=RunLedger(clients.table(settings.ledger_table)),
            metrics=EmfCleanupMetrics(metrics),
            logger=logger,
        )

    def handle(self, change: ExecutionStatusChange) -> dict[str, Any]:
        """Returns {execution_arn, status, run_id, actions, ledger}.

        Raises TransientError after recording when a resource could not be cleaned up, so the
        asynchronous invocation is retried; the retry only finds what is left.
        """
        arn = change.detail.executionArn
        actions = self._cleaner.cleanup_execution(arn)
        for action in actions:
            self._logger.info("cleanup action", extra={"execution_arn": arn, "action": action})
        run = self._runs.run_of(arn)
        ledger = self._record(change, run, actions)
        self._metrics.publish(actions)
        result = {"execution_arn": arn, "status": change.detail.status,
                  "run_id": run.run_id if run else None, "actions": actions, "ledger": ledger}
        self._logger.info("execution cleaned up", extra={"result": result})
        failed = [a for a in actions if a.get("result") == "failed"]
        if failed:
            raise TransientError(
                f"{len(failed)} resource(s) of {arn} could not be cleaned up: "
                + "; ".join(f"{a['id']}: {a.get('error')}" for a in failed))
        return result

    def _record(self, change: ExecutionStatusChange, run: RunRef | None,
                actions: list[dict[str, Any]]) -> dict[str, Any]:
        """Close the run's ledger item and append the actions, when the item is this
        execution's; returns what was written."""
        ledger: dict[str, Any] = {"status_updated": False, "cleanup_recorded": False}
        if run is None:
            ledger["note"] = "the execution never resolved a run: no ledger item to update"
            return ledger
        if run.duplicate:
            ledger["note"] = "duplicate delivery: the ledger item belongs to another execution"
            return ledger
        detail = change.detail
        now = self._clock()
        ledger["status_updated"] = self._ledger.close_run(
            run.run_id, detail.executionArn, detail.status,
            ended_at=iso_utc(change.stopped_at or now),
            error=detail.error, cause=detail.cause)
        if actions:
            stamped = [{**a, "by": "cleanup_execution", "trigger": detail.status,
                        "at": iso_utc(now)} for a in actions]
            ledger["cleanup_recorded"] = self._ledger.append_cleanup(
                run.run_id, detail.executionArn, stamped)
        return ledger
