"""Helpers shared by the quality gate tests (a unique module name: every test folder has a
conftest.py, so `from conftest import ...` would be ambiguous in a full run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events" / "evaluate_quality"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))
