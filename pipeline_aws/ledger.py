"""The run ledger (DynamoDB `LEDGER_TABLE`): one item per run attempt, keyed by `run_id`.

Only ResolveRun creates items (`create_run`, `claim_attempt`); later writers change their own
attributes with `update` or `mark_failed`. Readers use `get` and `query_by_dataset`.
Floats and ints are stored as Decimal and come back as int or float.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import domain_error, error_code
from pipeline_core.errors import InvalidInput

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT")
ENDED_UNSUCCESSFULLY = ("FAILED", "ABORTED", "TIMED_OUT")
BY_DATASET_INDEX = "by_dataset"


def utc_now_iso(clock: Callable[[], datetime] | None = None) -> str:
    return (clock or (lambda: datetime.now(UTC)))().strftime("%Y-%m-%dT%H:%M:%SZ")


def to_dynamo(value: Any) -> Any:
    """Python -> DynamoDB: numbers to Decimal (floats via str, NaN/inf refused), recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str | Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("the ledger cannot store NaN or infinity")
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in the ledger")


def from_dynamo(value: Any) -> Any:
    """DynamoDB -> Python: Decimal to int when integral, else float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


class RunLedger:
    """Adapter over the ledger table (a boto3 `Table` resource)."""

    def __init__(self, table: Any, clock: Callable[[], datetime] | None = None):
        self._table = table
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- creating runs (ResolveRun only) --------------------------------------------------

    def create_run(self, item: Mapping[str, Any]) -> bool:
        """Put a new run item unless `run_id` exists; False means someone created it first."""
        record = dict(item)
        record.setdefault("updated_at", utc_now_iso(self._clock))
        try:
            self._table.put_item(
                Item=to_dynamo(record), ConditionExpression="attribute_not_exists(run_id)"
            )
        except ClientError as e:
            if error_code(e) == "ConditionalCheckFailedException":
                return False
            raise domain_error(e, f"creating run {item.get('run_id')} in the ledger") from e
        except BotoCoreError as e:
            raise domain_error(e, "creating a run in the ledger") from e
        return True

    def claim_attempt(self, base_run_id: str, latest: int, new: int, new_run_id: str) -> bool:
        """Move the base run's attempt counter from `latest` to `new`; False if another won.

        The base item (attempt 1) holds `latest_attempt`; this compare-and-set is what lets at
        most one re-run of a run start, however many are requested at once.
        """
        condition = "attribute_exists(run_id) AND "
        condition += ("(latest_attempt = :latest OR "
                      "(attribute_not_exists(latest_attempt) AND attempt = :latest))")
        try:
            self._table.update_item(
                Key={"run_id": base_run_id},
                UpdateExpression="SET latest_attempt = :new, latest_run_id = :rid, updated_at = :u",
                ConditionExpression=condition,
                ExpressionAttributeValues={
                    ":latest": Decimal(latest), ":new": Decimal(new), ":rid": new_run_id,
                    ":u": utc_now_iso(self._clock),
                },
            )
        except ClientError as e:
            if error_code(e) == "ConditionalCheckFailedException":
                return False
            raise domain_error(e, f"claiming attempt {new} of run {base_run_id}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"claiming attempt {new} of run {base_run_id}") from e
        return True

    # -- reading ------------------------------------------------------------------------

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's item (strongly consistent read), or None."""
        try:
            item = self._table.get_item(Key={"run_id": run_id}, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as e:
            raise domain_error(e, f"reading run {run_id} from the ledger") from e
        return from_dynamo(item) if item else None

    def query_by_dataset(self, dataset: str, since: str | None = None, limit: int = 20,
                         status: str | None = None) -> list[dict[str, Any]]:
        """Up to `limit` runs of a dataset, newest `started_at` first.

        `since` (ISO-8601 UTC) keeps runs started at or after it; `status` keeps one status.
        Uses the `by_dataset` GSI, so reads are eventually consistent.
        """
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}")
        if limit < 1:
            return []
        names = {"#d": "dataset"}
        values: dict[str, Any] = {":d": dataset}
        condition = "#d = :d"
        if since:
            names["#t"] = "started_at"
            values[":since"] = since
            condition += " AND #t >= :since"
        kwargs: dict[str, Any] = {
            "IndexName": BY_DATASET_INDEX,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
            "Limit": max(limit, 25) if status else limit,
        }
        if status:
            names["#s"] = "status"
            values[":s"] = status
            kwargs["FilterExpression"] = "#s = :s"
        kwargs["ExpressionAttributeNames"] = names
        kwargs["ExpressionAttributeValues"] = values
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            try:
                page = self._table.query(**kwargs)
            except (ClientError, BotoCoreError) as e:
                raise domain_error(e, f"querying the runs of {dataset}") from e
            found.extend(from_dynamo(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    # -- later writers -------------------------------------------------------------------

    def update(self, run_id: str, fields: Mapping[str, Any]) -> None:
        """SET the given top-level attributes (and updated_at) on an existing run."""
        if not fields:
            return
        if "run_id" in fields:
            raise ValueError("run_id is the key and cannot be updated")
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets = []
        stamped = {**fields, "updated_at": utc_now_iso(self._clock)}
        for i, (name, value) in enumerate(stamped.items()):
            names[f"#f{i}"] = name
            values[f":v{i}"] = to_dynamo(value)
            sets.append(f"#f{i} = :v{i}")
        try:
            self._table.update_item(
                Key={"run_id": run_id},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(run_id)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as e:
            if error_code(e) == "ConditionalCheckFailedException":
                raise InvalidInput(
                    f"run {run_id} is not in the ledger (ResolveRun creates it first)"
                ) from e
            raise domain_error(e, f"updating run {run_id} in the ledger") from e
        except BotoCoreError as e:
            raise domain_error(e, f"updating run {run_id} in the ledger") from e

    def mark_failed(self, run_id: str, failure: Mapping[str, Any], *, status: str = "FAILED",
                    cleanup: list[Mapping[str, Any]] | None = None,
                    defaults: Mapping[str, Any] | None = None) -> None:
        """Record how a run ended unsuccessfully; creates the item when the run never got one.

        `failure` is {state, error, cause, logs}. `defaults` (dataset, partition, started_at,
        execution_arn, ...) are written only where the item has no value yet, so a run whose
        ResolveRun failed still appears in the ledger and in the by_dataset index.
        """
        if status not in ENDED_UNSUCCESSFULLY:
            raise ValueError(f"status must be one of {ENDED_UNSUCCESSFULLY}")
        now = utc_now_iso(self._clock)
        fields: dict[str, Any] = {"status": status, "failure": dict(failure), "ended_at": now,
                                  "updated_at": now}
        if cleanup is not None:
            fields["cleanup"] = list(cleanup)
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets = []
        for i, (name, value) in enumerate(fields.items()):
            names[f"#f{i}"] = name
            values[f":v{i}"] = to_dynamo(value)
            sets.append(f"#f{i} = :v{i}")
        base = {"dataset": "unknown", "started_at": now, **(defaults or {})}
        for i, (name, value) in enumerate(base.items()):
            if name in fields or name == "run_id" or value is None:
                continue
            names[f"#d{i}"] = name
            values[f":d{i}"] = to_dynamo(value)
            sets.append(f"#d{i} = if_not_exists(#d{i}, :d{i})")
        try:
            self._table.update_item(
                Key={"run_id": run_id},
                UpdateExpression="SET " + ", ".join(sets),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as e:
            raise domain_error(e, f"marking run {run_id} {status} in the ledger") from e
