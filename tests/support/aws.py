"""Names every test layer shares, the ledger table built from template.yaml, one Lambda
context and one EMF parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from local_runtime.cfn import load_template

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
APP = "emr-pipelines-dev"
LEDGER = f"{APP}-ledger"
TOPIC = f"{APP}-alerts"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC}"
STATE_MACHINE = f"{APP}-pipeline"

# What every function's environment has in common; layers add their function's variables.
BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "ENVIRONMENT": "dev",
    "APP_NAME": APP,
    "LEDGER_TABLE": LEDGER,
    "POWERTOOLS_METRICS_NAMESPACE": "EmrPipelines",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


def object_created_event(key: Any, *, bucket: str, etag: str | None = None,
                         version_id: str | None = None, size: int | None = None,
                         detail_type: str = "Object Created") -> dict[str, Any]:
    """An EventBridge "Object Created" event as S3 sends it (S3 user guide, "EventBridge event
    message structure"), with `key` as given (hostile cases pass anything) and only the object
    fields asked for."""
    obj: dict[str, Any] = {"key": key}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["etag"] = etag
    if version_id is not None:
        obj["version-id"] = version_id
    return {"version": "0", "id": "0b2a6c1e-8c67-4f3e-a0aa-3b1f3b6c2d11",
            "detail-type": detail_type, "source": "aws.s3", "account": ACCOUNT,
            "time": "2026-11-21T09:59:58Z", "region": REGION,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj,
                       "request-id": "N4N7GDK58NMKJ12R", "requester": ACCOUNT,
                       "reason": "PutObject"}}


def import_handler(name: str) -> Any:
    """functions.<name>.app, imported (or re-imported) now, so its cold start reads the
    current environment and builds its clients inside whatever mock is active."""
    import importlib
    import sys

    module_name = f"functions.{name}.app"
    if module_name in sys.modules:
        return importlib.reload(sys.modules[module_name])
    return importlib.import_module(module_name)


def execution_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STATE_MACHINE}:{name}"


def read_event(folder: str, name: str) -> dict[str, Any]:
    """A file of events/, the same ones `sam local invoke -e` takes."""
    data: dict[str, Any] = json.loads((EVENTS / folder / name).read_text())
    return data


def event_files(folder: str) -> list[str]:
    return sorted(p.name for p in (EVENTS / folder).glob("*.json"))


@cache
def ledger_table_properties() -> dict[str, Any]:
    """The RunLedger table's key, attributes and indexes exactly as template.yaml declares them."""
    props = load_template(REPO / "template.yaml")["Resources"]["RunLedger"]["Properties"]
    keep = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
    return {name: props[name] for name in keep if name in props}


def create_ledger_table(dynamodb: Any, name: str = LEDGER) -> Any:
    """Create the ledger table (inside moto) with the template's shape; returns the Table."""
    return dynamodb.create_table(TableName=name, **ledger_table_properties())


@dataclass
class LambdaContext:
    """The attributes powertools reads from a Lambda context."""

    function_name: str = f"{APP}-Function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{APP}-Function"
    aws_request_id: str = "6f1c9a52-1f0e-4a8e-9d7b-2c7f0e1a3b4c"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def emf_blobs(text: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF documents powertools printed (one JSON object a line with `_aws`)."""
    blobs = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "_aws" in data:
            blobs.append(data)
    return blobs


def emf_metrics(text: str) -> dict[str, list[Any]]:
    """Metric name -> the values printed for it, across every EMF blob in `text`."""
    found: dict[str, list[Any]] = {}
    for blob in emf_blobs(text):
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                found.setdefault(metric["Name"], []).append(blob.get(metric["Name"]))
    return found


@dataclass(frozen=True)
class MotoAccount:
    """The resources of template.yaml the handlers touch, on moto (see moto_account)."""

    s3: Any
    table: Any  # the ledger, a boto3 DynamoDB Table
    sqs: Any
    queue_url: str  # an SQS queue subscribed to the alert topic


@contextmanager
def moto_account(buckets: tuple[str, ...], versioned: str, queue: str = "alerts-inbox"
                 ) -> Iterator[MotoAccount]:
    """moto shaped like template.yaml: `buckets` (`versioned` with versioning on, as the
    template's raw bucket: its events carry version-id), the ledger table, and the alert topic
    with an SQS subscriber to read alerts back (delivered_alerts)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
        table = create_ledger_table(boto3.resource("dynamodb", region_name=REGION))
        sns = boto3.client("sns", region_name=REGION)
        assert sns.create_topic(Name=TOPIC)["TopicArn"] == TOPIC_ARN
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=queue_arn)
        yield MotoAccount(s3, table, sqs, queue_url)


def delivered_alerts(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """The alerts the SQS subscriber received since the last call (each taken off the queue):
    subject, message attributes and the JSON document SNS sent the sqs protocol."""
    out = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url,
                                       MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            envelope = json.loads(message["Body"])
            out.append({"subject": envelope.get("Subject"),
                        "attributes": {k: v["Value"] for k, v in
                                       envelope.get("MessageAttributes", {}).items()},
                        "document": json.loads(envelope["Message"])})
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
