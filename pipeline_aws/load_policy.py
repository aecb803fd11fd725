"""What a described load statement means: pure, no AWS calls.

The load Lambda (pipeline_aws.load) applies these rules when the Data API's completion event
arrives (or its own look right after the state machine's AwaitLoad starts waiting), and once
more in DescribeLoad when the wait ran out; the state machine only branches on the outcome.

- The state machine waits for the statement's completion event, at most LOAD_TIMEOUT_SECONDS
  (AwaitLoad's TimeoutSeconds). A statement still running when DescribeLoad looks after that
  wait is `timed_out`, and the state machine cancels it (CancelLoad).
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

# How long the state machine waits for the load's completion event: the budget of the poll
# loop it replaces (60 polls 2, 4, ... 60 s apart: 3302 s), rounded to 55 minutes.
LOAD_TIMEOUT_SECONDS = 3300
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


def retry_wait(load_try: int, rng: Callable[[float, float], float] = random.uniform) -> int:
    """The wait before load try `load_try + 1`: half of min(cap, base * 2^(try-1)) plus a
    random part up to the other half ("equal jitter": never near zero, so the conflicting
    load has time to commit, and two losers do not come back in step)."""
    if load_try < 1:
        raise ValueError(f"load tries count from 1, got {load_try}")
    ceiling = float(min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** min(load_try - 1, 16)))
    half = ceiling / 2
    return max(1, round(half + rng(0.0, half)))


def judge(description: Mapping[str, Any], *, load_try: int,
          rng: Callable[[float, float], float] = random.uniform,
          raced_migration: bool = False) -> Verdict:
    """What the describe of the load statement means. It is made when the statement ended (its
    completion event) or when the wait for that event ran out, so a statement still running
    is `timed_out`.

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
    return Verdict("timed_out", 0, f"the Redshift statement was still {status} after "
                                   f"the load's time limit ({LOAD_TIMEOUT_SECONDS} s); it is "
                                   "cancelled")


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
