"""Redshift Data API adapter: submit, wait briefly for small queries, fetch rows, describe,
cancel.

Only small bookkeeping queries are waited for here, with a hard time budget; the load itself is
submitted with WithEvent, and the state machine waits for its completion event (AwaitLoad, a
task token; pipeline_aws.load), so no Lambda ever sits waiting for a long COPY and no poll
loop costs state transitions. FAILED and ABORTED are handled as outcomes, not as timeouts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import domain_error, error_code
from pipeline_core.errors import ConfigurationError, TransientError

RUNNING_STATES = ("SUBMITTED", "PICKED", "STARTED")
CLIENT_TOKEN_MAX = 64


def client_token(value: str) -> str:
    """An idempotency token of at most 64 characters that stays unique for long values."""
    if len(value) <= CLIENT_TOKEN_MAX:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return f"{value[: CLIENT_TOKEN_MAX - 17]}-{digest}"


def _field_value(field: dict[str, Any]) -> Any:
    if field.get("isNull"):
        return None
    for key in ("stringValue", "longValue", "doubleValue", "booleanValue", "blobValue"):
        if key in field:
            return field[key]
    return None


class RedshiftDataPort(Protocol):
    """What the logic needs from the Data API (RedshiftData; FakeRedshiftData in the tests)."""

    def run(self, sqls: Sequence[str], *, statement_name: str, timeout_seconds: float = 30.0
            ) -> dict[str, Any]:
        """Run a small batch and wait for it: its description when FINISHED."""
        ...

    def query(self, sql: str, *, statement_name: str, timeout_seconds: float = 30.0
              ) -> list[list[Any]]:
        """Run a small query and wait for it: its rows as Python values."""
        ...

    def batch_execute(self, sqls: Sequence[str], *, statement_name: str,
                      token: str | None = None, with_event: bool = False) -> str:
        """Submit statements run in order in one transaction; the same token, the same id.
        `with_event`: the Data API sends an EventBridge event when the statement ends."""
        ...

    def describe(self, statement_id: str) -> dict[str, Any]:
        """The DescribeStatement response of a statement this identity submitted."""
        ...

    def cancel(self, statement_id: str) -> str:
        """"cancelled", or "already <STATUS>" / "not found" when nothing was running."""
        ...


def has_finished(statement_id: str, description: Mapping[str, Any]) -> bool:
    """True when a statement FINISHED, False while it runs. FAILED raises ConfigurationError
    with Redshift's message (a setup problem such as permissions or a bad migration); ABORTED
    raises TransientError, which the state machine retries."""
    status = description.get("Status")
    if status == "FAILED":
        raise ConfigurationError(
            f"Redshift statement {statement_id} failed: {description.get('Error', '?')}"
        )
    if status == "ABORTED":
        raise TransientError(f"Redshift statement {statement_id} was aborted")
    return status == "FINISHED"


class RedshiftData:
    """Calls the Data API on one workgroup or cluster (see settings.connection_kwargs); a
    RedshiftDataPort."""

    def __init__(self, client: Any, connection: dict[str, str],
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self._client = client
        self._connection = dict(connection)
        self._sleep = sleep
        self._clock = clock

    def _call(self, what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise domain_error(e, what) from e

    def execute(self, sql: str, *, statement_name: str) -> str:
        """Submit one statement; returns its id."""
        response = self._call(
            f"submitting {statement_name}", self._client.execute_statement,
            Sql=sql, StatementName=statement_name[:500], **self._connection,
        )
        return str(response["Id"])

    def batch_execute(self, sqls: Sequence[str], *, statement_name: str,
                      token: str | None = None, with_event: bool = False) -> str:
        """Submit statements that Redshift runs in order, in one transaction; returns the id.

        The same `token` returns the same statement instead of a second one, so a retried
        Lambda cannot submit a load twice. `with_event`: the Data API sends a "Redshift Data
        Statement Status Change" event when the statement ends (its WithEvent option).
        """
        if not sqls:
            raise ValueError("a batch needs at least one statement")
        kwargs: dict[str, Any] = {"Sqls": list(sqls), "StatementName": statement_name[:500],
                                  **self._connection}
        if token:
            kwargs["ClientToken"] = client_token(token)
        if with_event:
            kwargs["WithEvent"] = True
        response = self._call(f"submitting {statement_name}", self._client.batch_execute_statement,
                              **kwargs)
        return str(response["Id"])

    def describe(self, statement_id: str) -> dict[str, Any]:
        return dict(self._call(f"describing statement {statement_id}",
                               self._client.describe_statement, Id=statement_id))

    def wait(self, statement_id: str, *, timeout_seconds: float = 30.0,
             first_interval: float = 0.05, max_interval: float = 2.0) -> dict[str, Any]:
        """Poll until the statement finishes; the description when FINISHED. The first poll
        comes soon and the interval doubles: the load's two small statements (the meta table
        and the applied migrations) each waited a whole first interval of 0.25 s, half a
        second of every run; a long statement costs at most two more DescribeStatement calls.

        FAILED and ABORTED raise (see `has_finished`); running past the budget cancels the
        statement and raises TransientError, which the state machine retries.
        """
        deadline = self._clock() + timeout_seconds
        interval = first_interval
        polls = 0
        while True:
            description = self.describe(statement_id)
            polls += 1
            if has_finished(statement_id, description):
                return description
            if self._clock() + interval > deadline:
                self.cancel(statement_id)
                raise TransientError(
                    f"Redshift statement {statement_id} still {description.get('Status')} after "
                    f"{polls} polls ({timeout_seconds:.0f} s budget); it was cancelled"
                )
            self._sleep(interval)
            interval = min(interval * 2, max_interval)

    def rows(self, statement_id: str) -> list[list[Any]]:
        """All result rows of a finished statement, as Python values (paginated)."""
        rows: list[list[Any]] = []
        kwargs: dict[str, Any] = {"Id": statement_id}
        while True:
            page = self._call(f"reading the result of {statement_id}",
                              self._client.get_statement_result, **kwargs)
            rows.extend([_field_value(f) for f in record] for record in page.get("Records", []))
            token = page.get("NextToken")
            if not token:
                return rows
            kwargs["NextToken"] = token

    def query(self, sql: str, *, statement_name: str, timeout_seconds: float = 30.0
              ) -> list[list[Any]]:
        """Run a small query and return its rows within the time budget."""
        statement_id = self.execute(sql, statement_name=statement_name)
        description = self.wait(statement_id, timeout_seconds=timeout_seconds)
        if not description.get("HasResultSet"):
            return []
        return self.rows(statement_id)

    def run(self, sqls: Sequence[str], *, statement_name: str, timeout_seconds: float = 30.0
            ) -> dict[str, Any]:
        """Run a small batch (for example CREATE ... IF NOT EXISTS) and wait for it."""
        statement_id = self.batch_execute(sqls, statement_name=statement_name)
        return self.wait(statement_id, timeout_seconds=timeout_seconds)

    def cancel(self, statement_id: str) -> str:
        """Cancel the statement if it still runs; returns what happened.

        "cancelled", or "already <STATUS>" / "not found" when there was nothing to cancel.
        """
        try:
            status = self._client.describe_statement(Id=statement_id).get("Status")
        except ClientError as e:
            if error_code(e) == "ResourceNotFoundException":
                return "not found"
            raise domain_error(e, f"describing statement {statement_id}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"describing statement {statement_id}") from e
        if status not in RUNNING_STATES:
            return f"already {status}"
        try:
            response = self._client.cancel_statement(Id=statement_id)
        except ClientError as e:
            # It finished between describe and cancel: the Data API says so with a validation error.
            if error_code(e) in ("ValidationException", "ResourceNotFoundException"):
                return "finished before it could be cancelled"
            raise domain_error(e, f"cancelling statement {statement_id}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"cancelling statement {statement_id}") from e
        return "cancelled" if response.get("Status") else "cancel refused"
