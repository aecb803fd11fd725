"""Helpers shared by the cost tests: recorded API responses and the track_cost events."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.aws import EVENTS as ALL_EVENTS
from tests.support.aws import REPO, read_event

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EVENTS = ALL_EVENTS / "track_cost"
__all__ = ["EVENTS", "FIXTURES", "REPO", "load_event", "recorded", "set_catalog_cost"]
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
    return read_event("track_cost", name)


def set_catalog_cost(catalog_dir: Path, max_run_usd: float, monthly_budget_usd: float) -> None:
    path = catalog_dir / "online_retail.yaml"
    text = path.read_text()
    assert "max_run_usd: 2.0" in text and "monthly_budget_usd: 50.0" in text
    text = text.replace("max_run_usd: 2.0", f"max_run_usd: {max_run_usd}")
    path.write_text(text.replace("monthly_budget_usd: 50.0",
                                 f"monthly_budget_usd: {monthly_budget_usd}"))
