"""Fixtures for the core run Lambdas: environment, moto resources shaped like the template
(ledger with GSI by_dataset, raw/curated/artifacts buckets, alert topic with an SQS subscriber
to read alerts back), the sample day in the raw bucket, and handler loading inside the mock."""

from __future__ import annotations

import gzip
import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from core_run_helpers import (
    ACCOUNT,
    ARTIFACTS,
    CURATED,
    ENV,
    LEDGER,
    RAW,
    REGION,
    SAMPLE,
    TOPIC,
    write_catalog,
)
from moto import mock_aws


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "datasets")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, catalog_dir: Path) -> dict[str, str]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CATALOG_DIR", str(catalog_dir))
    for key in ("AWS_PROFILE", "POWERTOOLS_SERVICE_NAME", "MIGRATIONS_DIR",
                "EMR_SERVERLESS_APPLICATION_ID", "REDSHIFT_CLUSTER_ID", "REDSHIFT_DB_USER"):
        monkeypatch.delenv(key, raising=False)
    return {**ENV, "CATALOG_DIR": str(catalog_dir)}


@dataclass
class Aws:
    s3: Any
    table: Any
    sns: Any
    sqs: Any
    queue_url: str

    def put_raw(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=RAW, Key=key, Body=body)

    def put_sample(self, key: str = "online_retail/2010-12-01.csv") -> bytes:
        body = SAMPLE.read_bytes()
        if key.endswith(".gz"):
            body = gzip.compress(body, mtime=0)
        self.put_raw(key, body)
        return body

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts delivered to the SQS subscriber: the JSON documents (the "sqs" protocol)."""
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = got.get("Messages", [])
            if not messages:
                return out
            for message in messages:
                envelope = json.loads(message["Body"])
                out.append({"subject": envelope.get("Subject"),
                            "document": json.loads(envelope["Message"])})
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def aws(env: dict[str, str]) -> Iterator[Aws]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (RAW, CURATED, ARTIFACTS):
            s3.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": REGION})
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        table = dynamodb.create_table(
            TableName=LEDGER,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "run_id", "AttributeType": "S"},
                {"AttributeName": "dataset", "AttributeType": "S"},
                {"AttributeName": "started_at", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[{
                "IndexName": "by_dataset",
                "KeySchema": [{"AttributeName": "dataset", "KeyType": "HASH"},
                              {"AttributeName": "started_at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }],
        )
        sns = boto3.client("sns", region_name=REGION)
        topic_arn = sns.create_topic(Name=TOPIC)["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield Aws(s3, table, sns, sqs, queue_url)


@pytest.fixture
def load_handler(aws: Aws) -> Any:
    """Import (or re-import) functions.<name>.app inside the mock, so its cold-start clients
    talk to moto and its settings come from this test's environment."""

    def load(name: str) -> Any:
        module_name = f"functions.{name}.app"
        if module_name in sys.modules:
            return importlib.reload(sys.modules[module_name])
        return importlib.import_module(module_name)

    return load


@dataclass
class FakeContext:
    function_name: str = "emr-pipelines-dev-Function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:emr-pipelines-dev"
    aws_request_id: str = "6f1c9a52-1f0e-4a8e-9d7b-2c7f0e1a3b4c"


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()
