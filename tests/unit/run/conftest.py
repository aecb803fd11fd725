"""The run-path logic (ResolveRun, StartLoad, RecordRun, HandleFailure) on in-memory fakes of
its ports: no moto, no handler; tests/unit/functions runs the handlers on moto."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.fakes.alerts import FakeAlerts
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.redshift_data import FakeRedshiftData
from tests.support.fakes.s3_objects import FakeS3Objects
from tests.unit.run.support import RUN_ENV, write_catalog

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "datasets")


@pytest.fixture
def env(catalog_dir: Path) -> dict[str, str]:
    """The functions' environment, as a mapping for `Settings.from_environ`."""
    return {**RUN_ENV, "CATALOG_DIR": str(catalog_dir)}


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger(clock=lambda: NOW)


@pytest.fixture
def objects() -> FakeS3Objects:
    return FakeS3Objects()


@pytest.fixture
def alerts() -> FakeAlerts:
    return FakeAlerts()


@pytest.fixture
def redshift() -> FakeRedshiftData:
    return FakeRedshiftData()
