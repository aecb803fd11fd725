"""pipeline_aws.admission (AdmitObjects) on a fake Step Functions: a burst of S3 events grouped
by dataset into batches within the catalog's limits, the per-dataset concurrency limit (the
rest go back to the queue), redelivery starting nothing new, partial batch failures.

AWS rules held here:
- "Implementing partial batch responses" (Lambda Developer Guide, "Handling errors for an SQS
  event source in Lambda", https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html):
  the function returns `{"batchItemFailures": [{"itemIdentifier": <messageId>}]}`; the records
  it names return to the queue, the others are deleted.
- StartExecution (Step Functions API Reference,
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html): for a
  STANDARD workflow the same name and input as a running execution succeeds with the same
  response; a closed execution's name (or another input) is refused with ExecutionAlreadyExists.
- "EventBridge event message structure" (S3 User Guide,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html): `detail.object` has
  key, size, etag, version-id and sequencer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline_aws.admission import (
    Admission,
    batch_name_pattern,
    burst_batch_id,
    single_name,
)
from pipeline_core.backfill_plan import PlannedObject
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import InvalidInput, TransientError

RAW = "app-raw"
PIPELINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:app-pipeline"


def s3_event(key: str, *, size: int = 1000, version: str | None = "v1", etag: str = "e1",
             sequencer: str = "0A", bucket: str = RAW) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag, "sequencer": sequencer}
    if version:
        obj["version-id"] = version
    return {"version": "0", "id": "e-" + key, "detail-type": "Object Created",
            "source": "aws.s3", "account": "123456789012", "time": "2026-12-01T10:00:00Z",
            "region": "eu-west-1", "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj,
                       "request-id": "R", "requester": "123456789012",
                       "source-ip-address": "127.0.0.1", "reason": "PutObject"}}


def sqs(*bodies: Any) -> dict[str, Any]:
    return {"Records": [{"messageId": f"m{i}", "receiptHandle": f"h{i}",
                         "body": b if isinstance(b, str) else json.dumps(b),
                         "eventSource": "aws:sqs"} for i, b in enumerate(bodies)]}


def day(n: int) -> str:
    return f"online_retail/2011-01-{n:02d}.csv"


class FakeSfn:
    """StartExecution's documented name rules, and the RUNNING executions' names."""

    def __init__(self, running: list[str] | None = None, fail: set[str] | None = None):
        self.running = {n: "" for n in running or []}
        self.ended: dict[str, str] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail or set()

    def start(self, name: str, payload: dict[str, Any]) -> str:
        self.calls.append((name, payload))
        if name in self.fail:
            raise TransientError(f"StartExecution {name} failed (ThrottlingException)")
        text = json.dumps(payload, sort_keys=True)
        if name in self.ended or (name in self.running and self.running[name] != text):
            return "exists"
        self.running[name] = text
        return "started"

    def running_names(self) -> list[str]:
        return list(self.running)

    def end_all(self) -> None:
        self.ended.update(self.running)
        self.running.clear()

    @property
    def started(self) -> list[str]:
        return [n for n, _ in self.calls]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def admit(sfn: FakeSfn, catalog: Any, event: dict[str, Any]) -> list[str]:
    out = Admission(catalog=lambda: catalog, starter=sfn, raw_bucket=RAW).handle(event)
    return [f["itemIdentifier"] for f in out["batchItemFailures"]]


def test_a_burst_becomes_batches_cut_at_the_catalog_limit(catalog):
    """online_retail: 31 objects per batch, 3 batches at once; 40 days -> 2 executions."""
    keys = [f"online_retail/2011-{1 + d // 31:02d}-{d % 31 + 1:02d}.csv" for d in range(40)]
    sfn = FakeSfn()
    failures = admit(sfn, catalog, sqs(*[s3_event(k) for k in keys]))
    assert failures == []
    assert len(sfn.calls) == 2
    sizes = [len(p["batch"]["objects"]) for _, p in sfn.calls]
    assert sizes == [31, 9]
    for name, payload in sfn.calls:
        assert batch_name_pattern("online_retail").match(name)
        assert payload["batch"]["batch_id"] == name and payload["batch"]["force"] is False
        assert payload["batch"]["dataset"] == "online_retail"


def test_bytes_limit_cuts_a_batch(catalog):
    big = 200 * 1024 * 1024  # two of them pass the 256 MiB max_bytes_per_batch
    sfn = FakeSfn()
    assert admit(sfn, catalog, sqs(s3_event(day(1), size=big), s3_event(day(2), size=big))) == []
    assert len(sfn.calls) == 2


def test_a_lone_object_runs_as_its_own_s3_event(catalog):
    sfn = FakeSfn()
    event = s3_event(day(3))
    assert admit(sfn, catalog, sqs(event)) == []
    [(name, payload)] = sfn.calls
    assert payload == event, "the event as delivered: trigger s3, ETag checked by ResolveRun"
    assert batch_name_pattern("online_retail").match(name)


def test_the_same_object_twice_counts_once(catalog):
    sfn = FakeSfn()
    assert admit(sfn, catalog, sqs(s3_event(day(1)), s3_event(day(2)), s3_event(day(1)))) == []
    [(_, payload)] = sfn.calls
    assert [o["key"] for o in payload["batch"]["objects"]] == [day(1), day(2)]


def test_a_redelivered_batch_starts_nothing_new(catalog):
    burst = sqs(*[s3_event(day(d)) for d in range(1, 6)])
    sfn = FakeSfn()
    assert admit(sfn, catalog, burst) == []
    # while it runs: same name and input -> the running execution (no second one)
    assert admit(sfn, catalog, burst) == []
    assert len(sfn.running) == 1
    sfn.end_all()
    # after it ended: ExecutionAlreadyExists -> success, the records are deleted
    assert admit(sfn, catalog, burst) == []
    assert len(sfn.running) == 0 and len(sfn.ended) == 1


def test_the_concurrency_limit_sends_the_rest_back_to_the_queue(catalog):
    """3 batches of online_retail already run: a new batch is not started, its records fail
    (they return after the visibility timeout), and start once a slot is free."""
    busy = [f"online_retail-2010-12-0{i}-n31-{i:016x}" for i in range(1, 4)]
    sfn = FakeSfn(running=[*busy, "s3-other", "bank_transactions-2013-01-01-n1-" + "a" * 16])
    burst = sqs(s3_event(day(1)), s3_event(day(2)))
    assert sorted(admit(sfn, catalog, burst)) == ["m0", "m1"]
    assert sfn.calls == []
    for name in busy[:1]:
        sfn.running.pop(name)
    assert admit(sfn, catalog, burst) == []
    assert len(sfn.calls) == 1


def test_only_free_slots_start_in_one_invocation(catalog):
    """100 days in one delivery: 4 batches of 31/31/31/7; the limit 3 starts three, the fourth
    batch's records go back."""
    keys = [f"online_retail/2011-{m:02d}-{d:02d}.csv" for m in range(1, 5) for d in range(1, 26)]
    sfn = FakeSfn()
    failures = admit(sfn, catalog, sqs(*[s3_event(k) for k in keys]))
    assert len(sfn.calls) == 3
    assert len(failures) == 100 - 93
    started = {o["key"] for _, p in sfn.calls for o in p["batch"]["objects"]}
    assert started.isdisjoint({keys[int(f[1:])] for f in failures})


def test_a_second_object_of_a_partition_waits_for_a_later_delivery(catalog):
    sfn = FakeSfn()
    older = s3_event(day(1), version="v1", sequencer="0A")
    newer = s3_event(day(1), version="v2", etag="e2", sequencer="0B")
    gz = s3_event(day(1) + ".gz", version="v9", sequencer="0C")
    failures = admit(sfn, catalog, sqs(newer, older, gz, s3_event(day(2))))
    assert sorted(failures) == ["m0", "m2"]
    [(_, payload)] = sfn.calls
    assert payload["batch"]["objects"][0] == {"key": day(1), "version_id": "v1", "size": 1000}


def test_records_that_are_no_s3_event_fail_alone(catalog):
    sfn = FakeSfn()
    failures = admit(sfn, catalog, sqs("not json", {"source": "aws.s3"}, s3_event(day(1))))
    assert failures == ["m0", "m1"]
    assert len(sfn.calls) == 1


def test_other_objects_run_as_single_events_named_by_the_object(catalog):
    """A folder marker or a key outside the key pattern: its own execution, as before the
    queue (ResolveRun ends it as Ignored or fails it with an alert)."""
    marker = s3_event("online_retail/", size=0)
    odd = s3_event("online_retail/notes.txt")
    sfn = FakeSfn()
    assert admit(sfn, catalog, sqs(marker, odd)) == []
    assert [p for _, p in sfn.calls] == [marker, odd]
    from pipeline_aws.contracts import S3ObjectCreated

    assert sfn.started[0] == single_name(S3ObjectCreated.model_validate(marker))
    assert admit(sfn, catalog, sqs(marker, odd)) == []
    assert len(sfn.running) == 2


def test_a_failed_start_returns_only_its_batch(catalog):
    sfn = FakeSfn()
    retail = [s3_event(day(d)) for d in (1, 2)]
    bank = s3_event("bank_transactions/2013-01-01.jsonl")
    first = admit(FakeSfn(), catalog, sqs(*retail, bank))
    assert first == []
    name = burst_batch_id("online_retail", [
        PlannedObject(day(d), "v1", 1000, f"2011-01-{d:02d}") for d in (1, 2)],
        {(day(d), "v1"): "e1" for d in (1, 2)})
    sfn.fail = {name}
    assert sorted(admit(sfn, catalog, sqs(*retail, bank))) == ["m0", "m1"]


def test_an_event_that_is_not_from_sqs_is_refused(catalog):
    with pytest.raises(InvalidInput, match="SQS event"):
        admit(FakeSfn(), catalog, {"detail": {}})


def test_the_name_changes_with_the_etag_of_an_unversioned_key():
    objs = [PlannedObject(day(1), None, 10, "2011-01-01")]
    a = burst_batch_id("online_retail", objs, {(day(1), None): "e1"})
    b = burst_batch_id("online_retail", objs, {(day(1), None): "e2"})
    assert a != b and len(a) <= 64 and batch_name_pattern("online_retail").match(a)

