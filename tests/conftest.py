"""Fixtures shared by every test folder, and the Hypothesis profiles.

CI (where `CI` is set) runs Hypothesis derandomized: a property test either always finds its
counterexample or never does, so a red CI run is reproducible. Falsifying examples found while
developing are pinned with `@example` in the test itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None)
settings.register_profile(
    "ci", deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(autouse=True)
def _fresh_powertools_metrics() -> Iterator[None]:
    """powertools keeps metrics, dimensions and metadata on the Metrics class: a metric one test
    added must not be flushed by the next test's handler."""
    from aws_lambda_powertools import Metrics

    def reset() -> None:
        Metrics._metrics.clear()
        Metrics._dimensions.clear()
        Metrics._metadata.clear()
        Metrics._default_dimensions.clear()

    reset()
    yield
    reset()


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run (starting Spark costs seconds).

    The UI is off: jobs read their input bytes from the driver's status store, which does not
    need it (and a test session without it proves that).
    """
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
