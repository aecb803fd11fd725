"""The gate on a batch: one decision per partition, each recorded on its own ledger item and
alerted alone; the batch fails only when every partition does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.quality_gate.conftest import World
from tests.unit.quality_gate.test_quality_gate import (
    COLLAPSE_RULE,
    COMPLETE_OK,
    ROWS_OK,
    deferred,
    load_event,
    quality,
    rule,
    run_metrics,
    seed_history,
)

DAYS = ("2011-01-04", "2011-01-05", "2011-01-06")
BATCH = "online_retail-batch-0123456789ab"


@pytest.fixture
def event(world: World) -> dict[str, Any]:
    """The sample run as a batch of three partitions, each with its ledger item."""
    event = load_event("serverless_run.json")
    run = event["state"]["run"]
    curated = run["metrics_uri"].split("/_runs/")[0]
    parts = []
    for day in DAYS:
        rid = f"online_retail-{day}-abc"
        parts.append({"run_id": rid, "partition": day, "attempt": 1,
                      "input": {**run["input"], "key": f"online_retail/{day}.csv",
                                "uri": f"s3://raw/online_retail/{day}.csv"},
                      "outputs": {t: f"{curated}/online_retail/{t}/batch={BATCH}/"
                                     f"partition={day}/run_id={rid}/"
                                  for t in run["outputs"]},
                      "quarantine_uri": f"{curated}/quarantine/online_retail/{rid}/",
                      "metrics_uri": f"{curated}/_runs/online_retail/{rid}/metrics.json",
                      "quality_uri": f"{curated}/_runs/online_retail/{rid}/quality.json"})
        world.put_ledger_run(rid, "2026-11-21T10:00:00Z", "RUNNING")
    run.update(run_id=BATCH, partition=f"{DAYS[0]}..{DAYS[-1]}", trigger="batch",
               batch_id="b1", partitions=parts, input=None, outputs={}, quarantine_uri=None,
               metrics_uri=None, quality_uri=None)
    return event


def parts(event: dict[str, Any]) -> list[dict[str, Any]]:
    return list(event["state"]["run"]["partitions"])


def put_good(world: World, part: dict[str, Any], **metrics: Any) -> None:
    world.put_run_files(part, quality(ROWS_OK, COMPLETE_OK),
                        run_metrics({**part, "dataset": "online_retail"}, **metrics))


def test_a_failing_partition_fails_alone(world: World, event: dict[str, Any]) -> None:
    first, bad, last = parts(event)
    put_good(world, first)
    put_good(world, last, lines_read=100, lines_written=90, lines_quarantined=10,
             duplicates=0)
    failing = rule('Completeness "customer_id" > 0.9', 3, "Column.customer_id.Completeness",
                   0.1, "fail", threshold="> 0.9")
    world.put_run_files(bad, quality(ROWS_OK, failing),
                        run_metrics({**bad, "dataset": "online_retail"}))

    result = world.evaluate(event)

    assert result["verdict"] == "warn"  # the good partitions load
    verdicts = {day: p["verdict"] for day, p in result["partitions"].items()}
    assert verdicts == {DAYS[0]: "pass", DAYS[1]: "fail", DAYS[2]: "pass"}
    assert result["partitions"][DAYS[2]]["rows"] == {"sales_line_items": 3080,
                                                     "customer_daily_sales": 98}
    assert result["lines"] == {"in": 3108 * 2 + 100, "out": 3080 * 2 + 90,
                               "quarantined": 2 * 2 + 10, "duplicates": 26 * 2}
    assert "2 of 3 partitions pass" in result["summary"] and DAYS[1] in result["summary"]
    [alert] = world.alerts()  # only the failed partition alerts
    assert alert.document["partition"] == DAYS[1]
    assert "other partitions of batch b1" in alert.document["title"]
    failed = world.ledger.get(bad["run_id"])
    assert failed is not None and failed["status"] == "FAILED"
    assert failed["failure"]["error"] == "QualityGateFailed"
    good = world.ledger.get(first["run_id"])
    assert good is not None and good["status"] == "RUNNING"  # RecordRun ends it
    assert good["quality_verdict"] == "pass"


def test_a_partition_the_job_refused_fails_alone_with_its_reason(world: World,
                                                                  event: dict[str, Any]
                                                                  ) -> None:
    first, bad, last = parts(event)
    put_good(world, first)
    put_good(world, last)
    reason = f"input {bad['input']['uri']} ends in .gz but is not gzip data"
    world.put_json(bad["metrics_uri"], {"run_id": bad["run_id"], "partition": DAYS[1],
                                        "error": reason})
    result = world.evaluate(event)
    assert result["verdict"] == "warn"
    assert result["partitions"][DAYS[1]]["verdict"] == "fail"
    [alert] = world.alerts()
    assert alert.document["reason"] == reason
    assert alert.attributes["event"] == "input_refused"
    item = world.ledger.get(bad["run_id"])
    assert item is not None and item["status"] == "FAILED"
    assert reason in item["failure"]["cause"]


def test_a_partition_refused_at_resolve_is_not_read(world: World, event: dict[str, Any]
                                                    ) -> None:
    first, bad, last = parts(event)
    bad["refused"] = "input is empty (0 bytes)"
    put_good(world, first)
    put_good(world, last)
    result = world.evaluate(event)
    assert result["partitions"][DAYS[1]]["verdict"] == "fail"
    assert "input is empty" in result["partitions"][DAYS[1]]["summary"]


def test_the_batch_fails_when_every_partition_fails(world: World, event: dict[str, Any]
                                                    ) -> None:
    for part in parts(event):
        world.put_json(part["metrics_uri"], {"error": "input is empty"})
    result = world.evaluate(event)
    assert result["verdict"] == "fail"
    assert "0 of 3 partitions pass" in result["summary"]
    assert len(world.alerts()) == 3


def test_every_partition_is_held_against_the_same_history_read_once(
        world: World, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """None of a batch's partitions is SUCCEEDED before the load, so they share one ledger
    query (of run_id and quality_metrics only), not one each."""
    seed_history(world, [3000, 3100, 2900, 3050, 2950, 3020, 2980, 3010, 2990, 3040])
    first, collapsed, last = parts(event)
    world.put_run_files(collapsed, quality(ROWS_OK, deferred(COLLAPSE_RULE, 12)),
                        run_metrics({**collapsed, "dataset": "online_retail"},
                                    lines_written=12))
    for part in (first, last):
        world.put_run_files(part, quality(ROWS_OK, deferred(COLLAPSE_RULE, 3000)),
                            run_metrics({**part, "dataset": "online_retail"}))
    queries: list[dict[str, Any]] = []
    query = world.ledger.query_by_dataset

    def counted(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        queries.append(kwargs)
        return query(*args, **kwargs)

    monkeypatch.setattr(world.ledger, "query_by_dataset", counted)
    result = world.evaluate(event)

    verdicts = {day: p["verdict"] for day, p in result["partitions"].items()}
    assert verdicts == {DAYS[0]: "pass", DAYS[1]: "fail", DAYS[2]: "pass"}
    assert "901.5" in world.alerts()[0].document["summary"]  # median 3005 * 0.3
    assert len(queries) == 1 and set(queries[0]["fields"]) == {"run_id", "quality_metrics"}
