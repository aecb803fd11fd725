"""Fixtures for the quality gate: moto S3 / DynamoDB / SNS shaped like the template, and helpers
that write the files the Spark job would write and the ledger items earlier runs left."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from gate_helpers import REPO
from moto import mock_aws

REGION = "eu-west-1"
CURATED = "emr-pipelines-dev-curated"
LEDGER = "emr-pipelines-dev-ledger"


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A copy of the real catalog entry; the gate only reads quality.history_runs from it."""
    directory = tmp_path / "datasets"
    directory.mkdir()
    shutil.copy(REPO / "datasets" / "online_retail.yaml", directory / "online_retail.yaml")
    (directory / "online_retail.dqdl").write_text('Rules = [\n    RowCount > 0\n]\n')
    return directory


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, catalog_dir: Path) -> dict[str, str]:
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "ENVIRONMENT": "dev",
        "APP_NAME": "emr-pipelines-dev",
        "LEDGER_TABLE": LEDGER,
        "ALERT_TOPIC_ARN": f"arn:aws:sns:{REGION}:123456789012:emr-pipelines-dev-alerts",
        "CATALOG_DIR": str(catalog_dir),
        "POWERTOOLS_SERVICE_NAME": "evaluate_quality",
        "POWERTOOLS_METRICS_NAMESPACE": "EmrPipelines",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return values


@dataclass
class Aws:
    s3: Any
    table: Any
    sqs: Any
    queue_url: str
    topic_arn: str

    def put_json(self, uri: str, body: Any) -> None:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        text = body if isinstance(body, str | bytes) else json.dumps(body)
        self.s3.put_object(Bucket=bucket, Key=key, Body=text)

    def put_run_files(self, run: dict[str, Any], quality: Any, metrics: Any) -> None:
        self.put_json(run["quality_uri"], quality)
        self.put_json(run["metrics_uri"], metrics)

    def put_ledger_run(self, run_id: str, started_at: str, status: str,
                       quality_metrics: dict[str, float] | None = None,
                       dataset: str = "online_retail") -> None:
        item: dict[str, Any] = {"run_id": run_id, "dataset": dataset, "started_at": started_at,
                                "status": status, "partition": started_at[:10]}
        if quality_metrics is not None:
            item["quality_metrics"] = {k: Decimal(str(v)) for k, v in quality_metrics.items()}
        self.table.put_item(Item=item)

    def alerts(self) -> list[dict[str, Any]]:
        """SNS notifications delivered to the test queue (raw envelope parsed)."""
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = got.get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def aws(env: dict[str, str]):
    """S3 curated bucket, the ledger table (key run_id, GSI by_dataset) and the alert topic
    with an SQS subscriber, as template.yaml declares them."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=CURATED, CreateBucketConfiguration={"LocationConstraint": REGION})
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
        topic_arn = sns.create_topic(Name="emr-pipelines-dev-alerts")["TopicArn"]
        assert topic_arn == env["ALERT_TOPIC_ARN"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield Aws(s3=s3, table=table, sqs=sqs, queue_url=queue_url, topic_arn=topic_arn)


@pytest.fixture
def handler_module(aws: Aws):
    """The handler module imported fresh inside the mocks (it builds its clients at import)."""
    sys.modules.pop("functions.evaluate_quality.app", None)
    module = importlib.import_module("functions.evaluate_quality.app")
    yield module
    sys.modules.pop("functions.evaluate_quality.app", None)


class FakeContext:
    function_name = "emr-pipelines-dev-EvaluateQuality"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
    aws_request_id = "8f5c1e2a-0000-4000-8000-000000000001"


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()

