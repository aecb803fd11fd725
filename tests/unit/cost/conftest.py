"""Fixtures for cost tracking: recorded API responses (tests/unit/cost/fixtures), moto for the
ledger / alert topic / SSM, and botocore Stubbers for the calls moto cannot answer with real
data (GetJobRun utilization, ListInstanceFleets, a real execution's GetExecutionHistory)."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cost_helpers import REGION, REPO, recorded
from moto import mock_aws

from pipeline_aws.cost.rate_card import RateCard, load_rate_card

LEDGER = "emr-pipelines-dev-ledger"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:emr-pipelines-dev-alerts"


@pytest.fixture
def card() -> RateCard:
    return load_rate_card()


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """The real catalog entry (its cost section: max_run_usd 2.0, monthly_budget_usd 50.0)."""
    directory = tmp_path / "datasets"
    directory.mkdir()
    shutil.copy(REPO / "datasets" / "online_retail.yaml", directory / "online_retail.yaml")
    (directory / "online_retail.dqdl").write_text("Rules = [\n    RowCount > 0\n]\n")
    return directory


def set_catalog_cost(catalog_dir: Path, max_run_usd: float, monthly_budget_usd: float) -> None:
    path = catalog_dir / "online_retail.yaml"
    text = path.read_text()
    assert "max_run_usd: 2.0" in text and "monthly_budget_usd: 50.0" in text
    text = text.replace("max_run_usd: 2.0", f"max_run_usd: {max_run_usd}")
    path.write_text(text.replace("monthly_budget_usd: 50.0",
                                 f"monthly_budget_usd: {monthly_budget_usd}"))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, catalog_dir: Path) -> dict[str, str]:
    values = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
        "ENVIRONMENT": "dev", "APP_NAME": "emr-pipelines-dev", "LEDGER_TABLE": LEDGER,
        "ALERT_TOPIC_ARN": TOPIC, "CATALOG_DIR": str(catalog_dir),
        "EMR_SERVERLESS_ARCHITECTURE": "ARM64", "LAMBDA_MEMORY_MB": "512",
        "POWERTOOLS_SERVICE_NAME": "track_cost", "POWERTOOLS_METRICS_NAMESPACE": "EmrPipelines",
        "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "RATE_CARD_PARAMETER", "LAMBDA_MEMORY_MAP"):
        monkeypatch.delenv(key, raising=False)
    return values


class Aws:
    def __init__(self, table: Any, sqs: Any, queue_url: str, ssm: Any):
        self.table, self.sqs, self.queue_url, self.ssm = table, sqs, queue_url, ssm

    def alerts(self) -> list[dict[str, Any]]:
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            if not got.get("Messages"):
                return out
            for m in got["Messages"]:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


def create_ledger(region: str = REGION) -> Any:
    """The ledger as template.yaml declares it: key run_id, GSI by_dataset (dataset, started_at)."""
    return boto3.resource("dynamodb", region_name=region).create_table(
        TableName=LEDGER, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("run_id", "dataset", "started_at")],
        GlobalSecondaryIndexes=[{
            "IndexName": "by_dataset",
            "KeySchema": [{"AttributeName": "dataset", "KeyType": "HASH"},
                          {"AttributeName": "started_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
    )


@pytest.fixture
def aws(env: dict[str, str]) -> Iterator[Aws]:
    with mock_aws():
        table = create_ledger()
        sns = boto3.client("sns", region_name=REGION)
        assert sns.create_topic(Name="emr-pipelines-dev-alerts")["TopicArn"] == TOPIC
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url,
                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=TOPIC, Protocol="sqs", Endpoint=arn)
        yield Aws(table, sqs, queue_url, boto3.client("ssm", region_name=REGION))


class Stubs:
    """Stubbed clients for emr-serverless, emr and stepfunctions (Stubber checks the requests
    and the recorded responses against the service models)."""

    SERVICES = ("emr-serverless", "emr", "stepfunctions")

    def __init__(self) -> None:
        self.clients = {s: boto3.client(s, region_name=REGION) for s in self.SERVICES}
        self.stubbers = {s: Stubber(c) for s, c in self.clients.items()}
        for stubber in self.stubbers.values():
            stubber.activate()

    def add(self, service: str, operation: str, fixture: str,
            params: dict[str, Any] | None = None) -> None:
        self.stubbers[service].add_response(operation, recorded(fixture), params)

    def history(self, execution_arn: str, *pages: str) -> None:
        token = None
        for page in pages:
            params = {"executionArn": execution_arn, "includeExecutionData": False}
            if token:
                params["nextToken"] = token
            self.add("stepfunctions", "get_execution_history", page, params)
            token = recorded(page).get("nextToken")

    def assert_done(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def stubs(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Stubs:
    stubs = Stubs()
    real = boto3.client

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        if service in stubs.clients:
            return stubs.clients[service]
        return real(service, *args, **kwargs)

    monkeypatch.setattr(boto3, "client", client)
    return stubs


@pytest.fixture
def load_handler(stubs: Stubs):
    """Imports the handler fresh (it builds its clients and reads the environment at import)."""

    def load() -> Any:
        sys.modules.pop("functions.track_cost.app", None)
        return importlib.import_module("functions.track_cost.app")

    yield load
    sys.modules.pop("functions.track_cost.app", None)


class FakeContext:
    function_name = "emr-pipelines-dev-TrackCost"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
    aws_request_id = "5c0c7d9e-0000-4000-8000-000000000002"


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()
