"""The unit layer cannot reach the network: any socket connect in a unit test fails loudly.

moto patches botocore in process and the fakes are in memory, so a connect here means a test
(or the code under test) is talking to a real endpoint, which CI and a laptop must never do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.network import network_blocked


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with network_blocked(monkeypatch):
        yield
