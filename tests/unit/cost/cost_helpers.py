"""Helpers shared by the cost tests: recorded API responses and the track_cost events."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EVENTS = REPO / "events" / "track_cost"
REGION = "eu-west-1"
_TIME_KEYS = ("DateTime", "At", "timestamp")


def _datetimes(value: Any, key: str = "") -> Any:
    """ISO strings under timestamp keys -> datetime, as boto3 returns them."""
    if isinstance(value, dict):
        return {k: _datetimes(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_datetimes(v, key) for v in value]
    if isinstance(value, str) and key.endswith(_TIME_KEYS):
        return datetime.fromisoformat(value)
    return value


def recorded(name: str) -> dict[str, Any]:
    return _datetimes(json.loads((FIXTURES / name).read_text()))


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())
