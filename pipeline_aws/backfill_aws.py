"""AWS adapters of the backfill function: the raw listing, the plan store and the pipeline's
executions. Failures become domain errors (pipeline_aws.domain_error)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import aws_call, domain_error, error_code
from pipeline_core.backfill_plan import RawObject
from pipeline_core.errors import InvalidInput


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise InvalidInput(f"{uri!r} is not an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class S3RawLister:
    """The latest version of every object under a prefix, by ListObjectVersions.

    One call returns up to 1,000 versions with their VersionId, Size and IsLatest, so a year of
    days is one request; ListObjectsV2 names no version, and a HeadObject per key to learn it
    would be one request per object. A key whose latest version is a delete marker has no
    current object and is not listed. An unversioned bucket reports VersionId "null": None here.
    """

    def __init__(self, s3: Any):
        self.s3 = s3

    def list_latest(self, bucket: str, prefix: str) -> Iterator[RawObject]:
        paginator = self.s3.get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for version in page.get("Versions") or []:
                    if not version.get("IsLatest"):
                        continue
                    vid = version.get("VersionId")
                    modified = version.get("LastModified")
                    yield RawObject(version["Key"], None if vid in (None, "null") else vid,
                                    int(version.get("Size") or 0),
                                    modified.isoformat() if modified is not None else None)
        except (ClientError, BotoCoreError) as e:
            raise domain_error(e, f"ListObjectVersions s3://{bucket}/{prefix}") from e


class S3JsonStore:
    """JSON documents in S3 (the stored plan and summary)."""

    def __init__(self, s3: Any):
        self.s3 = s3

    def put_json(self, uri: str, data: Any) -> None:
        bucket, key = _split(uri)
        aws_call(f"PutObject {uri}", self.s3.put_object, Bucket=bucket, Key=key,
                 Body=json.dumps(data, default=str).encode(), ContentType="application/json")

    def get_json(self, uri: str) -> Any:
        bucket, key = _split(uri)
        body = aws_call(f"GetObject {uri}", self.s3.get_object, Bucket=bucket, Key=key)["Body"]
        return json.loads(body.read())


class SfnExecutions:
    """DescribeExecution; None for an execution that does not exist."""

    def __init__(self, sfn: Any):
        self.sfn = sfn

    def describe(self, execution_arn: str) -> dict[str, Any] | None:
        try:
            response: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
        except ClientError as e:
            if error_code(e) == "ExecutionDoesNotExist":
                return None
            raise domain_error(e, f"DescribeExecution {execution_arn}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"DescribeExecution {execution_arn}") from e
        return response
