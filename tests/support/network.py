"""The guard that keeps the unit layer off the network."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


class NetworkBlocked(RuntimeError):
    """A unit test tried to open a network connection."""


@contextmanager
def network_blocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse every non-Unix socket connect for the duration (moto and fakes need none)."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise NetworkBlocked(f"unit tests cannot open network connections (to {address!r})")

    def guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        raise NetworkBlocked(f"unit tests cannot open network connections (to {address!r})")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)
    yield
