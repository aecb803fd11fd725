"""The hostile handler cases run every handler as Lambda runs it (functions/<name>/app.py,
imported after the environment is set), on moto shaped like template.yaml."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.aws import REGION, TOPIC, TOPIC_ARN, LambdaContext, create_ledger_table
from tests.unit.hostile.hostile_support import Account
from tests.unit.run.support import ARTIFACTS, CURATED, RAW, RUN_ENV, UNSET, write_catalog


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    values = {**RUN_ENV, "CATALOG_DIR": str(write_catalog(tmp_path / "datasets"))}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in UNSET:
        monkeypatch.delenv(key, raising=False)
    return values


@pytest.fixture
def account(env: dict[str, str]) -> Iterator[Account]:
    """Buckets (the raw one versioned, as template.yaml declares it), the ledger table and the
    alert topic with an SQS subscriber."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (RAW, CURATED, ARTIFACTS, "someone-elses-bucket"):
            s3.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
        table = create_ledger_table(boto3.resource("dynamodb", region_name=REGION))
        sns = boto3.client("sns", region_name=REGION)
        assert sns.create_topic(Name=TOPIC)["TopicArn"] == TOPIC_ARN
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="hostile-alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=queue_arn)
        yield Account(s3, table, sqs, queue_url)


@pytest.fixture
def handler(env: dict[str, str]) -> Callable[[str], Any]:
    """functions.<name>.app, (re)imported so its cold start reads this test's environment and
    builds its clients inside moto."""

    def load(name: str) -> Any:
        module_name = f"functions.{name}.app"
        if module_name in sys.modules:
            return importlib.reload(sys.modules[module_name])
        return importlib.import_module(module_name)

    return load


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()
