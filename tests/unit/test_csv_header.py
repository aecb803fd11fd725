"""pipeline_core.csv_header: the one header rule ResolveRun and the Spark job both apply
(tests/spark holds the job to it, tests/unit/contracts the S3 adapter)."""

from __future__ import annotations

import pytest

from pipeline_core.csv_header import check_header, header_difference
from pipeline_core.errors import InvalidInput

EXPECTED = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
            "CustomerID", "Country"]
LINE = ",".join(EXPECTED).encode()
ROW = b"\n536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,1,UK\n"


@pytest.mark.parametrize(("data", "encoding"), [
    (LINE + ROW, "utf-8"),
    (LINE, "utf-8"),  # a header-only file (the job refuses it for having no data lines)
    (b"\xef\xbb\xbf" + LINE + ROW, "utf-8"),
    (LINE + b"\r" + ROW, "utf-8"),
    (b"\xef\xbb\xbf" + LINE + b"\r" + ROW.replace(b"\n", b"\r\n"), "utf-8"),
    (b" InvoiceNo , StockCode,Description ,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\t"
     + ROW, "utf-8"),
    (b'"InvoiceNo","StockCode","Description","Quantity","InvoiceDate","UnitPrice",'
     b'"CustomerID","Country"' + ROW, "utf-8"),
    (LINE + ROW, "latin-1"),
    (LINE + ROW, "cp1252"),
], ids=["plain", "no-newline", "bom", "crlf", "bom-crlf", "spaces", "quoted", "latin-1",
        "cp1252"])
def test_accepted(data: bytes, encoding: str) -> None:
    assert check_header(data, EXPECTED, encoding=encoding) == EXPECTED


@pytest.mark.parametrize(("data", "fragments"), [
    (LINE.lower() + ROW, ["column 1 is 'invoiceno', expected 'InvoiceNo'",
                          "names differ in letter case only"]),
    (LINE.replace(b",Country", b"") + ROW, ["7 columns, expected 8", "missing ['Country']"]),
    (LINE + b",Extra" + ROW, ["9 columns, expected 8", "unexpected ['Extra']"]),
    (LINE.replace(b"Description", b"Desc") + ROW,
     ["column 3 is 'Desc', expected 'Description'", "missing ['Description']",
      "unexpected ['Desc']"]),
    (LINE.replace(b"StockCode,Description", b"Description,StockCode") + ROW,
     ["column 2 is 'Description', expected 'StockCode'", "same columns in a different order"]),
    (LINE.replace(b",", b";") + ROW, ["semicolon-separated"]),
    (LINE.replace(b",", b"\t") + ROW, ["tab-separated"]),
    (LINE.replace(b",", b"|") + ROW, ["pipe-separated"]),
    (b"\n" + LINE + ROW, ["0 columns, expected 8"]),
], ids=["case", "missing", "extra", "renamed", "order", "semicolon", "tab", "pipe",
        "blank-first-line"])
def test_refused_with_what_differs(data: bytes, fragments: list[str]) -> None:
    with pytest.raises(InvalidInput) as err:
        check_header(data, EXPECTED, where="s3://raw/k.csv")
    message = str(err.value)
    assert message.startswith("s3://raw/k.csv: header does not match the catalog (")
    assert f"expected {EXPECTED}" in message and "found [" in message
    for fragment in fragments:
        assert fragment in message


def test_a_bom_is_refused_when_the_encoding_is_not_utf8() -> None:
    with pytest.raises(InvalidInput, match="starts with a UTF-8 byte order mark, but the "
                                           "dataset declares the encoding Latin-1"):
        check_header(b"\xef\xbb\xbf" + LINE + ROW, EXPECTED, encoding="latin-1", where="in")


def test_a_header_that_is_not_text_in_the_encoding() -> None:
    with pytest.raises(InvalidInput, match="in: the header line is not UTF-8 text"):
        check_header("InvoiceNo\xe9".encode("latin-1") + b",x\n", EXPECTED, where="in")
    # the same bytes are Latin-1 text, just the wrong header
    with pytest.raises(InvalidInput, match="header does not match"):
        check_header("InvoiceNo\xe9".encode("latin-1") + b",x\n", EXPECTED, encoding="latin-1")


def test_a_truncated_start_without_a_line_break_is_refused_only_when_truncated() -> None:
    with pytest.raises(InvalidInput, match="no line break in the first 8 bytes"):
        check_header(b"a,b,c,d,", ["a"], complete=False, where="in")
    assert check_header(b"a,b", ["a", "b"], complete=True) == ["a", "b"]


def test_header_difference_is_none_only_for_the_same_header() -> None:
    assert header_difference(EXPECTED, EXPECTED) is None
    assert header_difference(EXPECTED[:-1], EXPECTED) is not None
    assert header_difference([], EXPECTED) is not None


BERKA = ["account_id", "district_id", "frequency", "date"]


@pytest.mark.parametrize("data", [
    b'"account_id";"district_id";"frequency";"date"\r\n576;55;"POPLATEK MESICNE";930101\r\n',
    b"account_id;district_id;frequency;date\n",
    b'"account_id" ; district_id;"frequency";date\n',
], ids=["quoted-crlf", "bare", "mixed"])
def test_a_declared_delimiter_separates_the_names(data: bytes) -> None:
    """The Berka reference files are `;`-separated with quoted names (source.delimiter)."""
    assert check_header(data, BERKA, delimiter=";") == BERKA


def test_a_file_with_another_delimiter_than_declared_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidInput, match="the line looks comma-separated, the catalog's "
                                           "file is semicolon-separated"):
        check_header(b"account_id,district_id,frequency,date\n", BERKA, delimiter=";")
    # and the comma default is unchanged: a `;` file is refused with the opposite hint
    with pytest.raises(InvalidInput, match="the line looks semicolon-separated, the "
                                           "catalog's file is comma-separated"):
        check_header(b"account_id;district_id;frequency;date\n", BERKA)
    assert header_difference(["account_id;district_id;frequency;date"], BERKA, ";") is not None
