"""The catalog's schedule section: the IANA time zone a scheduled run's day is read in
(validated when the catalog is parsed, never at run time) and the offset.

EventBridge Scheduler takes the same names for ScheduleExpressionTimezone ("Schedule types on
EventBridge Scheduler", https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeline_core.catalog import Schedule, parse_dataset, validate_timezone
from pipeline_core.errors import ConfigurationError
from tests.unit.test_catalog_parse import BASE


def _with_schedule(schedule: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["schedule"] = schedule
    return doc


def test_the_timezone_defaults_to_utc() -> None:
    assert parse_dataset(_with_schedule({"date_offset_days": -1})).schedule == Schedule(-1, "UTC")
    assert parse_dataset(_with_schedule({})).schedule == Schedule(-1, "UTC")


def test_a_dataset_without_a_schedule_has_none() -> None:
    """A dataset run only when its files are dropped: no schedule, not a default one."""
    doc = copy.deepcopy(BASE)
    del doc["schedule"]
    assert parse_dataset(doc).schedule is None


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "Europe/London", "America/New_York",
                                  "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_an_iana_zone_is_accepted(zone: str) -> None:
    assert parse_dataset(_with_schedule({"timezone": zone})).schedule.timezone == zone


@pytest.mark.parametrize(("zone", "message"), [
    ("Mars/Olympus_Mons", "'Mars/Olympus_Mons' is not a known IANA time zone"),
    ("+09:00", "'+09:00' is not an IANA time zone name"),
    ("Asia/ Tokyo", "is not an IANA time zone name"),
    ("../etc/passwd", "is not an IANA time zone name"),
    ("", "is not an IANA time zone name"),
])
def test_a_zone_that_is_not_iana_is_refused_at_parse_time(zone: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match="dataset.schedule.timezone: .*" + message[-20:]):
        parse_dataset(_with_schedule({"timezone": zone}))
    with pytest.raises(ConfigurationError):
        validate_timezone(zone)


def test_a_zone_must_be_text() -> None:
    with pytest.raises(ConfigurationError, match=r"schedule\.timezone: expected str, got int"):
        parse_dataset(_with_schedule({"timezone": 9}))


@pytest.mark.parametrize("offset", [-367, 400])
def test_an_offset_over_a_year_is_refused(offset: int) -> None:
    with pytest.raises(ConfigurationError, match=r"date_offset_days: .* more than 366 days"):
        parse_dataset(_with_schedule({"date_offset_days": offset}))
