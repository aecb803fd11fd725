"""The S3 ports' contract: FakeS3Objects and the real adapters on moto (S3Objects for the raw
objects ResolveRun checks, S3JsonReader for the files EvaluateQuality reads)."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline_aws.quality.adapters import S3JsonReader
from pipeline_aws.quality.gate import JsonReader
from pipeline_aws.s3_objects import ObjectInfo, RawObjectsPort, S3Objects, first_line
from pipeline_core.catalog import Source
from pipeline_core.errors import ConfigurationError, InvalidInput, TransientError
from tests.support.aws import APP, REGION
from tests.support.fakes.s3_objects import FakeS3Objects

RAW = f"{APP}-raw"
CURATED = f"{APP}-curated"
HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country"]
HEADER_LINE = ",".join(HEADER).encode() + b"\n"
ROW = b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,UK\n"


def csv_source(header: list[str]) -> Source:
    return Source("d/", re.compile(r"^d/(?P<partition>\d{4}-\d{2}-\d{2})\.csv$"), "csv",
                  tuple(header), suffixes=(".csv",))


def jsonl_source(encoding: str = "utf-8") -> Source:
    return Source("d/", re.compile(r"^d/(?P<partition>\d{4}-\d{2}-\d{2})\.jsonl$"), "jsonl",
                  encoding=encoding, suffixes=(".jsonl",))


TEXT_SOURCE = Source("d/", re.compile(r"^d/(?P<partition>\d{4}-\d{2}-\d{2})\.log$"), "text",
                     suffixes=(".log",))


@dataclass
class Buckets:
    objects: RawObjectsPort
    reader: JsonReader
    put: Callable[[str, str, bytes], None]

    def stored(self, key: str, body: bytes, bucket: str = RAW) -> ObjectInfo:
        self.put(bucket, key, body)
        info = self.objects.head(bucket, key)
        assert info is not None
        return info


def _fake() -> Buckets:
    fake = FakeS3Objects()
    return Buckets(fake, fake, fake.put)


def _s3() -> Buckets:
    client = boto3.client("s3", region_name=REGION)
    for bucket in (RAW, CURATED):
        client.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": REGION})

    def put(bucket: str, key: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=body)

    return Buckets(S3Objects(client), S3JsonReader(client), put)


@pytest.fixture(params=["fake", "s3"])
def s3(request: pytest.FixtureRequest) -> Iterator[Buckets]:
    if request.param == "s3":
        request.getfixturevalue("moto")
        yield _s3()
    else:
        yield _fake()


# -- head and peek ----------------------------------------------------------------------------


def test_head_of_a_missing_object_is_none(s3: Buckets) -> None:
    assert s3.objects.head(RAW, "nope.csv") is None


def test_head_gives_size_and_the_etag_without_quotes(s3: Buckets) -> None:
    info = s3.stored("a.csv", b"x,y\n")
    assert info.size == 4 and info.uri == f"s3://{RAW}/a.csv"
    assert info.etag == hashlib.md5(b"x,y\n").hexdigest()  # S3's ETag of a single-part upload


def test_peek_reads_only_the_first_bytes(s3: Buckets) -> None:
    info = s3.stored("big.csv", b"h1,h2\n" + b"1,2\n" * 50_000)
    data = s3.objects.peek(info, max_bytes=1024)
    assert len(data) == 1024 and data.startswith(b"h1,h2\n")


def test_peek_of_an_empty_object_reads_nothing(s3: Buckets) -> None:
    assert s3.objects.peek(s3.stored("empty.csv", b"")) == b""


def test_an_object_changed_since_its_head_is_refused(s3: Buckets) -> None:
    info = s3.stored("c.csv", b"a\n1\n")
    s3.put(RAW, "c.csv", b"a\n2\n")
    with pytest.raises(InvalidInput, match="changed while it was being checked"):
        s3.objects.peek(info)
    with pytest.raises(InvalidInput, match="changed while it was being checked"):
        s3.objects.peek(ObjectInfo(RAW, "c.csv", "0" * 32, 4))


# -- versions (template.yaml's raw bucket is versioned) -----------------------------------------


@dataclass
class Versioned:
    objects: RawObjectsPort
    put: Callable[[str, bytes], str]  # key, body -> the new version's id


@pytest.fixture(params=["fake", "s3"])
def versioned(request: pytest.FixtureRequest) -> Iterator[Versioned]:
    if request.param == "fake":
        fake = FakeS3Objects()
        fake.versioned(RAW)

        def put_fake(key: str, body: bytes) -> str:
            version = fake.put(RAW, key, body)
            assert version is not None
            return version

        yield Versioned(fake, put_fake)
        return
    request.getfixturevalue("moto")
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=RAW, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})

    def put_s3(key: str, body: bytes) -> str:
        return str(client.put_object(Bucket=RAW, Key=key, Body=body)["VersionId"])

    yield Versioned(S3Objects(client), put_s3)


def test_head_of_a_version_is_that_version(versioned: Versioned) -> None:
    v1 = versioned.put("v.csv", b"a\n1\n")
    v2 = versioned.put("v.csv", b"a\n22\n")
    old, new = versioned.objects.head(RAW, "v.csv", v1), versioned.objects.head(RAW, "v.csv")
    assert old is not None and new is not None
    assert (old.version_id, old.etag, old.size) == (v1, hashlib.md5(b"a\n1\n").hexdigest(), 4)
    assert (new.version_id, new.etag) == (v2, hashlib.md5(b"a\n22\n").hexdigest())


def test_head_of_a_version_that_does_not_exist_is_none(versioned: Versioned) -> None:
    v1 = versioned.put("w.csv", b"a\n")
    assert versioned.objects.head(RAW, "w.csv", v1 + "x") is None
    assert versioned.objects.head(RAW, "nope.csv", v1) is None


def test_peek_reads_the_headed_version_after_a_newer_upload(versioned: Versioned) -> None:
    v1 = versioned.put("p.csv", b"h\nold\n")
    versioned.put("p.csv", b"h\nnew\n")
    old = versioned.objects.head(RAW, "p.csv", v1)
    assert old is not None
    assert versioned.objects.peek(old) == b"h\nold\n"


# -- check_input: csv -----------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "body"), [
    ("online_retail/2010-12-01.csv", HEADER_LINE + ROW),
    ("online_retail/2010-12-01.csv", b"\xef\xbb\xbf" + HEADER_LINE.replace(b"\n", b"\r\n") + ROW),
    ("online_retail/2010-12-01.csv.gz", gzip.compress(HEADER_LINE + ROW, mtime=0)),
], ids=["csv", "bom-crlf", "gz"])
def test_a_csv_with_the_catalogs_header_passes(s3: Buckets, key: str, body: bytes) -> None:
    s3.objects.check_input(s3.stored(key, body), csv_source(HEADER))


@pytest.mark.parametrize(("key", "body", "message"), [
    ("d.csv", b"", r"is empty \(0 bytes\)"),
    ("d.csv.gz", HEADER_LINE + ROW, r"ends with \.gz but is not gzip"),
    ("d.csv", gzip.compress(HEADER_LINE + ROW), r"is gzip data but its key does not end with \.gz"),
    ("d.csv", HEADER_LINE.replace(b",Country", b"") + ROW, r"missing \['Country'\]"),
    ("d.csv", HEADER_LINE.replace(b"\n", b",Extra\n") + ROW, r"unexpected \['Extra'\]"),
])
def test_a_csv_the_job_would_refuse_is_invalid_input(s3: Buckets, key: str, body: bytes,
                                                     message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as raised:
        s3.objects.check_input(s3.stored(key, body), csv_source(HEADER))
    assert f"s3://{RAW}/{key}" in str(raised.value)


def test_a_header_mismatch_names_expected_and_found(s3: Buckets) -> None:
    info = s3.stored("d.csv", HEADER_LINE.replace(b",Country", b"") + ROW)
    with pytest.raises(InvalidInput) as raised:
        s3.objects.check_input(info, csv_source(HEADER))
    assert f"expected {HEADER}" in str(raised.value) and "found [" in str(raised.value)


def test_quoted_header_names_are_parsed_as_csv(s3: Buckets) -> None:
    info = s3.stored("q.csv", b'"a","b, c"\n1,2\n')
    s3.objects.check_input(info, csv_source(["a", "b, c"]))
    with pytest.raises(InvalidInput, match="same columns in a different order"):
        s3.objects.check_input(info, csv_source(["b, c", "a"]))


# -- check_input: jsonl and text ------------------------------------------------------------


@pytest.mark.parametrize(("key", "body"), [
    ("d/2010-12-01.jsonl", b'{"trans_id": 1, "amount": "700.0"}\n{"trans_id": 2}\n'),
    ("d/2010-12-01.jsonl", b'\xef\xbb\xbf\n  \r\n{"a": [1, {"b": null}]}\r\n'),
    ("d/2010-12-01.jsonl.gz", gzip.compress(b'{"a": 1}\n', mtime=0)),
    ("d/2010-12-01.jsonl", b'{"a": "' + b"x" * 70_000 + b'"}\n'),  # longer than the peek
], ids=["jsonl", "bom-blank-lines-crlf", "gz", "long-first-line"])
def test_a_jsonl_whose_first_line_is_an_object_passes(s3: Buckets, key: str,
                                                       body: bytes) -> None:
    s3.objects.check_input(s3.stored(key, body), jsonl_source())


@pytest.mark.parametrize(("key", "body", "message"), [
    ("d/x.jsonl", b"", r"is empty \(0 bytes\)"),
    ("d/x.jsonl.gz", b'{"a": 1}\n', r"ends with \.gz but is not gzip"),
    ("d/x.jsonl", b"\n \n\r\n", "holds only blank lines"),
    ("d/x.jsonl", b"trans_id,amount\n1,2\n", "the first non-blank line is not JSON"),
    ("d/x.jsonl", b"[1, 2]\n", "is a JSON list, not an object"),
    ("d/x.jsonl", b'"text"\n', "is a JSON str, not an object"),
    ("d/x.jsonl", b'{"a": 1\n', "the first non-blank line is not JSON"),
    ("d/x.jsonl", b'{"a": "\xff"}\n', "the first non-blank line is not UTF-8 text"),
    ("d/x.jsonl", b"x" * 70_000, "the first line does not start a JSON object"),
    ("d/x.jsonl", b"\n" * 70_000 + b"{}", r"the first 65536 bytes are blank lines"),
])
def test_a_jsonl_the_job_would_refuse_is_invalid_input(s3: Buckets, key: str, body: bytes,
                                                       message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as raised:
        s3.objects.check_input(s3.stored(key, body), jsonl_source())
    assert f"s3://{RAW}/{key}" in str(raised.value)


def test_a_jsonl_first_line_is_decoded_in_the_declared_encoding(s3: Buckets) -> None:
    info = s3.stored("d/l.jsonl", '{"city": "Liège"}\n'.encode("cp1252"))
    s3.objects.check_input(info, jsonl_source("cp1252"))
    with pytest.raises(InvalidInput, match="not UTF-8 text"):
        s3.objects.check_input(info, jsonl_source())


@pytest.mark.parametrize(("key", "body", "message"), [
    ("d/x.log", b"", r"is empty \(0 bytes\)"),
    ("d/x.log", gzip.compress(b"1.2.3.4 - - [x]\n", mtime=0),
     "is gzip data but its key does not end"),
    ("d/x.log.gz", gzip.compress(b"", mtime=0), r"holds no text \(gzip of 0 bytes\)"),
], ids=["empty", "gzip-without-gz", "empty-gzip"])
def test_a_text_file_must_hold_text(s3: Buckets, key: str, body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        s3.objects.check_input(s3.stored(key, body), TEXT_SOURCE)


@pytest.mark.parametrize(("key", "body"), [
    ("d/2015-05-17.log", b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1"\n'),
    ("d/2015-05-17.log.gz", gzip.compress(b"any line at all\n", mtime=0)),
    ("d/2015-05-17.log", b"\xff\xfe not UTF-8: the job quarantines such lines one by one\n"),
], ids=["log", "gz", "not-utf8"])
def test_a_text_file_with_any_lines_passes(s3: Buckets, key: str, body: bytes) -> None:
    s3.objects.check_input(s3.stored(key, body), TEXT_SOURCE)


# -- the job's JSON files ---------------------------------------------------------------------


def test_a_json_file_is_read_as_its_document(s3: Buckets) -> None:
    s3.put(CURATED, "_runs/r/quality.json", b'{"rules": [], "metrics": {"m": 0.5}}')
    assert s3.reader.read(f"s3://{CURATED}/_runs/r/quality.json") == {
        "rules": [], "metrics": {"m": 0.5}}


def test_a_missing_json_file_is_invalid_input_naming_it(s3: Buckets) -> None:
    uri = f"s3://{CURATED}/_runs/r/metrics.json"
    with pytest.raises(InvalidInput, match=re.escape(f"{uri} does not exist")):
        s3.reader.read(uri)


@pytest.mark.parametrize("body", [b'{"rules": [', b"\xff\xfe not text"])
def test_a_file_that_is_not_json_is_invalid_input_naming_it(s3: Buckets, body: bytes) -> None:
    s3.put(CURATED, "_runs/r/quality.json", body)
    uri = f"s3://{CURATED}/_runs/r/quality.json"
    with pytest.raises(InvalidInput, match=re.escape(f"{uri} is not valid JSON")):
        s3.reader.read(uri)


# -- the real adapters only: errors S3 answers and bytes nothing else reaches -----------------


class _FailingS3:
    def __init__(self, code: str, status: int):
        self.error = ClientError({"Error": {"Code": code, "Message": code},
                                  "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    def get_object(self, **_: Any) -> Any:
        raise self.error

    def head_object(self, **_: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(("code", "status", "error"), [
    ("SlowDown", 503, TransientError),
    ("InternalError", 500, TransientError),
    ("AccessDenied", 403, ConfigurationError),
    ("NoSuchKey", 404, InvalidInput),
])
def test_s3_errors_become_domain_errors(code: str, status: int, error: type[Exception]) -> None:
    with pytest.raises(error, match=re.escape("s3://bucket/key.json")):
        S3JsonReader(_FailingS3(code, status)).read("s3://bucket/key.json")


def test_head_errors_other_than_not_found_are_domain_errors() -> None:
    with pytest.raises(TransientError, match="SlowDown"):
        S3Objects(_FailingS3("SlowDown", 503)).head(RAW, "a.csv")
    assert S3Objects(_FailingS3("404", 404)).head(RAW, "a.csv") is None


def test_a_header_longer_than_the_peek_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no line break"):
        first_line(b"a" * 100, gz=False, complete=False, where="s3://b/k")
    assert first_line(b"a,b", gz=False, complete=True, where="s3://b/k") == "a,b"


def test_a_truncated_gzip_still_yields_the_header() -> None:
    data = gzip.compress(b"h1,h2\n" + b"1,2\n" * 100_000)[:200]
    assert first_line(data, gz=True, complete=False, where="s3://b/k") == "h1,h2"
