"""`python -m local_runtime backfill` follows its execution (local_runtime.backfill.run_backfill):
the plan line as soon as the plan is made (the kill-and-resume e2e test waits for it), one line
per batch as it ends, every batch printed even when it ends between two reads, and the history
(which moto serializes whole at every read) read every HISTORY_EVERY_SECONDS once the plan is
out, not at every 0.2 s poll."""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from local_runtime import backfill
from pipeline_core.catalog import load_catalog


class Clock:
    """time.monotonic and time.sleep of run_backfill, advancing only when it sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _exited(name: str, output: dict[str, Any]) -> dict[str, Any]:
    return {"type": "TaskStateExited",
            "stateExitedEventDetails": {"name": name, "output": json.dumps(output)}}


@dataclass
class FakeSfn:
    """An execution that plans at 1 s, ends a batch at 5 s and 5.1 s, and ends at 9 s."""

    clock: Clock
    history_reads: list[float] = field(default_factory=list)

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        return {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:b:x"}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        if self.clock.now < 9:
            return {"status": "RUNNING"}
        return {"status": "SUCCEEDED", "output": json.dumps({"status": "succeeded"})}

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        self.history_reads.append(self.clock.now)
        events = [{"type": "ExecutionStarted"}]
        if self.clock.now >= 1:
            events.append(_exited("Plan", {"plan": {"counts": {"partitions": 4, "batches": 2},
                                                    "max_concurrency": 2}}))
        for at, batch in ((5, "b1"), (5.1, "b2")):
            if self.clock.now >= at:
                events.append(_exited("BatchSucceeded", {"batch_id": batch}))
        return {"events": events}


@dataclass
class FakeDeployment:
    sfn: FakeSfn
    state_machine_arns: dict[str, str] = field(default_factory=lambda: {
        backfill.BACKFILL_MACHINE: "arn:aws:states:us-east-1:123456789012:stateMachine:b"})
    ledger_dumps: int = 0

    def client(self, name: str) -> FakeSfn:
        assert name == "stepfunctions"
        return self.sfn

    def dump_ledger(self) -> None:
        self.ledger_dumps += 1


@pytest.fixture
def run(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(backfill, "time", clock)
    deployment = FakeDeployment(FakeSfn(clock))
    request = backfill.BackfillRequest(load_catalog().get("online_retail"), None, None, None,
                                       None, False)
    out = io.StringIO()
    result = backfill.run_backfill(deployment, request, out)
    return deployment, out.getvalue(), result


def test_the_plan_line_is_printed_at_the_first_poll_after_the_plan(run):
    deployment, out, _ = run
    reads = deployment.sfn.history_reads
    assert all(b - a < 0.25 for a, b in itertools.pairwise(reads) if b <= 1.0)  # each poll
    assert "plan: 4 partition(s) in 2 batch(es), at most 2 at once" in out


def test_after_the_plan_the_history_is_read_every_few_seconds_and_every_batch_is_printed(run):
    deployment, out, result = run
    after_plan = [t for t in deployment.sfn.history_reads if t > 1.0]
    polled = after_plan[:-1]  # the last read is the one after the end, whenever it comes
    assert len(polled) >= 2
    assert all(b - a >= backfill.HISTORY_EVERY_SECONDS - 1e-9
               for a, b in itertools.pairwise(polled))
    assert len(after_plan) <= 8 / backfill.HISTORY_EVERY_SECONDS + 2  # not 40 reads
    assert "batch 1/2 b1: loaded" in out and "batch 2/2 b2: loaded" in out
    assert deployment.ledger_dumps == 3  # each batch, then the end
    assert result.status == "SUCCEEDED"
