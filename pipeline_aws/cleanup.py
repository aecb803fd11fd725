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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from pipeline_core.errors import ConfigurationError, InvalidInput, PipelineError, TransientError

APP_TAG = "pipeline:app"
EXECUTION_TAG = "pipeline:execution"
ACTIVE_CLUSTER_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
NON_FINAL_JOB_RUN_STATES = ("SUBMITTED", "PENDING", "SCHEDULED", "RUNNING", "QUEUED")
ACTIVE_STEP_STATES = frozenset({"PENDING", "CANCEL_PENDING", "RUNNING"})

_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestTimeout",
    "InternalError", "InternalServerError", "InternalServerException", "InternalFailure",
    "ServiceUnavailable", "ServiceUnavailableException", "TransactionConflictException",
})
_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _error_code(e: ClientError) -> tuple[str, int | None, str]:
    err = e.response.get("Error", {})
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(err.get("Code", "")), status, str(err.get("Message", "")) or str(e)


class ResourceGone(PipelineError):
    """The cluster or job run no longer exists (or never did): nothing to act on."""


class AlreadyFinal(PipelineError):
    """The job run reached a final state before it could be cancelled."""


def _domain_error(what: str, e: ClientError,
                  gone_codes: frozenset[str] = frozenset(),
                  final_codes: frozenset[str] = frozenset()) -> PipelineError:
    """Map a ClientError to one of the few errors callers act on."""
    code, status, message = _error_code(e)
    text = f"{what} failed ({code}): {message}"
    if code in gone_codes:
        return ResourceGone(text)
    if code in final_codes:
        return AlreadyFinal(text)
    if code in _TRANSIENT_CODES or (status is not None and status >= 500):
        return TransientError(text)
    if code in _ACCESS_DENIED:
        return ConfigurationError(f"{text}: the function's role lacks this permission")
    return ConfigurationError(text)


def _aware(value: Any) -> datetime | None:
    """boto3 returns aware datetimes; keep them aware and in UTC."""
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# EMR on EC2 clusters (shared with the auto-terminator)


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str
    name: str
    state: str
    tags: Mapping[str, str]
    termination_protected: bool
    created_at: datetime | None
    ready_at: datetime | None


@dataclass(frozen=True)
class StepActivity:
    """What the auto-terminator needs from a cluster's steps."""

    active: int
    last_ended_at: datetime | None


class EmrClusters:
    """The EMR calls cleanup and the auto-terminator make, with ClientErrors mapped."""

    # EMR answers InvalidRequestException for an unknown cluster id.
    _GONE = frozenset({"InvalidRequestException", "ResourceNotFoundException"})

    def __init__(self, emr_client: Any):
        self._emr = emr_client

    def cluster_ids(self, states: Sequence[str] = ACTIVE_CLUSTER_STATES) -> Iterator[str]:
        """Ids of the clusters in `states`, every page (ListClusters pages by Marker)."""
        kwargs: dict[str, Any] = {"ClusterStates": list(states)}
        while True:
            page = self._call("listing EMR clusters", self._emr.list_clusters, **kwargs)
            for summary in page.get("Clusters", []):
                yield summary["Id"]
            marker = page.get("Marker")
            if not marker:
                return
            kwargs["Marker"] = marker

    def describe(self, cluster_id: str) -> ClusterInfo | None:
        """The cluster, or None when it is gone or this role may not read it (not ours)."""
        try:
            cluster = self._call(f"describing EMR cluster {cluster_id}",
                                 self._emr.describe_cluster, ClusterId=cluster_id)["Cluster"]
        except ResourceGone:
            return None
        status = cluster.get("Status", {})
        timeline = status.get("Timeline", {})
        return ClusterInfo(
            cluster_id=cluster_id,
            name=str(cluster.get("Name", "")),
            state=str(status.get("State", "")),
            tags={t["Key"]: t.get("Value", "") for t in cluster.get("Tags", [])},
            termination_protected=bool(cluster.get("TerminationProtected", False)),
            created_at=_aware(timeline.get("CreationDateTime")),
            ready_at=_aware(timeline.get("ReadyDateTime")),
        )

    def step_activity(self, cluster_id: str) -> StepActivity:
        """Active steps and the latest step end, over every page of ListSteps."""
        active = 0
        last_end: datetime | None = None
        kwargs: dict[str, Any] = {"ClusterId": cluster_id}
        while True:
            page = self._call(f"listing the steps of EMR cluster {cluster_id}",
                              self._emr.list_steps, **kwargs)
            for step in page.get("Steps", []):
                status = step.get("Status", {})
                if status.get("State") in ACTIVE_STEP_STATES:
                    active += 1
                ended = _aware(status.get("Timeline", {}).get("EndDateTime"))
                if ended is not None and (last_end is None or ended > last_end):
                    last_end = ended
            marker = page.get("Marker")
            if not marker:
                return StepActivity(active=active, last_ended_at=last_end)
            kwargs["Marker"] = marker

    def idle_timeout_seconds(self, cluster_id: str) -> int | None:
        """The cluster's AutoTerminationPolicy idle timeout, None when it has no policy."""
        try:
            policy = self._call(f"reading the auto-termination policy of {cluster_id}",
                                self._emr.get_auto_termination_policy, ClusterId=cluster_id)
        except PipelineError:
            # Only a metric estimate depends on this: never let it block a termination.
            return None
        timeout = policy.get("AutoTerminationPolicy", {}).get("IdleTimeout")
        return int(timeout) if timeout is not None else None

    def terminate(self, cluster: ClusterInfo, remove_protection: bool) -> str:
        """Terminate; switch protection off first when allowed. Returns what was done."""
        if cluster.termination_protected:
            if not remove_protection:
                raise ConfigurationError(
                    f"cluster {cluster.cluster_id} is termination protected and not allowed")
            self._call(f"removing termination protection from {cluster.cluster_id}",
                       self._emr.set_termination_protection,
                       JobFlowIds=[cluster.cluster_id], TerminationProtected=False)
        self._call(f"terminating EMR cluster {cluster.cluster_id}",
                   self._emr.terminate_job_flows, JobFlowIds=[cluster.cluster_id])
        return ("terminated_after_removing_protection" if cluster.termination_protected
                else "terminated")

    def _call(self, what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as e:
            raise _domain_error(what, e, gone_codes=self._GONE) from e


# ---------------------------------------------------------------------------------------------
# EMR Serverless job runs


@dataclass(frozen=True)
class JobRunInfo:
    job_run_id: str
    state: str
    tags: Mapping[str, str]


class ServerlessJobRuns:
    """The EMR Serverless calls cleanup makes for one application.

    Tags are read with GetJobRun (its JobRun carries `tags`) rather than ListTagsForResource:
    one call gives the tags and the current state, so a run that finished since the listing is
    left alone, and moto 5.2.5 implements GetJobRun but not emr-serverless ListTagsForResource.
    """

    _GONE = frozenset({"ResourceNotFoundException"})
    # CancelJobRun documents only ValidationException, ResourceNotFoundException and
    # InternalServerException; our ids come from the listing, so a ValidationException means
    # the run left the cancellable states in between.
    _FINAL = frozenset({"ValidationException"})

    def __init__(self, client: Any, application_id: str):
        self._client = client
        self._application_id = application_id

    def non_final_ids(self) -> Iterator[str]:
        kwargs: dict[str, Any] = {"applicationId": self._application_id,
                                  "states": list(NON_FINAL_JOB_RUN_STATES)}
        while True:
            try:
                page = self._call("listing EMR Serverless job runs",
                                  self._client.list_job_runs, **kwargs)
            except ResourceGone:
                return
            for run in page.get("jobRuns", []):
                yield run["id"]
            token = page.get("nextToken")
            if not token:
                return
            kwargs["nextToken"] = token

    def get(self, job_run_id: str) -> JobRunInfo | None:
        try:
            run = self._call(f"reading job run {job_run_id}", self._client.get_job_run,
                             applicationId=self._application_id,
                             jobRunId=job_run_id)["jobRun"]
        except ResourceGone:
            return None
        return JobRunInfo(job_run_id=job_run_id, state=str(run.get("state", "")),
                          tags=dict(run.get("tags") or {}))

    def cancel(self, job_run_id: str) -> str:
        try:
            self._call(f"cancelling job run {job_run_id}", self._client.cancel_job_run,
                       applicationId=self._application_id, jobRunId=job_run_id)
        except AlreadyFinal:
            return "already_final"
        except ResourceGone:
            return "not_found"
        return "cancelled"

    def _call(self, what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as e:
            raise _domain_error(what, e, gone_codes=self._GONE, final_codes=self._FINAL) from e


# ---------------------------------------------------------------------------------------------
# The cleaner (also called by HandleFailure)


class _CleanerSettings(Protocol):
    app_name: str
    emr_serverless_application_id: str | None


class Cleaner:
    """Terminates the clusters and cancels the job runs one execution started."""

    def __init__(self, emr: Any, emr_serverless: Any, application_id: str | None, app_name: str):
        if not app_name:
            raise ConfigurationError("Cleaner needs the app name (the pipeline:app tag value)")
        self._clusters = EmrClusters(emr)
        self._job_runs = (ServerlessJobRuns(emr_serverless, application_id)
                          if application_id and emr_serverless is not None else None)
        self._app_name = app_name

    @classmethod
    def from_env(cls, settings: _CleanerSettings) -> Cleaner:
        import boto3

        application_id = settings.emr_serverless_application_id or None
        return cls(emr=boto3.client("emr"),
                   emr_serverless=boto3.client("emr-serverless") if application_id else None,
                   application_id=application_id, app_name=settings.app_name)

    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]:
        """Terminate and cancel everything tagged with this execution; returns the actions.

        A resource that fails is reported with result "failed" and an "error", and the others
        are still handled; callers decide whether that is worth a retry.
        """
        if not execution_arn:
            raise InvalidInput("cleanup needs the execution ARN")
        actions = self._terminate_clusters(execution_arn)
        if self._job_runs is not None:
            actions.extend(self._cancel_job_runs(execution_arn))
        return actions

    def _terminate_clusters(self, execution_arn: str) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = []
        for cluster_id in self._clusters.cluster_ids(ACTIVE_CLUSTER_STATES):
            action: dict[str, Any] = {"action": "terminate_cluster", "id": cluster_id}
            try:
                cluster = self._clusters.describe(cluster_id)
                if cluster is None or cluster.state not in ACTIVE_CLUSTER_STATES:
                    continue
                if (cluster.tags.get(APP_TAG) != self._app_name
                        or cluster.tags.get(EXECUTION_TAG) != execution_arn):
                    continue
                # Tagged with our app and this execution: we created it, so protection that
                # someone switched on must not keep it (and its bill) alive.
                action["result"] = self._clusters.terminate(cluster, remove_protection=True)
            except PipelineError as e:
                action.update(result="failed", error=str(e))
            actions.append(action)
        return actions

    def _cancel_job_runs(self, execution_arn: str) -> list[dict[str, Any]]:
        assert self._job_runs is not None
        actions: list[dict[str, Any]] = []
        for job_run_id in self._job_runs.non_final_ids():
            action: dict[str, Any] = {"action": "cancel_job_run", "id": job_run_id}
            try:
                run = self._job_runs.get(job_run_id)
                if run is None or run.tags.get(EXECUTION_TAG) != execution_arn:
                    continue
                # The application is ours; a run that names another app is not.
                if run.tags.get(APP_TAG, self._app_name) != self._app_name:
                    continue
                if run.state not in NON_FINAL_JOB_RUN_STATES:
                    continue
                action["result"] = self._job_runs.cancel(job_run_id)
            except PipelineError as e:
                action.update(result="failed", error=str(e))
            actions.append(action)
        return actions


# ---------------------------------------------------------------------------------------------
# cleanup_execution: the EventBridge-triggered function


class CleanupSettings(BaseModel):
    """The cleanup_execution function's environment, validated at cold start."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    environment: StrictStr = Field(alias="ENVIRONMENT", min_length=1)
    app_name: StrictStr = Field(alias="APP_NAME", min_length=1)
    ledger_table: StrictStr = Field(alias="LEDGER_TABLE", min_length=3)
    emr_serverless_application_id: StrictStr | None = Field(
        alias="EMR_SERVERLESS_APPLICATION_ID", default=None)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> CleanupSettings:
        import os

        values = dict(os.environ if environ is None else environ)
        if not values.get("EMR_SERVERLESS_APPLICATION_ID"):
            values.pop("EMR_SERVERLESS_APPLICATION_ID", None)
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise ConfigurationError(
                f"cleanup_execution environment is invalid: {_validation_message(e)}") from e


class _ExecutionDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    executionArn: StrictStr = Field(pattern=r"^arn:aws[\w-]*:states:[^:]+:\d{12}:execution:")
    stateMachineArn: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    status: Literal["ABORTED", "TIMED_OUT", "FAILED"]
    startDate: int | None = None
    stopDate: int | None = None
    error: str | None = None
    cause: str | None = None


class ExecutionStatusChange(BaseModel):
    """EventBridge "Step Functions Execution Status Change" (source aws.states)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: StrictStr
    source: Literal["aws.states"]
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    time: StrictStr
    detail: _ExecutionDetail

    @property
    def stopped_at(self) -> datetime | None:
        if self.detail.stopDate is None:
            return None
        return datetime.fromtimestamp(self.detail.stopDate / 1000, tz=UTC)


def parse_status_change(event: Any) -> ExecutionStatusChange:
    try:
        return ExecutionStatusChange.model_validate(event)
    except ValidationError as e:
        raise InvalidInput(f"cleanup_execution input is invalid: {_validation_message(e)}") from e


@dataclass(frozen=True)
class RunRef:
    run_id: str
    duplicate: bool


class ExecutionRuns:
    """Finds the run an execution resolved, from its history (ResolveRun's output).

    Why the history and not the event: the event's `input` is the trigger event (and is left
    out above 256 KiB), and recomputing the run_id from it would repeat ResolveRun's rule,
    which also depends on the ledger (re-runs get `-r<attempt>`); duplicate deliveries even
    resolve to another execution's run_id. The history holds the run_id ResolveRun decided.
    """

    RESOLVE_STATE = "ResolveRun"
    _GONE = frozenset({"ExecutionDoesNotExist", "InvalidArn"})

    def __init__(self, sfn_client: Any):
        self._sfn = sfn_client

    def run_of(self, execution_arn: str) -> RunRef | None:
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000,
                                  "reverseOrder": False, "includeExecutionData": True}
        while True:
            try:
                page = self._sfn.get_execution_history(**kwargs)
            except ClientError as e:
                error = _domain_error(f"reading the history of {execution_arn}", e,
                                      gone_codes=self._GONE)
                if isinstance(error, ResourceGone):
                    return None
                raise error from e
            for event in page.get("events", []):
                found = self._resolved(event)
                if found is not None:
                    return found
            token = page.get("nextToken")
            if not token:
                return None
            kwargs["nextToken"] = token

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


class CleanupLedger:
    """The cleanup's two writes on a run's ledger item; both require the item to be this
    execution's (execution_arn), so a duplicate or a later re-run is never touched."""

    def __init__(self, table: Any):
        self._table = table

    def close_run(self, run_id: str, execution_arn: str, status: str, ended_at: str,
                  updated_at: str, error: str | None, cause: str | None) -> bool:
        """RUNNING -> `status`; False when the run already ended (never overwritten)."""
        names = {"#s": "status", "#e": "execution_arn"}
        values: dict[str, Any] = {":s": status, ":running": "RUNNING", ":arn": execution_arn,
                                  ":ended": ended_at, ":u": updated_at}
        expression = "SET #s = :s, ended_at = :ended, updated_at = :u"
        if error or cause:
            names["#f"] = "failure"
            values[":f"] = {"state": "(execution)", "error": error or status,
                            "cause": cause or ""}
            expression += ", #f = if_not_exists(#f, :f)"
        return self._update(run_id, expression, "#e = :arn AND #s = :running", names, values)

    def append_cleanup(self, run_id: str, execution_arn: str,
                       actions: Sequence[Mapping[str, Any]], updated_at: str) -> bool:
        return self._update(
            run_id,
            "SET cleanup = list_append(if_not_exists(cleanup, :empty), :a), updated_at = :u",
            "#e = :arn",
            {"#e": "execution_arn"},
            {":empty": [], ":a": [dict(a) for a in actions], ":u": updated_at,
             ":arn": execution_arn},
        )

    def _update(self, run_id: str, expression: str, condition: str,
                names: dict[str, str], values: dict[str, Any]) -> bool:
        try:
            self._table.update_item(Key={"run_id": run_id}, UpdateExpression=expression,
                                    ConditionExpression=condition,
                                    ExpressionAttributeNames=names,
                                    ExpressionAttributeValues=values)
        except ClientError as e:
            if _error_code(e)[0] == "ConditionalCheckFailedException":
                return False
            raise _domain_error(f"updating run {run_id} in the ledger", e) from e
        return True


class _Cleaner(Protocol):
    def cleanup_execution(self, execution_arn: str) -> list[dict[str, Any]]: ...


class _Runs(Protocol):
    def run_of(self, execution_arn: str) -> RunRef | None: ...


class _Ledger(Protocol):
    def close_run(self, run_id: str, execution_arn: str, status: str, ended_at: str,
                  updated_at: str, error: str | None, cause: str | None) -> bool: ...

    def append_cleanup(self, run_id: str, execution_arn: str,
                       actions: Sequence[Mapping[str, Any]], updated_at: str) -> bool: ...


class _CleanupMetrics(Protocol):
    def publish(self, actions: Sequence[Mapping[str, Any]]) -> None: ...


class EmfCleanupMetrics:
    """ResourcesCleanedUp and CleanupFailures per invocation; dimension environment only."""

    def __init__(self, metrics: Any, environment: str):
        self._metrics = metrics
        self._environment = environment

    def publish(self, actions: Sequence[Mapping[str, Any]]) -> None:
        failed = sum(1 for a in actions if a.get("result") == "failed")
        done = sum(1 for a in actions
                   if a.get("result") in ("terminated", "terminated_after_removing_protection",
                                          "cancelled"))
        self._metrics.add_dimension(name="environment", value=self._environment)
        self._metrics.add_metric(name="ResourcesCleanedUp", unit="Count", value=done)
        self._metrics.add_metric(name="CleanupFailures", unit="Count", value=failed)


class ExecutionCleanup:
    """Cleans up after an execution that ended ABORTED, TIMED_OUT or FAILED, and records it."""

    def __init__(self, cleaner: _Cleaner, runs: _Runs, ledger: _Ledger,
                 metrics: _CleanupMetrics, logger: Any,
                 clock: Callable[[], datetime] | None = None):
        self._cleaner = cleaner
        self._runs = runs
        self._ledger = ledger
        self._metrics = metrics
        self._logger = logger
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: CleanupSettings, metrics: Any,
                      logger: Any) -> ExecutionCleanup:
        import boto3

        return cls(
            cleaner=Cleaner.from_env(settings),
            runs=ExecutionRuns(boto3.client("stepfunctions")),
            ledger=CleanupLedger(boto3.resource("dynamodb").Table(settings.ledger_table)),
            metrics=EmfCleanupMetrics(metrics, settings.environment),
            logger=logger,
        )

    def handle(self, change: ExecutionStatusChange) -> dict[str, Any]:
        """Returns {execution_arn, status, run_id, actions, ledger}.

        Raises TransientError after recording when a resource could not be cleaned up, so the
        asynchronous invocation is retried; the retry only finds what is left.
        """
        detail = change.detail
        arn = detail.executionArn
        actions = self._cleaner.cleanup_execution(arn)
        for action in actions:
            self._logger.info("cleanup action", extra={"execution_arn": arn, "action": action})
        now = self._clock()
        ended = change.stopped_at or now
        run = self._runs.run_of(arn)
        ledger: dict[str, Any] = {"status_updated": False, "cleanup_recorded": False}
        if run is None:
            ledger["note"] = "the execution never resolved a run: no ledger item to update"
        elif run.duplicate:
            ledger["note"] = "duplicate delivery: the ledger item belongs to another execution"
        else:
            ledger["status_updated"] = self._ledger.close_run(
                run.run_id, arn, detail.status, _timestamp(ended), _timestamp(now),
                detail.error, detail.cause)
            if actions:
                stamped = [{**a, "by": "cleanup_execution", "trigger": detail.status,
                            "at": _timestamp(now)} for a in actions]
                ledger["cleanup_recorded"] = self._ledger.append_cleanup(
                    run.run_id, arn, stamped, _timestamp(now))
        self._metrics.publish(actions)
        result = {"execution_arn": arn, "status": detail.status,
                  "run_id": run.run_id if run else None, "actions": actions, "ledger": ledger}
        self._logger.info("execution cleaned up", extra={"result": result})
        failed = [a for a in actions if a.get("result") == "failed"]
        if failed:
            raise TransientError(
                f"{len(failed)} resource(s) of {arn} could not be cleaned up: "
                + "; ".join(f"{a['id']}: {a.get('error')}" for a in failed))
        return result
