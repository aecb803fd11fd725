"""Cheap checks on raw objects before a job is paid for: exists, not empty, gzip, and what the
dataset's format promises at the start of a file (csv: the catalog's header; jsonl: a JSON
object on the first non-blank line; text: some text).

Reads at most the first 64 KiB of an object with one ranged GET and never writes, moves or
deletes anything: input objects are kept exactly as delivered.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import domain_error, error_code
from pipeline_core import csv_header
from pipeline_core.catalog import Source
from pipeline_core.errors import InvalidInput

PEEK_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
_BAD_VERSION = frozenset({"400", "InvalidArgument", "BadRequest"})


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    etag: str  # without the quotes S3 puts around it
    size: int
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def first_line(data: bytes, *, gz: bool, complete: bool, where: str,
               encoding: str = "utf-8") -> str:
    """The header line of (possibly truncated) csv or csv.gz bytes, decoded as
    pipeline_core.csv_header does (BOM and CR removed).

    `complete` says whether `data` is the whole object; without a newline in a truncated
    prefix the header is longer than we are willing to read.
    """
    return csv_header.decode_header(
        csv_header.first_line_bytes(_text_start(data, gz=gz, where=where), complete=complete,
                                    where=where),
        encoding, where)


def _text_start(data: bytes, *, gz: bool, where: str) -> bytes:
    if not gz:
        return data
    try:
        return zlib.decompressobj(wbits=31).decompress(data, PEEK_BYTES * 16)
    except zlib.error as e:
        raise InvalidInput(f"{where}: gzip data is corrupt: {e}") from e


def check_csv_start(obj: ObjectInfo, data: bytes, expected_header: Sequence[str],
                    encoding: str = "utf-8", delimiter: str = csv_header.DELIMITER) -> None:
    """Refuse an empty object, a `.gz` that is not gzip (or gzip without `.gz`), or a header
    that differs from the catalog's (pipeline_core.csv_header, the rule the Spark job applies
    too), from the object's first bytes (`peek`); the message names expected vs found."""
    csv_header.check_header(_checked_text(obj, data), expected_header, encoding=encoding,
                            complete=obj.size <= len(data), where=obj.uri,
                            delimiter=delimiter)


def check_start(obj: ObjectInfo, data: bytes, source: Source) -> None:
    """The check of the object's first bytes (`peek`) its dataset's format calls for, or
    InvalidInput saying what is wrong (every format: empty, gzip vs `.gz`)."""
    if source.format == "csv":
        check_csv_start(obj, data, source.header, source.encoding, source.delimiter)
    elif source.format == "jsonl":
        _check_jsonl_start(obj, _checked_text(obj, data), source.encoding,
                           complete=obj.size <= len(data))
    elif not _checked_text(obj, data):
        raise InvalidInput(f"{obj.uri} holds no text (gzip of 0 bytes)")


def _checked_text(obj: ObjectInfo, data: bytes) -> bytes:
    """The start of the object's text: refuses an empty object and gzip vs name mismatches."""
    if obj.size == 0:
        raise InvalidInput(f"{obj.uri} is empty (0 bytes)")
    gz_key = obj.key.endswith(".gz")
    if gz_key and not is_gzip(data):
        raise InvalidInput(f"{obj.uri} ends with .gz but is not gzip data")
    if not gz_key and is_gzip(data):
        raise InvalidInput(f"{obj.uri} is gzip data but its key does not end with .gz")
    return _text_start(data, gz=gz_key, where=obj.uri)


def _check_jsonl_start(obj: ObjectInfo, text: bytes, encoding: str, *, complete: bool) -> None:
    """The first non-blank line must be one JSON object (a line longer than the bytes read
    must at least open one)."""
    if text.startswith(csv_header.UTF8_BOM) and encoding == "utf-8":
        text = text[len(csv_header.UTF8_BOM):]
    lines = text.split(b"\n")
    whole = lines if complete else lines[:-1]
    first = next((line for line in whole if line.strip()), None)
    if first is None:
        if complete:
            raise InvalidInput(f"{obj.uri} holds only blank lines: no JSON object")
        if not text.strip():
            raise InvalidInput(f"{obj.uri}: the first {len(text)} bytes are blank lines")
        if not lines[-1].lstrip().startswith(b"{"):
            raise InvalidInput(f"{obj.uri}: the first line does not start a JSON object")
        return
    where = f"{obj.uri}: the first non-blank line"
    try:
        value = json.loads(csv_header.decode_header(first.rstrip(b"\r"), encoding, obj.uri,
                                                    "the first non-blank line"))
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{where} is not JSON ({e}): expected one JSON object a line "
                           f"(JSON Lines), found {first[:100]!r}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} is a JSON {type(value).__name__}, not an object: each "
                           "line of a JSON Lines file is one object")


class RawObjectsPort(Protocol):
    """What ResolveRun needs from S3 (S3Objects; FakeS3Objects in the tests)."""

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """Metadata of the object (of that version when `version_id` is given, else the
        current one), or None when it (or that version) does not exist."""
        ...

    def peek(self, obj: ObjectInfo, max_bytes: int = PEEK_BYTES) -> bytes:
        """The object's first bytes, of `obj.version_id` when set, as of `obj.etag`
        (InvalidInput if it changed since)."""
        ...

    def check_input(self, obj: ObjectInfo, source: Source) -> None:
        """InvalidInput unless the object's start is what its dataset's source promises
        (`check_start`)."""
        ...

    def write(self, bucket: str, key: str, body: bytes) -> ObjectInfo:
        """Store a run file ResolveRun owns (a derived run's inputs.json) and return it with
        the ETag S3 gave it. No version id: the file's bytes are a function of its key (the
        run id), so every write of it is the same content and the job checks its ETag."""
        ...


class S3Objects:
    """Reads object metadata and first bytes with an S3 client (a RawObjectsPort)."""

    def __init__(self, s3_client: Any):
        self._s3 = s3_client

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """Metadata of the object (HeadObject, with VersionId when given), or None when it
        does not exist."""
        kwargs = {"Bucket": bucket, "Key": key}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            response = self._s3.head_object(**kwargs)
        except ClientError as e:
            if error_code(e) in _NOT_FOUND:
                return None
            if version_id is not None and error_code(e) in _BAD_VERSION:
                # S3 answers 400 for a version id it could never have issued.
                return None
            raise domain_error(e, f"reading s3://{bucket}/{key}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"reading s3://{bucket}/{key}") from e
        return ObjectInfo(
            bucket=bucket,
            key=key,
            etag=str(response.get("ETag", "")).strip('"'),
            size=int(response.get("ContentLength", 0)),
            version_id=response.get("VersionId"),
        )

    def peek(self, obj: ObjectInfo, max_bytes: int = PEEK_BYTES) -> bytes:
        """The first bytes of the object (one ranged GET, pinned to the ETag we checked)."""
        if obj.size == 0:
            return b""
        kwargs: dict[str, Any] = {
            "Bucket": obj.bucket, "Key": obj.key, "Range": f"bytes=0-{max_bytes - 1}",
        }
        if obj.version_id is not None:
            kwargs["VersionId"] = obj.version_id
        if obj.etag:
            kwargs["IfMatch"] = f'"{obj.etag}"'
        try:
            body = self._s3.get_object(**kwargs)["Body"]
            try:
                return bytes(body.read(max_bytes))
            finally:
                body.close()
        except ClientError as e:
            if error_code(e) in ("PreconditionFailed", "412"):
                raise InvalidInput(
                    f"{obj.uri} changed while it was being checked (ETag is no longer "
                    f"{obj.etag}); the new version starts its own run"
                ) from e
            raise domain_error(e, f"reading the first bytes of {obj.uri}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"reading the first bytes of {obj.uri}") from e

    def check_input(self, obj: ObjectInfo, source: Source) -> None:
        """See `check_start`; reads at most PEEK_BYTES."""
        check_start(obj, self.peek(obj), source)

    def write(self, bucket: str, key: str, body: bytes) -> ObjectInfo:
        """PutObject of a run file (RawObjectsPort.write)."""
        try:
            response = self._s3.put_object(Bucket=bucket, Key=key, Body=body,
                                           ContentType="application/json")
        except (ClientError, BotoCoreError) as e:
            raise domain_error(e, f"writing s3://{bucket}/{key}") from e
        return ObjectInfo(bucket=bucket, key=key,
                          etag=str(response.get("ETag", "")).strip('"'), size=len(body))
