"""FakeLedger: the run ledger in memory, with RunLedger's semantics (see pipeline_aws.ledger).

Items are kept the way DynamoDB keeps them (numbers as Decimal, NaN refused) and come back
through the same `from_dynamo`, so a number read from the fake is what the table would return.
Like the `by_dataset` GSI, queries see only items with string `dataset` and `started_at`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline_aws.ledger import (
    LedgerPort,
    check_ended_unsuccessfully,
    check_status,
    cost_total,
    ended_fields,
    execution_failure,
    from_dynamo,
    newest_loaded_runs,
    newest_loaded_versions,
    to_dynamo,
    utc_now_iso,
)
from pipeline_core.errors import InvalidInput


class FakeLedger:
    """Implements LedgerPort. `items` holds the stored items (Decimal numbers) by run_id;
    `fail[method] = exception` makes that method raise it (an outage, a throttle)."""

    def __init__(self, clock: Callable[[], datetime] | None = None,
                 items: Sequence[Mapping[str, Any]] = ()):
        self._clock = clock or (lambda: datetime.now(UTC))
        self.items: dict[str, dict[str, Any]] = {}
        self.fail: dict[str, Exception] = {}
        for item in items:
            self.put(item)

    # -- test helpers -----------------------------------------------------------------------

    def put(self, item: Mapping[str, Any]) -> None:
        """Store an item as is (an unconditional PutItem), e.g. to set up a test."""
        self.items[str(item["run_id"])] = to_dynamo(dict(item))

    def item(self, run_id: str) -> dict[str, Any] | None:
        """The stored item, numbers as Decimal (what the table holds)."""
        return copy.deepcopy(self.items.get(run_id))

    def _check(self, method: str) -> None:
        if method in self.fail:
            raise self.fail[method]

    def _now(self) -> str:
        return utc_now_iso(self._clock)

    # -- creating runs ----------------------------------------------------------------------

    def create_run(self, item: Mapping[str, Any]) -> bool:
        self._check("create_run")
        record = to_dynamo({"updated_at": self._now(), **item})
        if record["run_id"] in self.items:
            return False
        self.items[record["run_id"]] = record
        return True

    def claim_attempt(self, base_run_id: str, latest: int, new: int, new_run_id: str) -> bool:
        self._check("claim_attempt")
        base = self.items.get(base_run_id)
        if base is None:
            return False
        current = base.get("latest_attempt", base.get("attempt"))
        if current != Decimal(latest):
            return False
        base.update(latest_attempt=Decimal(new), latest_run_id=new_run_id,
                    updated_at=self._now())
        return True

    # -- reading ----------------------------------------------------------------------------

    def get(self, run_id: str) -> dict[str, Any] | None:
        self._check("get")
        item = self.items.get(run_id)
        return from_dynamo(copy.deepcopy(item)) if item else None

    def _indexed(self, dataset: str, since: str | None) -> Iterator[dict[str, Any]]:
        """The dataset's items in the GSI, newest started_at first."""
        found = [item for item in self.items.values()
                 if item.get("dataset") == dataset and isinstance(item.get("started_at"), str)
                 and (not since or item["started_at"] >= since)]
        found.sort(key=lambda item: item["started_at"], reverse=True)
        return iter(copy.deepcopy(found))

    def query_by_dataset(self, dataset: str, since: str | None = None, limit: int = 20,
                         status: str | None = None,
                         fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        self._check("query_by_dataset")
        check_status(status)
        if limit < 1:
            return []
        found = []
        for item in self._indexed(dataset, since):
            if status and item.get("status") != status:
                continue
            if fields:
                item = {k: v for k, v in item.items() if k in fields}
            found.append(from_dynamo(item))
            if len(found) == limit:
                break
        return found

    def loaded_versions(self, dataset: str, partitions: Sequence[str]
                        ) -> dict[str, str | None]:
        self._check("loaded_versions")
        return newest_loaded_versions(
            (from_dynamo(i) for i in self._indexed(dataset, None)), partitions)

    def loaded_runs(self, dataset: str, first: str | None, last: str
                    ) -> dict[str, dict[str, Any]]:
        self._check("loaded_runs")
        return newest_loaded_runs(
            (from_dynamo(i) for i in self._indexed(dataset, None)), first, last)

    def month_cost(self, dataset: str, since: str, exclude_run_id: str) -> float:
        self._check("month_cost")
        return float(sum((cost_total(item) for item in self._indexed(dataset, since)
                          if item.get("run_id") != exclude_run_id), Decimal(0)))

    # -- later writers ----------------------------------------------------------------------

    def update(self, run_id: str, fields: Mapping[str, Any]) -> None:
        self._check("update")
        if not fields:
            return
        if "run_id" in fields:
            raise ValueError("run_id is the key and cannot be updated")
        values = to_dynamo({**fields, "updated_at": self._now()})
        if run_id not in self.items:
            raise InvalidInput(f"run {run_id} is not in the ledger (ResolveRun creates it first)")
        self.items[run_id].update(values)

    def mark_failed(self, run_id: str, failure: Mapping[str, Any], *, status: str = "FAILED",
                    cleanup: list[Mapping[str, Any]] | None = None,
                    defaults: Mapping[str, Any] | None = None) -> None:
        self._check("mark_failed")
        now = self._now()
        fields = ended_fields(status, failure, now, cleanup)
        base = {k: v for k, v in {"dataset": "unknown", "started_at": now,
                                  **(defaults or {})}.items()
                if k not in fields and k != "run_id" and v is not None}
        values, base = to_dynamo(fields), to_dynamo(base)
        item = self.items.setdefault(run_id, {"run_id": run_id})
        item.update(values)
        for name, value in base.items():
            item.setdefault(name, value)

    def close_run(self, run_id: str, execution_arn: str, status: str, *, ended_at: str,
                  error: str | None = None, cause: str | None = None) -> bool:
        self._check("close_run")
        check_ended_unsuccessfully(status)
        item = self.items.get(run_id)
        if item is None or item.get("execution_arn") != execution_arn \
                or item.get("status") != "RUNNING":
            return False
        item.update(status=status, ended_at=ended_at, updated_at=self._now())
        if error or cause:
            item.setdefault("failure", execution_failure(status, error, cause))
        return True

    def append_cleanup(self, run_id: str, execution_arn: str,
                       actions: Sequence[Mapping[str, Any]]) -> bool:
        self._check("append_cleanup")
        added = to_dynamo([dict(a) for a in actions])
        item = self.items.get(run_id)
        if item is None or item.get("execution_arn") != execution_arn:
            return False
        item["cleanup"] = [*item.get("cleanup", []), *added]
        item["updated_at"] = self._now()
        return True

    def record_cost(self, run_id: str, cost: Mapping[str, Any],
                    state_durations: Mapping[str, float], *, ended_at: str,
                    execution_arn: str) -> None:
        self._check("record_cost")
        values = to_dynamo({"cost": cost, "state_durations": state_durations,
                            "updated_at": self._now()})
        item = self.items.setdefault(run_id, {"run_id": run_id})
        item.update(values)
        item.setdefault("ended_at", ended_at)
        item.setdefault("execution_arn", execution_arn)


def _conforms(ledger: FakeLedger) -> LedgerPort:
    return ledger  # mypy: FakeLedger implements LedgerPort
