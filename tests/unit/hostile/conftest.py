"""The hostile handler cases run every handler as Lambda runs it (functions/<name>/app.py,
imported after the environment is set), on moto shaped like template.yaml."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws import LambdaContext, import_handler, moto_account
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
    with moto_account((RAW, CURATED, ARTIFACTS, "someone-elses-bucket"), versioned=RAW,
                      queue="hostile-alerts") as aws:
        yield Account(aws.s3, aws.table, aws.sqs, aws.queue_url)


@pytest.fixture
def handler(env: dict[str, str]) -> Callable[[str], Any]:
    """functions.<name>.app, (re)imported so its cold start reads this test's environment and
    builds its clients inside moto."""
    return import_handler


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()
