"""Hostile triggers and raw objects through the ResolveRun handler (functions/resolve_run) on
moto: every refused case names its problem, registers nothing in the ledger, and leaves the
raw bucket exactly as it was (bytes and versions). tests/unit/run/test_resolve.py and
tests/unit/functions/test_resolve_run.py hold the cases not repeated here (missing object,
empty object, other bucket, %2F-encoded key, key outside every prefix, manual unknown dataset
and bad date, gzip mix-ups, BOM + CRLF header).

S3 keys are up to 1,024 bytes of UTF-8 and may hold any character (S3 user guide, "Naming
Amazon S3 objects", https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html):
a key with a newline, a NUL or ".." can reach the pipeline.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline_core.errors import InvalidInput, UnknownDataset
from tests.unit.hostile.hostile_support import GOOD, HEADER, ROW, Account, resolve_payload, s3_event
from tests.unit.run.support import KEY, RAW

pytestmark = pytest.mark.hostile
OTHER_BUCKET = "someone-elses-bucket"


@dataclass(frozen=True)
class Refused:
    """One hostile trigger: the objects in place before it, the error and what it says."""

    event: Callable[[Account], Any]
    error: type[Exception]
    says: str  # a regular expression the message must match
    objects: dict[str, bytes] = field(default_factory=lambda: {KEY: GOOD})


def _drop(event: dict[str, Any], *path: str) -> dict[str, Any]:
    target = event
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return event


def _replace(event: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    target = event
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return event


def _stored_etag(account: Account, key: str = KEY) -> str:
    return next(s.etag for s in account.stored if s.key == key)


LONG_KEY = "online_retail/" + "9" * 1100 + ".csv"  # over S3's 1,024-byte key limit
REFUSED_EVENTS: dict[str, Refused] = {
    "event-without-detail": Refused(
        lambda a: _drop(s3_event(KEY), "detail"), InvalidInput, r"event\.detail: Field required"),
    "detail-is-null": Refused(
        lambda a: _replace(s3_event(KEY), None, "detail"), InvalidInput,
        r"event\.detail: Input should be a valid dictionary"),
    "detail-type-object-deleted": Refused(
        lambda a: s3_event(KEY, detail_type="Object Deleted"), InvalidInput,
        r"event\.detail-type: Input should be 'Object Created'"),
    "detail-without-object": Refused(
        lambda a: _drop(s3_event(KEY), "detail", "object"), InvalidInput,
        r"event\.detail\.object: Field required"),
    "key-is-a-number": Refused(
        lambda a: s3_event(20101201), InvalidInput,
        r"event\.detail\.object\.key: Input should be a valid string"),
    "key-is-null": Refused(
        lambda a: s3_event(None), InvalidInput,
        r"event\.detail\.object\.key: Input should be a valid string"),
    "key-is-a-list": Refused(
        lambda a: s3_event([KEY]), InvalidInput,
        r"event\.detail\.object\.key: Input should be a valid string"),
    "key-is-empty": Refused(
        lambda a: s3_event(""), InvalidInput, r"event\.detail\.object\.key: String should have"),
    "bucket-name-empty": Refused(
        lambda a: s3_event(KEY, bucket=""), InvalidInput,
        r"event\.detail\.bucket\.name: String should have"),
    "wrong-bucket-holding-the-same-key": Refused(
        lambda a: (a.put_raw(KEY, GOOD, bucket=OTHER_BUCKET),
                   s3_event(KEY, bucket=OTHER_BUCKET))[1],
        InvalidInput, rf"bucket '{OTHER_BUCKET}' is not the raw bucket '{RAW}'"),
    "key-over-1024-bytes": Refused(
        lambda a: s3_event(LONG_KEY), InvalidInput, r"does not match its key pattern"),
    "key-url-encoded-twice": Refused(
        lambda a: s3_event("online_retail%252F2010-12-01.csv"), UnknownDataset,
        r"'online_retail%2F2010-12-01.csv' is outside every dataset prefix"),
    "key-with-nul": Refused(
        lambda a: s3_event("online_retail/2010-12-01\x00.csv"), InvalidInput,
        r"does not match its key pattern"),
    "key-with-dot-dot": Refused(
        lambda a: s3_event("online_retail/../online_retail/2010-12-01.csv"), InvalidInput,
        r"does not match its key pattern"),
    "key-climbing-out-of-the-prefix": Refused(
        lambda a: s3_event("../online_retail/2010-12-01.csv"), UnknownDataset,
        r"outside every dataset prefix \(online_retail/\)"),
    "key-under-a-look-alike-prefix": Refused(
        lambda a: s3_event("online_retail_archive/2010-12-01.csv"), UnknownDataset,
        r"outside every dataset prefix"),
    "key-prefix-in-other-letter-case": Refused(
        lambda a: s3_event("Online_Retail/2010-12-01.csv"), UnknownDataset,
        r"outside every dataset prefix"),
    "key-extension-upper-case": Refused(
        lambda a: s3_event("online_retail/2010-12-01.CSV"), InvalidInput,
        r"does not match its key pattern"),
    "key-is-only-the-prefix-with-bytes": Refused(
        lambda a: s3_event("online_retail/", size=120), InvalidInput,
        r"does not match its key pattern"),
    "bad-date-february-30": Refused(
        lambda a: s3_event("online_retail/2010-02-30.csv"), InvalidInput,
        r"partition '2010-02-30' is not a real date"),
    "bad-date-month-13": Refused(
        lambda a: s3_event("online_retail/2010-13-01.csv"), InvalidInput,
        r"partition '2010-13-01' is not a real date"),
    "bad-date-year-0": Refused(
        lambda a: s3_event("online_retail/0000-01-01.csv"), InvalidInput,
        r"partition '0000-01-01' is not a real date"),
    "bad-date-full-width-digits": Refused(
        lambda a: s3_event("online_retail/\uff12\uff10\uff11\uff10-12-01.csv"), InvalidInput,
        r"is not a real date"),
    "version-id-never-issued": Refused(
        lambda a: s3_event(KEY, version_id="3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY-MTRCxf3vjVBH40Nr8X"),
        InvalidInput, r"version 3sL4kqtJ\S+ of s3://\S+/online_retail/2010-12-01\.csv does not "
                      r"exist"),
    "etag-of-an-overwritten-upload": Refused(
        lambda a: (a.put_raw(KEY, HEADER + ROW.replace(b"6,", b"7,")),
                   s3_event(KEY, etag="0" * 32))[1],
        InvalidInput, r"changed since the event: the event's ETag is 0{32}"),
    "schedule-of-an-unknown-dataset": Refused(
        lambda a: {"source": "pipeline.schedule", "dataset": "no_such_dataset",
                   "scheduled_time": "2010-12-02T06:00:00Z"},
        UnknownDataset, r"'no_such_dataset' is not in the catalog"),
    "schedule-time-not-a-time": Refused(
        lambda a: {"source": "pipeline.schedule", "dataset": "online_retail",
                   "scheduled_time": "yesterday"},
        InvalidInput, r"event\.scheduled_time: Input should be a valid datetime"),
    "manual-key-in-another-bucket": Refused(
        lambda a: (a.put_raw(KEY, GOOD, bucket=OTHER_BUCKET),
                   {"bucket": OTHER_BUCKET, "key": KEY})[1],
        InvalidInput, r"is not the raw bucket"),
}


@pytest.mark.parametrize("case", list(REFUSED_EVENTS), ids=list(REFUSED_EVENTS))
def test_a_hostile_trigger_is_refused_naming_the_problem(account, handler, context, case):
    spec = REFUSED_EVENTS[case]
    for key, body in spec.objects.items():
        account.put_raw(key, body)
    event = spec.event(account)
    app = handler("resolve_run")
    with pytest.raises(spec.error, match=spec.says):
        app.lambda_handler(resolve_payload(event), context)
    assert account.ledger_items() == []
    account.assert_inputs_untouched()
    if OTHER_BUCKET in str(event):  # the other bucket's object is neither read nor changed
        assert account.s3.get_object(Bucket=OTHER_BUCKET, Key=KEY)["Body"].read() == GOOD


def test_execution_without_id_is_refused(account, handler, context):
    account.put_raw(KEY, GOOD)
    payload = resolve_payload(s3_event(KEY))
    del payload["execution"]["Id"]
    with pytest.raises(InvalidInput, match=r"execution\.Id: Field required"):
        handler("resolve_run").lambda_handler(payload, context)
    assert account.ledger_items() == []


def test_a_key_with_a_trailing_newline_is_refused(account, handler, context):
    account.put_raw(KEY + "\n", GOOD)
    with pytest.raises(InvalidInput, match="does not match its key pattern"):
        handler("resolve_run").lambda_handler(resolve_payload(s3_event(KEY + "\n")), context)
    assert account.ledger_items() == []


# -- raw objects ResolveRun refuses before any compute is paid for ---------------------------

UTF16 = HEADER.decode().encode("utf-16")  # starts with the FF FE byte order mark
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256))
REFUSED_OBJECTS: dict[str, tuple[str, bytes, str]] = {
    "utf-16-file": (KEY, UTF16 + ROW.decode().encode("utf-16-le"),
                    r"the header line is not UTF-8 text"),
    "binary-garbage": (KEY, PNG, r"the header line is not UTF-8 text"),
    "semicolon-delimited": (KEY, HEADER.replace(b",", b";") + ROW.replace(b",", b";"),
                            r"looks semicolon-separated"),
    "tab-delimited": (KEY, HEADER.replace(b",", b"\t") + ROW.replace(b",", b"\t"),
                      r"looks tab-separated"),
    "latin-1-header": (KEY, HEADER.replace(b"Description", "Descripci\u00f3n".encode("latin-1"))
                       + ROW, r"the header line is not UTF-8 text"),
    "extra-column-in-header": (KEY, HEADER.replace(b"Country", b"Country,Channel") + ROW,
                               r"unexpected \['Channel'\]"),
    "header-in-lower-case": (KEY, HEADER.lower() + ROW, r"names differ in letter case only"),
    "header-columns-swapped": (KEY, HEADER.replace(b"Quantity,InvoiceDate",
                                                   b"InvoiceDate,Quantity") + ROW,
                               r"same columns in a different order"),
    "corrupt-gzip-body": (KEY + ".gz", b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"not deflate data",
                          r"gzip data is corrupt"),
    "gzip-of-an-empty-file": (KEY + ".gz", gzip.compress(b"", mtime=0),
                              r"header does not match the catalog \(0 columns, expected 8"),
    "nul-bytes-only": (KEY, b"\x00" * 4096, r"header does not match the catalog"),
    "bom-twice": (KEY, b"\xef\xbb\xbf\xef\xbb\xbf" + GOOD, r"column 1 is '\\ufeffInvoiceNo'"),
}


@pytest.mark.parametrize("case", list(REFUSED_OBJECTS), ids=list(REFUSED_OBJECTS))
def test_a_raw_object_the_job_would_refuse_is_refused_before_compute(account, handler, context,
                                                                      case):
    key, body, says = REFUSED_OBJECTS[case]
    account.put_raw(key, body)
    with pytest.raises(InvalidInput, match=says) as err:
        handler("resolve_run").lambda_handler(resolve_payload(s3_event(key)), context)
    assert f"s3://{RAW}/{key}" in str(err.value)
    assert account.ledger_items() == []
    account.assert_inputs_untouched()


def test_a_file_with_cr_only_line_endings_is_refused_by_name(account, handler, context):
    account.put_raw(KEY, GOOD.replace(b"\n", b"\r"))
    with pytest.raises(InvalidInput, match=r"line"):
        handler("resolve_run").lambda_handler(resolve_payload(s3_event(KEY)), context)
    assert account.ledger_items() == []
    account.assert_inputs_untouched()


# -- object versions: what runs is the version the event names ---------------------------------


def test_an_event_for_an_overwritten_version_runs_that_version(account, handler, context):
    first = account.put_raw(KEY, GOOD)
    newer = account.put_raw(KEY, GOOD + ROW.replace(b"536365", b"536366"))
    event = s3_event(KEY, etag=first.etag, version_id=first.version_id, size=len(first.body))
    manifest = handler("resolve_run").lambda_handler(resolve_payload(event), context)
    assert manifest["input"]["etag"] == first.etag
    assert manifest["input"].get("version_id") == first.version_id != newer.version_id
    args = manifest["job"]["arguments"]
    assert args[args.index("--input-version-id") + 1] == first.version_id
    assert args[args.index("--input-etag") + 1] == first.etag
    [item] = account.ledger_items()
    assert item["input"]["version_id"] == first.version_id
    account.assert_inputs_untouched()


def test_an_event_without_a_version_id_runs_the_current_version(account, handler, context):
    stored = account.put_raw(KEY, GOOD)
    event = s3_event(KEY, etag=stored.etag, size=len(GOOD))  # no "version-id"
    manifest = handler("resolve_run").lambda_handler(resolve_payload(event), context)
    assert manifest["input"]["etag"] == stored.etag
    assert manifest["input"].get("version_id") == stored.version_id
    [item] = account.ledger_items()
    assert item["status"] == "RUNNING" and item["input"]["version_id"] == stored.version_id
    account.assert_inputs_untouched()


def test_the_same_version_delivered_twice_at_once_registers_one_run(account, handler, context):
    """Two executions of one event (EventBridge delivers at least once): the ledger's
    conditional put lets one run; the other is a duplicate that starts nothing."""
    stored = account.put_raw(KEY, GOOD)
    event = s3_event(KEY, etag=stored.etag, version_id=stored.version_id, size=len(GOOD))
    app = handler("resolve_run")
    first = app.lambda_handler(resolve_payload(event, "exec-a"), context)
    second = app.lambda_handler(resolve_payload(event, "exec-b"), context)
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert first["run_id"] == second["run_id"]
    [item] = account.ledger_items()
    assert item["execution_arn"].endswith(":exec-a")
    account.assert_inputs_untouched()
