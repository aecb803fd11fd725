"""Small driver-side I/O through Hadoop's FileSystem, so one code path serves `s3://` on EMR
(EMRFS) and local paths on a laptop.

Only single, named objects are touched (stat, read a prefix, read or write one file): nothing
here lists a bucket or a prefix. Bulk data goes through Spark readers and writers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from py4j.java_gateway import JavaObject
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from pipeline_core.errors import InvalidInput
from spark_jobs.common.spark_internals import hadoop_configuration, jvm

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def to_uri(location: str) -> str:
    """A URI Spark and Hadoop agree on: URIs stay, bare paths become absolute `file://` URIs
    (on EMR every location is an s3:// URI; a bare path only ever means the local disk)."""
    if _SCHEME.match(location):
        return location
    absolute = os.path.abspath(location)
    return "file://" + absolute + ("/" if location.endswith("/") and absolute != "/" else "")


def java_exception_of(error: Exception) -> JavaObject | None:
    """The Java exception behind a Py4JJavaError, or behind the exception PySpark converted one
    into (kept as its `_origin`)."""
    if isinstance(error, Py4JJavaError):
        return error.java_exception
    return getattr(error, "_origin", None)


def java_error_message(error: Exception) -> str:
    """The Java exception's own one-line message (class and text), without the stack."""
    try:
        cause = java_exception_of(error)
        if cause is None:
            return _first_line(error)
        while cause.getCause() is not None and cause.getCause() is not cause:
            cause = cause.getCause()
        return f"{cause.getClass().getSimpleName()}: {cause.getMessage()}"
    except Exception:  # a broken gateway: fall back to the Python-side text
        return _first_line(error)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# Where an error about an object's own bytes is thrown from: a truncated or corrupt compressed
# stream. Reading text accepts any bytes, so nothing else says the input itself is bad: an error
# of the storage (access, throttling, network) is the run's, which a retry may mend, and never a
# reason to refuse the object.
_DECODING_CLASSES = ("java.util.zip.", "org.apache.hadoop.io.compress.")


def is_decoding_error(error: Exception) -> bool:
    """Whether a read failed on the object's bytes: an EOFException or ZipException, or any
    IOException thrown by a decompressor, anywhere in the Java exception's cause chain (of a
    Py4JJavaError, or of the Java exception PySpark converted into one of its own)."""
    try:
        cause = java_exception_of(error)
        seen = 0
        while cause is not None and seen < 20:
            names = _class_names(cause)
            if {"java.io.EOFException", "java.util.zip.ZipException"} & names:
                return True
            if "java.io.IOException" in names and any(
                    str(frame.getClassName()).startswith(_DECODING_CLASSES)
                    for frame in cause.getStackTrace()):
                return True
            nxt = cause.getCause()
            cause, seen = (None if nxt is None or nxt.equals(cause) else nxt), seen + 1
    except Exception:  # a broken gateway says nothing about the input
        return False
    return False


def _class_names(java_object: Any) -> set[str]:
    """The Java class of an object and all its superclasses, by name."""
    names = set()
    cls = java_object.getClass()
    while cls is not None:
        names.add(str(cls.getName()))
        cls = cls.getSuperclass()
    return names


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int


class Storage:
    """Stat, read and write single objects through the session's Hadoop configuration."""

    def __init__(self, spark: SparkSession):
        self._classes = jvm(spark)
        self._conf = hadoop_configuration(spark)

    def _fs_path(self, uri: str) -> tuple[JavaObject, JavaObject]:
        """The Hadoop FileSystem holding `uri`, and its Path."""
        path = self._classes.org.apache.hadoop.fs.Path(to_uri(uri))
        try:
            return path.getFileSystem(self._conf), path
        except Py4JJavaError as e:
            raise InvalidInput(f"cannot access {uri}: {java_error_message(e)}") from e

    def stat(self, uri: str) -> ObjectInfo:
        """Size of one object; InvalidInput if it is missing or a directory."""
        fs, path = self._fs_path(uri)
        try:
            status = fs.getFileStatus(path)
        except Py4JJavaError as e:
            message = java_error_message(e)
            if "FileNotFoundException" in message:
                raise InvalidInput(f"input {uri} does not exist") from e
            raise OSError(f"cannot read {uri}: {message}") from e
        if status.isDirectory():
            raise InvalidInput(f"input {uri} is a directory, not one object")
        return ObjectInfo(to_uri(uri), int(status.getLen()))

    def exists(self, uri: str) -> bool:
        """Whether anything (an object or a folder's objects) is at `uri`."""
        fs, path = self._fs_path(uri)
        try:
            return bool(fs.exists(path))
        except Py4JJavaError as e:
            raise OSError(f"cannot look at {uri}: {java_error_message(e)}") from e

    def read_head(self, uri: str, size: int, decompress: bool = False) -> bytes:
        """Up to `size` bytes from the start of an object (decompressed by Hadoop's codec for
        its extension when `decompress`)."""
        fs, path = self._fs_path(uri)
        stream = None
        try:
            stream = fs.open(path)
            if decompress:
                codecs = self._classes.org.apache.hadoop.io.compress.CompressionCodecFactory(
                    self._conf)
                codec = codecs.getCodec(path)
                if codec is not None:
                    stream = codec.createInputStream(stream)
            return bytes(stream.readNBytes(size))
        except Py4JJavaError as e:
            if is_decoding_error(e):
                raise InvalidInput(f"cannot read {uri}: {java_error_message(e)}") from e
            raise OSError(f"cannot read {uri}: {java_error_message(e)}") from e
        finally:
            if stream is not None:
                stream.close()

    def read_text(self, uri: str, limit: int = 1 << 20) -> str:
        """A whole small text file (rules files); refuses anything over `limit` bytes."""
        info = self.stat(uri)
        if info.size > limit:
            raise InvalidInput(f"{uri} is {info.size} bytes; expected a small text file")
        data = self.read_head(uri, info.size)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInput(f"{uri} is not UTF-8 text: {e}") from e

    def write_text(self, uri: str, text: str) -> None:
        """Create or replace one object with `text` (UTF-8)."""
        fs, path = self._fs_path(uri)
        if fs.getUri().getScheme() == "file":
            # The raw local file system: no ".metrics.json.crc" side files on a laptop.
            fs = fs.getRawFileSystem()
        try:
            out = fs.create(path, True)
            try:
                out.write(bytearray(text.encode("utf-8")))
            finally:
                out.close()
        except Py4JJavaError as e:
            raise OSError(f"cannot write {uri}: {java_error_message(e)}") from e


# ---------------------------------------------------------------------------------------------
# The object version a run is for


_S3_URI = re.compile(r"^s3[an]?://(?P<bucket>[^/]+)/(?P<key>.+)\Z")


@dataclass(frozen=True)
class ObjectVersion:
    """An object's identity as S3 gives it: ETag (without quotes) and version id (None in an
    unversioned bucket)."""

    etag: str
    version_id: str | None = None

    def describe(self) -> str:
        version = f"version {self.version_id}" if self.version_id else "no version id"
        return f"{version}, ETag {self.etag}"


def s3_location(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3://, s3a:// or s3n:// URI; InvalidInput otherwise."""
    match = _S3_URI.match(uri)
    if not match:
        raise InvalidInput(f"{uri} is not an s3:// object: its version cannot be checked")
    return match.group("bucket"), match.group("key")


def head_s3_object(uri: str) -> ObjectVersion | None:
    """The current ETag and version id of an S3 object (HeadObject), None if it is gone.

    Spark's S3 file systems (EMRFS, S3A) read the current object and cannot read a version
    by id, so the job compares the current one with the version it is for. boto3 is on EMR;
    the local runtime points it at its S3 stand-in (AWS_ENDPOINT_URL_S3)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = s3_location(uri)
    try:
        response = boto3.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return None
        raise InvalidInput(f"cannot check the version of {uri}: {code or e}") from e
    except BotoCoreError as e:
        raise InvalidInput(f"cannot check the version of {uri}: {e}") from e
    return ObjectVersion(str(response.get("ETag", "")).strip('"'), response.get("VersionId"))


def verify_input_version(uri: str, expected: ObjectVersion,
                         head: Callable[[str], ObjectVersion | None] = head_s3_object) -> None:
    """InvalidInput naming the key, the expected and the found version and ETag unless the
    object at `uri` is still the version the run is for."""
    found = head(uri)
    if found is None:
        raise InvalidInput(f"input {uri} no longer exists: the run is for {expected.describe()}")
    same_version = expected.version_id is None or found.version_id == expected.version_id
    if same_version and found.etag == expected.etag:
        return
    raise InvalidInput(
        f"input {uri} changed since the event: expected {expected.describe()}, found "
        f"{found.describe()}; this run is for the older upload, the newer one has its own run")
