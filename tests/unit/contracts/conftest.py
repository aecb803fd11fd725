"""Contract tests: every test here runs against an in-memory fake and against its real adapter
on moto, so a fake the domain tests rely on cannot drift from what the adapter does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

import boto3
import pytest
from moto import mock_aws

from tests.support.aws import BASE_ENV, REGION

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
World = TypeVar("World")
SIDES = ["fake", "moto"]


def fake_or_real(request: pytest.FixtureRequest, fake: Callable[[], World],
                 real: Callable[[], World]) -> World:
    """For a fixture parametrized with SIDES: the fake, or the real adapter inside moto."""
    if request.param == "fake":
        return fake()
    request.getfixturevalue("moto")
    return real()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@cache
def _session() -> boto3.session.Session:
    # One session for the whole run: it keeps the service models it has loaded, where
    # boto3's default session (which mock_aws resets) would parse them again for every test.
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=REGION)


def client(service: str) -> Any:
    """A client (inside `moto`, on moto) that shares loaded service models across tests."""
    return _session().client(service)  # type: ignore[call-overload]


def resource(service: str) -> Any:
    return _session().resource(service)  # type: ignore[call-overload]
