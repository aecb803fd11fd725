"""Fixtures for cost tracking: recorded API responses (tests/unit/cost/fixtures), the in-memory
fakes for the tracker's logic, and for the handler wiring tests moto (ledger, alert topic, SSM)
plus botocore Stubbers for the calls moto cannot answer with real data (GetJobRun utilization,
ListInstanceFleets, a real execution's GetExecutionHistory)."""

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
from cost_helpers import REPO, recorded
from moto import mock_aws

from pipeline_aws.cost.rate_card import RateCard, load_rate_card
from tests.support.aws import BASE_ENV, TOPIC, TOPIC_ARN, LambdaContext, create_ledger_table
from tests.unit.contracts.conftest import client, resource


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


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, catalog_dir: Path) -> dict[str, str]:
    values = {
        **BASE_ENV, "ALERT_TOPIC_ARN": TOPIC_ARN, "CATALOG_DIR": str(catalog_dir),
        "EMR_SERVERLESS_ARCHITECTURE": "ARM64", "LAMBDA_MEMORY_MB": "512",
        "POWERTOOLS_SERVICE_NAME": "track_cost", "POWERTOOLS_LOG_LEVEL": "WARNING",
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


@pytest.fixture
def aws(env: dict[str, str]) -> Iterator[Aws]:
    with mock_aws():
        table = create_ledger_table(resource("dynamodb"))
        sns = client("sns")
        assert sns.create_topic(Name=TOPIC)["TopicArn"] == TOPIC_ARN
        sqs = client("sqs")
        queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url,
                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=arn)
        yield Aws(table, sqs, queue_url, client("ssm"))


class Stubs:
    """Stubbed clients for emr-serverless, emr and stepfunctions (Stubber checks the requests
    and the recorded responses against the service models)."""

    SERVICES = ("emr-serverless", "emr", "stepfunctions")

    def __init__(self) -> None:
        self.clients = {s: client(s) for s in self.SERVICES}
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

    def stubbed_client(service: str, *args: Any, **kwargs: Any) -> Any:
        if service in stubs.clients:
            return stubs.clients[service]
        return real(service, *args, **kwargs)

    monkeypatch.setattr(boto3, "client", stubbed_client)
    return stubs


@pytest.fixture
def load_handler(stubs: Stubs):
    """Imports the handler fresh (it builds its clients and reads the environment at import)."""

    def load() -> Any:
        sys.modules.pop("functions.track_cost.app", None)
        return importlib.import_module("functions.track_cost.app")

    yield load
    sys.modules.pop("functions.track_cost.app", None)


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext(function_name="emr-pipelines-dev-TrackCost", memory_limit_in_mb=512)
