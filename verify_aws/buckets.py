"""Emptying and deleting buckets, versioned ones included.

S3 deletes a bucket only when "all objects (including all object versions and delete markers)"
are deleted (Amazon S3 API Reference, DeleteBucket). In a versioned bucket (the raw bucket is
one) deleting an object by key only adds a delete marker, so each version and each marker is
deleted by its version id, at most 1,000 per DeleteObjects request.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

BATCH = 1000  # DeleteObjects takes at most 1,000 keys per request


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _versions(s3: Any, bucket: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            found.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
    return found


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker; how many were deleted (0: no bucket)."""
    try:
        found = _versions(s3, bucket)
    except ClientError as e:
        if _code(e) == "NoSuchBucket":
            return 0
        raise
    for start in range(0, len(found), BATCH):
        batch = found[start:start + BATCH]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(f"s3://{bucket}: {len(errors)} object versions could not be "
                               f"deleted (first: {first.get('Key')}: {first.get('Message')})")
    return len(found)


def delete_bucket(s3: Any, bucket: str) -> bool:
    """Empty and delete the bucket; False when it did not exist."""
    empty_bucket(s3, bucket)
    try:
        s3.delete_bucket(Bucket=bucket)
    except ClientError as e:
        if _code(e) == "NoSuchBucket":
            return False
        raise
    return True
