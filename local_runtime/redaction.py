"""Passwords never shown: the one redaction every message, log line, summary and alert of the
local runtime goes through.

`redact(text)` replaces the password of every URL in `text` (`scheme://user:PASSWORD@host`, the
userinfo ending at the last `@` before the host, as libpq reads it) and every `password=...`
key/value or query parameter with `***`. It knows no secret in advance, so it also covers a URL
that reaches a message some other way (an error from a driver, an alert's cause).
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
# scheme://authority: the authority ends at the first / ? # (or a space or a quote)
_URL_AUTHORITY = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<authority>[^/?#\s'\"]+)")
# password=value in a libpq key/value string or a URL query (quoted or bare)
_PASSWORD_PARAM = re.compile(
    r"(?P<key>\bpassword\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s'\"&;]+)",
    re.IGNORECASE)


def _authority(m: re.Match[str], mask: str) -> str:
    scheme, authority = m.group("scheme"), m.group("authority")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return m.group(0)
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{user}:{mask}@{host}" if mask else f"{scheme}{user}@{host}"


def redact(text: str, *, mask: str = MASK) -> str:
    """`text` with every password replaced by `mask` (an empty mask drops a URL's password
    and its `:`, leaving `user@host`: a URL psql asks the password for)."""
    if not text:
        return text
    out = _URL_AUTHORITY.sub(lambda m: _authority(m, mask), text)
    return _PASSWORD_PARAM.sub(lambda m: m.group("key") + (mask or MASK), out)


def redact_obj(value: Any) -> Any:
    """`value` (JSON-like: dicts, lists, strings) with `redact` applied to every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_obj(k): redact_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_obj(v) for v in value]
    return value


class RedactingFormatter(logging.Formatter):
    """A formatter whose every record (message, arguments and traceback) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
