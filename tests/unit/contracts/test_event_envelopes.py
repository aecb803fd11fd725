"""The EventBridge envelopes our handlers read, held against AWS's documented shapes.

- "AWS service event metadata", Amazon EventBridge user guide
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html : every event
  delivered to a bus has version, id, detail-type, source, account, time, region, resources,
  detail (and replay-name when replayed).
- "EventBridge event message structure", Amazon S3 user guide
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html : the "Object Created"
  example below (its detail: version, bucket.name, object key/size/etag/version-id/sequencer,
  request-id, requester, source-ip-address, reason).

The models are ours, not powertools' parser models: importing any of those imports the models of
every service powertools knows, a third of a handler's cold import (bench/bench_cold_start.py).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_aws.contracts import ResolveRunRequest, S3ObjectCreated
from pipeline_core.errors import InvalidInput

REPO = Path(__file__).resolve().parents[3]

# The S3 user guide's "Object created" example, as printed there.
DOCUMENTED_OBJECT_CREATED = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "111122223333",
    "time": "2021-11-12T00:00:00Z",
    "region": "ca-central-1",
    "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
    "detail": {
        "version": "0",
        "bucket": {"name": "amzn-s3-demo-bucket1"},
        "object": {
            "key": "example-key",
            "size": 5,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "sequencer": "617f08299329d189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    },
}
EXECUTION = {"Id": "arn:aws:states:eu-west-1:123456789012:execution:Pipeline:run-1",
             "Name": "run-1", "StartTime": "2021-11-12T00:00:01Z"}


def test_the_documented_object_created_event_parses_with_its_object_identity():
    event = S3ObjectCreated.model_validate(DOCUMENTED_OBJECT_CREATED)
    assert (event.bucket, event.key) == ("amzn-s3-demo-bucket1", "example-key")
    assert event.etag == "b1946ac92492d2347c6235b4d2611184"
    assert event.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert event.detail.object.size == 5


@pytest.mark.parametrize("path", [
    ("version",), ("id",), ("detail-type",), ("source",), ("account",), ("time",), ("region",),
    ("resources",), ("detail",), ("detail", "version"), ("detail", "bucket"),
    ("detail", "object"), ("detail", "object", "key"), ("detail", "request-id"),
    ("detail", "requester"),
])
def test_an_event_missing_a_documented_field_is_refused_naming_it(path):
    event = copy.deepcopy(DOCUMENTED_OBJECT_CREATED)
    parent = event
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    with pytest.raises(InvalidInput) as refused:
        ResolveRunRequest.parse({"event": event, "execution": EXECUTION})
    assert path[-1] in str(refused.value)


def test_a_replayed_event_keeps_its_replay_name():
    event = {**DOCUMENTED_OBJECT_CREATED, "replay-name": "replay-2021-11"}
    assert S3ObjectCreated.model_validate(event).replay_name == "replay-2021-11"


def test_the_contracts_do_not_import_powertools_parser_models():
    code = ("import sys, pipeline_aws.contracts; "
            "print(sorted(m for m in sys.modules if m.startswith("
            "'aws_lambda_powertools.utilities.parser')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"
