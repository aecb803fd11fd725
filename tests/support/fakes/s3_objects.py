"""FakeS3Objects: buckets in memory, behind the two S3 ports of the run path.

- pipeline_aws.s3_objects.RawObjectsPort (S3Objects): ResolveRun's head / peek / check_csv of
  raw objects; ETags are the MD5 of the body, as S3 gives for a single-part upload, and a peek
  is pinned to the ETag its head saw.
- pipeline_aws.quality.gate.JsonReader (S3JsonReader): EvaluateQuality's read of the job's
  quality.json and metrics.json.

tests/unit/contracts/test_s3_objects_contract.py holds it to the real adapters on moto.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from pipeline_aws.quality.adapters import json_document, not_written
from pipeline_aws.quality.gate import JsonReader
from pipeline_aws.s3_objects import PEEK_BYTES, ObjectInfo, RawObjectsPort, check_csv_start
from pipeline_core.errors import ConfigurationError, InvalidInput


class FakeS3Objects:
    """`objects[(bucket, key)]` holds each object's bytes; `peeks` counts the ranged reads."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.peeks = 0

    # -- test helpers -----------------------------------------------------------------------

    def put(self, bucket: str, key: str, body: bytes | str) -> None:
        self.objects[(bucket, key)] = body.encode() if isinstance(body, str) else body

    def put_json(self, uri: str, body: Any) -> None:
        """A file as the Spark job writes it; str and bytes are stored as they are."""
        parsed = urlparse(uri)
        text = body if isinstance(body, str | bytes) else json.dumps(body)
        self.put(parsed.netloc, parsed.path.lstrip("/"), text)

    def delete(self, bucket: str, key: str) -> None:
        self.objects.pop((bucket, key), None)

    # -- RawObjectsPort ---------------------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        body = self.objects.get((bucket, key))
        if body is None:
            return None
        return ObjectInfo(bucket, key, _etag(body), len(body))

    def peek(self, obj: ObjectInfo, max_bytes: int = PEEK_BYTES) -> bytes:
        if obj.size == 0:
            return b""
        self.peeks += 1
        body = self.objects.get((obj.bucket, obj.key))
        if body is None:
            raise ConfigurationError(f"reading the first bytes of {obj.uri} failed (NoSuchKey): "
                                     "The specified key does not exist.")
        if obj.etag and _etag(body) != obj.etag:
            raise InvalidInput(
                f"{obj.uri} changed while it was being checked (ETag is no longer "
                f"{obj.etag}); the new version starts its own run"
            )
        return body[:max_bytes]

    def check_csv(self, obj: ObjectInfo, expected_header: Sequence[str]) -> None:
        check_csv_start(obj, self.peek(obj), expected_header)

    # -- JsonReader -------------------------------------------------------------------------

    def read(self, uri: str) -> Any:
        parsed = urlparse(uri)
        body = self.objects.get((parsed.netloc, parsed.path.lstrip("/")))
        if body is None:
            raise not_written(uri)
        return json_document(body, uri)


def _etag(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def _conforms(fake: FakeS3Objects) -> tuple[RawObjectsPort, JsonReader]:
    return fake, fake  # mypy: FakeS3Objects implements both ports
