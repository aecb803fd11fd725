"""The catalog's `derived:` block (pipeline_core.catalog) and the pure rules of derived runs
(pipeline_core.derived): the inputs' range, the run id, the upstream trigger's execution name,
promotion and retraining."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_core.catalog import (
    Derived,
    DerivedInput,
    ModelPolicy,
    load_catalog,
    parse_dataset,
)
from pipeline_core.derived import (
    MAX_EXECUTION_NAME,
    MAX_RANGE_DAYS,
    UpstreamRun,
    derived_run_id,
    inputs_bytes,
    inputs_document,
    needs_training,
    parse_inputs,
    promotion,
    range_days,
    upstream_execution_name,
)
from pipeline_core.errors import ConfigurationError, InvalidInput

REPO = Path(__file__).resolve().parents[2]
DERIVED: dict[str, Any] = yaml.safe_load((REPO / "datasets" / "sales_trends.yaml").read_text())


def _doc(**derived: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DERIVED)
    doc["derived"].update(derived)
    return doc


def test_the_real_derived_dataset_parses() -> None:
    dataset = load_catalog().get("sales_trends")
    assert dataset.derived == Derived(
        (DerivedInput("online_retail", "sales_line_items"),), 30, True, None, rows_per_day=True)
    assert dataset.raw_source is None and dataset.is_derived
    assert dataset.derived.first_day("2011-01-30") == "2011-01-01"


def test_a_derived_dataset_has_no_raw_source() -> None:
    dataset = parse_dataset(copy.deepcopy(DERIVED))
    with pytest.raises(ConfigurationError, match=r"sales_trends is derived \(from online_retail\)"):
        dataset.source  # noqa: B018


def test_the_catalog_knows_what_starts_after_an_upstream_load() -> None:
    catalog = load_catalog()
    assert [d.name for d in catalog.downstream_of("online_retail")] == ["sales_trends"]
    assert catalog.downstream_of("web_logs") == []
    assert "sales_trends" not in catalog.raw_datasets


def test_all_history_when_no_lookback() -> None:
    doc = _doc()
    del doc["derived"]["lookback_days"]
    assert parse_dataset(doc).derived.first_day("2011-12-09") is None  # type: ignore[union-attr]


def test_a_model_policy_parses() -> None:
    doc = _doc(model={"metric": "silhouette", "tolerance": 0.05, "retrain_days": 7})
    assert parse_dataset(doc).derived.model == ModelPolicy(  # type: ignore[union-attr]
        "silhouette", "higher_is_better", 0.05, 7)


@pytest.mark.parametrize(("change", "message"), [
    ({"inputs": []}, "derived.inputs: at least one upstream table"),
    ({"inputs": [{"dataset": "sales_trends", "table": "x"}]}, "cannot read itself"),
    ({"inputs": [{"dataset": "a", "table": "b"}, {"dataset": "a", "table": "b"}]},
     "a table is named twice"),
    ({"inputs": [{"dataset": "a"}]}, "missing required field 'table'"),
    ({"lookback_days": 0}, "lookback_days: must be between 1 and 3660"),
    ({"after_upstream_loads": "yes"}, "after_upstream_loads: expected bool"),
    ({"model": {"metric": "mae", "direction": "down"}}, "direction: 'down' is not one of"),
    ({"model": {"metric": "mae", "tolerance": 2}}, "tolerance: a fraction"),
    ({"model": {"metric": "mae", "retrain_days": -1}}, "retrain_days: must be between"),
    ({"schedule_only": True}, "unknown field(s) schedule_only"),
])
def test_a_bad_derived_block_is_refused_by_name(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_dataset(_doc(**change))


def test_source_and_derived_together_are_refused() -> None:
    doc = _doc()
    doc["source"] = yaml.safe_load((REPO / "datasets" / "online_retail.yaml").read_text())[
        "source"]
    with pytest.raises(ConfigurationError, match=r"either 'source'.*not both"):
        parse_dataset(doc)


@pytest.mark.parametrize(("inputs", "message"), [
    ([{"dataset": "nowhere", "table": "t"}], "'nowhere' is not a raw dataset of the catalog"),
    ([{"dataset": "online_retail", "table": "t"}], "online_retail has no table 't'"),
])
def test_an_upstream_must_be_a_raw_dataset_s_table(tmp_path: Path, inputs: list[Any],
                                                   message: str) -> None:
    for name in ("online_retail", "sales_trends"):
        for suffix in (".yaml", ".dqdl"):
            (tmp_path / f"{name}{suffix}").write_text(
                (REPO / "datasets" / f"{name}{suffix}").read_text())
    doc = _doc(inputs=inputs)
    (tmp_path / "sales_trends.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigurationError, match=message):
        load_catalog(tmp_path)


# -- inputs, run id, execution name ---------------------------------------------------------

def _run(day: str, run_id: str | None = None) -> UpstreamRun:
    return UpstreamRun("online_retail", day, run_id or f"online_retail-{day}-aaa",
                       (("sales_line_items", f"s3://c/online_retail/sales_line_items/{day}/"),))


def test_inputs_are_the_loaded_partitions_in_the_range_in_day_order() -> None:
    dataset = load_catalog().get("sales_trends")
    runs = [_run("2011-01-31"), _run("2010-12-31"), _run("2011-01-01"), _run("2011-02-01")]
    document = inputs_document(dataset, "2011-01-30", runs)
    folders = document["tables"]["online_retail.sales_line_items"]
    assert [f["partition"] for f in folders] == ["2011-01-01"]  # 2011-01-01 to 2011-01-30
    assert document["first_day"] == "2011-01-01" and document["as_of"] == "2011-01-30"
    assert parse_inputs(inputs_bytes(document).decode(), "x") == document["tables"]


def test_no_loaded_partition_in_the_range_is_a_clear_refusal() -> None:
    dataset = load_catalog().get("sales_trends")
    with pytest.raises(InvalidInput, match="upstream online_retail has no loaded partition "
                       "from 2011-01-01 to 2011-01-30"):
        inputs_document(dataset, "2011-01-30", [_run("2010-12-01")])


def test_the_run_id_is_the_inputs_digest() -> None:
    dataset = load_catalog().get("sales_trends")
    same = [inputs_document(dataset, "2011-01-30", [_run("2011-01-02"), _run("2011-01-03")])
            for _ in range(2)]
    assert derived_run_id("sales_trends", "2011-01-30", same[0]) == \
        derived_run_id("sales_trends", "2011-01-30", same[1])
    assert inputs_bytes(same[0]) == inputs_bytes(same[1])
    reloaded = inputs_document(dataset, "2011-01-30",
                               [_run("2011-01-02"), _run("2011-01-03", "online_retail-x-r2")])
    run_id = derived_run_id("sales_trends", "2011-01-30", reloaded)
    assert run_id != derived_run_id("sales_trends", "2011-01-30", same[0])
    assert run_id.startswith("sales_trends-2011-01-30-") and len(run_id) == 36


def test_a_run_from_a_first_day_reads_its_lookback_and_is_another_run() -> None:
    """A run writing the days from `from_day` reads the 29 days before `from_day` too; the
    same inputs written from another day are another run (its outputs differ)."""
    dataset = load_catalog().get("sales_trends")
    runs = [_run("2010-12-03"), _run("2010-12-02"), _run("2011-01-30")]
    ranged = inputs_document(dataset, "2011-01-30", runs, "2011-01-01")
    assert ranged["first_day"] == "2010-12-03" and ranged["from_day"] == "2011-01-01"
    assert [f["partition"] for f in ranged["tables"]["online_retail.sales_line_items"]] == [
        "2010-12-03", "2011-01-30"]
    single = inputs_document(dataset, "2011-01-30", [runs[2]])
    assert "from_day" not in single
    ranged_id = derived_run_id("sales_trends", "2011-01-30", ranged)
    assert ranged_id != derived_run_id("sales_trends", "2011-01-30", {**ranged, "from_day": None})
    assert ranged_id == derived_run_id("sales_trends", "2011-01-30", dict(ranged))


def test_the_days_a_run_writes() -> None:
    assert range_days(None, "2011-01-30") == ["2011-01-30"]
    assert range_days("2011-01-29", "2011-01-31") == ["2011-01-29", "2011-01-30", "2011-01-31"]
    assert len(range_days("2011-01-01", "2012-01-01")) == MAX_RANGE_DAYS
    with pytest.raises(InvalidInput, match="not a range of 1 to 366 days"):
        range_days("2011-01-01", "2012-01-02")
    with pytest.raises(InvalidInput, match="from 2011-02-01 to 2011-01-30"):
        range_days("2011-02-01", "2011-01-30")


def test_the_upstream_execution_name_is_deterministic_and_fits() -> None:
    name = upstream_execution_name("sales_trends", "2011-01-30", "online_retail-2011-01-30-abc")
    assert name == upstream_execution_name("sales_trends", "2011-01-30",
                                           "online_retail-2011-01-30-abc")
    assert name != upstream_execution_name("sales_trends", "2011-01-30",
                                           "online_retail-2011-01-30-abc-r2")
    long = upstream_execution_name("d" * 63, "2011-01-30", "x")
    assert len(long) <= MAX_EXECUTION_NAME
    # Several loaded partitions: named by all their run ids, in any order; one is as before.
    assert upstream_execution_name("sales_trends", "2011-01-30", ["b", "a"]) == \
        upstream_execution_name("sales_trends", "2011-01-30", ["a", "b"]) != \
        upstream_execution_name("sales_trends", "2011-01-30", ["a"])
    assert upstream_execution_name("sales_trends", "2011-01-30", ["a"]) == \
        upstream_execution_name("sales_trends", "2011-01-30", "a")


@pytest.mark.parametrize("text", ["nope", json.dumps({"version": 2, "tables": {}}),
                                  json.dumps({"version": 1, "tables": {"t": []}})])
def test_a_bad_inputs_file_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_inputs(text, "s3://c/_runs/x/inputs.json")


# -- promotion and retraining ---------------------------------------------------------------

HIGHER = ModelPolicy("silhouette", "higher_is_better", 0.05)
LOWER = ModelPolicy("mae", "lower_is_better", 0.1)


@pytest.mark.parametrize(("policy", "new", "current", "promoted"), [
    (HIGHER, 0.50, None, True),            # the first model
    (HIGHER, 0.50, 0.50, True),            # as good
    (HIGHER, 0.48, 0.50, True),            # worse by 0.02 <= 0.05 * 0.50 = 0.025
    (HIGHER, 0.47, 0.50, False),           # worse by 0.03 > 0.025
    (LOWER, 105.0, 100.0, True),           # worse by 5 <= 10
    (LOWER, 111.0, 100.0, False),          # worse by 11 > 10
    (LOWER, 50.0, 100.0, True),            # better
    (HIGHER, float("nan"), 0.5, False),    # not measured: never promoted
])
def test_promotion_follows_the_catalog_s_tolerance(policy: ModelPolicy, new: float,
                                                   current: float | None,
                                                   promoted: bool) -> None:
    held = None if current is None else {policy.metric: current}
    decision = promotion(policy, {policy.metric: new}, held)
    assert decision.promoted is promoted, decision.reason


def test_a_refusal_names_both_metrics() -> None:
    decision = promotion(HIGHER, {"silhouette": 0.31}, {"silhouette": 0.52})
    assert decision.reason == (
        "not promoted: new silhouette 0.31 vs current 0.52 (higher is better, tolerance 0.05 "
        "= 0.026); worse by 0.21")


@pytest.mark.parametrize(("days", "trained", "expected"), [
    (0, "2011-01-29", True), (7, None, True), (7, "2011-01-24", False),
    (7, "2011-01-23", True),
])
def test_retraining_follows_retrain_days(days: int, trained: str | None,
                                         expected: bool) -> None:
    policy = ModelPolicy("mae", "lower_is_better", 0.1, days)
    assert needs_training(policy, "2011-01-30", trained) is expected
