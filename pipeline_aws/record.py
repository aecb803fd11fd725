"""RecordRun: the load finished; write what the run did to its ledger item.

Rows loaded come from the INSERT sub-statement of each table (StartLoad returned its index), so
they count what reached the warehouse, not what the job thinks it wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline_aws.ledger import RunLedger, utc_now_iso
from pipeline_aws.load import RunRef, validation_problems
from pipeline_core.errors import InvalidInput


class _SubStatement(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Status: str | None = None
    ResultRows: int | None = None


class _LoadStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Id: str | None = None
    Status: str
    SubStatements: list[_SubStatement] = Field(default_factory=list)


class _Load(BaseModel):
    model_config = ConfigDict(extra="ignore")
    statement_id: str
    tables: dict[str, int]


class _Quality(BaseModel):
    model_config = ConfigDict(extra="ignore")
    verdict: str | None = None
    lines: dict[str, int] | None = None


class _JobRun(BaseModel):
    model_config = ConfigDict(extra="ignore")
    application_id: str | None = None
    job_run_id: str | None = None


class _Cluster(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cluster_id: str | None = None


class _RecordState(BaseModel):
    model_config = ConfigDict(extra="ignore")
    run: RunRef
    load: _Load
    load_status: _LoadStatus
    quality: _Quality | None = None
    job_run: _JobRun | None = None
    cluster: _Cluster | None = None


class RecordRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    state: _RecordState

    @classmethod
    def parse(cls, event: Any) -> RecordRequest:
        try:
            return cls.model_validate(event)
        except ValidationError as e:
            raise InvalidInput(f"RecordRun input: {validation_problems(e)}") from e


def rows_loaded(state: _RecordState) -> dict[str, int]:
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


class RunRecorder:
    def __init__(self, ledger: RunLedger, clock: Callable[[], datetime] | None = None,
                 logger: Any = None, metrics: Any = None):
        self._ledger = ledger
        self._clock = clock or (lambda: datetime.now(UTC))
        self._logger = logger
        self._metrics = metrics

    def record(self, request: RecordRequest) -> dict[str, Any]:
        state = request.state
        loaded = rows_loaded(state)
        fields: dict[str, Any] = {
            "status": "SUCCEEDED",
            "ended_at": utc_now_iso(self._clock),
            "rows_loaded": loaded,
            "load_statement_id": state.load.statement_id,
        }
        if state.job_run and state.job_run.job_run_id:
            fields["job_run_id"] = state.job_run.job_run_id
        if state.cluster and state.cluster.cluster_id:
            fields["cluster_id"] = state.cluster.cluster_id
        if state.quality is not None:
            if state.quality.verdict:
                fields["quality_verdict"] = state.quality.verdict
            if state.quality.lines is not None:
                fields["lines"] = state.quality.lines
        self._ledger.update(state.run.run_id, fields)
        if self._metrics:
            self._metrics.add_metric(name="RunsSucceeded", unit="Count", value=1)
            self._metrics.add_metric(name="RowsLoaded", unit="Count", value=sum(loaded.values()))
        if self._logger:
            self._logger.info("run recorded", extra={"run_id": state.run.run_id,
                                                     "rows_loaded": loaded})
        return {"status": "SUCCEEDED", "rows_loaded": loaded}
