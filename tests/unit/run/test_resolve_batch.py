"""ResolveRun for a batch (`{"batch": {...}}`): the input contract, one run id and ledger item
per partition (so a batch and an S3 event of the same version never both load it), refusals
that fail one partition alone, and what a batch started again skips."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_aws.contracts import (
    BatchTrigger,
    ResolveRunRequest,
    RunManifest,
)
from pipeline_aws.resolve import RunResolver, run_id_for
from pipeline_core.errors import InvalidInput
from spark_jobs.common.args import parse_args, split_partitions
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.s3_objects import FakeS3Objects
from tests.unit.run.support import RAW
from tests.unit.run.test_resolve import HEADER, make_resolver, request, s3_event

DAYS = ("2010-12-01", "2010-12-02", "2010-12-03")


def row(day: str) -> bytes:
    return f"536365,85123A,WHITE HEART,6,{day} 08:26:00,2.55,17850.0,UK\n".encode()


def key(day: str) -> str:
    return f"online_retail/{day}.csv"


def batch(*days: str, batch_id: str = "b1", force: bool = False,
          objects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"batch": {"dataset": "online_retail", "batch_id": batch_id, "force": force,
                      "objects": objects or [{"key": key(d)} for d in days]}}


@pytest.fixture
def resolver(objects: FakeS3Objects, ledger: FakeLedger, env: dict[str, str]) -> RunResolver:
    return make_resolver(objects, ledger, env)


@pytest.fixture
def days(objects: FakeS3Objects) -> tuple[str, ...]:
    for day in DAYS:
        objects.put(RAW, key(day), HEADER + row(day))
    return DAYS


def test_a_batch_is_one_manifest_with_a_partition_per_object(days, ledger, resolver) -> None:
    manifest = resolver.resolve(request(batch(*reversed(days))))
    run = RunManifest.model_validate(manifest)
    assert run.trigger == "batch" and run.batch_id == "b1" and not run.duplicate
    assert [p.partition for p in run.partitions] == list(DAYS)  # in partition order
    assert run.partition == "2010-12-01..2010-12-03" and run.input is None
    for part in run.partitions:
        obj = part.input
        assert part.run_id == run_id_for("online_retail", part.partition, RAW, obj.key,
                                         obj.etag, obj.version_id)
        item = ledger.get(part.run_id)
        assert item is not None
        assert (item["status"], item["batch_id"], item["trigger"], item["partition"]) == (
            "RUNNING", "b1", "batch", part.partition)
        assert item["execution_arn"] == run.execution_id
    assert run.run_id.startswith("online_retail-batch-")
    assert ledger.get(run.run_id) is None  # only the partitions have run items


def test_the_job_arguments_split_back_into_each_partitions_run(days, resolver) -> None:
    run = RunManifest.model_validate(resolver.resolve(request(batch(*days))))
    groups = split_partitions(run.job["arguments"])
    parsed = [parse_args(g) for g in groups]
    assert [a.partition for a in parsed] == list(DAYS)
    for args, part in zip(parsed, run.partitions, strict=True):
        assert args.run_id == part.run_id
        assert args.input == part.input.uri and args.metrics == part.metrics_uri
        assert args.output_uri("sales_line_items") == part.outputs["sales_line_items"]
        assert args.input_etag == part.input.etag
        assert args.rules == parsed[0].rules and args.encoding == parsed[0].encoding


def test_one_event_and_a_batch_of_the_same_version_share_a_run(days, ledger, resolver
                                                               ) -> None:
    single = resolver.resolve(request(s3_event(key(DAYS[1])), name="event"))
    run = RunManifest.model_validate(resolver.resolve(request(batch(*days), name="batch")))
    assert [p.partition for p in run.partitions] == [DAYS[0], DAYS[2]]
    assert run.skipped == [{"partition": DAYS[1], "run_id": single["run_id"],
                            "key": key(DAYS[1]), "reason": "its run exists"}]


def test_the_same_batch_again_is_a_duplicate(days, resolver) -> None:
    first = resolver.resolve(request(batch(*days), name="one"))
    again = resolver.resolve(request(batch(*days), name="two"))
    assert again["duplicate"] is True and again["partitions"] == []
    assert [s["partition"] for s in again["skipped"]] == list(DAYS)
    # The same execution retried (ResolveRun's Retry) gets its own partitions back.
    retried = resolver.resolve(request(batch(*days), name="one"))
    assert retried["duplicate"] is False
    assert [p["run_id"] for p in retried["partitions"]] == [
        p["run_id"] for p in first["partitions"]]


def test_force_runs_every_partition_again_as_a_new_attempt(days, ledger, resolver) -> None:
    first = RunManifest.model_validate(resolver.resolve(request(batch(*days), name="one")))
    for part in first.partitions:
        ledger.items[part.run_id]["status"] = "SUCCEEDED"
    forced = RunManifest.model_validate(
        resolver.resolve(request(batch(*days, force=True), name="two")))
    assert [p.run_id for p in forced.partitions] == [f"{p.run_id}-r2" for p in first.partitions]
    assert [p.attempt for p in forced.partitions] == [2, 2, 2]
    assert forced.run_id != first.run_id


def test_a_refused_object_fails_alone(objects, days, ledger, resolver) -> None:
    objects.put(RAW, key(DAYS[1]), b"Invoice;Stock\n1;2\n")
    run = RunManifest.model_validate(resolver.resolve(request(batch(*days))))
    refused = {p.partition: p.refused for p in run.partitions}
    assert refused[DAYS[0]] is None and refused[DAYS[2]] is None
    assert "header" in str(refused[DAYS[1]])
    assert [p.partition for p in run.loadable] == [DAYS[0], DAYS[2]]
    assert [a.partition for a in map(parse_args, split_partitions(run.job["arguments"]))] == [
        DAYS[0], DAYS[2]]


def test_every_object_refused_is_invalid_input(objects, resolver) -> None:
    objects.put(RAW, key(DAYS[0]), b"")
    objects.put(RAW, key(DAYS[1]), b"x;y\n")
    with pytest.raises(InvalidInput, match="every object of batch b1 was refused"):
        resolver.resolve(request(batch(DAYS[0], DAYS[1])))


@pytest.mark.parametrize(("spec", "message"), [
    ({"dataset": "online_retail", "batch_id": "b", "objects": []}, "at least 1 item"),
    ({"dataset": "online_retail", "batch_id": "b",
      "objects": [{"key": "online_retail/2010-12-01.csv"}] * 2}, "more than once"),
    ({"dataset": "online_retail", "batch_id": "../x", "objects": [{"key": "a"}]},
     "batch_id"),
    ({"dataset": "online_retail", "batch_id": "b", "objects": [{"key": "a", "etag": "x"}]},
     "Extra inputs"),
])
def test_malformed_batches_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ResolveRunRequest.parse({"event": {"batch": spec},
                                 "execution": {"Id": "arn:x", "Name": "x"}})


def test_a_batch_trigger_is_parsed_as_one() -> None:
    parsed = ResolveRunRequest.parse({"event": batch("2010-12-01"),
                                      "execution": {"Id": "arn:x", "Name": "x"}})
    assert isinstance(parsed.trigger, BatchTrigger) and parsed.trigger_kind == "batch"


def test_two_objects_of_one_partition_are_refused(objects, days, resolver) -> None:
    objects.put(RAW, "online_retail/2010-12-01.csv.gz", b"\x1f\x8b...")
    with pytest.raises(InvalidInput, match="two objects of partition"):
        resolver.resolve(request(batch(objects=[
            {"key": key(DAYS[0])}, {"key": "online_retail/2010-12-01.csv.gz"}])))


def test_keys_outside_the_pattern_or_bucket_are_refused(objects, days, resolver) -> None:
    objects.put(RAW, "online_retail/notes.txt", b"x")
    with pytest.raises(InvalidInput, match=r"notes\.txt"):
        resolver.resolve(request(batch(objects=[{"key": "online_retail/notes.txt"}])))


def test_a_missing_version_is_refused(days, resolver) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        resolver.resolve(request(batch(objects=[{"key": key(DAYS[0]),
                                                 "version_id": "nope"}])))


def test_more_objects_than_the_catalog_allows(objects, resolver: RunResolver,
                                              ledger: FakeLedger) -> None:
    many = [{"key": f"online_retail/2011-01-{d:02d}.csv"} for d in range(1, 32)]
    many += [{"key": f"online_retail/2011-02-{d:02d}.csv"} for d in range(1, 29)]
    limit = resolver.catalog.get("online_retail").backfill.max_objects_per_batch
    assert len(many) > limit
    with pytest.raises(InvalidInput, match=f"takes at most {limit} per batch"):
        resolver.resolve(request(batch(objects=many)))
    assert ledger.items == {}


def test_a_partitions_own_options_are_never_shared() -> None:
    """The job (spark_jobs.common.args) splits what ResolveRun joins (resolve.batch_arguments);
    the local runtime adds --input-source after each --input."""
    from pipeline_aws.resolve import PARTITION_OPTIONS as joined
    from spark_jobs.common.args import PARTITION_OPTIONS as split
    assert split - {"--input-source"} == joined
    argv = ["--input", "a", "--input-source", "s3://r/a", "--rules", "R", "--run-id", "1",
            "--input", "b", "--run-id", "2"]
    assert split_partitions(argv) == [
        ["--input", "a", "--input-source", "s3://r/a", "--rules", "R", "--run-id", "1"],
        ["--rules", "R", "--input", "b", "--run-id", "2"]]


def test_batch_outputs_lie_under_the_batch_prefix(days, resolver) -> None:
    run = RunManifest.model_validate(resolver.resolve(request(batch(*days))))
    for part in run.partitions:
        assert part.outputs["sales_line_items"].endswith(
            f"/online_retail/sales_line_items/batch={run.run_id}/partition={part.partition}/")
        assert f"/quarantine/online_retail/batch={run.run_id}/" in part.quarantine_uri
        assert part.metrics_uri.endswith(f"/_runs/online_retail/{part.run_id}/metrics.json")


def test_only_refused_objects_left_to_run_fail_and_stay_not_running(objects, days, ledger,
                                                                    resolver) -> None:
    resolver.resolve(request(s3_event(key(DAYS[0])), name="event"))
    objects.put(RAW, key(DAYS[1]), b"")
    with pytest.raises(InvalidInput, match="still to run was refused"):
        resolver.resolve(request(batch(DAYS[0], DAYS[1]), name="batch"))
    [refused] = [i for i in ledger.items.values() if i["partition"] == DAYS[1]]
    assert refused["status"] == "FAILED" and refused["failure"]["state"] == "ResolveRun"


def test_every_object_refused_creates_no_ledger_item(objects, ledger, resolver) -> None:
    objects.put(RAW, key(DAYS[0]), b"")
    with pytest.raises(InvalidInput, match="every object of batch b1 was refused"):
        resolver.resolve(request(batch(DAYS[0])))
    assert ledger.items == {}


def test_a_batch_resumes_partitions_a_crash_ended_but_not_those_their_data_failed(
        days, ledger, resolver) -> None:
    first = RunManifest.model_validate(resolver.resolve(request(batch(*days), name="one")))
    crashed, bad, loaded = first.partitions
    ledger.mark_failed(crashed.run_id, {"state": "RunServerlessJob",
                                        "error": "States.TaskFailed", "cause": "JVM gone"})
    ledger.mark_failed(bad.run_id, {"state": "EvaluateQuality",
                                    "error": "QualityGateFailed", "cause": "Completeness"})
    ledger.items[loaded.run_id]["status"] = "SUCCEEDED"
    again = RunManifest.model_validate(resolver.resolve(request(batch(*days), name="two")))
    assert [(p.partition, p.run_id) for p in again.partitions] == [
        (crashed.partition, f"{crashed.run_id}-r2")]
    assert [s["partition"] for s in again.skipped] == [bad.partition, loaded.partition]
