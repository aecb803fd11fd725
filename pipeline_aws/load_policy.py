"""What a described load statement means, and how long to wait: pure, no AWS calls.

The load Lambda's describe operation (pipeline_aws.load) applies these rules, so the state
machine's poll loop is only Wait -> DescribeLoad -> LoadStatus, with no arithmetic in ASL.

- A running statement is polled with doubling waits (2, 4, ... capped at 60 s); after
  MAX_POLLS polls it is `timed_out` and the state machine cancels it (CancelLoad).
- A FAILED statement whose error is a serialization conflict is `retry`: a provisioned
  Redshift cluster runs every transaction SERIALIZABLE and fails the loser of two concurrent
  writers to one table with error 1023 ("Serializable isolation violation"); PostgreSQL says
  SQLSTATE 40001. Nothing of the failed batch was committed, so submitting it again is safe.
  The wait before the next try grows exponentially with equal jitter, capped; after
  MAX_LOAD_TRIES tries the outcome is `conflict`, and the run fails naming it.
- Any other FAILED is `failed` with Redshift's message; ABORTED is `aborted`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_aws.contracts import LoadOutcome

FIRST_WAIT_SECONDS = 2
MAX_WAIT_SECONDS = 60
MAX_POLLS = 60
MAX_LOAD_TRIES = 5
RETRY_BASE_SECONDS = 4
RETRY_CAP_SECONDS = 120
RUNNING_STATES = ("SUBMITTED", "PICKED", "STARTED")

# Redshift: "ERROR: 1023 DETAIL: Serializable isolation violation on table - 12345, ...";
# PostgreSQL: "could not serialize access due to ..." with SQLSTATE 40001.
_SERIALIZATION = re.compile(
    r"\b1023\b.*serializable isolation violation|serializable isolation violation"
    r"|could not serialize access|\bSQLSTATE[ :=]*40001\b",
    re.I | re.S,
)


@dataclass(frozen=True)
class Verdict:
    outcome: LoadOutcome
    wait_seconds: int
    cause: str | None = None


def statement_error(description: Mapping[str, Any]) -> str | None:
    """The statement's error: the batch's own, else the first failed sub-statement's."""
    error = description.get("Error")
    if error:
        return str(error)
    for sub in description.get("SubStatements") or []:
        if isinstance(sub, Mapping) and sub.get("Error"):
            return str(sub["Error"])
    return None


def is_serialization_conflict(error: str | None) -> bool:
    return bool(error) and _SERIALIZATION.search(str(error)) is not None


def poll_wait(polls: int) -> int:
    """The wait after the `polls`-th describe of a running statement: 2, 4, 8, ... 60."""
    if polls < 1:
        raise ValueError(f"polls counts describes made, at least 1, got {polls}")
    return int(min(FIRST_WAIT_SECONDS * 2 ** min(polls - 1, 16), MAX_WAIT_SECONDS))


def retry_wait(load_try: int, rng: Callable[[float, float], float] = random.uniform) -> int:
    """The wait before load try `load_try + 1`: half of min(cap, base * 2^(try-1)) plus a
    random part up to the other half ("equal jitter": never near zero, so the conflicting
    load has time to commit, and two losers do not come back in step)."""
    if load_try < 1:
        raise ValueError(f"load tries count from 1, got {load_try}")
    ceiling = float(min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** min(load_try - 1, 16)))
    half = ceiling / 2
    return max(1, round(half + rng(0.0, half)))


def judge(description: Mapping[str, Any], *, polls: int, load_try: int,
          rng: Callable[[float, float], float] = random.uniform,
          raced_migration: bool = False) -> Verdict:
    """What the describe of the load statement means; `polls` counts this describe.

    `raced_migration`: the batch applied migrations that another load has recorded since
    (its DDL collided with theirs): retried like a serialization conflict.
    """
    status = description.get("Status")
    if status == "FINISHED":
        return Verdict("finished", 0)
    if status == "ABORTED":
        return Verdict("aborted", 0, "the Redshift statement was aborted (cancelled, or its "
                                     "session ended) before it finished; nothing was committed")
    if status == "FAILED":
        return _failed(statement_error(description) or "no error text", load_try=load_try,
                       rng=rng, raced_migration=raced_migration)
    if status not in RUNNING_STATES:
        raise ValueError(f"DescribeStatement returned an unknown status {status!r}")
    if polls >= MAX_POLLS:
        return Verdict("timed_out", 0, f"the Redshift statement was still {status} after "
                                       f"{polls} polls; it is cancelled")
    return Verdict("running", poll_wait(polls))


def _failed(error: str, *, load_try: int, rng: Callable[[float, float], float],
            raced_migration: bool) -> Verdict:
    if not (is_serialization_conflict(error) or raced_migration):
        return Verdict("failed", 0, error)
    why = ("another load applied the same migration meanwhile" if raced_migration
           and not is_serialization_conflict(error) else "serialization conflict")
    if load_try >= MAX_LOAD_TRIES:
        return Verdict("conflict", 0, f"serialization conflict: all {load_try} load tries "
                                      f"lost to a concurrent load ({why}); the last error: "
                                      f"{error}; nothing was committed")
    return Verdict("retry", retry_wait(load_try, rng), f"{why} on try {load_try}: {error}")
