"""QualityGate on in-memory fakes: the job's files in FakeS3Objects, earlier runs in FakeLedger,
alerts in FakeAlerts, metrics in a powertools Metrics (EMF printed to stdout). The handler, on
moto, is in tests/unit/functions/test_evaluate_quality.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from pipeline_aws.alerts import Alert, safe_subject
from pipeline_aws.contracts import EvaluateQualityRequest
from pipeline_aws.quality.adapters import EmfQualityMetrics, catalog_quality
from pipeline_aws.quality.gate import QualityGate
from pipeline_aws.quality.rules import DqdlRuleEngine
from tests.support.fakes.alerts import FakeAlerts
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.s3_objects import FakeS3Objects
from tests.unit.run.support import write_catalog

NOW = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)


@dataclass
class Delivered:
    """An alert as its subscribers get it: SNS's subject, the attributes, the JSON document."""

    subject: str
    attributes: dict[str, str]
    document: dict[str, Any]

    @classmethod
    def of(cls, alert: Alert) -> Delivered:
        return cls(safe_subject(alert.subject), dict(alert.attributes),
                   json.loads(json.dumps(alert.document(), default=str)))


@dataclass
class World:
    gate: QualityGate
    files: FakeS3Objects
    ledger: FakeLedger
    sent: FakeAlerts
    metrics: Metrics

    def evaluate(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.gate.evaluate(EvaluateQualityRequest.parse(event))

    def put_json(self, uri: str, body: Any) -> None:
        self.files.put_json(uri, body)

    def put_run_files(self, run: dict[str, Any], quality: Any, metrics: Any) -> None:
        self.put_json(run["quality_uri"], quality)
        self.put_json(run["metrics_uri"], metrics)

    def put_ledger_run(self, run_id: str, started_at: str, status: str,
                       quality_metrics: dict[str, float] | None = None,
                       dataset: str = "online_retail") -> None:
        item: dict[str, Any] = {"run_id": run_id, "dataset": dataset, "started_at": started_at,
                                "status": status, "partition": started_at[:10]}
        if quality_metrics is not None:
            item["quality_metrics"] = quality_metrics
        self.ledger.put(item)

    def alerts(self) -> list[Delivered]:
        """The alerts published since the last call."""
        out = [Delivered.of(a) for a in self.sent.published]
        self.sent.published.clear()
        return out


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A copy of the real catalog entry; the gate reads its `quality` section."""
    return write_catalog(tmp_path / "datasets")


@pytest.fixture
def world(catalog_dir: Path) -> World:
    return make_world(catalog_dir)


def make_world(catalog_dir: Path) -> World:
    """The gate on fresh fakes, reading the catalog in `catalog_dir`."""
    files, ledger, alerts = FakeS3Objects(), FakeLedger(clock=lambda: NOW), FakeAlerts()
    metrics = Metrics(namespace="EmrPipelines", service="evaluate_quality")
    gate = QualityGate(reader=files, ledger=ledger, alerts=alerts,
                       metrics=EmfQualityMetrics(metrics, "dev"), engine=DqdlRuleEngine(),
                       catalog_quality=catalog_quality(str(catalog_dir)), environment="dev")
    return World(gate, files, ledger, alerts, metrics)
