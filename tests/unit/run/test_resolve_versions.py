"""RunResolver and the S3 event's object version, folder markers, and the schedule's timezone.

AWS documents what these tests hold:
- "EventBridge event message structure", Amazon S3 user guide
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html : an "Object Created"
  event carries detail.object.etag and, from a versioned bucket, detail.object.version-id.
- "Adding context attributes in EventBridge Scheduler", EventBridge Scheduler user guide
  https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html :
  <aws.scheduler.scheduled-time> is a UTC time (e.g. 2022-03-22T18:59:43Z), while the
  schedule fires in its ScheduleExpressionTimezone.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline_aws.contracts import ResolveRunRequest, RunIgnored, RunManifest
from pipeline_aws.resolve import RunResolver, run_id_for, scheduled_partition
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import InvalidInput
from tests.support.aws import object_created_event
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.s3_objects import FakeS3Objects
from tests.unit.run.conftest import NOW
from tests.unit.run.support import KEY, RAW, execution, write_catalog

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,UK\n"
ROW2 = b"536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850.0,UK\n"


def md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def object_created(key: str = KEY, **fields: Any) -> dict[str, Any]:
    return object_created_event(key, bucket=RAW, **fields)


def request(event: dict[str, Any], name: str = "exec-1") -> ResolveRunRequest:
    return ResolveRunRequest.parse({"event": event, "execution": execution(name)})


def make_resolver(objects: FakeS3Objects, ledger: FakeLedger, env: dict[str, str]) -> RunResolver:
    from pipeline_aws.settings import ResolveRunSettings

    return RunResolver(settings=ResolveRunSettings.from_environ(env),
                       catalog=load_catalog(env["CATALOG_DIR"]), objects=objects,
                       ledger=ledger, clock=lambda: NOW)


@pytest.fixture
def versioned(objects: FakeS3Objects) -> FakeS3Objects:
    objects.versioned(RAW)
    return objects


@pytest.fixture
def resolver(objects: FakeS3Objects, ledger: FakeLedger, env: dict[str, str]) -> RunResolver:
    return make_resolver(objects, ledger, env)


# -- the event's version is what runs ---------------------------------------------------------


def test_two_quick_uploads_are_two_runs_each_with_its_versions_etag(versioned, ledger,
                                                                    resolver) -> None:
    first_body, second_body = HEADER + ROW, HEADER + ROW + ROW2
    v1 = versioned.put(RAW, KEY, first_body)
    v2 = versioned.put(RAW, KEY, second_body)  # before the first event was handled
    first = resolver.resolve(request(object_created(etag=md5(first_body), version_id=v1),
                                     "exec-1"))
    second = resolver.resolve(request(object_created(etag=md5(second_body), version_id=v2),
                                      "exec-2"))
    assert first["duplicate"] is False and second["duplicate"] is False
    assert first["run_id"] != second["run_id"]
    assert (first["input"]["version_id"], first["input"]["etag"]) == (v1, md5(first_body))
    assert (second["input"]["version_id"], second["input"]["etag"]) == (v2, md5(second_body))
    assert first["input"]["size"] == len(first_body)
    assert len(ledger.items) == 2
    assert ledger.items[first["run_id"]]["input"]["version_id"] == v1


def test_a_redelivered_event_is_a_duplicate(versioned, ledger, resolver) -> None:
    body = HEADER + ROW
    v1 = versioned.put(RAW, KEY, body)
    event = object_created(etag=md5(body), version_id=v1)
    first = resolver.resolve(request(event, "exec-1"))
    versioned.put(RAW, KEY, body + ROW2)  # a newer upload does not change the old event's run
    again = resolver.resolve(request(event, "exec-2"))
    assert again["duplicate"] is True and again["run_id"] == first["run_id"]
    assert again["input"]["version_id"] == v1
    assert len(ledger.items) == 1


def test_the_same_bytes_uploaded_again_are_a_new_run(versioned, resolver) -> None:
    body = HEADER + ROW
    v1 = versioned.put(RAW, KEY, body)
    v2 = versioned.put(RAW, KEY, body)
    first = resolver.resolve(request(object_created(etag=md5(body), version_id=v1), "exec-1"))
    second = resolver.resolve(request(object_created(etag=md5(body), version_id=v2), "exec-2"))
    assert first["run_id"] != second["run_id"] and second["duplicate"] is False


def test_the_manifest_and_the_job_carry_version_and_etag(versioned, resolver) -> None:
    body = HEADER + ROW
    v1 = versioned.put(RAW, KEY, body)
    manifest = resolver.resolve(request(object_created(etag=md5(body), version_id=v1)))
    assert RunManifest.model_validate(manifest).input.version_id == v1
    args = manifest["job"]["arguments"]
    assert args[args.index("--input-etag") + 1] == md5(body)
    assert args[args.index("--input-version-id") + 1] == v1
    assert manifest["run_id"] == run_id_for("online_retail", "2010-12-01", RAW, KEY, md5(body),
                                            v1)


def test_an_unversioned_object_has_no_version_argument_and_keeps_its_run_id(objects,
                                                                           resolver) -> None:
    body = HEADER + ROW
    objects.put(RAW, KEY, body)
    manifest = resolver.resolve(request(object_created(etag=md5(body))))
    assert manifest["input"]["version_id"] is None
    assert "--input-version-id" not in manifest["job"]["arguments"]
    digest = hashlib.sha256(f"{RAW}/{KEY}/{md5(body)}".encode()).hexdigest()[:12]
    assert manifest["run_id"] == f"online_retail-2010-12-01-{digest}"


def test_an_unversioned_object_that_changed_since_the_event_is_refused(objects,
                                                                       resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    objects.put(RAW, KEY, HEADER + ROW + ROW2)
    with pytest.raises(InvalidInput) as err:
        resolver.resolve(request(object_created(etag=md5(HEADER + ROW))))
    message = str(err.value)
    assert f"s3://{RAW}/{KEY} changed since the event" in message
    assert md5(HEADER + ROW) in message and md5(HEADER + ROW + ROW2) in message


def test_a_version_whose_etag_is_not_the_events_is_refused(versioned, ledger,
                                                           resolver) -> None:
    v1 = versioned.put(RAW, KEY, HEADER + ROW)
    with pytest.raises(InvalidInput, match=f"version {v1} has ETag {md5(HEADER + ROW)}, but "
                                           "the event says 0{32}"):
        resolver.resolve(request(object_created(etag="0" * 32, version_id=v1)))
    assert ledger.items == {}


def test_a_version_that_does_not_exist_is_refused(versioned, resolver) -> None:
    versioned.put(RAW, KEY, HEADER + ROW)
    with pytest.raises(InvalidInput, match=f"version nope of s3://{RAW}/{KEY} does not exist"):
        resolver.resolve(request(object_created(version_id="nope")))


def test_a_quoted_etag_in_the_event_is_the_same_etag(versioned, resolver) -> None:
    v1 = versioned.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request(object_created(etag=f'"{md5(HEADER + ROW)}"',
                                                       version_id=v1)))
    assert manifest["input"]["etag"] == md5(HEADER + ROW)


def test_a_schedule_runs_the_current_version_with_the_s3_events_run_id(versioned,
                                                                     resolver) -> None:
    body = HEADER + ROW
    v1 = versioned.put(RAW, KEY, body)
    first = resolver.resolve(request(object_created(etag=md5(body), version_id=v1), "exec-1"))
    scheduled = resolver.resolve(request(
        {"source": "pipeline.schedule", "dataset": "online_retail",
         "scheduled_time": "2010-12-02T06:00:00Z"}, "exec-2"))
    assert scheduled["run_id"] == first["run_id"] and scheduled["duplicate"] is True


# -- folder markers ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["online_retail/", "online_retail/2010-12/", "elsewhere/"])
def test_a_folder_marker_is_ignored_not_refused(objects, ledger, resolver, key) -> None:
    objects.put(RAW, key, b"")
    result = resolver.resolve(request(object_created(key, size=0, etag=md5(b""))))
    ignored = RunIgnored.model_validate(result)
    assert ignored.ignored is True and ignored.key == key and "folder marker" in ignored.reason
    assert result["duplicate"] is False  # the state machine's IsDuplicate reads it
    assert ledger.items == {} and objects.peeks == 0


def test_a_zero_byte_data_file_is_refused_as_empty(objects, resolver) -> None:
    objects.put(RAW, KEY, b"")
    with pytest.raises(InvalidInput, match=r"is empty \(0 bytes\)"):
        resolver.resolve(request(object_created(KEY, size=0, etag=md5(b""))))


def test_a_key_ending_in_slash_with_bytes_is_not_a_folder_marker(objects, resolver) -> None:
    objects.put(RAW, "online_retail/odd/", HEADER + ROW)
    with pytest.raises(InvalidInput, match="does not match its key pattern"):
        resolver.resolve(request(object_created("online_retail/odd/", size=len(HEADER + ROW))))


# -- the schedule's timezone ------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("scheduled_utc", "zone", "offset", "partition"), [
    # 06:00 in Tokyo on the 10th is 21:00 UTC on the 9th: the previous local day is the 9th.
    ("2026-03-09T21:00:00+00:00", "Asia/Tokyo", -1, "2026-03-09"),
    ("2026-03-09T21:00:00+00:00", "UTC", -1, "2026-03-08"),
    # London: the clocks go forward on 2026-03-29 (01:00 UTC) and back on 2026-10-25.
    ("2026-03-28T06:00:00+00:00", "Europe/London", -1, "2026-03-27"),  # 06:00 GMT
    ("2026-03-29T05:00:00+00:00", "Europe/London", -1, "2026-03-28"),  # 06:00 BST
    ("2026-03-29T00:30:00+00:00", "Europe/London", 0, "2026-03-29"),  # 00:30 GMT, before
    ("2026-10-24T23:30:00+00:00", "Europe/London", 0, "2026-10-25"),  # 00:30 BST
    ("2026-10-25T23:30:00+00:00", "Europe/London", 0, "2026-10-25"),  # 23:30 GMT, after
    # New York: forward on 2026-03-08 (07:00 UTC), back on 2026-11-01 (06:00 UTC).
    ("2026-03-08T04:30:00+00:00", "America/New_York", 0, "2026-03-07"),  # 23:30 EST
    ("2026-03-08T05:30:00+00:00", "America/New_York", 0, "2026-03-08"),  # 00:30 EST
    ("2026-03-09T03:59:00+00:00", "America/New_York", 0, "2026-03-08"),  # 23:59 EDT
    ("2026-11-01T03:59:00+00:00", "America/New_York", 0, "2026-10-31"),  # 23:59 EDT
    ("2026-11-02T04:59:00+00:00", "America/New_York", 0, "2026-11-01"),  # 23:59 EST
    ("2026-11-02T05:00:00+00:00", "America/New_York", -1, "2026-11-01"),  # 00:00 EST
    # Month and year boundaries.
    ("2026-12-31T15:00:00+00:00", "Asia/Tokyo", 0, "2027-01-01"),
    ("2027-01-01T04:00:00+00:00", "America/New_York", -1, "2026-12-30"),
    ("2024-02-29T23:00:00+00:00", "Europe/London", 1, "2024-03-01"),
])
def test_scheduled_partition_is_the_day_in_the_schedules_zone(scheduled_utc, zone, offset,
                                                              partition) -> None:
    assert scheduled_partition(at(scheduled_utc), offset, zone) == partition


def test_a_scheduled_time_without_a_zone_is_utc() -> None:
    assert scheduled_partition(datetime(2026, 3, 9, 21), -1, "Asia/Tokyo") == "2026-03-09"


ZONES = ["UTC", "Asia/Tokyo", "Europe/London", "America/New_York", "Australia/Lord_Howe",
         "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu"]


@given(moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31),
                           timezones=st.just(UTC)),
       zone=st.sampled_from(ZONES), offset=st.integers(-7, 7))
def test_the_partition_is_the_local_calendar_day_moved_by_the_offset(moment, zone,
                                                                     offset) -> None:
    """An independent reading of the same rule: the wall clock in the zone, then the days."""
    wall = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    expected = date(wall.year, wall.month, wall.day) + timedelta(days=offset)
    assert scheduled_partition(moment, offset, zone) == expected.isoformat()


@given(local_day=st.dates(min_value=date(1971, 1, 1), max_value=date(2099, 12, 31)),
       hour=st.integers(0, 23), zone=st.sampled_from(ZONES))
def test_every_hour_of_a_local_day_schedules_the_day_before(local_day, hour, zone) -> None:
    """A schedule firing at any hour of a local day (DST gaps resolve forward, folds both
    ways) processes the local day before, never two days before or the same day."""
    for fold in (0, 1):
        local = datetime(local_day.year, local_day.month, local_day.day, hour,
                         tzinfo=ZoneInfo(zone), fold=fold)
        utc = local.astimezone(UTC)
        if utc.astimezone(ZoneInfo(zone)).date() != local_day:
            continue  # an hour a DST gap moved onto another day
        assert scheduled_partition(utc, -1, zone) == (local_day - timedelta(1)).isoformat()


@pytest.mark.parametrize(("scheduled", "zone", "offset"), [
    (datetime(1, 1, 1, tzinfo=UTC), "UTC", -1),
    (datetime(1, 1, 1, 3, tzinfo=UTC), "America/New_York", 0),
    (datetime(9999, 12, 31, 23, tzinfo=UTC), "Asia/Tokyo", 0),
    (datetime(9999, 12, 31, tzinfo=UTC), "UTC", 1),
])
def test_a_day_outside_the_calendar_is_invalid_input_not_an_overflow(scheduled, zone,
                                                                     offset) -> None:
    with pytest.raises(InvalidInput, match="outside the calendar"):
        scheduled_partition(scheduled, offset, zone)


def test_the_year_one_and_9999_boundaries_that_fit_are_days() -> None:
    assert scheduled_partition(datetime(1, 1, 2, tzinfo=UTC), -1, "UTC") == "0001-01-01"
    assert scheduled_partition(datetime(9999, 12, 30, tzinfo=UTC), 1, "UTC") == "9999-12-31"


def test_a_tokyo_schedule_resolves_the_catalogs_day(objects, ledger, env, tmp_path) -> None:
    catalog = write_catalog(tmp_path / "tokyo",
                            schedule={"date_offset_days": -1, "timezone": "Asia/Tokyo"})
    resolver = make_resolver(objects, ledger, {**env, "CATALOG_DIR": str(catalog)})
    objects.put(RAW, "online_retail/2010-12-09.csv", HEADER + ROW)
    # 06:00 on the 10th in Tokyo
    manifest = resolver.resolve(request({"source": "pipeline.schedule",
                                         "dataset": "online_retail",
                                         "scheduled_time": "2010-12-09T21:00:00Z"}))
    assert manifest["partition"] == "2010-12-09" and manifest["trigger"] == "schedule"


@pytest.mark.parametrize(("scheduled_time", "message"), [
    ("0001-01-01T00:00:00Z", "outside the calendar"),
    ("not a time", "event.scheduled_time"),
    ("2010-13-01T06:00:00Z", "event.scheduled_time"),
])
def test_a_bad_schedule_time_is_invalid_input(resolver, scheduled_time, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolver.resolve(request({"source": "pipeline.schedule", "dataset": "online_retail",
                                  "scheduled_time": scheduled_time}))


@pytest.mark.parametrize(("reference", "expected"), [
    ("run_start", "2026-11-30T09:15:00Z"), ("partition_end", "2010-12-02T00:00:00Z")])
def test_the_job_is_told_the_evaluation_time_the_catalog_declares(reference, expected):
    """The gate fails a run whose quality.json was measured against another instant than the
    catalog's freshness_reference (pipeline_aws.quality.gate.evaluation_time_check), so the
    manifest must pass exactly that instant to the job."""
    from dataclasses import replace

    from pipeline_aws.resolve import job_arguments
    from pipeline_aws.s3_objects import ObjectInfo

    dataset = load_catalog().get("online_retail")
    dataset = replace(dataset, quality=replace(dataset.quality, freshness_reference=reference))
    started = datetime(2026, 11, 30, 10, 15, tzinfo=ZoneInfo("Europe/Paris"))
    args = job_arguments(dataset, obj=ObjectInfo(RAW, KEY, "e" * 32, 10), output_root="o",
                         quarantine="q", metrics="m", quality="y", rules="r", run_id="id",
                         partition="2010-12-01", started_at=started)

    assert args[args.index("--reference-time") + 1] == expected
