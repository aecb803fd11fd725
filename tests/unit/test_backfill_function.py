"""pipeline_aws.backfill (PlanBackfill's logic) on in-memory fakes of its ports: the plan
stored and returned inline or by reference, the batch fetch, the summary from the executions
and the ledger, and bad events refused with their field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline_aws.backfill import (
    INLINE_PLAN_BYTES,
    STEP_FUNCTIONS_PAYLOAD_BYTES,
    Backfill,
    execution_arn,
    parse_request,
    payload_bytes,
)
from pipeline_core.backfill_plan import RawObject
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import InvalidInput, UnknownDataset
from tests.support.fakes.backfill import FakeLister, FakeStore
from tests.support.fakes.backfill import FakeLoadedVersions as FakeLedger

PIPELINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:app-pipeline"
EXECUTION = {"Id": "arn:aws:states:eu-west-1:123456789012:execution:app-backfill:b1",
             "Name": "b1"}


class FakeExecutions:
    def __init__(self) -> None:
        self.by_arn: dict[str, dict[str, Any]] = {}

    def describe(self, arn: str) -> dict[str, Any] | None:
        return self.by_arn.get(arn)


def _days(n: int, first: int = 1) -> list[RawObject]:
    return [RawObject(f"online_retail/2011-01-{d:02d}.csv", f"v{d}", 1000)
            for d in range(first, first + n)]


def _backfill(objects: list[RawObject], ledger: FakeLedger | None = None,
              inline_limit: int = INLINE_PLAN_BYTES) -> tuple[Backfill, FakeStore, Any]:
    store, executions = FakeStore(), FakeExecutions()
    bf = Backfill(catalog=load_catalog, lister=FakeLister(objects), store=store,
                  ledger=ledger or FakeLedger(), executions=executions, raw_bucket="raw",
                  curated_bucket="curated", pipeline_arn=PIPELINE, inline_limit=inline_limit)
    return bf, store, executions


def _plan(bf: Backfill, **spec: Any) -> dict[str, Any]:
    return bf.handle(parse_request({"operation": "plan", "input": {"dataset": "online_retail",
                                                                   **spec},
                                    "execution": EXECUTION}))


def test_the_plan_is_stored_and_returned_inline():
    bf, store, _ = _backfill([*_days(31), RawObject("online_retail/x.csv", "v", 1)])
    plan = _plan(bf, start="2011-01-02", end="2011-01-31")
    assert plan["plan_uri"] == "s3://curated/_backfills/online_retail/b1/plan.json"
    assert plan["batches_inline"] is True and plan["max_concurrency"] == 3
    assert [len(b["objects"]) for b in plan["batches"]] == [30]
    assert plan["counts"]["outside_range"] == 1 and plan["counts"]["refused"] == 1
    assert store.docs[plan["plan_uri"]]["batches"] == plan["batches"]


def test_a_large_plan_passes_references_and_each_batch_is_fetched():
    """Step Functions passes at most 256 KiB between states ("Step Functions service quotas",
    maximum input or output size for a task, state, or execution: 256 KiB,
    https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html): a plan whose
    batches would not fit goes by reference."""
    assert STEP_FUNCTIONS_PAYLOAD_BYTES == 256 * 1024 > INLINE_PLAN_BYTES
    bf, store, _ = _backfill(_days(31), inline_limit=2000)
    plan = _plan(bf)
    assert plan["batches_inline"] is False
    assert plan["batches"] == [{"batch_id": store.docs[plan["plan_uri"]]["batches"][0][
        "batch_id"]}]
    batch = bf.handle(parse_request({"operation": "batch", "plan_uri": plan["plan_uri"],
                                     "index": 0}))
    assert batch["partitions"][0] == "2011-01-01" and len(batch["objects"]) == 31
    with pytest.raises(InvalidInput, match="no index 1"):
        bf.handle(parse_request({"operation": "batch", "plan_uri": plan["plan_uri"],
                                 "index": 1}))


def test_a_ten_year_plan_by_reference_fits_the_limit():
    objects = [RawObject(f"online_retail/{2000 + y}-{m:02d}-{d:02d}.csv", "x" * 32, 10 ** 6)
               for y in range(10) for m in range(1, 13) for d in range(1, 29)]
    bf, _, _ = _backfill(objects)
    plan = _plan(bf)
    assert plan["counts"]["partitions"] == len(objects)
    assert payload_bytes(plan) < INLINE_PLAN_BYTES


def test_a_narrower_prefix_must_be_inside_the_dataset_s():
    bf, _, _ = _backfill(_days(3))
    _plan(bf, prefix="online_retail/2011-01-0")
    assert bf.lister.prefixes == ["online_retail/2011-01-0"]  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match="not under dataset online_retail's prefix"):
        _plan(bf, prefix="web_logs/")


def test_an_unknown_dataset_names_the_known_ones():
    bf, _, _ = _backfill([])
    with pytest.raises(UnknownDataset, match="known: "):
        bf.handle(parse_request({"operation": "plan", "input": {"dataset": "nope"},
                                 "execution": EXECUTION}))


@pytest.mark.parametrize(("event", "message"), [
    ({"operation": "plan", "input": {"dataset": "online_retail", "stop": "x"},
      "execution": EXECUTION}, "input.stop"),
    ({"operation": "plan", "input": {}, "execution": EXECUTION}, "input.dataset"),
    ({"operation": "delete"}, "operation"),
    ({"operation": "batch", "plan_uri": "s3://b/k", "index": -1}, "batch.index"),
])
def test_a_bad_event_is_refused_naming_the_field(event, message):
    with pytest.raises(InvalidInput, match=message):
        parse_request(event)


def _summarize(bf: Backfill, plan: dict[str, Any], results: list[dict[str, Any]]) -> Any:
    return bf.handle(parse_request({"operation": "summarize",
                                    "plan": {"plan_uri": plan["plan_uri"]},
                                    "results": results, "execution": EXECUTION}))


def test_the_summary_counts_loaded_failed_and_skipped_partitions_job_runs_and_cost():
    objects = _days(5)
    ledger = FakeLedger({"2011-01-01": "v1"})
    bf, store, executions = _backfill(objects, ledger)
    bf.catalog = lambda: _small_batches(2)  # type: ignore[method-assign]
    plan = _plan(bf)
    first, second = plan["batches"]
    assert first["partitions"] == ["2011-01-02", "2011-01-03"]
    executions.by_arn[execution_arn(PIPELINE, first["batch_id"])] = {
        "status": "SUCCEEDED", "output": json.dumps({"job_run": {"job_run_id": "j"},
                                                     "cost": {"total_usd": 0.25}})}
    executions.by_arn[execution_arn(PIPELINE, second["batch_id"])] = {
        "status": "FAILED", "error": "States.TaskFailed"}
    ledger.loaded.update({"2011-01-02": "v2", "2011-01-03": "v3", "2011-01-04": "v4"})
    summary = _summarize(bf, plan, [
        {"batch_id": first["batch_id"], "status": "SUCCEEDED"},
        {"batch_id": second["batch_id"], "status": "FAILED", "error": "States.TaskFailed"}])
    assert summary["status"] == "partial"
    assert summary["loaded"] == ["2011-01-02", "2011-01-03", "2011-01-04"]
    assert summary["failed"] == ["2011-01-05"] and summary["skipped"] == ["2011-01-01"]
    assert summary["counts"] == {"planned": 4, "loaded": 3, "failed": 1, "skipped": 1,
                                 "refused": 0, "outside_range": 0, "batches": 2,
                                 "batches_failed": 1, "job_runs": 2}
    assert summary["cost_usd"] == 0.25 and summary["cost_complete"] is False
    assert store.docs[summary["summary_uri"]]["loaded"] == summary["loaded"]


def test_a_partition_loaded_from_another_version_meanwhile_is_not_counted_loaded():
    bf, _, executions = _backfill(_days(1))
    plan = _plan(bf)
    [batch] = plan["batches"]
    executions.by_arn[execution_arn(PIPELINE, batch["batch_id"])] = {"status": "SUCCEEDED",
                                                                     "output": "{}"}
    bf.ledger.loaded["2011-01-01"] = "another"  # type: ignore[attr-defined]
    summary = _summarize(bf, plan, [{"batch_id": batch["batch_id"], "status": "SUCCEEDED"}])
    assert summary["failed"] == ["2011-01-01"] and summary["status"] == "failed"


def test_a_batch_that_already_ran_reports_that_execution():
    bf, _, executions = _backfill(_days(2))
    plan = _plan(bf)
    [batch] = plan["batches"]
    arn = execution_arn(PIPELINE, batch["batch_id"])
    executions.by_arn[arn] = {"status": "FAILED", "error": "QualityGateFailed"}
    summary = _summarize(bf, plan, [{"batch_id": batch["batch_id"], "status": "ALREADY_RAN",
                                     "error": "StepFunctions.ExecutionAlreadyExistsException"}])
    [outcome] = summary["batches"]
    assert outcome["already_ran"] and outcome["execution_arn"] == arn
    assert outcome["status"] == "FAILED" and outcome["error"] == "QualityGateFailed"


def test_an_empty_plan_summarizes_to_nothing_to_do():
    bf, _, _ = _backfill(_days(2), FakeLedger({"2011-01-01": "v1", "2011-01-02": "v2"}))
    plan = _plan(bf)
    assert plan["batches"] == []
    summary = _summarize(bf, plan, [])
    assert summary["status"] == "succeeded" and summary["counts"]["skipped"] == 2
    assert summary["counts"]["job_runs"] == 0


def test_execution_arn_is_the_state_machine_s_execution():
    assert execution_arn(PIPELINE, "n") == (
        "arn:aws:states:eu-west-1:123456789012:execution:app-pipeline:n")


def _small_batches(n: int) -> Any:
    import dataclasses

    catalog = load_catalog()
    ds = catalog.get("online_retail")
    small = dataclasses.replace(ds, backfill=dataclasses.replace(ds.backfill,
                                                                 max_objects_per_batch=n))
    return dataclasses.replace(catalog, datasets={**catalog.datasets, "online_retail": small})
