"""Handler wiring: every events/ file through its handler (functions/<name>/app.py), on moto
shaped like template.yaml: the ledger table, the raw/curated/artifacts buckets, the alert topic
with an SQS subscriber to read alerts back. The logic behind the handlers is tested on in-memory
fakes in tests/unit/run and tests/unit/quality_gate."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline_aws.ledger import RunLedger
from tests.support.aws import LambdaContext, delivered_alerts, import_handler, moto_account
from tests.unit.run.support import (
    ARTIFACTS,
    CURATED,
    RAW,
    RUN_ENV,
    SAMPLE,
    UNSET,
    register,
    write_catalog,
)


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "datasets")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, catalog_dir: Path) -> dict[str, str]:
    values = {**RUN_ENV, "CATALOG_DIR": str(catalog_dir)}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in UNSET:
        monkeypatch.delenv(key, raising=False)
    return values


@dataclass
class Aws:
    s3: Any
    table: Any
    sqs: Any
    queue_url: str

    @property
    def ledger(self) -> RunLedger:
        return RunLedger(self.table)

    def put_raw(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=RAW, Key=key, Body=body)

    def put_sample(self, key: str = "online_retail/2010-12-01.csv") -> bytes:
        body = SAMPLE.read_bytes()
        if key.endswith(".gz"):
            body = gzip.compress(body, mtime=0)
        self.put_raw(key, body)
        return body

    def put_json(self, uri: str, body: Any) -> None:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body))

    def register(self, event: dict[str, Any], status: str = "RUNNING") -> str:
        """The run's ledger item, as ResolveRun created it."""
        return register(self.ledger, event, status)

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts delivered to the SQS subscriber: subject, attributes and JSON document."""
        return delivered_alerts(self.sqs, self.queue_url)


@pytest.fixture
def aws(env: dict[str, str]) -> Iterator[Aws]:
    with moto_account((RAW, CURATED, ARTIFACTS), versioned=RAW) as account:
        yield Aws(account.s3, account.table, account.sqs, account.queue_url)


@pytest.fixture
def load_handler(env: dict[str, str]) -> Callable[[str], Any]:
    """Import (or re-import) functions.<name>.app, so its cold start reads this test's
    environment and builds its clients now (inside moto when the test uses `aws` first)."""
    return import_handler


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()
