"""The run ledger (DynamoDB `LEDGER_TABLE`): one item per run attempt, keyed by `run_id`.

`RunLedger` is the one adapter over the table; `LedgerPort` is its interface, which the logic
depends on and `tests.support.fakes.ledger.FakeLedger` implements in memory (the contract tests
in tests/unit/contracts run the same tests against both).

Only ResolveRun creates items (`create_run`, `claim_attempt`); later writers change their own
attributes: `update`, `mark_failed` (HandleFailure), `close_run` and `append_cleanup`
(CleanupExecution), `record_cost` (TrackCost). Readers use `get`, `query_by_dataset` and
`month_cost`. Floats and ints are stored as Decimal and come back as int or float.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import aws_call, aws_pages, domain_error, error_code
from pipeline_core.errors import InvalidInput

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT")
ENDED_UNSUCCESSFULLY = ("FAILED", "ABORTED", "TIMED_OUT")
BY_DATASET_INDEX = "by_dataset"
CONDITION_FAILED = "ConditionalCheckFailedException"


def iso_utc(moment: datetime) -> str:
    """The ledger's timestamp format: ISO-8601 UTC to the second, `Z` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(text: str) -> datetime:
    """A ledger timestamp (iso_utc; also any ISO-8601 text) as an aware instant; a time
    without a zone is UTC. ValueError when it is not ISO-8601."""
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def utc_now_iso(clock: Callable[[], datetime] | None = None) -> str:
    return iso_utc((clock or (lambda: datetime.now(UTC)))())


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


def check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}")


def check_ended_unsuccessfully(status: str) -> None:
    if status not in ENDED_UNSUCCESSFULLY:
        raise ValueError(f"status must be one of {ENDED_UNSUCCESSFULLY}")


def ended_fields(status: str, failure: Mapping[str, Any], now: str,
                 cleanup: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The attributes `mark_failed` sets on a run that ended unsuccessfully."""
    check_ended_unsuccessfully(status)
    fields: dict[str, Any] = {"status": status, "failure": dict(failure), "ended_at": now,
                              "updated_at": now}
    if cleanup is not None:
        fields["cleanup"] = list(cleanup)
    return fields


def cost_total(item: Mapping[str, Any]) -> Decimal:
    """An item's `cost.total_usd` (as stored, a Decimal), 0 when it has none."""
    value = (item.get("cost") or {}).get("total_usd")
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return Decimal(0)


def execution_failure(status: str, error: str | None, cause: str | None) -> dict[str, str]:
    """The `failure` a run gets when its execution stopped (CleanupExecution)."""
    return {"state": "(execution)", "error": error or status, "cause": cause or ""}


def newest_loaded_versions(succeeded: Iterable[Mapping[str, Any]], partitions: Sequence[str]
                           ) -> dict[str, str | None]:
    """partition -> the object version the warehouse holds it from: that of the partition's
    SUCCEEDED run with the newest `started_at` (None: an unversioned object). Partitions
    never loaded are absent. Items without a partition's `input` (a batch's own) are
    ignored."""
    wanted = set(partitions)
    newest: dict[str, tuple[str, str | None]] = {}
    for item in succeeded:
        partition, inp = item.get("partition"), item.get("input")
        if item.get("status") != "SUCCEEDED" or partition not in wanted or \
                not isinstance(inp, Mapping) or not inp.get("key"):
            continue
        started = str(item.get("started_at") or "")
        if partition not in newest or started > newest[partition][0]:
            version = inp.get("version_id")
            newest[str(partition)] = (started, str(version) if version else None)
    return {partition: version for partition, (_, version) in sorted(newest.items())}


def newest_loaded_runs(succeeded: Iterable[Mapping[str, Any]], first: str | None, last: str
                       ) -> dict[str, dict[str, Any]]:
    """partition -> the item of its newest SUCCEEDED run (by `started_at`) that recorded its
    `outputs`, for the partitions from `first` (None: the earliest) to `last`: the curated
    folders a derived dataset reads. A batch's own item (no partition of its own) is
    ignored."""
    newest: dict[str, dict[str, Any]] = {}
    for item in succeeded:
        partition, outputs = item.get("partition"), item.get("outputs")
        if item.get("status") != "SUCCEEDED" or not isinstance(partition, str) or \
                not isinstance(outputs, Mapping) or not outputs or ".." in partition:
            continue
        if partition > last or (first is not None and partition < first):
            continue
        started = str(item.get("started_at") or "")
        if partition not in newest or started > str(newest[partition].get("started_at") or ""):
            newest[partition] = dict(item)
    return dict(sorted(newest.items()))


class LedgerPort(Protocol):
    """What the logic needs from the run ledger (RunLedger; FakeLedger in the tests)."""

    def create_run(self, item: Mapping[str, Any]) -> bool: ...

    def claim_attempt(self, base_run_id: str, latest: int, new: int,
                      new_run_id: str) -> bool: ...

    def get(self, run_id: str) -> dict[str, Any] | None: ...

    def query_by_dataset(self, dataset: str, since: str | None = None, limit: int = 20,
                         status: str | None = None,
                         fields: Sequence[str] | None = None) -> list[dict[str, Any]]: ...

    def month_cost(self, dataset: str, since: str, exclude_run_id: str) -> float: ...

    def loaded_runs(self, dataset: str, first: str | None, last: str
                    ) -> dict[str, dict[str, Any]]: ...

    def loaded_versions(self, dataset: str, partitions: Sequence[str]
                        ) -> dict[str, str | None]: ...

    def update(self, run_id: str, fields: Mapping[str, Any]) -> None: ...

    def mark_failed(self, run_id: str, failure: Mapping[str, Any], *, status: str = "FAILED",
                    cleanup: list[Mapping[str, Any]] | None = None,
                    defaults: Mapping[str, Any] | None = None) -> None: ...

    def close_run(self, run_id: str, execution_arn: str, status: str, *, ended_at: str,
                  error: str | None = None, cause: str | None = None) -> bool: ...

    def append_cleanup(self, run_id: str, execution_arn: str,
                       actions: Sequence[Mapping[str, Any]]) -> bool: ...

    def record_cost(self, run_id: str, cost: Mapping[str, Any],
                    state_durations: Mapping[str, float], *, ended_at: str,
                    execution_arn: str) -> None: ...


class _Update:
    """Builds one UpdateItem: SET clauses with generated placeholder names."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.sets: list[str] = []

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_dynamo(value)
        return placeholder

    def set(self, attribute: str, value: Any) -> None:
        self.sets.append(f"{self.name(attribute)} = {self.value(value)}")

    def set_if_absent(self, attribute: str, value: Any) -> None:
        name = self.name(attribute)
        self.sets.append(f"{name} = if_not_exists({name}, {self.value(value)})")

    def request(self, run_id: str, condition: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "Key": {"run_id": run_id}, "UpdateExpression": "SET " + ", ".join(self.sets),
            "ExpressionAttributeNames": self.names, "ExpressionAttributeValues": self.values,
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        return kwargs


class RunLedger:
    """Adapter over the ledger table (a boto3 `Table` resource); implements LedgerPort."""

    def __init__(self, table: Any, clock: Callable[[], datetime] | None = None):
        self._table = table
        self._clock = clock or (lambda: datetime.now(UTC))

    def _now(self) -> str:
        return utc_now_iso(self._clock)

    def _write(self, what: str, method: Callable[..., Any], **kwargs: Any) -> bool:
        """Call a write; False when its condition failed, domain errors for the rest."""
        try:
            method(**kwargs)
        except ClientError as e:
            if "ConditionExpression" in kwargs and error_code(e) == CONDITION_FAILED:
                return False
            raise domain_error(e, what) from e
        except BotoCoreError as e:
            raise domain_error(e, what) from e
        return True

    # -- creating runs (ResolveRun only) --------------------------------------------------

    def create_run(self, item: Mapping[str, Any]) -> bool:
        """Put a new run item unless `run_id` exists; False means someone created it first."""
        record = dict(item)
        record.setdefault("updated_at", self._now())
        return self._write(f"creating run {item.get('run_id')} in the ledger",
                           self._table.put_item, Item=to_dynamo(record),
                           ConditionExpression="attribute_not_exists(run_id)")

    def claim_attempt(self, base_run_id: str, latest: int, new: int, new_run_id: str) -> bool:
        """Move the base run's attempt counter from `latest` to `new`; False if another won.

        The base item (attempt 1) holds `latest_attempt`; this compare-and-set is what lets at
        most one re-run of a run start, however many are requested at once.
        """
        condition = "attribute_exists(run_id) AND "
        condition += ("(latest_attempt = :latest OR "
                      "(attribute_not_exists(latest_attempt) AND attempt = :latest))")
        return self._write(
            f"claiming attempt {new} of run {base_run_id}", self._table.update_item,
            Key={"run_id": base_run_id},
            UpdateExpression="SET latest_attempt = :new, latest_run_id = :rid, updated_at = :u",
            ConditionExpression=condition,
            ExpressionAttributeValues={
                ":latest": Decimal(latest), ":new": Decimal(new), ":rid": new_run_id,
                ":u": self._now(),
            },
        )

    # -- reading ------------------------------------------------------------------------

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's item (strongly consistent read), or None."""
        item = aws_call(f"reading run {run_id} from the ledger", self._table.get_item,
                        Key={"run_id": run_id}, ConsistentRead=True).get("Item")
        return from_dynamo(item) if item else None

    def _query(self, what: str, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The items of a by_dataset query, as stored, every page."""
        return aws_pages(what, self._table.query, "Items", "ExclusiveStartKey",
                         response_field="LastEvaluatedKey", **kwargs)

    @staticmethod
    def _by_dataset(dataset: str, since: str | None,
                    fields: Sequence[str] | None) -> dict[str, Any]:
        names = {"#d": "dataset"}
        values: dict[str, Any] = {":d": dataset}
        condition = "#d = :d"
        if since:
            names["#t"] = "started_at"
            values[":s"] = since
            condition += " AND #t >= :s"
        kwargs: dict[str, Any] = {"IndexName": BY_DATASET_INDEX,
                                  "KeyConditionExpression": condition,
                                  "ExpressionAttributeNames": names,
                                  "ExpressionAttributeValues": values}
        if fields:
            projected = {f"#p{i}": field for i, field in enumerate(fields)}
            names.update(projected)
            kwargs["ProjectionExpression"] = ", ".join(projected)
        return kwargs

    def query_by_dataset(self, dataset: str, since: str | None = None, limit: int = 20,
                         status: str | None = None,
                         fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Up to `limit` runs of a dataset, newest `started_at` first.

        `since` (ISO-8601 UTC, or a date) keeps runs started at or after it; `status` keeps one
        status; `fields` reads only those top-level attributes. Uses the `by_dataset` GSI, so
        reads are eventually consistent.
        """
        check_status(status)
        if limit < 1:
            return []
        kwargs = self._by_dataset(dataset, since, fields)
        kwargs["ScanIndexForward"] = False
        kwargs["Limit"] = max(limit, 25) if status else limit
        if status:
            kwargs["ExpressionAttributeNames"]["#st"] = "status"
            kwargs["ExpressionAttributeValues"][":st"] = status
            kwargs["FilterExpression"] = "#st = :st"
        found: list[dict[str, Any]] = []
        for item in self._query(f"querying the runs of {dataset}", kwargs):
            found.append(from_dynamo(item))
            if len(found) == limit:
                break
        return found

    def loaded_versions(self, dataset: str, partitions: Sequence[str]
                        ) -> dict[str, str | None]:
        """partition -> the object version its newest SUCCEEDED run loaded
        (`newest_loaded_versions`): what a backfill skips unless forced. One by_dataset query
        of the SUCCEEDED runs (every page; eventually consistent, like the GSI)."""
        if not partitions:
            return {}
        kwargs = self._by_dataset(dataset, None, ("run_id", "partition", "input", "status",
                                                  "started_at"))
        kwargs["ExpressionAttributeNames"]["#st"] = "status"
        kwargs["ExpressionAttributeValues"][":st"] = "SUCCEEDED"
        kwargs["FilterExpression"] = "#st = :st"
        items = (from_dynamo(i) for i in self._query(
            f"querying the loaded partitions of {dataset}", kwargs))
        return newest_loaded_versions(items, partitions)

    def loaded_runs(self, dataset: str, first: str | None, last: str
                    ) -> dict[str, dict[str, Any]]:
        """partition -> the newest SUCCEEDED run's item (run_id, partition, outputs,
        started_at, model) for the partitions from `first` to `last`
        (`newest_loaded_runs`): what a derived dataset reads. One by_dataset query of the
        SUCCEEDED runs, every page (eventually consistent, like the GSI)."""
        kwargs = self._by_dataset(dataset, None, ("run_id", "partition", "outputs", "status",
                                                  "started_at", "model"))
        kwargs["ExpressionAttributeNames"]["#st"] = "status"
        kwargs["ExpressionAttributeValues"][":st"] = "SUCCEEDED"
        kwargs["FilterExpression"] = "#st = :st"
        items = (from_dynamo(i) for i in self._query(
            f"querying the loaded partitions of {dataset}", kwargs))
        return newest_loaded_runs(items, first, last)

    def month_cost(self, dataset: str, since: str, exclude_run_id: str) -> float:
        """Sum of cost.total_usd of the dataset's runs started at or after `since` (ISO),
        leaving out `exclude_run_id` (the run being priced)."""
        kwargs = self._by_dataset(dataset, since, None)
        kwargs["ExpressionAttributeNames"].update({"#r": "run_id", "#c": "cost"})
        kwargs["ProjectionExpression"] = "#r, #c.total_usd"
        items = self._query(f"summing this month's cost of {dataset}", kwargs)
        return float(sum((cost_total(item) for item in items
                          if item.get("run_id") != exclude_run_id), Decimal(0)))

    # -- later writers -------------------------------------------------------------------

    def update(self, run_id: str, fields: Mapping[str, Any]) -> None:
        """SET the given top-level attributes (and updated_at) on an existing run."""
        if not fields:
            return
        if "run_id" in fields:
            raise ValueError("run_id is the key and cannot be updated")
        update = _Update()
        for name, value in {**fields, "updated_at": self._now()}.items():
            update.set(name, value)
        if not self._write(f"updating run {run_id} in the ledger", self._table.update_item,
                           **update.request(run_id, "attribute_exists(run_id)")):
            raise InvalidInput(f"run {run_id} is not in the ledger (ResolveRun creates it first)")

    def mark_failed(self, run_id: str, failure: Mapping[str, Any], *, status: str = "FAILED",
                    cleanup: list[Mapping[str, Any]] | None = None,
                    defaults: Mapping[str, Any] | None = None) -> None:
        """Record how a run ended unsuccessfully; creates the item when the run never got one.

        `failure` is {state, error, cause, logs}. `defaults` (dataset, partition, started_at,
        execution_arn, ...) are written only where the item has no value yet, so a run whose
        ResolveRun failed still appears in the ledger and in the by_dataset index.
        """
        now = self._now()
        fields = ended_fields(status, failure, now, cleanup)
        update = _Update()
        for name, value in fields.items():
            update.set(name, value)
        for name, value in {"dataset": "unknown", "started_at": now, **(defaults or {})}.items():
            if name not in fields and name != "run_id" and value is not None:
                update.set_if_absent(name, value)
        self._write(f"marking run {run_id} {status} in the ledger", self._table.update_item,
                    **update.request(run_id))

    def close_run(self, run_id: str, execution_arn: str, status: str, *, ended_at: str,
                  error: str | None = None, cause: str | None = None) -> bool:
        """RUNNING -> `status` (ABORTED, TIMED_OUT, FAILED) on the item `execution_arn` owns;
        False when the run already ended or belongs to another execution (never overwritten).
        A `failure` is added from error/cause unless the item has one."""
        check_ended_unsuccessfully(status)
        update = _Update()
        update.set("status", status)
        update.set("ended_at", ended_at)
        update.set("updated_at", self._now())
        if error or cause:
            update.set_if_absent("failure", execution_failure(status, error, cause))
        condition = (f"{update.name('execution_arn')} = {update.value(execution_arn)} AND "
                     f"{update.name('status')} = {update.value('RUNNING')}")
        return self._write(f"closing run {run_id} in the ledger", self._table.update_item,
                           **update.request(run_id, condition))

    def append_cleanup(self, run_id: str, execution_arn: str,
                       actions: Sequence[Mapping[str, Any]]) -> bool:
        """Append to the item's `cleanup` list; False when the item is not this execution's."""
        update = _Update()
        cleanup = update.name("cleanup")
        update.sets.append(f"{cleanup} = list_append(if_not_exists({cleanup}, "
                           f"{update.value([])}), {update.value([dict(a) for a in actions])})")
        update.set("updated_at", self._now())
        condition = f"{update.name('execution_arn')} = {update.value(execution_arn)}"
        return self._write(f"recording the cleanup of run {run_id} in the ledger",
                           self._table.update_item, **update.request(run_id, condition))

    def record_cost(self, run_id: str, cost: Mapping[str, Any],
                    state_durations: Mapping[str, float], *, ended_at: str,
                    execution_arn: str) -> None:
        """SET the cost attributes only; ended_at and execution_arn are kept when set first.

        Not conditional: when ResolveRun failed there is no item yet and the orchestration cost
        is still worth keeping (the item is then keyed by the execution name).
        """
        update = _Update()
        update.set("cost", cost)
        update.set("state_durations", state_durations)
        update.set("updated_at", self._now())
        update.set_if_absent("ended_at", ended_at)
        update.set_if_absent("execution_arn", execution_arn)
        self._write(f"recording the cost of run {run_id}", self._table.update_item,
                    **update.request(run_id))
