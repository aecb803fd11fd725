"""The unit layer's network guard holds (tests/unit/conftest.py)."""

from __future__ import annotations

import socket

import pytest

from tests.support.network import NetworkBlocked


def test_a_tcp_connect_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkBlocked):
        sock.connect(("127.0.0.1", 9))


def test_create_connection_is_refused() -> None:
    with pytest.raises(NetworkBlocked, match=r"example\.com"):
        socket.create_connection(("example.com", 443), timeout=1)
