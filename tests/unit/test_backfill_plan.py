"""pipeline_core.backfill_plan: ranges, skips, force, refusals, batching limits, hostile keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from pipeline_core.backfill_plan import (
    MAX_EXECUTION_NAME,
    RawObject,
    batch_id,
    plan_backfill,
)
from pipeline_core.catalog import Backfill, load_catalog
from pipeline_core.errors import InvalidInput


@pytest.fixture(scope="module")
def retail() -> Any:
    return load_catalog().get("online_retail")


def _with_limits(dataset: Any, **limits: int) -> Any:
    return dataclasses.replace(dataset, backfill=dataclasses.replace(Backfill(), **limits))


def _days(first: str, n: int, size: int = 100, suffix: str = ".csv") -> list[RawObject]:
    day = dt.date.fromisoformat(first)
    return [RawObject(f"online_retail/{day + dt.timedelta(days=i)}{suffix}",
                      f"v{i}", size) for i in range(n)]


def _nothing_loaded(partitions: list[str]) -> dict[str, str | None]:
    return {}


class Ledger:
    """The ledger's loaded_versions, recording what it was asked."""

    def __init__(self, loaded: dict[str, str | None]):
        self.loaded = loaded
        self.asked: list[list[str]] = []

    def __call__(self, partitions: list[str]) -> dict[str, str | None]:
        self.asked.append(partitions)
        return {p: v for p, v in self.loaded.items() if p in partitions}


def test_every_object_runs_once_in_day_order(retail):
    objects = list(reversed(_days("2011-01-01", 5)))
    plan = plan_backfill(retail, objects, _nothing_loaded)
    assert plan.partitions == [f"2011-01-0{i}" for i in range(1, 6)]
    assert plan.skipped == () and plan.refused == ()


def test_the_range_is_inclusive_on_the_partition(retail):
    plan = plan_backfill(retail, _days("2011-01-01", 10), _nothing_loaded,
                         start="2011-01-03", end="2011-01-05")
    assert plan.partitions == ["2011-01-03", "2011-01-04", "2011-01-05"]
    assert plan.outside_range == 7


def test_an_open_ended_range(retail):
    plan = plan_backfill(retail, _days("2011-01-01", 10), _nothing_loaded, start="2011-01-09")
    assert plan.partitions == ["2011-01-09", "2011-01-10"]
    plan = plan_backfill(retail, _days("2011-01-01", 10), _nothing_loaded, end="2011-01-01")
    assert plan.partitions == ["2011-01-01"]


@pytest.mark.parametrize(("start", "end", "message"), [
    ("2011-01-05", "2011-01-01", "is after end"),
    ("2011-02-30", None, "not a real date"),
    ("2011-1-5", None, "YYYY-MM-DD"),
    (None, "\uff12\uff10\uff11\uff11-01-01", "YYYY-MM-DD"),  # full-width digits
])
def test_a_bad_range_is_refused(retail, start, end, message):
    with pytest.raises(InvalidInput, match=message):
        plan_backfill(retail, _days("2011-01-01", 3), _nothing_loaded, start=start, end=end)


def test_a_partition_loaded_from_the_same_version_is_skipped(retail):
    ledger = Ledger({"2011-01-02": "v1", "2011-01-03": "old"})
    plan = plan_backfill(retail, _days("2011-01-01", 4), ledger)
    assert plan.partitions == ["2011-01-01", "2011-01-03", "2011-01-04"]
    [skipped] = plan.skipped
    assert skipped.partition == "2011-01-02" and "already loaded from version v1" in skipped.reason
    assert "now version v2" in plan.reruns["2011-01-03"]
    assert ledger.asked == [["2011-01-01", "2011-01-02", "2011-01-03", "2011-01-04"]]


def test_force_runs_loaded_partitions_again(retail):
    plan = plan_backfill(retail, _days("2011-01-01", 2), Ledger({"2011-01-01": "v0"}),
                         force=True)
    assert plan.partitions == ["2011-01-01", "2011-01-02"] and plan.skipped == ()
    assert plan.reruns == {"2011-01-01": "forced"}


def test_a_backfill_of_loaded_days_plans_nothing(retail):
    objects = _days("2011-01-01", 3)
    ledger = Ledger({o.key[14:24]: o.version_id for o in objects})
    plan = plan_backfill(retail, objects, ledger)
    assert plan.batches == () and len(plan.skipped) == 3


def test_the_ledger_is_not_asked_about_partitions_outside_the_range(retail):
    ledger = Ledger({})
    plan_backfill(retail, _days("2011-01-01", 5), ledger, start="2011-01-02", end="2011-01-03")
    assert ledger.asked == [["2011-01-02", "2011-01-03"]]
    ledger = Ledger({})
    plan_backfill(retail, _days("2011-01-01", 5), ledger, start="2012-01-01")
    assert ledger.asked == []


@pytest.mark.parametrize("key", [
    "online_retail/2011-01-04.txt",
    "online_retail/2011-01-04.csv.bak",
    "online_retail/2011-01-04.csv\n",
    "online_retail/2011-01-04.csv/",
    "online_retail/",
    "online_retail/sub/2011-01-04.csv",
    "online_retail/../online_retail/2011-01-04.csv",
    "online_retail/2011-13-01.csv",
    "online_retail/2011-02-29.csv",
    "online_retail/\u0662\u0660\u0661\u0661-\u0660\u0661-\u0660\u0664.csv",  # \d takes them
    "online_retail/2011-01-04.csv\x00",
    "online_retail/" + "9" * 4 + "-01-04.csv" + "x" * 900,
    "web_logs/2011-01-04.log",
])
def test_hostile_keys_are_refused_with_the_reason(retail, key):
    plan = plan_backfill(retail, [RawObject(key, "v", 10), *_days("2011-01-01", 1)],
                         _nothing_loaded)
    assert plan.partitions == ["2011-01-01"]
    [refused] = plan.refused
    assert refused.key == key and refused.reason


def test_an_empty_object_is_refused(retail):
    plan = plan_backfill(retail, _days("2011-01-01", 2, size=0), _nothing_loaded)
    assert plan.batches == ()
    assert {r.reason for r in plan.refused} == {"the object is empty"}


def test_two_objects_of_one_partition_are_both_refused(retail):
    objects = [*_days("2011-01-01", 2), *_days("2011-01-02", 1, suffix=".csv.gz")]
    plan = plan_backfill(retail, objects, _nothing_loaded)
    assert plan.partitions == ["2011-01-01"]
    assert [r.key for r in plan.refused] == ["online_retail/2011-01-02.csv",
                                             "online_retail/2011-01-02.csv.gz"]
    assert all("has 2 objects" in r.reason for r in plan.refused)


def test_batches_are_cut_by_count(retail):
    plan = plan_backfill(_with_limits(retail, max_objects_per_batch=3),
                         _days("2011-01-01", 7), _nothing_loaded)
    assert [len(b.objects) for b in plan.batches] == [3, 3, 1]
    assert [b.partitions[0] for b in plan.batches] == ["2011-01-01", "2011-01-04", "2011-01-07"]


def test_batches_are_cut_by_bytes_and_a_large_object_runs_alone(retail):
    mib = 1024 * 1024
    objects = [RawObject("online_retail/2011-01-01.csv", "a", mib),
               RawObject("online_retail/2011-01-02.csv", "b", mib),
               RawObject("online_retail/2011-01-03.csv", "c", 5 * mib),
               RawObject("online_retail/2011-01-04.csv", "d", 1)]
    plan = plan_backfill(_with_limits(retail, max_bytes_per_batch=2 * mib), objects,
                         _nothing_loaded)
    assert [b.partitions for b in plan.batches] == [
        ["2011-01-01", "2011-01-02"], ["2011-01-03"], ["2011-01-04"]]
    assert all(b.bytes <= 2 * mib or len(b.objects) == 1 for b in plan.batches)


def test_the_catalog_limits_apply_and_the_concurrency_is_passed_on(retail):
    plan = plan_backfill(retail, _days("2011-01-01", 62), _nothing_loaded)
    assert [len(b.objects) for b in plan.batches] == [31, 31]
    assert plan.max_concurrency == retail.backfill.max_concurrent_batches == 3


def test_batch_ids_are_deterministic_names_step_functions_accepts(retail):
    objects = _days("2011-01-01", 31)
    first = plan_backfill(retail, objects, _nothing_loaded)
    again = plan_backfill(retail, list(reversed(objects)), _nothing_loaded)
    assert [b.batch_id for b in first.batches] == [b.batch_id for b in again.batches]
    forced = plan_backfill(retail, objects, _nothing_loaded, force=True)
    assert first.batches[0].batch_id != forced.batches[0].batch_id
    other_version = [dataclasses.replace(objects[0], version_id="new"), *objects[1:]]
    changed = plan_backfill(retail, other_version, _nothing_loaded)
    assert first.batches[0].batch_id != changed.batches[0].batch_id


def test_a_batch_id_fits_an_execution_name_for_the_longest_dataset_name():
    """StartExecution's `name`: 1-80 characters, no whitespace, brackets, wildcards or
    `"#%\\^|~`$&,;:/` ("StartExecution", AWS Step Functions API Reference,
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html)."""
    import re

    from pipeline_core.backfill_plan import PlannedObject

    objects = [PlannedObject(f"k{i}", None, 1, "2011-01-01") for i in range(100)]
    name = batch_id("d" * 63, objects, False)
    assert len(name) <= MAX_EXECUTION_NAME <= 80
    assert not set(name) & set(" <>{}[]?*\"#%\\^|~`$&,;:/")
    # and the pipeline's batch input takes it as its batch_id
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name)


def test_the_plan_is_json_ready_with_the_batch_input_the_pipeline_takes(retail):
    import json

    plan = plan_backfill(_with_limits(retail, max_objects_per_batch=2),
                         _days("2011-01-01", 3), Ledger({"2011-01-03": "v2"}))
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["partitions"] == ["2011-01-01", "2011-01-02"]
    [batch] = data["batches"]
    assert batch["objects"] == [
        {"key": "online_retail/2011-01-01.csv", "version_id": "v0", "size": 100},
        {"key": "online_retail/2011-01-02.csv", "version_id": "v1", "size": 100}]
    assert batch["dataset"] == "online_retail" and batch["force"] is False
    assert data["skipped"][0]["partition"] == "2011-01-03"
