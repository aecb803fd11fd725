"""Distinct AWS identities for the local deployment's callers, as in an account.

In AWS every Lambda function runs as its role's session named after the function
(`aws:userid` = `<role id>:<function name>`), and the state machine as its own role. The local
runtime gives each one its own access key: a function's handler runs with its key in the
environment (LocalDeployment), the state machine's service tasks sign with the machine's key
(sfn_hooks). The Redshift Data API stand-in reads the key of each request (moto puts it in
the Authorization header) and maps it here to the caller's user id, so it can hold every
statement to the identity that submitted it, as the Data API does.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass

LOCAL_SECRET_KEY = "local-secret-access-key"  # noqa: S105 (moto ignores it; not a secret)


def _code(kind: str, name: str, length: int) -> str:
    """A stable upper-case [A-Z2-7] code for `name` (moto reads keys of 20 [A-Z0-9])."""
    digest = hashlib.sha256(f"{kind}:{name}".encode()).digest()
    return base64.b32encode(digest).decode().rstrip("=")[:length]


def access_key_for(name: str) -> str:
    """The access key id of the caller `name` (a function or a state machine)."""
    return "AKIA" + _code("key", name, 16)


def role_id_for(role_name: str) -> str:
    """A role's unique id, as IAM shapes it (AROA + 17 characters)."""
    return "AROA" + _code("role", role_name, 17)


@dataclass(frozen=True)
class Principal:
    name: str  # the function or state machine
    user_id: str  # aws:userid: <role id>:<session name>
    role_arn: str


class Principals:
    """Access key -> the principal it signs for. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Principal] = {}

    def register(self, name: str, role_arn: str, session_name: str) -> str:
        """Give `name` its own key, signing as `role_arn`'s session `session_name`."""
        role_name = role_arn.rsplit("/", 1)[-1]
        key = access_key_for(name)
        with self._lock:
            self._by_key[key] = Principal(name, f"{role_id_for(role_name)}:{session_name}",
                                          role_arn)
        return key

    def user_id(self, access_key: str) -> str:
        """The caller's aws:userid; a key nobody registered is its own identity (an IAM user
        outside the deployment: the CLI, a test)."""
        with self._lock:
            found = self._by_key.get(access_key)
        return found.user_id if found else f"user:{access_key}"

    def principal(self, access_key: str) -> Principal | None:
        with self._lock:
            return self._by_key.get(access_key)


PRINCIPALS = Principals()
