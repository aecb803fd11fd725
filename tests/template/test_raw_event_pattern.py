"""The raw bucket's EventBridge rule, run on sample S3 events with moto's EventBridge pattern
matcher (the one moto's events backend applies to its rules).

AWS documents the rules this pattern relies on:
- "Content filtering in Amazon EventBridge event patterns"
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html
  (prefix, wildcard, numeric and `$or` matching; `$or` because one sub-pattern cannot carry a
  prefix and an anything-but suffix for the same field);
- "EventBridge event message structure" in the Amazon S3 user guide
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
  (the "Object Created" event: detail.object.key, size, etag, version-id).
The events below follow that page's example.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from moto.events.models import EventPattern

RAW_BUCKET = "emr-pipelines-dev-raw"


def _resolved(node: Any) -> Any:
    """The pattern with `!Ref RawBucket` replaced by a bucket name."""
    if isinstance(node, dict):
        if node == {"Ref": "RawBucket"}:
            return RAW_BUCKET
        return {k: _resolved(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolved(v) for v in node]
    return node


@pytest.fixture(scope="module")
def pattern(resources: dict[str, Any]) -> EventPattern:
    rule = resources["RawObjectCreatedRule"]["Properties"]["EventPattern"]
    return EventPattern.load(json.dumps(_resolved(rule)))


def object_created(key: str, size: int, bucket: str = RAW_BUCKET,
                   detail_type: str = "Object Created") -> dict[str, Any]:
    return {
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type, "source": "aws.s3", "account": "111122223333",
        "time": "2021-11-12T00:00:00Z", "region": "ca-central-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket},
                   "object": {"key": key, "size": size,
                              "etag": "b1946ac92492d2347c6235b4d2611184",
                              "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                              "sequencer": "617f08299329d189"},
                   "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
                   "source-ip-address": "1.2.3.4", "reason": "PutObject"},
    }


STARTS_A_RUN = {
    "a day's file": object_created("online_retail/2010-12-01.csv", 275001),
    "a gzip day": object_created("online_retail/2010-12-01.csv.gz", 45325),
    # Empty but named like data: ResolveRun refuses it as empty, with an alert.
    "a zero-byte day file": object_created("online_retail/2010-12-01.csv", 0),
    "a zero-byte gzip day": object_created("online_retail/2010-12-01.csv.gz", 0),
    # Bytes under the prefix: ResolveRun says why it is not a day's file.
    "a misnamed file with bytes": object_created("online_retail/export.txt", 10),
    "a key ending in / with bytes": object_created("online_retail/odd/", 3),
}
STARTS_NOTHING = {
    "a folder marker": object_created("online_retail/2010-12/", 0),
    "the prefix's own folder marker": object_created("online_retail/", 0),
    "a zero-byte file that is not data": object_created("online_retail/_SUCCESS", 0),
    "a key outside every prefix": object_created("exports/2010-12-01.csv", 275001),
    "a prefix look-alike": object_created("online_retail_old/2010-12-01.csv", 5),
    "another bucket": object_created("online_retail/2010-12-01.csv", 5, bucket="someone-else"),
    "a deleted object": object_created("online_retail/2010-12-01.csv", 5,
                                       detail_type="Object Deleted"),
}


@pytest.mark.parametrize("name", sorted(STARTS_A_RUN))
def test_these_events_start_a_run(pattern: EventPattern, name: str) -> None:
    assert pattern.matches_event(STARTS_A_RUN[name]), name


@pytest.mark.parametrize("name", sorted(STARTS_NOTHING))
def test_these_events_start_nothing(pattern: EventPattern, name: str) -> None:
    assert not pattern.matches_event(STARTS_NOTHING[name]), name


def test_an_event_without_size_starts_nothing_unless_named_like_data(
        pattern: EventPattern) -> None:
    """numeric matching needs a number: an event missing `size` matches only the data-file
    names (S3 always sends size; this pins how the two branches split the work)."""
    event = object_created("online_retail/2010-12-01.csv", 1)
    del event["detail"]["object"]["size"]
    assert pattern.matches_event(event)
    marker = copy.deepcopy(STARTS_NOTHING["a folder marker"])
    del marker["detail"]["object"]["size"]
    assert not pattern.matches_event(marker)


def test_the_events_folder_samples_agree_with_the_rule(pattern: EventPattern, repo: Any) -> None:
    """Every S3 sample in events/resolve_run/ under a dataset's prefix is an event the rule
    lets through, and no other."""
    docs = [yaml.safe_load(p.read_text()) for p in sorted((repo / "datasets").glob("*.yaml"))]
    # A derived dataset (no `source`) has no raw files to route.
    prefixes = tuple(d["source"]["prefix"] for d in docs if "source" in d)
    for path in sorted((repo / "events" / "resolve_run").glob("*.json")):
        event = json.loads(path.read_text())["event"]
        if event.get("source") != "aws.s3" or "object" not in event.get("detail", {}):
            continue
        event = copy.deepcopy(event)
        event["detail"]["bucket"]["name"] = RAW_BUCKET
        key = event["detail"]["object"]["key"]
        expected = key.startswith(prefixes) and not key.endswith("/")
        assert pattern.matches_event(event) is expected, path.name


# -- what heading a version needs -------------------------------------------------------------


def _actions_on_raw_objects(resource: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    policies = resource["Properties"].get("Policies") or []
    for policy in policies:
        statements = policy.get("Statement") or policy.get("PolicyDocument", {}).get(
            "Statement", [])
        for statement in statements:
            resources = statement.get("Resource")
            resources = resources if isinstance(resources, list) else [resources]
            if statement.get("Effect") == "Allow" and {"Fn::Sub": "${RawBucket.Arn}/*"} in \
                    resources:
                actions = statement["Action"]
                found |= set(actions if isinstance(actions, list) else [actions])
    return found


def test_the_raw_bucket_is_versioned(resources: dict[str, Any]) -> None:
    props = resources["RawBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}


def test_resolve_run_may_head_a_version_and_the_jobs_the_current_object(
        resources: dict[str, Any]) -> None:
    """HeadObject/GetObject with a versionId needs s3:GetObjectVersion; without one,
    s3:GetObject ("GetObject", Amazon S3 API Reference,
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html; HEAD has the same
    options as GET)."""
    assert {"s3:GetObject", "s3:GetObjectVersion"} <= _actions_on_raw_objects(
        resources["ResolveRunFunction"])
    for role in ("EmrJobRole", "EmrInstanceRole"):
        assert "s3:GetObject" in _actions_on_raw_objects(resources[role]), role
