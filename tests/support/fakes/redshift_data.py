"""FakeRedshiftData: the Redshift Data API in memory, behind pipeline_aws.redshift's
RedshiftDataPort (what the load statement's owner, pipeline_aws.load, uses).

Statements are recorded, not run. A submitted statement is running (STARTED) until `finish`
ends it; `run` and `query` wait, so theirs end at once: FINISHED, or what `fail_when` says for
a statement containing some SQL. `rows` scripts what a query returns. The same ClientToken
returns the same statement, as the Data API does for a retried submit.

tests/unit/contracts/test_redshift_data_contract.py holds it to RedshiftData.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline_aws.redshift import RUNNING_STATES, RedshiftDataPort, has_finished
from pipeline_core.errors import ConfigurationError


@dataclass
class Statement:
    id: str
    sqls: list[str]
    name: str
    token: str | None = None
    with_event: bool = False
    status: str = "STARTED"
    error: str | None = None
    rows: list[list[Any]] = field(default_factory=list)
    result_rows: list[int] = field(default_factory=list)  # per sub-statement, once ended

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"Id": self.id, "Status": self.status,
                                     "HasResultSet": bool(self.rows)}
        if self.error:
            described["Error"] = self.error
        if len(self.sqls) > 1:
            described["SubStatements"] = [
                {"Id": f"{self.id}:{i + 1}", "Status": self.status,
                 "ResultRows": self.result_rows[i] if i < len(self.result_rows) else -1}
                for i in range(len(self.sqls))]
        return described


class FakeRedshiftData:
    """`statements` in submission order; `rows[sql]` what a query returns; `fail_when[sql]`
    = ("FAILED", error) or ("ABORTED", None) ends a waited statement containing `sql` so."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.rows: dict[str, list[list[Any]]] = {}
        self.fail_when: dict[str, tuple[str, str | None]] = {}

    # -- test helpers -----------------------------------------------------------------------

    def statement(self, statement_id: str) -> Statement | None:
        return next((s for s in self.statements if s.id == statement_id), None)

    def submitted(self, statement_id: str, status: str = "STARTED") -> None:
        """A statement submitted before the test (by StartLoad), in the given state."""
        self.statements.append(Statement(statement_id, ["INSERT INTO t SELECT 1"], "load",
                                         status=status))

    def finish(self, statement_id: str, status: str = "FINISHED", error: str | None = None,
               result_rows: list[int] | None = None) -> None:
        """End a submitted statement (the load) as Redshift would."""
        found = self.statement(statement_id)
        assert found is not None, f"no statement {statement_id}"
        found.status, found.error = status, error
        found.result_rows = list(result_rows or [])

    def batches(self) -> list[list[str]]:
        """The SQL of every statement submitted, in order."""
        return [s.sqls for s in self.statements]

    # -- RedshiftDataPort -------------------------------------------------------------------

    def batch_execute(self, sqls: Sequence[str], *, statement_name: str,
                      token: str | None = None, with_event: bool = False) -> str:
        if not sqls:
            raise ValueError("a batch needs at least one statement")
        again = next((s for s in self.statements if token and s.token == token), None)
        if again is not None:
            return again.id
        statement = self._submit(list(sqls), statement_name, token)
        statement.with_event = with_event
        return statement.id

    def run(self, sqls: Sequence[str], *, statement_name: str, timeout_seconds: float = 30.0
            ) -> dict[str, Any]:
        return self._wait(self.batch_execute(sqls, statement_name=statement_name))

    def query(self, sql: str, *, statement_name: str, timeout_seconds: float = 30.0
              ) -> list[list[Any]]:
        statement = self._submit([sql], statement_name, None)
        statement.rows = [list(row) for row in self.rows.get(sql, [])]
        self._wait(statement.id)
        return [list(row) for row in statement.rows]

    def describe(self, statement_id: str) -> dict[str, Any]:
        found = self.statement(statement_id)
        if found is None:  # as RedshiftData turns the Data API's ResourceNotFoundException
            raise ConfigurationError(f"describing statement {statement_id} failed "
                                     "(ResourceNotFoundException): Query does not exist.")
        return found.describe()

    def cancel(self, statement_id: str) -> str:
        found = self.statement(statement_id)
        if found is None:
            return "not found"
        if found.status not in RUNNING_STATES:
            return f"already {found.status}"
        found.status = "ABORTED"
        return "cancelled"

    # -- inside -----------------------------------------------------------------------------

    def _submit(self, sqls: list[str], name: str, token: str | None) -> Statement:
        statement = Statement(str(uuid.uuid4()), sqls, name[:500], token)
        self.statements.append(statement)
        return statement

    def _wait(self, statement_id: str) -> dict[str, Any]:
        statement = self.statement(statement_id)
        assert statement is not None
        if statement.status in RUNNING_STATES:
            outcome = next((v for k, v in self.fail_when.items()
                            if any(k in sql for sql in statement.sqls)), ("FINISHED", None))
            statement.status, statement.error = outcome
        description = statement.describe()
        has_finished(statement_id, description)  # FAILED / ABORTED raise as RedshiftData's do
        return description


def _conforms(fake: FakeRedshiftData) -> RedshiftDataPort:
    return fake  # mypy: FakeRedshiftData implements RedshiftDataPort
