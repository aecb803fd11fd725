"""The one header check of a raw CSV file, shared by ResolveRun (before compute is paid for) and
the Spark job (before it reads), so both accept and refuse exactly the same files.

The rule: the first line, decoded in the dataset's encoding, with a UTF-8 byte order mark
removed (only where the encoding is UTF-8) and its line ending (LF or CRLF) dropped, parsed as
one RFC 4180 record separated by the catalog's delimiter (`source.delimiter`, a comma unless
it says otherwise; quoted names are unquoted), must give the catalog's column names in the
catalog's order. Spaces around a name are ignored (the job trims every field the same way);
letter case is not (a different spelling is a different column).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence

from pipeline_core.errors import InvalidInput

UTF8_BOM = b"\xef\xbb\xbf"
DELIMITER = ","  # the default; pipeline_core.catalog.DELIMITERS lists the ones a file may use
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# How messages name the catalog's encodings (pipeline_core.catalog.INPUT_ENCODINGS).
_LABELS = {"utf-8": "UTF-8", "latin-1": "Latin-1", "cp1252": "cp1252 (Windows-1252)"}


def _label(encoding: str) -> str:
    return _LABELS.get(encoding, encoding)


def first_line_bytes(data: bytes, *, complete: bool, where: str) -> bytes:
    """The first line of `data` (the start of a file), without its LF or CRLF; `complete` says
    whether `data` is the whole file (a truncated prefix without a line break is refused)."""
    end = data.find(b"\n")
    if end < 0:
        if not complete:
            raise InvalidInput(f"{where}: no line break in the first {len(data)} bytes: not a "
                               "CSV file with a header line")
        end = len(data)
    line = data[:end].rstrip(b"\r")
    if b"\r" in line:
        raise InvalidInput(f"{where}: the first line holds a carriage return (CR) that does not "
                           "end it: the file's line endings look like CR only (classic Mac OS); "
                           "only LF and CRLF line endings are read")
    return line


def decode_header(line: bytes, encoding: str, where: str, what: str = "the header line"
                  ) -> str:
    """The header line (or `what` other first line) as text; a UTF-8 byte order mark is
    accepted only for UTF-8."""
    if line.startswith(UTF8_BOM):
        if encoding.replace("_", "-").lower() not in ("utf-8", "utf8"):
            raise InvalidInput(f"{where} starts with a UTF-8 byte order mark, but the dataset "
                               f"declares the encoding {_label(encoding)}")
        line = line[len(UTF8_BOM):]
    try:
        return line.decode(encoding)
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: {what} is not {_label(encoding)} text") from None


def header_fields(text: str, delimiter: str = DELIMITER) -> list[str]:
    """The column names of a decoded header line (one CSV record, names stripped)."""
    try:
        row = next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error as e:
        raise InvalidInput(f"the header line is not one CSV record: {e}") from None
    return [name.strip() for name in row]


def header_difference(found: Sequence[str], expected: Sequence[str],
                      delimiter: str = DELIMITER) -> str | None:
    """None when `found` is the catalog's header, else what differs, for a person to read:
    the first column that differs (or the column counts), what is missing and unexpected, a
    letter-case or delimiter hint, then both headers."""
    found, expected = list(found), list(expected)
    if found == expected:
        return None
    detail = [_first_difference(found, expected)]
    missing = [c for c in expected if c not in found]
    extra = [c[:100] for c in found if c not in expected]
    if missing:
        detail.append(f"missing {missing}")
    if extra:
        detail.append(f"unexpected {extra}")
    if not missing and not extra:
        detail.append("same columns in a different order")
    lower = {c.lower() for c in missing}
    if any(c.lower() in lower for c in extra):
        detail.append("names differ in letter case only")
    if len(found) == 1 and len(expected) > 1:
        mine = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
        detail.extend(f"the line looks {name}-separated, the catalog's file is {mine}-separated"
                      for sep, name in _DELIMITER_NAMES.items()
                      if sep != delimiter and sep in found[0])
    return (f"{'; '.join(detail)}: expected {expected}, found "
            f"{[c[:100] for c in found[:50]]}")


def _first_difference(found: list[str], expected: list[str]) -> str:
    for i, (got, want) in enumerate(zip(found, expected, strict=False), start=1):
        if got != want:
            return f"column {i} is {got[:100]!r}, expected {want!r}"
    return f"{len(found)} columns, expected {len(expected)}"


def check_header(data: bytes, expected: Sequence[str], *, encoding: str = "utf-8",
                 complete: bool = True, where: str = "input",
                 delimiter: str = DELIMITER) -> list[str]:
    """The header's column names, or InvalidInput naming what differs from `expected`.

    `data` is the start of the (decompressed) file; `complete` whether it is all of it.
    """
    text = decode_header(first_line_bytes(data, complete=complete, where=where), encoding,
                         where)
    found = header_fields(text, delimiter)
    problem = header_difference(found, expected, delimiter)
    if problem is not None:
        raise InvalidInput(f"{where}: header does not match the catalog ({problem})")
    return found
