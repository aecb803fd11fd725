"""Teardown against moto: versioned buckets are emptied of every version and delete marker, the
buckets and the ledger the template retains are deleted after the stack."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.aws import REGION
from verify_aws import buckets
from verify_aws.buckets import BATCH, delete_bucket, empty_bucket


@pytest.fixture
def s3(aws):
    return boto3.client("s3", region_name=REGION)


def versioned_bucket(s3, name: str) -> str:
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_a_versioned_bucket_is_emptied_of_versions_and_delete_markers(s3):
    """Amazon S3 API Reference, DeleteBucket
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucket.html): "All objects
    (including all object versions and delete markers) in the bucket must be deleted before the
    bucket itself can be deleted"; the raw bucket is versioned (template.yaml)."""
    bucket = versioned_bucket(s3, "raw-versioned")
    for body in (b"one", b"two", b"three"):
        s3.put_object(Bucket=bucket, Key="online_retail/2010-12-01.csv", Body=body)
    s3.put_object(Bucket=bucket, Key="other.csv", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="other.csv")  # leaves a version and a delete marker
    with pytest.raises(ClientError, match="BucketNotEmpty"):
        s3.delete_bucket(Bucket=bucket)  # what a plain delete meets

    assert empty_bucket(s3, bucket) == 5  # 3 + 1 versions, 1 delete marker
    listed = s3.list_object_versions(Bucket=bucket)
    assert "Versions" not in listed and "DeleteMarkers" not in listed
    assert delete_bucket(s3, bucket) is True
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_more_versions_than_one_delete_request_takes(s3, monkeypatch):
    """DeleteObjects takes at most 1,000 keys per request (Amazon S3 API Reference,
    DeleteObjects, https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html);
    the batching is exercised here with a batch of 3."""
    assert BATCH == 1000
    monkeypatch.setattr(buckets, "BATCH", 3)
    bucket = versioned_bucket(s3, "many-versions")
    for i in range(7):
        s3.put_object(Bucket=bucket, Key=f"k{i % 2}", Body=b"x")
    calls = []
    real = s3.delete_objects

    def counted(**kwargs):
        calls.append(len(kwargs["Delete"]["Objects"]))
        return real(**kwargs)

    s3.delete_objects = counted

    assert empty_bucket(s3, bucket) == 7
    assert calls == [3, 3, 1]
    assert delete_bucket(s3, bucket) is True


def test_a_bucket_that_is_already_gone_is_not_an_error(s3):
    assert empty_bucket(s3, "never-created") == 0
    assert delete_bucket(s3, "never-created") is False


def test_an_unversioned_bucket_is_emptied_too(s3):
    s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="artifacts", Key="jobs/v1/manifest.json", Body=b"{}")

    assert delete_bucket(s3, "artifacts") is True
