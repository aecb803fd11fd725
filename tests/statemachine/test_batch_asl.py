"""A batch through the real pipeline ASL: the gate decides per partition, so a batch with a
failed partition still loads (the others), and only a batch whose every partition failed
stops at QualityGateFailed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sm_harness import manifest

from pipeline_aws.contracts import LoadStatementRequest, loaded_partitions

pytestmark = pytest.mark.statemachine
DAYS = ("2011-01-04", "2011-01-05", "2011-01-06")
BATCH = "online_retail-batch-0123456789ab"


def batch_manifest() -> dict[str, Any]:
    run = manifest()
    single = copy.deepcopy(run)
    parts = []
    for day in DAYS:
        rid = f"online_retail-{day}-abc"
        parts.append({
            "run_id": rid, "partition": day, "attempt": 1,
            "input": {**single["input"], "key": f"online_retail/{day}.csv"},
            "outputs": {"sales_line_items": f"s3://curated/online_retail/sales_line_items/"
                                            f"batch={BATCH}/partition={day}/"},
            "quarantine_uri": single["quarantine_uri"],
            "metrics_uri": f"s3://curated/_runs/online_retail/{rid}/metrics.json",
            "quality_uri": f"s3://curated/_runs/online_retail/{rid}/quality.json"})
    run.update(run_id=BATCH, trigger="batch", batch_id="b1", partition="2011-01-04..2011-01-06",
               partitions=parts, input=None, outputs={}, quarantine_uri=None,
               metrics_uri=None, quality_uri=None)
    return run


def gate(*failed: str) -> dict[str, Any]:
    verdicts = {day: {"run_id": f"online_retail-{day}-abc", "summary": day,
                      "verdict": "fail" if day in failed else "pass"} for day in DAYS}
    every = len(failed) == len(DAYS)
    return {"verdict": "fail" if every else "warn" if failed else "pass",
            "summary": f"{len(DAYS) - len(failed)} of {len(DAYS)} partitions pass the gate",
            "failed_rules": [], "warned_rules": [], "partitions": verdicts,
            "lines": {"in": 1, "out": 1, "quarantined": 0, "duplicates": 0}}


def test_a_failed_partition_does_not_stop_the_others_load(harness):
    harness.lambdas.set("ResolveRun", batch_manifest())
    harness.lambdas.set("EvaluateQuality", gate(DAYS[1]))
    ex = harness.run({"batch": {"dataset": "online_retail", "batch_id": "b1",
                                "objects": [{"key": f"online_retail/{d}.csv"} for d in DAYS]}})
    assert ex.status == "SUCCEEDED"
    assert "QualityGateFailed" not in ex.states_entered()
    assert len(harness.jobs.runs) == 1  # one job for the batch
    [submit] = [c for c in harness.lambdas.calls["LoadStatement"]
                if c["operation"] == "submit"]
    request = LoadStatementRequest.parse(submit)
    assert [p.partition for p in loaded_partitions(request.state)] == [DAYS[0], DAYS[2]]
    [record] = harness.lambdas.calls["RecordRun"]
    assert record["state"]["quality"]["partitions"][DAYS[1]]["verdict"] == "fail"


def test_a_batch_whose_every_partition_failed_is_not_loaded(harness):
    harness.lambdas.set("ResolveRun", batch_manifest())
    harness.lambdas.set("EvaluateQuality", gate(*DAYS))
    ex = harness.run()
    assert ex.status == "FAILED"
    assert "LoadStatement" not in harness.lambdas.calls
    [handled] = harness.lambdas.calls["HandleFailure"]
    assert handled["state"]["failure"]["EvaluateQuality"]["Error"] == "QualityGateFailed"
