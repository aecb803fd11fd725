"""FakeS3Objects: buckets in memory, behind the two S3 ports of the run path.

- pipeline_aws.s3_objects.RawObjectsPort (S3Objects): ResolveRun's head / peek / check_input of
  raw objects; ETags are the MD5 of the body, as S3 gives for a single-part upload, and a peek
  is pinned to the ETag its head saw. Buckets are unversioned unless `versioned(bucket)`: then
  every put keeps the older versions and gets its own version id, and head and peek take one.
- pipeline_aws.quality.gate.JsonReader (S3JsonReader): EvaluateQuality's read of the job's
  quality.json and metrics.json.

tests/unit/contracts/test_s3_objects_contract.py holds it to the real adapters on moto.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlparse

from pipeline_aws.quality.adapters import json_document, not_written
from pipeline_aws.quality.gate import JsonReader
from pipeline_aws.s3_objects import PEEK_BYTES, ObjectInfo, RawObjectsPort, check_start
from pipeline_core.catalog import Source
from pipeline_core.errors import ConfigurationError, InvalidInput


class FakeS3Objects:
    """`objects[(bucket, key)]` holds each object's current bytes, `versions` every version
    (id, bytes) of a versioned bucket's keys, oldest first; `peeks` counts the ranged reads."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.versions: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
        self.versioned_buckets: set[str] = set()
        self.peeks = 0

    # -- test helpers -----------------------------------------------------------------------

    def versioned(self, bucket: str) -> None:
        self.versioned_buckets.add(bucket)

    def put(self, bucket: str, key: str, body: bytes | str) -> str | None:
        """Store `body` as the key's current object; its version id in a versioned bucket."""
        data = body.encode() if isinstance(body, str) else body
        self.objects[(bucket, key)] = data
        if bucket not in self.versioned_buckets:
            return None
        history = self.versions.setdefault((bucket, key), [])
        version_id = f"v{len(history) + 1}.{_etag(data)[:8]}"
        history.append((version_id, data))
        return version_id

    def _body(self, bucket: str, key: str, version_id: str | None) -> bytes | None:
        if version_id is None:
            return self.objects.get((bucket, key))
        if bucket not in self.versioned_buckets and version_id == "null":
            return self.objects.get((bucket, key))
        return dict(self.versions.get((bucket, key), [])).get(version_id)

    def _current_version(self, bucket: str, key: str) -> str | None:
        history = self.versions.get((bucket, key))
        return history[-1][0] if history else None

    def put_json(self, uri: str, body: Any) -> None:
        """A file as the Spark job writes it; str and bytes are stored as they are."""
        parsed = urlparse(uri)
        text = body if isinstance(body, str | bytes) else json.dumps(body)
        self.put(parsed.netloc, parsed.path.lstrip("/"), text)

    def delete(self, bucket: str, key: str) -> None:
        self.objects.pop((bucket, key), None)

    # -- RawObjectsPort ---------------------------------------------------------------------

    def write(self, bucket: str, key: str, body: bytes) -> ObjectInfo:
        self.put(bucket, key, body)
        return ObjectInfo(bucket, key, _etag(body), len(body))

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        body = self._body(bucket, key, version_id)
        if body is None:
            return None
        return ObjectInfo(bucket, key, _etag(body), len(body),
                          version_id or self._current_version(bucket, key))

    def peek(self, obj: ObjectInfo, max_bytes: int = PEEK_BYTES) -> bytes:
        if obj.size == 0:
            return b""
        self.peeks += 1
        body = self._body(obj.bucket, obj.key, obj.version_id)
        if body is None:
            raise ConfigurationError(f"reading the first bytes of {obj.uri} failed (NoSuchKey): "
                                     "The specified key does not exist.")
        if obj.etag and _etag(body) != obj.etag:
            raise InvalidInput(
                f"{obj.uri} changed while it was being checked (ETag is no longer "
                f"{obj.etag}); the new version starts its own run"
            )
        return body[:max_bytes]

    def check_input(self, obj: ObjectInfo, source: Source) -> None:
        check_start(obj, self.peek(obj), source)

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
