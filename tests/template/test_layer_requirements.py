"""The Lambda layer's pins: the same versions the tests run with, and what the Lambda runtime
lacks that the code needs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]+\])?==(\S+)$")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = _PIN.match(line)
            assert match, f"{path.name}: {line!r} is not pinned with =="
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_layer_pin_is_the_version_the_tests_run_with():
    layer = _pins(REPO / "layers/common/requirements.txt")
    dev = _pins(REPO / "requirements-dev.txt")
    assert {name: dev.get(name) for name in layer} == layer


def test_the_layer_carries_the_time_zone_database():
    """schedule.timezone is resolved with zoneinfo in ResolveRun, which reads the system's
    time zone data and falls back to the tzdata package (Python docs, zoneinfo, "Data
    sources"). The Lambda images are minimal Amazon Linux 2023: with the package, a name like
    Asia/Tokyo resolves whatever the image holds, instead of ZoneInfoNotFoundError in AWS
    only."""
    assert "tzdata" in _pins(REPO / "layers/common/requirements.txt")
