"""Every dataset in datasets/ is routed by template.yaml, and nothing else is: the raw bucket's
EventBridge rule lists each dataset's prefix and its key suffixes (from the key pattern,
pipeline_core.key_pattern), and each dataset with a schedule has its own schedule firing in the
catalog's time zone. Adding datasets/X.yaml without routing it fails here with what to add.

AWS documents what the rule relies on:
- "Content filtering in Amazon EventBridge event patterns"
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html
  (prefix matching; wildcard matching, where `*` matches zero or more characters, `/` included,
  and `\\` escapes; values in one array are ORed; `$or` across sub-patterns);
- "Amazon EventBridge quotas"
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html
  (Event pattern size: 2,048 characters by default);
- "Schedule types on EventBridge Scheduler"
  https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html
  (ScheduleExpressionTimezone takes IANA zone names).
Events go through moto's EventBridge matcher, as tests/template/test_raw_event_pattern.py does.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from local_runtime.runner import pattern_matches, s3_object_created_event
from pipeline_core.catalog import Catalog, Dataset, load_catalog
from tests.template.test_raw_event_pattern import object_created

RULE = "RawObjectCreatedRule"
MAX_PATTERN_CHARS = 2048
LONGEST_BUCKET = "b" * 63  # S3 bucket names are at most 63 characters


@pytest.fixture(scope="module")
def catalog(catalog_dir: Path) -> Catalog:
    return load_catalog(catalog_dir)


@pytest.fixture(scope="module")
def branches(resources: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rule's two key filters: objects with bytes under a prefix, and keys named like a
    data file (of any size)."""
    pattern = resources[RULE]["Properties"]["EventPattern"]
    with_bytes, named_like_data = pattern["detail"]["object"]["$or"]
    assert with_bytes["size"] == [{"numeric": [">", 0]}]
    assert set(with_bytes) == {"key", "size"} and set(named_like_data) == {"key"}
    return with_bytes["key"], named_like_data["key"]


def _wildcards(dataset: Dataset) -> list[str]:
    return [f"{dataset.source.prefix}*{suffix}" for suffix in dataset.source.suffixes]


def _yaml_list(entries: list[str], kind: str) -> str:
    return ", ".join(f'{{{kind}: "{e}"}}' for e in entries)


def test_every_dataset_is_routed(catalog: Catalog, branches: Any) -> None:
    """Every raw dataset (a derived one has no raw files: its runs start by schedule or
    after its upstream loads)."""
    prefixes = {e.get("prefix") for e in branches[0]}
    wildcards = {e.get("wildcard") for e in branches[1]}
    for name, dataset in sorted(catalog.raw_datasets.items()):
        missing_prefix = dataset.source.prefix not in prefixes
        missing = [w for w in _wildcards(dataset) if w not in wildcards]
        assert not missing_prefix and not missing, (
            f"datasets/{name}.yaml is not routed by template.yaml: in {RULE}'s EventPattern "
            f"(detail.object.$or) add {{prefix: {dataset.source.prefix}}} to the first key "
            f"list and {_yaml_list(missing, 'wildcard')} to the second")


def test_nothing_else_is_routed(catalog: Catalog, branches: Any) -> None:
    expected_prefixes = [d.source.prefix for d in catalog.raw_datasets.values()]
    expected_wildcards = [w for d in catalog.raw_datasets.values() for w in _wildcards(d)]
    extra = ([e for e in branches[0] if e.get("prefix") not in expected_prefixes]
             + [e for e in branches[1] if e.get("wildcard") not in expected_wildcards])
    assert not extra, (f"{RULE} routes {extra}, which no datasets/*.yaml declares (its prefix "
                       "and key pattern's suffixes): remove them or add the dataset")
    assert len(branches[0]) == len(expected_prefixes), "a prefix is listed twice"
    assert len(branches[1]) == len(expected_wildcards), "a wildcard is listed twice"


def test_the_wildcards_hold_one_wildcard_and_nothing_to_escape(branches: Any) -> None:
    """`*` is the only special character of a wildcard filter and `\\` escapes; the catalog
    refuses both in prefixes and suffixes, so each filter has exactly the one `*`."""
    for entry in branches[1]:
        assert entry["wildcard"].count("*") == 1 and "\\" not in entry["wildcard"], entry


def test_the_pattern_fits_eventbridge_s_default_size(resources: dict[str, Any]) -> None:
    pattern = copy.deepcopy(resources[RULE]["Properties"]["EventPattern"])
    pattern["detail"]["bucket"]["name"] = [LONGEST_BUCKET]
    size = len(json.dumps(pattern, separators=(",", ":")))
    assert size <= MAX_PATTERN_CHARS, (
        f"{RULE}'s event pattern is {size} characters, over EventBridge's default quota of "
        f"{MAX_PATTERN_CHARS}: raise the quota or split the rule")


def _matcher(resources: dict[str, Any]) -> EventPattern:
    pattern = copy.deepcopy(resources[RULE]["Properties"]["EventPattern"])
    pattern["detail"]["bucket"]["name"] = ["emr-pipelines-dev-raw"]
    return EventPattern.load(json.dumps(pattern))


def test_each_dataset_s_day_files_start_a_run_and_its_look_alikes_do_not(
        resources: dict[str, Any], catalog: Catalog) -> None:
    matcher = _matcher(resources)
    for name, dataset in sorted(catalog.raw_datasets.items()):
        prefix = dataset.source.prefix
        for key in dataset.source.day_keys("2015-05-17"):
            assert matcher.matches_event(object_created(key, 1000)), key
            assert matcher.matches_event(object_created(key, 0)), f"{key}, empty: alerted"
            assert dataset.partition_for_key(key) == "2015-05-17", key
        assert matcher.matches_event(object_created(f"{prefix}notes.txt", 5)), name
        for key in (f"{prefix}2015-05/", prefix, f"{prefix}_SUCCESS",
                    f"{prefix.rstrip('/')}_old/2015-05-17{dataset.source.suffixes[0]}",
                    f"archive/{prefix}2015-05-17{dataset.source.suffixes[0]}"):
            event = object_created(key, 0 if key.endswith(("/", "_SUCCESS")) else 5)
            assert not matcher.matches_event(event), key


def test_the_local_runtime_starts_a_run_for_each_dataset_s_day(
        resources: dict[str, Any], catalog: Catalog) -> None:
    """The local runtime starts an execution only for an event the template's rules match
    (local_runtime.runner.check_event): the same rule routes every dataset there too."""
    pattern = copy.deepcopy(resources[RULE]["Properties"]["EventPattern"])
    pattern["detail"]["bucket"]["name"] = ["local-raw"]
    for dataset in catalog.raw_datasets.values():
        for key in dataset.source.day_keys("2015-05-17"):
            event = s3_object_created_event("local-raw", key, 10, "etag")
            assert pattern_matches(pattern, event), key


def test_every_scheduled_dataset_has_its_schedule_in_its_time_zone(
        resources: dict[str, Any], catalog: Catalog) -> None:
    schedules: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for resource_name, resource in resources.items():
        if resource["Type"] == "AWS::Scheduler::Schedule":
            target = resource["Properties"]["Target"]
            dataset = json.loads(target["Input"])["dataset"]
            schedules.setdefault(dataset, []).append((resource_name, resource["Properties"]))
    for name, dataset in sorted(catalog.datasets.items()):
        found = schedules.get(name, [])
        if dataset.schedule is None:
            assert not found, (f"datasets/{name}.yaml has no schedule, but template.yaml has "
                               f"{[r for r, _ in found]}: remove it or add the schedule")
            continue
        assert len(found) == 1, (
            f"datasets/{name}.yaml has a schedule: template.yaml needs one "
            f"AWS::Scheduler::Schedule like OnlineRetailSchedule with ScheduleExpressionTimezone: "
            f"{dataset.schedule.timezone} and Target.Input '{{\"source\": \"pipeline.schedule\", "
            f"\"dataset\": \"{name}\", \"scheduled_time\": \"<aws.scheduler.scheduled-time>\"}}'"
            f" (found {len(found)})")
        resource_name, props = found[0]
        assert props["ScheduleExpressionTimezone"] == dataset.schedule.timezone, (
            f"{resource_name} fires in {props['ScheduleExpressionTimezone']}, datasets/{name}.yaml"
            f" reads its day in {dataset.schedule.timezone}")
    unknown = sorted(set(schedules) - set(catalog.datasets))
    assert not unknown, f"template.yaml schedules {unknown}, which datasets/ does not hold"
