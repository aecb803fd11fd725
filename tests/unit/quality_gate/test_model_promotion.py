"""A derived run that trained a model: the gate records the model (path, params, metrics,
training range, promotion) on the run's ledger item, and a model that was not promoted is a
warning whose alert names both models' metric (the run loads: it scored with the current
model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.aws import read_event
from tests.unit.quality_gate.test_output_checks import ROWS_OK, world_with
from tests.unit.quality_gate.test_quality_gate import quality, run_metrics

CURRENT = "s3://curated/models/customer_segments/customer_segments-2011-11-01-aaa/"


def _model(promoted: bool) -> dict[str, Any]:
    return {"trained": True, "promoted": promoted, "metric": "silhouette",
            "path": "s3://curated/models/customer_segments/run-b/", "trained_as_of": "2011-12-01",
            "params": {"k": 4, "seed": 7}, "metrics": {"silhouette": 0.31, "k": 4},
            "current_model": CURRENT, "current_metrics": {"silhouette": 0.52},
            "reason": "not promoted: new silhouette 0.31 vs current 0.52 (higher is better, "
                      "tolerance 0.05 = 0.026); worse by 0.21" if not promoted else "promoted"}


@pytest.fixture
def event() -> dict[str, Any]:
    return read_event("evaluate_quality", "serverless_run.json")


@pytest.mark.parametrize("promoted", [True, False])
def test_the_model_is_recorded_and_a_kept_model_warns(tmp_path: Path, event: dict[str, Any],
                                                      promoted: bool) -> None:
    world = world_with(tmp_path)
    run = event["state"]["run"]
    world.put_ledger_run(run["run_id"], "2026-11-21T10:00:00Z", "RUNNING")
    world.put_run_files(run, quality(ROWS_OK), run_metrics(run, model=_model(promoted)))
    result = world.evaluate(event)
    item = world.ledger.get(run["run_id"])
    assert item is not None and item["model"]["promoted"] is promoted
    assert item["model"]["trained_as_of"] == "2011-12-01"
    assert item["model"]["params"] == {"k": 4, "seed": 7}
    if promoted:
        assert result["verdict"] == "pass" and world.alerts() == []
        return
    assert result["verdict"] == "warn"
    [warned] = result["warned_rules"]
    assert warned["rule"] == 'ModelPromotion "silhouette"'
    assert (warned["value"], warned["threshold"]) == (0.31, "current 0.52")
    [alert] = world.alerts()
    text = str(alert.document)
    assert "ModelNotPromoted: not promoted: new silhouette 0.31 vs current 0.52" in text
    assert CURRENT in text and "the load continues" in text


def test_a_scoring_only_run_has_no_promotion_to_judge(tmp_path: Path,
                                                      event: dict[str, Any]) -> None:
    world = world_with(tmp_path)
    run = event["state"]["run"]
    world.put_ledger_run(run["run_id"], "2026-11-21T10:00:00Z", "RUNNING")
    scoring = {"trained": False, "promoted": False, "path": CURRENT, "scored_with": CURRENT,
               "metrics": {"silhouette": 0.52}, "reason": "scoring only"}
    world.put_run_files(run, quality(ROWS_OK), run_metrics(run, model=scoring))
    assert world.evaluate(event)["verdict"] == "pass"
