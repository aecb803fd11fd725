"""The load statement's one owner: submit it, wait for it, describe it, cancel it.

The Redshift Data API scopes a statement to the IAM identity that submitted it (AWS's managed
policy AmazonRedshiftDataFullAccess, and this template, allow DescribeStatement,
GetStatementResult and CancelStatement only when `redshift-data:statement-owner-iam-userid`
equals the caller's `aws:userid`). So one Lambda function does all of it, called by StartLoad
(`submit`), AwaitLoad (`await`), DescribeLoad (`describe`), CancelLoad (`cancel`) and by the
statement's completion event.

- submit: bring the warehouse schema up to date and submit the run's load as one batch (one
  transaction) WithEvent, named `<app>-load/<run_id>/try-<n>` (statement_name), with the
  idempotency token `<run_id>-load-a<attempt>-r<load_try>`.
- await (a waitForTaskToken task): keep the task token and the load on the ledger item of the
  run's first loaded partition (`load_wait`), then look at the statement once: one that already
  ended (its event came before the token was kept) is reported at once.
- the completion event ("Redshift Data Statement Status Change", EventBridge): find the
  waiting task by the statement's name, describe the statement, judge it
  (pipeline_aws.load_policy) and end the task with SendTaskSuccess (the LoadStatus the
  LoadStatus Choice reads), or SendTaskFailure when it cannot be judged. A token already used
  (a redelivered event) is not an error; an event for a statement nobody waits for (another
  stack's, an older load try's) is ignored and logged.
- describe: the statement's status and what it means, after the wait ran out (a statement still
  running is `timed_out`).
- cancel: stop the statement if it still runs (timeout, or the wait failing).

A slow COPY costs neither state transitions nor a waiting Lambda: AwaitLoad waits for the
event, at most LOAD_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pipeline_aws.contracts import (
    LoadCancelled,
    LoadStarted,
    LoadStatementRequest,
    LoadStatementState,
    LoadStatus,
    RecordRunState,
    SubStatement,
    loaded_partitions,
)
from pipeline_aws.lazy import Lazy
from pipeline_aws.ledger import LedgerPort, utc_now_iso
from pipeline_aws.load_policy import (
    MAX_LOAD_TRIES,
    Verdict,
    is_serialization_conflict,
    judge,
    statement_error,
)
from pipeline_aws.redshift import RUNNING_STATES, RedshiftDataPort, client_token
from pipeline_core.errors import ConfigurationError, InvalidInput, PipelineError

if TYPE_CHECKING:  # imported where used: AwaitLoad, DescribeLoad, CancelLoad and the
    # statement's completion event need neither the catalog nor the load SQL (cold starts)
    from pipeline_core.catalog import Catalog
    from pipeline_core.load_sql import Migration

SMALL_QUERY_BUDGET_SECONDS = 20.0
WAIT_ATTRIBUTE = "load_wait"  # the ledger attribute AwaitLoad's token is kept in
EVENT_SOURCE = "aws.redshift-data"
# What PostgreSQL and Redshift say when two sessions create the same object at once.
_CONCURRENT_DDL = re.compile(
    r"already exists|duplicate key value violates unique constraint|could not serialize"
    r"|serializable isolation violation|\b40001\b", re.I)


def load_token(run_id: str, attempt: int, load_try: int) -> str:
    """The load's idempotency token: a retried Lambda gets the same statement back; a new
    load try (after a serialization conflict) gets a new one. At most 64 characters."""
    return client_token(f"{run_id}-load-a{attempt}-r{load_try}")


def statement_prefix(app_name: str) -> str:
    """What every load statement's name of this deployment starts with (the completion
    event rule filters on it: another stack's statements never reach this function)."""
    return f"{app_name}-load/"


def statement_name(app_name: str, run_id: str, load_try: int) -> str:
    """The load's StatementName: the stack, the ledger item AwaitLoad waits on, the try."""
    return f"{statement_prefix(app_name)}{run_id}/try-{load_try}"


def parse_statement_name(app_name: str, name: str) -> tuple[str, int] | None:
    """(run_id, load_try) of one of this deployment's load statements; None for any other."""
    prefix = statement_prefix(app_name)
    if not name.startswith(prefix):
        return None
    run_id, _, tail = name[len(prefix):].rpartition("/try-")
    if not run_id or not tail.isdigit():
        return None
    return run_id, int(tail)


def waiting_run_id(state: LoadStatementState | RecordRunState) -> str:
    """The ledger item that holds AwaitLoad's token: the first loaded partition's (the run's
    own for a run of one object; a batch has no item of its own)."""
    return loaded_partitions(state)[0].run_id


class TaskTokenPort(Protocol):
    """Ends a waitForTaskToken task (pipeline_aws.task_tokens.TaskTokens in AWS)."""

    def succeed(self, token: str, output: Mapping[str, Any]) -> bool: ...

    def fail(self, token: str, error: str, cause: str) -> bool: ...


def next_load_try(state: LoadStatementState) -> int:
    """1 for the first submit; one more when the last describe of the current statement said
    `retry`. The same state gives the same answer, so a retried submit reuses its token."""
    load, status = state.load, state.load_status
    if load is None or status is None or status.Id != load.statement_id:
        return 1
    if status.outcome != "retry":
        raise InvalidInput(f"load statement {load.statement_id} was submitted already and is "
                           f"{status.outcome or status.Status}, not to be retried")
    if load.load_try >= MAX_LOAD_TRIES:
        raise InvalidInput(f"load try {load.load_try} was the last of {MAX_LOAD_TRIES}")
    return load.load_try + 1


class LoadStatement:
    """Applies pending migrations and submits stage/COPY/replace/insert for every table, then
    describes and, when asked, cancels that statement."""

    def __init__(self, *, catalog: Catalog | Callable[[], Catalog], redshift: RedshiftDataPort,
                 migrations: Sequence[Migration] | Callable[[], Sequence[Migration]],
                 copy_role_arn: str, app_name: str,
                 ledger: LedgerPort | None = None, tasks: TaskTokenPort | None = None,
                 clock: Callable[[], datetime] | None = None,
                 rng: Callable[[float, float], float] = random.uniform, logger: Any = None):
        self._catalog = Lazy(catalog)
        self._redshift = redshift
        self._migrations = Lazy(migrations)
        self._copy_role_arn = copy_role_arn
        self._app = app_name
        self._ledger = ledger
        self._tasks = tasks
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = rng
        self._logger = logger

    def handle(self, request: LoadStatementRequest) -> dict[str, Any]:
        operations: dict[str, Callable[[LoadStatementRequest], dict[str, Any]]] = {
            "submit": self.submit, "await": self.await_load, "describe": self.describe,
            "cancel": self.cancel}
        return operations[request.operation](request)

    def handle_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The function's entry: the completion event (by its envelope), else a request of
        the state machine."""
        if event.get("source") == EVENT_SOURCE:
            return self.on_statement_event(event)
        return self.handle(LoadStatementRequest.parse(event))

    def _waiting(self) -> tuple[LedgerPort, TaskTokenPort]:
        if self._ledger is None or self._tasks is None:
            raise ConfigurationError("the load function needs the ledger and Step Functions to "
                                     "wait for the load's completion event")
        return self._ledger, self._tasks

    def _log(self, message: str, **extra: Any) -> None:
        if self._logger:
            self._logger.info(message, extra=extra)

    # -- submit ---------------------------------------------------------------------------------
    def applied_versions(self, run_id: str) -> list[int]:
        """Create the bookkeeping table if needed, then read which migrations are applied.

        Two loads on a fresh warehouse may create it at the same moment; the loser's error
        names the collision, and a second run of the IF NOT EXISTS statements sees the
        winner's table.
        """
        try:
            self._ensure_meta(run_id)
        except ConfigurationError as e:
            if not _CONCURRENT_DDL.search(str(e)):
                raise
            self._log("bookkeeping table created concurrently; checking again", error=str(e))
            self._ensure_meta(run_id)
        return self._read_versions(run_id)

    def _ensure_meta(self, run_id: str) -> None:
        from pipeline_core.load_sql import ensure_meta_sqls

        self._redshift.run(ensure_meta_sqls(), statement_name=f"{run_id}-ensure-meta",
                           timeout_seconds=SMALL_QUERY_BUDGET_SECONDS)

    def _read_versions(self, run_id: str) -> list[int]:
        from pipeline_core.load_sql import applied_versions_sql

        rows = self._redshift.query(applied_versions_sql(),
                                    statement_name=f"{run_id}-applied-migrations",
                                    timeout_seconds=SMALL_QUERY_BUDGET_SECONDS)
        return [int(row[0]) for row in rows if row and row[0] is not None]

    def submit(self, request: LoadStatementRequest) -> dict[str, Any]:
        from pipeline_core.load_sql import build_load_batch, pending_migrations

        run = request.run
        load_try = next_load_try(request.state)
        dataset = self._catalog.get().get(run.dataset)
        loaded = loaded_partitions(request.state)
        missing = sorted({t.name for p in loaded for t in dataset.load.tables
                          if t.name not in p.outputs})
        if missing:
            raise InvalidInput(f"run {run.run_id} has no output for table(s) {missing}")
        pending = pending_migrations(self._migrations.get(), self.applied_versions(run.run_id))
        batch = build_load_batch(
            schema=dataset.load.schema, tables=dataset.load.tables,
            outputs={t.name: [p.outputs[t.name] for p in loaded] for t in dataset.load.tables},
            copy_role_arn=self._copy_role_arn, pending=pending, run_id=run.run_id,
            applied_at=utc_now_iso(self._clock),
            # A derived run over a range of days replaces each of them (PartitionRun.days).
            partitions=[day for p in loaded for day in p.days],
        )
        statement_id = self._redshift.batch_execute(
            batch.sqls,
            statement_name=statement_name(self._app, waiting_run_id(request.state), load_try),
            token=load_token(run.run_id, run.attempt, load_try), with_event=True,
        )
        self._log("load submitted", statement_id=statement_id, statements=len(batch.sqls),
                  migrations_applied=batch.migrations, tables=batch.insert_index,
                  load_try=load_try)
        return LoadStarted(statement_id=statement_id, tables=batch.insert_index,
                           migrations_applied=batch.migrations, load_try=load_try,
                           snapshot_checks=batch.snapshot_checks).model_dump(mode="json")

    # -- await and the completion event ------------------------------------------------------
    def await_load(self, request: LoadStatementRequest) -> dict[str, Any]:
        """Keep AwaitLoad's task token where the completion event finds it, then look once: a
        statement that ended before the token was kept (its event found no waiter) is
        reported now. Either report may come second: its token is then closed, no harm."""
        ledger, _ = self._waiting()
        load = _submitted(request)
        if not request.task_token:
            raise InvalidInput("await: task_token is missing (AwaitLoad passes $$.Task.Token)")
        holder = waiting_run_id(request.state)
        ledger.update(holder, {WAIT_ATTRIBUTE: {
            "token": request.task_token, "statement_id": load.statement_id,
            "load": load.model_dump(mode="json"), "run_id": request.run.run_id,
            "partition": request.run.partition, "execution_arn": request.execution.Id}})
        description = self._redshift.describe(load.statement_id)
        if description.get("Status") in RUNNING_STATES:
            self._log("waiting for the load's completion event", statement_id=load.statement_id,
                      status=description.get("Status"), waiting_run_id=holder)
            return {"waiting": load.statement_id, "status": str(description.get("Status"))}
        status = self._status(load, description, run_id=request.run.run_id,
                              partition=request.run.partition, polls=1)
        return self._report(request.task_token, status, how="ended before the wait began")

    def on_statement_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A "Redshift Data Statement Status Change" event: end the task waiting for it."""
        detail = event.get("detail")
        detail = detail if isinstance(detail, Mapping) else {}
        name, statement_id = str(detail.get("statementName") or ""), str(
            detail.get("statementId") or "")
        parsed = parse_statement_name(self._app, name)
        if parsed is None:
            return self._ignored(f"statement {statement_id} ({name!r}) is not a load of "
                                 f"{self._app}")
        ledger, tasks = self._waiting()
        item = ledger.get(parsed[0]) or {}
        wait = item.get(WAIT_ATTRIBUTE)
        if not isinstance(wait, Mapping):
            return self._ignored(f"no task waits for statement {statement_id} yet (AwaitLoad "
                                 "looks at it itself when it starts)")
        if wait.get("statement_id") != statement_id:
            return self._ignored(f"statement {statement_id} is not the awaited one "
                                 f"({wait.get('statement_id')}): an older load try's")
        token = str(wait["token"])
        try:
            load = LoadStarted.model_validate(wait["load"])
            description = self._redshift.describe(statement_id)
            if description.get("Status") in RUNNING_STATES:
                return self._ignored(f"statement {statement_id} is still "
                                     f"{description.get('Status')}")
            status = self._status(load, description, run_id=str(wait["run_id"]),
                                  partition=str(wait["partition"]), polls=1)
        except (PipelineError, ValueError) as e:
            sent = tasks.fail(token, type(e).__name__, str(e))
            self._log("load could not be judged", statement_id=statement_id, error=str(e),
                      sent=sent)
            return {"statement_id": statement_id, "failed": type(e).__name__, "sent": sent}
        return self._report(token, status, how="completion event")

    def _report(self, token: str, status: LoadStatus, *, how: str) -> dict[str, Any]:
        _, tasks = self._waiting()
        sent = tasks.succeed(token, status.model_dump(mode="json"))
        self._log("load reported" if sent else "load already reported (the task's token is "
                  "closed: a redelivered event, or the wait ended another way)",
                  statement_id=status.Id, outcome=status.outcome, how=how,
                  load_try=status.load_try, cause=status.cause)
        return {"statement_id": status.Id, "outcome": status.outcome, "sent": sent}

    def _ignored(self, why: str) -> dict[str, Any]:
        self._log("statement event ignored", why=why)
        return {"ignored": why}

    # -- describe -------------------------------------------------------------------------------
    def describe(self, request: LoadStatementRequest) -> dict[str, Any]:
        """After AwaitLoad's wait ran out: the statement's status and what it means."""
        load = _submitted(request)
        previous = request.state.load_status
        polls = previous.polls + 1 if previous and previous.Id == load.statement_id else 1
        description = self._redshift.describe(load.statement_id)
        status = self._status(load, description, run_id=request.run.run_id,
                              partition=request.run.partition, polls=polls)
        self._log("load described", statement_id=load.statement_id, outcome=status.outcome,
                  polls=polls, load_try=load.load_try, cause=status.cause,
                  wait_seconds=status.wait_seconds)
        return status.model_dump(mode="json")

    def _status(self, load: LoadStarted, description: Mapping[str, Any], *, run_id: str,
                partition: str, polls: int) -> LoadStatus:
        """The described statement and its verdict (load_policy), a stale snapshot named."""
        verdict = judge(description, load_try=load.load_try, rng=self._rng,
                        raced_migration=self._raced_migration(run_id, load, description))
        stale = stale_snapshot(description, load, partition)
        if verdict.outcome == "finished" and stale is not None:
            verdict = Verdict("stale", 0, stale)
        return LoadStatus(
            Id=load.statement_id, Status=str(description.get("Status")),
            Error=statement_error(description), SubStatements=_subs(description),
            outcome=verdict.outcome, wait_seconds=verdict.wait_seconds, polls=polls,
            load_try=load.load_try, cause=verdict.cause)

    def _raced_migration(self, run_id: str, load: LoadStarted,
                         description: Mapping[str, Any]) -> bool:
        """A failed batch that applied migrations, which are recorded now: another load
        applied them at the same time (this batch was rolled back, so it was not this one)."""
        if description.get("Status") != "FAILED" or not load.migrations_applied:
            return False
        if is_serialization_conflict(statement_error(description)):
            return False
        from pipeline_core.load_sql import label_version

        versions = set(self._read_versions(run_id))
        mine = {v for v in map(label_version, load.migrations_applied) if v is not None}
        return bool(mine) and mine <= versions

    # -- cancel ---------------------------------------------------------------------------------
    def cancel(self, request: LoadStatementRequest) -> dict[str, Any]:
        load = _submitted(request)
        result = self._redshift.cancel(load.statement_id)
        self._log("load cancel", statement_id=load.statement_id, result=result)
        return LoadCancelled(id=load.statement_id, result=result).model_dump(mode="json")


def stale_snapshot(description: Mapping[str, Any], load: LoadStarted, partition: str
                   ) -> str | None:
    """Why the load changed nothing because a table holds a newer snapshot than the run's
    (its snapshot check returned a row), or None. Such a load commits without a change: the
    run must not end as a success with 0 rows."""
    subs = description.get("SubStatements") or []
    stale = [table for table, index in load.snapshot_checks.items()
             if 0 <= index < len(subs) and isinstance(subs[index], Mapping)
             and (subs[index].get("ResultRows") or 0) > 0]
    if not stale:
        return None
    tables = ", ".join(sorted(stale))
    return (f"stale snapshot: {tables} {'holds' if len(stale) == 1 else 'hold'} a snapshot "
            f"newer than this run's {partition}; nothing was changed (an old file delivered "
            "late or again never replaces a newer one)")


def _submitted(request: LoadStatementRequest) -> LoadStarted:
    if request.state.load is None:
        raise InvalidInput(f"{request.operation}: state.load is missing: no load statement "
                           "was submitted in this execution")
    return request.state.load


def _subs(description: Mapping[str, Any]) -> list[SubStatement]:
    """Status, rows and error of each sub-statement (RecordRun reads the INSERTs' rows)."""
    subs = description.get("SubStatements") or []
    return [SubStatement(Status=s.get("Status"), ResultRows=s.get("ResultRows"),
                         Error=s.get("Error")) for s in subs if isinstance(s, Mapping)]
