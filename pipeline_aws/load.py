"""StartLoad: bring the warehouse schema up to date and submit this run's load as one batch.

The Lambda only submits; the state machine polls the statement (WaitForLoad/DescribeLoad), so
a slow COPY costs Step Functions transitions, not Lambda time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline_aws.contracts import LoadStarted, StartLoadRequest
from pipeline_aws.lazy import Lazy
from pipeline_aws.ledger import utc_now_iso
from pipeline_aws.redshift import RedshiftDataPort
from pipeline_core.catalog import Catalog
from pipeline_core.errors import InvalidInput
from pipeline_core.load_sql import (
    Migration,
    applied_versions_sql,
    build_load_batch,
    ensure_meta_sqls,
    pending_migrations,
)

FIRST_WAIT_SECONDS = 2
SMALL_QUERY_BUDGET_SECONDS = 20.0


class LoadStarter:
    """Applies pending migrations and submits stage/COPY/replace/insert for every table."""

    def __init__(self, *, catalog: Catalog | Callable[[], Catalog], redshift: RedshiftDataPort,
                 migrations: Sequence[Migration] | Callable[[], Sequence[Migration]],
                 copy_role_arn: str, clock: Callable[[], datetime] | None = None,
                 logger: Any = None):
        self._catalog = Lazy(catalog)
        self._redshift = redshift
        self._migrations = Lazy(migrations)
        self._copy_role_arn = copy_role_arn
        self._clock = clock or (lambda: datetime.now(UTC))
        self._logger = logger

    def applied_versions(self, run_id: str) -> list[int]:
        """Create the bookkeeping table if needed, then read which migrations are applied."""
        self._redshift.run(ensure_meta_sqls(), statement_name=f"{run_id}-ensure-meta",
                           timeout_seconds=SMALL_QUERY_BUDGET_SECONDS)
        rows = self._redshift.query(applied_versions_sql(),
                                    statement_name=f"{run_id}-applied-migrations",
                                    timeout_seconds=SMALL_QUERY_BUDGET_SECONDS)
        return [int(row[0]) for row in rows if row and row[0] is not None]

    def start(self, request: StartLoadRequest) -> dict[str, Any]:
        run = request.state.run
        dataset = self._catalog.get().get(run.dataset)
        missing = [t.name for t in dataset.load.tables if t.name not in run.outputs]
        if missing:
            raise InvalidInput(f"run {run.run_id} has no output for table(s) {missing}")
        pending = pending_migrations(self._migrations.get(), self.applied_versions(run.run_id))
        batch = build_load_batch(
            schema=dataset.load.schema, tables=dataset.load.tables, outputs=run.outputs,
            copy_role_arn=self._copy_role_arn, pending=pending, run_id=run.run_id,
            applied_at=utc_now_iso(self._clock), partitions=[run.partition],
        )
        statement_id = self._redshift.batch_execute(
            batch.sqls, statement_name=f"load {run.dataset} {run.partition} {run.run_id}",
            token=f"{run.run_id}-load-a{run.attempt}",
        )
        if self._logger:
            self._logger.info("load submitted", extra={
                "statement_id": statement_id, "statements": len(batch.sqls),
                "migrations_applied": batch.migrations, "tables": batch.insert_index})
        return LoadStarted(
            statement_id=statement_id, tables=batch.insert_index,
            migrations_applied=batch.migrations, wait_seconds=FIRST_WAIT_SECONDS, polls=0,
        ).model_dump(mode="json")
