"""RecordRun: the load finished; write what the run did to its ledger item.

Rows loaded come from the INSERT sub-statement of each table (StartLoad returned its index), so
they count what reached the warehouse, not what the job thinks it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline_aws.contracts import RecordRunRequest, RecordRunState, RunRecorded
from pipeline_aws.ledger import LedgerPort, utc_now_iso
from pipeline_core.errors import InvalidInput


def rows_loaded(state: RecordRunState) -> dict[str, int]:
    """table -> ResultRows of its INSERT sub-statement; InvalidInput when that is missing."""
    status = state.load_status
    if status.Status != "FINISHED":
        raise InvalidInput(f"load statement {state.load.statement_id} is {status.Status}, "
                           "not FINISHED: nothing to record")
    subs = status.SubStatements
    out: dict[str, int] = {}
    for table, index in state.load.tables.items():
        if not 0 <= index < len(subs):
            raise InvalidInput(f"load_status has {len(subs)} sub-statements; table {table}'s "
                               f"INSERT is number {index}")
        rows = subs[index].ResultRows
        if rows is None or rows < 0:
            raise InvalidInput(f"sub-statement {index} (INSERT into {table}) reports no row count")
        out[table] = rows
    return out


def recorded_fields(state: RecordRunState, loaded: Mapping[str, int], ended_at: str
                    ) -> dict[str, Any]:
    """The ledger attributes RecordRun sets: status, end, rows, and what the run used."""
    fields: dict[str, Any] = {
        "status": "SUCCEEDED",
        "ended_at": ended_at,
        "rows_loaded": dict(loaded),
        "load_statement_id": state.load.statement_id,
    }
    if state.job_run and state.job_run.job_run_id:
        fields["job_run_id"] = state.job_run.job_run_id
    if state.cluster and state.cluster.cluster_id:
        fields["cluster_id"] = state.cluster.cluster_id
    if state.quality is not None:
        fields["quality_verdict"] = state.quality.verdict
        fields["lines"] = state.quality.lines.model_dump(mode="json")
    return fields


class RunRecorder:
    def __init__(self, ledger: LedgerPort, clock: Callable[[], datetime] | None = None,
                 logger: Any = None, metrics: Any = None):
        self._ledger = ledger
        self._clock = clock or (lambda: datetime.now(UTC))
        self._logger = logger
        self._metrics = metrics

    def record(self, request: RecordRunRequest) -> dict[str, Any]:
        state = request.state
        loaded = rows_loaded(state)
        self._ledger.update(state.run.run_id,
                            recorded_fields(state, loaded, utc_now_iso(self._clock)))
        if self._metrics:
            self._metrics.add_metric(name="RunsSucceeded", unit="Count", value=1)
            self._metrics.add_metric(name="RowsLoaded", unit="Count", value=sum(loaded.values()))
        if self._logger:
            self._logger.info("run recorded", extra={"run_id": state.run.run_id,
                                                     "rows_loaded": loaded})
        return RunRecorded(status="SUCCEEDED", rows_loaded=loaded).model_dump(mode="json")
