"""Decoding raw text lines in a dataset's declared encoding (the catalog's `source.encoding`).

Spark's text reader splits a file into lines on LF, CR LF or CR (the line ends are dropped, and
so is a UTF-8 byte order mark at the start of the file) and never decodes a line's bytes. The
jobs read them binary and decode them here, checking that they are valid text in the same step
(Spark's strings hold their bytes as they are, also across frames.materialize):

* utf-8: the bytes become text as they are; a line that is not valid UTF-8 is refused
  (`encoding_reason`): the job quarantines it instead of loading replacement characters;
* latin-1: every byte is a character (ISO-8859-1), nothing is refused;
* cp1252: Latin-1, but the bytes 0x80-0x9F are Windows-1252's characters (euro sign, curly
  quotes, dashes...); the five bytes Windows-1252 leaves undefined are refused.

Pure: columns and DataFrames in, out.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipeline_core.catalog import INPUT_ENCODINGS

_C1 = bytes(range(0x80, 0xA0))


def _cp1252_table() -> tuple[str, str, str]:
    """(Latin-1 characters, their cp1252 characters, Latin-1 characters cp1252 leaves
    undefined) for the bytes 0x80-0x9F, from Python's codecs."""
    source, target, undefined = [], [], []
    for byte in _C1:
        latin = bytes([byte]).decode("latin-1")
        try:
            target.append(bytes([byte]).decode("cp1252"))
            source.append(latin)
        except UnicodeDecodeError:
            undefined.append(latin)
    return "".join(source), "".join(target), "".join(undefined)


_CP1252_FROM, _CP1252_TO, _CP1252_UNDEFINED = _cp1252_table()
_LABELS = {"utf-8": "UTF-8", "latin-1": "Latin-1", "cp1252": "cp1252 (Windows-1252)"}


def _canonical(encoding: str) -> str:
    if encoding not in INPUT_ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    return INPUT_ENCODINGS[encoding]


def encoding_label(encoding: str) -> str:
    """How messages name an encoding: "UTF-8", "Latin-1", "cp1252 (Windows-1252)"."""
    return _LABELS[_canonical(encoding)]


def invalid_text_reason(encoding: str) -> str:
    """The quarantine reason of a line that is not valid text in `encoding`."""
    return f"line is not valid {encoding_label(encoding)} text"


def decode_lines(lines: DataFrame, encoding: str, column: str = "value") -> DataFrame:
    """`lines` with `column` (a line's bytes, binary) decoded from `encoding` into text."""
    name = _canonical(encoding)
    raw = F.col(column).cast("binary")
    if name == "utf-8":
        # Keeps the bytes as they are, valid or not: encoding_reason tells.
        return lines.withColumn(column, raw.cast("string"))
    latin = F.decode(raw, "ISO-8859-1")
    if name == "cp1252":
        latin = F.translate(latin, _CP1252_FROM, _CP1252_TO)
    return lines.withColumn(column, latin)


def encoding_reason(encoding: str, column: str = "value") -> Column | None:
    """Why a decoded line (from decode_lines) is refused, NULL when it is fine; None when no
    line can be refused in `encoding`."""
    name = _canonical(encoding)
    if name == "utf-8":
        bad = ~F.is_valid_utf8(F.col(column))
    elif name == "cp1252":
        bad = F.col(column).rlike(
            "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _CP1252_UNDEFINED) + "]")
    else:
        return None
    return F.when(bad, F.lit(invalid_text_reason(name)))


def shown_text(column: Column, limit: int) -> Column:
    """`column` as text for people (alerts, metrics): at most `limit` characters, invalid
    UTF-8 and control characters (NUL and the like; tab stays) replaced by U+FFFD."""
    clipped = F.substring(F.make_valid_utf8(column), 1, limit)
    return F.regexp_replace(clipped, r"[\x00-\x08\x0B-\x1F\x7F]", "\ufffd")
