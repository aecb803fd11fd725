"""RecordRun: the load finished; write what the run did to its ledger item.

Rows loaded come from the INSERT sub-statement of each table (StartLoad returned its index), so
they count what reached the warehouse, not what the job thinks it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline_aws.contracts import (
    RecordRunRequest,
    RecordRunState,
    RunRecorded,
    loaded_partitions,
)
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


def partition_rows(state: RecordRunState, partition: str) -> dict[str, int]:
    """The rows the job wrote for one partition of a batch (the gate passed them on)."""
    decided = state.quality.partitions.get(partition) if state.quality else None
    if decided is None:
        raise InvalidInput(f"$.quality has no verdict for partition {partition} of run "
                           f"{state.run.run_id}")
    return dict(decided.rows)


def partition_quality(state: RecordRunState, partition: str) -> dict[str, Any]:
    """The partition's own verdict and lines, instead of the batch's."""
    decided = state.quality.partitions.get(partition) if state.quality else None
    if decided is None:
        return {}
    fields: dict[str, Any] = {"quality_verdict": decided.verdict}
    if decided.lines is not None:
        fields["lines"] = decided.lines.model_dump(mode="json")
    return fields


class RunRecorder:
    def __init__(self, ledger: LedgerPort, clock: Callable[[], datetime] | None = None,
                 logger: Any = None, metrics: Any = None):
        self._ledger = ledger
        self._clock = clock or (lambda: datetime.now(UTC))
        self._logger = logger
        self._metrics = metrics

    def record(self, request: RecordRunRequest) -> dict[str, Any]:
        """SUCCEEDED on the item of each loaded partition. A run of one partition records the
        INSERTs' rows; a batch's INSERTs count all its partitions, so each partition records
        the rows its job wrote (the gate's `rows`) next to the batch's statement."""
        state = request.state
        loaded = rows_loaded(state)
        now = utc_now_iso(self._clock)
        partitions = loaded_partitions(state)
        if len(partitions) == 1 and partitions[0].run_id == state.run.run_id:
            self._ledger.update(state.run.run_id, recorded_fields(state, loaded, now))
        else:
            for part in partitions:
                self._ledger.update(part.run_id, {
                    **recorded_fields(state, partition_rows(state, part.partition), now),
                    "batch_run_id": state.run.run_id, "outputs": part.outputs,
                    **partition_quality(state, part.partition)})
        if self._metrics:
            self._metrics.add_metric(name="RunsSucceeded", unit="Count", value=1)
            self._metrics.add_metric(name="RowsLoaded", unit="Count", value=sum(loaded.values()))
        if self._logger:
            self._logger.info("run recorded", extra={"run_id": state.run.run_id,
                                                     "rows_loaded": loaded})
        return RunRecorded(status="SUCCEEDED", rows_loaded=loaded).model_dump(mode="json")
