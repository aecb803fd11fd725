"""The real statemachines/backfill.asl.json in moto's interpreter: Plan -> Map of
startExecution.sync:2 -> Summarize. The PlanBackfill function is the real logic
(pipeline_aws.backfill) on in-memory listing, store and ledger; the pipeline it starts is a
stand-in machine whose one Task "loads" its batch into that ledger, or fails when a key of the
batch contains "bad". So these tests hold the definition: batching, bounded concurrency, a
failing batch that does not stop the others, the summary, and a second backfill that skips
what is loaded and never starts a batch twice."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline_aws.backfill import Backfill, parse_request
from pipeline_aws.backfill_aws import SfnExecutions
from pipeline_core.backfill_plan import RawObject
from pipeline_core.catalog import load_catalog
from tests.support.fakes.backfill import FakeLister as Lister
from tests.support.fakes.backfill import FakeLoadedVersions as Ledger
from tests.support.fakes.backfill import FakeStore as Store

pytestmark = pytest.mark.statemachine

REPO = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "us-east-1"
FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
PIPELINE_ASL = {
    "StartAt": "Load",
    "States": {"Load": {"Type": "Task", "Resource": FN + "FakePipeline", "End": True}},
}


class FakePipeline:
    """The pipeline's stand-in: records each batch, loads its partitions, fails on "bad"."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.batches: list[dict[str, Any]] = []
        self.running = 0
        self.most_at_once = 0
        self.seconds = 0.3
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        batch = event["batch"]
        with self.lock:
            self.batches.append(batch)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        if any("bad" in o["version_id"] for o in batch["objects"]):
            raise RuntimeError(f"batch {batch['batch_id']} failed")
        for o in batch["objects"]:
            partition = re.search(r"\d{4}-\d{2}-\d{2}", o["key"]).group(0)  # type: ignore[union-attr]
            self.ledger.loaded[partition] = o["version_id"]
        return {"job_run": {"job_run_id": batch["batch_id"]}, "cost": {"total_usd": 0.5}}


class BackfillHarness:
    def __init__(self, max_objects: int, concurrency: int) -> None:
        import dataclasses

        import boto3

        from local_runtime import sfn_hooks

        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.pipeline_arn = self.sfn.create_state_machine(
            name=f"pipeline-{uuid.uuid4().hex[:6]}", definition=json.dumps(PIPELINE_ASL),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/p")["stateMachineArn"]
        catalog = load_catalog()
        ds = catalog.get("online_retail")
        ds = dataclasses.replace(ds, backfill=dataclasses.replace(
            ds.backfill, max_objects_per_batch=max_objects, max_concurrent_batches=concurrency))
        catalog = dataclasses.replace(catalog, datasets={"online_retail": ds})
        self.lister, self.store, self.ledger = Lister(), Store(), Ledger()
        self.pipeline = FakePipeline(self.ledger)
        self.logic = Backfill(catalog=lambda: catalog, lister=self.lister, store=self.store,
                              ledger=self.ledger, executions=SfnExecutions(self.sfn),
                              raw_bucket="raw", curated_bucket="curated",
                              pipeline_arn=self.pipeline_arn)
        sfn_hooks.install(invoke_lambda=self.invoke, runtime=None, time_factor=0.0)
        definition = (REPO / "statemachines" / "backfill.asl.json").read_text()
        definition = definition.replace("${PlanBackfillFunctionArn}", FN + "PlanBackfill")
        definition = definition.replace("${PipelineStateMachineArn}", self.pipeline_arn)
        self.arn = self.sfn.create_state_machine(
            name=f"backfill-{uuid.uuid4().hex[:6]}", definition=definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/b")["stateMachineArn"]

    def invoke(self, function: str, payload: Any) -> dict[str, Any]:
        name = function.rsplit(":", 1)[-1]
        try:
            if name == "FakePipeline":
                result = self.pipeline(payload)
            else:
                result = self.logic.handle(parse_request(payload))
        except Exception as e:
            return {"StatusCode": 200, "FunctionError": "Unhandled",
                    "Payload": {"errorType": type(e).__name__, "errorMessage": str(e)}}
        return {"StatusCode": 200, "Payload": json.loads(json.dumps(result))}

    def days(self, first: int, n: int, version: str = "v") -> None:
        for d in range(first, first + n):
            key = f"online_retail/2011-01-{d:02d}.csv"
            self.lister.objects = [o for o in self.lister.objects if o.key != key]
            self.lister.objects.append(RawObject(key, f"{version}{d}", 100))

    def run(self, payload: dict[str, Any], timeout: float = 60) -> tuple[str, dict[str, Any]]:
        arn = self.sfn.start_execution(stateMachineArn=self.arn, name=f"b-{uuid.uuid4().hex}",
                                       input=json.dumps(payload))["executionArn"]
        deadline = time.monotonic() + timeout
        while (desc := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the backfill did not finish"
            time.sleep(0.05)
        return desc["status"], json.loads(desc.get("output") or "{}")


@pytest.fixture
def make(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield BackfillHarness


def test_batches_run_with_the_catalog_concurrency_and_load_each_partition_once(make):
    h = make(max_objects=2, concurrency=2)
    h.days(1, 9)
    status, summary = h.run({"dataset": "online_retail", "start": "2011-01-02"})
    assert status == "SUCCEEDED"
    assert sorted(p for b in h.pipeline.batches for p in
                  [o["key"][14:24] for o in b["objects"]]) == [f"2011-01-0{d}" for d in
                                                              range(2, 10)]
    assert len(h.pipeline.batches) == 4 and h.pipeline.most_at_once <= 2
    assert summary["status"] == "succeeded"
    assert summary["counts"]["loaded"] == 8 and summary["counts"]["outside_range"] == 1
    assert summary["counts"]["job_runs"] == 4 and summary["cost_usd"] == 2.0
    # every batch ran as the pipeline execution named after it, with the batch input
    for batch in h.pipeline.batches:
        assert set(batch) == {"dataset", "batch_id", "force", "objects"}
        arn = h.pipeline_arn.replace(":stateMachine:", ":execution:") + ":" + batch["batch_id"]
        assert h.sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"


def test_a_running_batch_is_asked_its_state_twice_a_second_not_at_every_check(make, monkeypatch):
    """The local startExecution.sync:2 waits in-process for the batch's end before each
    DescribeExecution (local_runtime.sfn_services._paced): 20 asks a second, each serializing
    the execution, cost a backfill a fifth of the local runtime's CPU."""
    from moto.stepfunctions.responses import StepFunctionResponse

    asked: list[str] = []
    original = StepFunctionResponse.describe_execution

    def describe_execution(self: Any) -> Any:
        asked.append(self._get_param("executionArn"))
        return original(self)

    monkeypatch.setattr(StepFunctionResponse, "describe_execution", describe_execution)
    h = make(max_objects=2, concurrency=1)
    h.pipeline.seconds = 2.0
    h.days(1, 1)
    status, summary = h.run({"dataset": "online_retail"})
    assert status == "SUCCEEDED" and summary["loaded"] == ["2011-01-01"]
    batch_asks = [a for a in asked if ":execution:pipeline-" in a]
    # 2 s of batch: about 4 checks at 0.5 s, where 0.05 s polling asked about 40 times
    assert 1 <= len(batch_asks) <= 8, len(batch_asks)


def test_a_failing_batch_is_reported_and_the_others_load(make):
    h = make(max_objects=2, concurrency=1)
    h.days(1, 6)
    h.days(3, 1, version="bad")
    status, summary = h.run({"dataset": "online_retail"})
    assert status == "SUCCEEDED"
    assert summary["status"] == "partial"
    assert summary["failed"] == ["2011-01-03", "2011-01-04"]
    assert summary["loaded"] == ["2011-01-01", "2011-01-02", "2011-01-05", "2011-01-06"]
    failed = [b for b in summary["batches"] if b["status"] == "FAILED"]
    assert len(failed) == 1 and failed[0]["first"] == "2011-01-03"
    assert failed[0]["error"] and failed[0]["execution_arn"]


def test_a_second_backfill_skips_what_is_loaded_and_never_starts_a_batch_twice(make):
    h = make(max_objects=2, concurrency=2)
    h.days(1, 4)
    h.days(3, 1, version="bad")
    h.run({"dataset": "online_retail"})
    started = len(h.pipeline.batches)
    h.days(5, 2)  # two new days arrive
    status, summary = h.run({"dataset": "online_retail"})
    assert status == "SUCCEEDED"
    assert summary["skipped"] == ["2011-01-01", "2011-01-02"]
    assert summary["loaded"] == ["2011-01-05", "2011-01-06"]
    # the failed batch (same objects, same versions) is not started again: its name exists
    [again] = [b for b in summary["batches"] if b["already_ran"]]
    assert again["status"] == "FAILED" and summary["failed"] == ["2011-01-03", "2011-01-04"]
    assert len(h.pipeline.batches) == started + 1
    # a new version of the bad day makes a new batch, which runs
    h.days(3, 1, version="fixed")
    _, summary = h.run({"dataset": "online_retail"})
    assert summary["loaded"] == ["2011-01-03", "2011-01-04"] and summary["status"] == "succeeded"


def test_nothing_to_do_succeeds_with_an_empty_summary(make):
    h = make(max_objects=2, concurrency=2)
    status, summary = h.run({"dataset": "online_retail"})
    assert status == "SUCCEEDED" and summary["counts"]["planned"] == 0
    assert h.pipeline.batches == []


def test_a_bad_input_fails_the_backfill_naming_the_problem(make):
    h = make(max_objects=2, concurrency=2)
    arn = h.sfn.start_execution(stateMachineArn=h.arn, name="bad",
                                input=json.dumps({"dataset": "online_retail",
                                                  "start": "2011-02-30"}))["executionArn"]
    while (desc := h.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(0.05)
    assert desc["status"] == "FAILED"
    assert desc["error"] == "InvalidInput" and "not a real date" in desc["cause"]
