"""The job reads the object version its run is for, or refuses: Spark's S3 file systems read
the current object and cannot read a version by id, so the job heads the object (boto3, here on
moto) before the scan and after it, and exits 2 with one `JOB ERROR` naming the key, the
expected and the found version and ETag when it changed since the event.

"EventBridge event message structure", Amazon S3 user guide
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html): the event's
detail.object.etag and version-id are what ResolveRun passes as --input-etag and
--input-version-id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from spark_helpers import REPO

from pipeline_core.errors import InvalidInput
from spark_jobs.common.args import parse_args
from spark_jobs.common.storage import (
    ObjectVersion,
    head_s3_object,
    s3_location,
    verify_input_version,
)

DAY = REPO / "sample_data" / "online_retail" / "2010-12-01.csv"
BUCKET, KEY = "raw-bucket", "online_retail/2010-12-01.csv"
URI = f"s3://{BUCKET}/{KEY}"


def md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET,
                                     VersioningConfiguration={"Status": "Enabled"})
        yield client


# -- the check itself -------------------------------------------------------------------------


def test_the_same_version_passes() -> None:
    expected = ObjectVersion("e1", "v1")
    verify_input_version(URI, expected, lambda uri: ObjectVersion("e1", "v1"))


@pytest.mark.parametrize(("found", "fragments"), [
    (ObjectVersion("e2", "v2"), ["expected version v1, ETag e1", "found version v2, ETag e2"]),
    (ObjectVersion("e1", "v2"), ["found version v2, ETag e1"]),
    (ObjectVersion("e2", "v1"), ["found version v1, ETag e2"]),
])
def test_another_version_is_refused_naming_both(found: ObjectVersion,
                                               fragments: list[str]) -> None:
    with pytest.raises(InvalidInput) as err:
        verify_input_version(URI, ObjectVersion("e1", "v1"), lambda uri: found)
    assert str(err.value).startswith(f"input {URI} changed since the event: ")
    for fragment in fragments:
        assert fragment in str(err.value)


def test_unversioned_compares_the_etag() -> None:
    verify_input_version(URI, ObjectVersion("e1"), lambda uri: ObjectVersion("e1"))
    with pytest.raises(InvalidInput, match="expected no version id, ETag e1, found no "
                                           "version id, ETag e2"):
        verify_input_version(URI, ObjectVersion("e1"), lambda uri: ObjectVersion("e2"))


def test_a_deleted_object_is_refused() -> None:
    with pytest.raises(InvalidInput, match=f"input {URI} no longer exists: the run is for "
                                           "version v1, ETag e1"):
        verify_input_version(URI, ObjectVersion("e1", "v1"), lambda uri: None)


@pytest.mark.parametrize("uri", ["/tmp/x.csv", "file:///tmp/x.csv", "hdfs://n/x.csv", "s3://b"])
def test_only_s3_objects_have_versions(uri: str) -> None:
    with pytest.raises(InvalidInput, match="is not an s3:// object"):
        s3_location(uri)


def test_s3a_and_s3n_uris_name_the_same_object() -> None:
    assert s3_location("s3a://b/k/x.csv") == s3_location("s3n://b/k/x.csv") == ("b", "k/x.csv")


def test_head_s3_object_gives_the_current_version(s3) -> None:
    first = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"a\n")
    assert head_s3_object(URI) == ObjectVersion(md5(b"a\n"), first["VersionId"])
    second = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"b\n")
    assert head_s3_object(URI) == ObjectVersion(md5(b"b\n"), second["VersionId"])
    assert head_s3_object(f"s3://{BUCKET}/nope.csv") is None


def test_version_arguments_need_the_etag() -> None:
    base = ["--input", "s3://b/k.csv", "--output-root", "s3://c/{table}/", "--quarantine",
            "s3://c/q/", "--metrics", "s3://c/m.json", "--quality", "s3://c/q.json",
            "--rules", "s3://a/r.dqdl", "--run-id", "r1", "--partition", "2010-12-01"]
    with pytest.raises(InvalidInput, match="--input-version-id needs --input-etag"):
        parse_args([*base, "--input-version-id", "v1"])
    args = parse_args([*base, "--input-etag", "e1", "--input-version-id", "v1",
                       "--input-source", "s3://b/other.csv"])
    assert (args.input_etag, args.input_version_id, args.input_object) == (
        "e1", "v1", "s3://b/other.csv")
    assert parse_args(base).input_object == "s3://b/k.csv" and parse_args(base).input_etag is None


# -- the job ----------------------------------------------------------------------------------


def _version_args(etag: str, version_id: str) -> list[str]:
    return ["--input-source", URI, "--input-etag", etag, "--input-version-id", version_id]


def test_the_job_refuses_an_input_that_changed_since_the_event(run_job, s3) -> None:
    body = DAY.read_bytes()
    old = s3.put_object(Bucket=BUCKET, Key=KEY, Body=body)["VersionId"]
    new = s3.put_object(Bucket=BUCKET, Key=KEY, Body=body + body[-80:])["VersionId"]
    run = run_job(DAY, "2010-12-01", extra=_version_args(md5(body), old))
    assert run.code == 2, run.stderr
    assert run.error_lines() == [
        f"JOB ERROR: input {URI} changed since the event: expected version {old}, ETag "
        f"{md5(body)}, found version {new}, ETag {md5(body + body[-80:])}; this run is for the "
        "older upload, the newer one has its own run"]
    assert not (run.out / "metrics.json").exists()


def test_the_job_runs_the_version_it_is_for(run_job, s3) -> None:
    body = DAY.read_bytes()
    version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=body)["VersionId"]
    run = run_job(DAY, "2010-12-01", extra=_version_args(md5(body), version))
    assert run.code == 0, run.stderr
    assert run.metrics["lines_read"] > 0


def test_an_upload_during_the_scan_fails_the_run_before_metrics(run_job, monkeypatch,
                                                               tmp_path: Path) -> None:
    """The second check (after the outputs, before metrics.json) sees a newer version: no
    metrics.json, so the gate cannot pass a run that mixed two uploads."""
    from spark_jobs.common import raw_job

    answers = iter([ObjectVersion("e1", "v1"), ObjectVersion("e2", "v2")])
    seen: list[str] = []

    def head(uri: str) -> ObjectVersion:
        seen.append(uri)
        return next(answers)

    monkeypatch.setattr(raw_job, "head_s3_object", head)
    run = run_job(DAY, "2010-12-01", extra=_version_args("e1", "v1"))
    assert run.code == 2, run.stderr
    assert seen == [URI, URI]
    assert "found version v2, ETag e2" in run.error_lines()[0]
    assert not (run.out / "metrics.json").exists()
