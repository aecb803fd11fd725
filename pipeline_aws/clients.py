"""boto3 clients and DynamoDB tables that a handler wires at import and builds on first use.

Importing boto3 and building a client (which loads its service model) cost 200-750 ms of a
cold start here, and many paths need only some of a handler's clients (HandleFailure's EMR
clients only when the run started a cluster, TrackCost's SSM client only with a rate-card
override). Each is built once per process, on the first call that needs it, so warm
invocations reuse it, and it is built from boto3's default session at that moment: the local
runtime and the tests set that session (and the function's environment) around each
invocation as they do around the import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class OnFirstUse:
    """Stands in for the object `build()` returns; builds it when an attribute is first read."""

    __slots__ = ("_build", "_target", "_what")

    def __init__(self, build: Callable[[], Any], what: str):
        self._build = build
        self._target: Any = None
        self._what = what

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        """Writes go to the built object too (tests replace a client's method or stub it)."""
        if name in OnFirstUse.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self.target(), name, value)

    def target(self) -> Any:
        """The object itself, built now if it was not yet."""
        if self._target is None:
            self._target = self._build()
        return self._target

    @property
    def built(self) -> bool:
        return self._target is not None

    def __repr__(self) -> str:
        return f"<{self._what}, {'built' if self.built else 'built on first use'}>"


def client(service: str) -> Any:
    """`boto3.client(service)`, built on first use."""
    def build() -> Any:
        import boto3

        return boto3.client(service)

    return OnFirstUse(build, f"boto3 client {service!r}")


def table(name: str) -> Any:
    """`boto3.resource("dynamodb").Table(name)`, built on first use."""
    def build() -> Any:
        import boto3

        return boto3.resource("dynamodb").Table(name)

    return OnFirstUse(build, f"DynamoDB table {name!r}")
