"""The online_retail job writes only what its load can take: lines of another day, values the
warehouse tables refuse and text that is not valid in the declared encoding are quarantined line
by line (the rest of the day loads), and metrics.json shows samples of them."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spark_helpers import SAMPLES, data_lines

pytestmark = pytest.mark.spark

DAY = SAMPLES / "2010-12-01.csv"
# The sample day: 3108 data lines, 44 exact duplicates, 3064 distinct lines, all loadable.
LINES, DUPLICATES, WRITTEN = 3108, 44, 3064


def _line(invoice: str, description: str, *, ts: str = "2010-12-01 10:00:00",
          customer: str = "17850.0", quantity: str = "6", price: str = "1.85",
          stock: str = "22633") -> str:
    return f"{invoice},{stock},{description},{quantity},{ts},{price},{customer},United Kingdom"


def _write(path: Path, extra: list[str], *, encoding: str = "utf-8", newline: str = "\n",
           prefix: bytes = b"") -> Path:
    """The sample day plus `extra` lines at its end, in `encoding`."""
    header, lines = data_lines(DAY)
    body = newline.join([header, *lines, *extra]) + newline
    path.write_bytes(prefix + body.encode(encoding))
    return path


def _table(directory: Path) -> pa.Table:
    files = sorted(directory.glob("part-*.zstd.parquet"))
    assert files, f"no parquet part files in {directory}"
    return pa.concat_tables([pq.read_table(f) for f in files])


def _quarantined(run) -> dict[int, str]:
    return {r["_source_line"]: r["_reason"] for r in _table(run.out / "quarantine").to_pylist()}


def _check_counts(m: dict, quarantined: int) -> None:
    assert (m["duplicates"], m["lines_quarantined"]) == (DUPLICATES, quarantined)
    assert m["lines_read"] == m["lines_written"] + m["lines_quarantined"] + m["duplicates"]
    assert sum(m["quarantine_reasons"].values()) == quarantined


# ---------------------------------------------------------------------------------------------
# Lines of another partition


def test_lines_of_another_day_are_quarantined_and_never_replace_it(run_job, tmp_path):
    extra = [_line("536990", "HAND WARMER", ts="2010-12-02 00:00:00"),
             _line("536991", "HAND WARMER", ts="2010-11-30 23:59:59"),
             _line("536992", "HAND WARMER", ts="2010-12-01 23:59:59")]
    run = run_job(_write(tmp_path / "2010-12-01.csv", extra), "2010-12-01")
    assert run.code == 0, run.stderr
    m = run.metrics
    _check_counts(m, 2)
    assert m["lines_written"] == WRITTEN + 1
    assert m["quarantine_reasons"] == {
        "order_date 2010-11-30 is not the run's partition 2010-12-01": 1,
        "order_date 2010-12-02 is not the run's partition 2010-12-01": 1}
    first = LINES + 2  # line 1 is the header
    assert _quarantined(run) == {
        first: "order_date 2010-12-02 is not the run's partition 2010-12-01",
        first + 1: "order_date 2010-11-30 is not the run's partition 2010-12-01"}
    # The load replaces the days its rows carry: only the run's own.
    for table in ("sales_line_items", "customer_daily_sales"):
        days = {d.isoformat() for d in _table(run.out / table).column("order_date").to_pylist()}
        assert days == {"2010-12-01"}, table
    assert m["quarantine_samples"] == [
        {"reason": "order_date 2010-12-02 is not the run's partition 2010-12-01",
         "line": first, "text": extra[0]},
        {"reason": "order_date 2010-11-30 is not the run's partition 2010-12-01",
         "line": first + 1, "text": extra[1]}]


# ---------------------------------------------------------------------------------------------
# Values the tables refuse


REFUSED = [
    (_line("536993", "X" * 300), "description is 300 bytes, over varchar(256)"),
    # 150 characters, 300 bytes: Redshift counts bytes.
    (_line("536994", "É" * 150), "description is 300 bytes, over varchar(256)"),
    (_line("536995", "NUL\x00INSIDE"),
     "description contains a NUL character, which varchar(256) cannot hold"),
    (_line("536996", "LONG ID", customer="12345678901234567890.0"),
     "customer_id is 20 bytes, over varchar(16)"),
    # 1999999999998.00 in one customer's day: over customer_daily_sales.revenue decimal(14,2).
    (_line("536997", "BIG", quantity="2000", price="999999999.999", customer="99999.0"),
     "customer_daily_sales.revenue 1999999999998.00 is out of range for decimal(14,2)"),
    # 65 characters of 4 bytes each.
    (_line("536998", "\N{CHRISTMAS TREE}" * 65), "description is 260 bytes, over varchar(256)"),
]
# 128 characters, 256 bytes: fits.
FITS = _line("536999", "É" * 128)


def test_values_the_tables_refuse_are_quarantined_line_by_line(run_job, tmp_path):
    run = run_job(_write(tmp_path / "limits.csv", [line for line, _ in REFUSED] + [FITS]),
                  "2010-12-01")
    assert run.code == 0, run.stderr
    m = run.metrics
    _check_counts(m, len(REFUSED))
    assert m["lines_written"] == WRITTEN + 1
    assert m["quarantine_reasons"] == {
        "customer_daily_sales.revenue 1999999999998.00 is out of range for decimal(14,2)": 1,
        "customer_id is 20 bytes, over varchar(16)": 1,
        "description contains a NUL character, which varchar(256) cannot hold": 1,
        "description is 260 bytes, over varchar(256)": 1,
        "description is 300 bytes, over varchar(256)": 2}
    assert _quarantined(run) == {LINES + 2 + i: reason for i, (_, reason) in enumerate(REFUSED)}
    assert run.failed_errors == []  # the rules pass: nothing blocks the rest of the day

    items = _table(run.out / "sales_line_items")
    limits = {"invoice_no": 20, "stock_code": 32, "description": 256, "customer_id": 16,
              "country": 64}
    for column, limit in limits.items():
        values = [v for v in items.column(column).to_pylist() if v is not None]
        assert max(len(v.encode()) for v in values) <= limit, column
        assert not any("\x00" in v for v in values), column
    assert "É" * 128 in items.column("description").to_pylist()
    daily = _table(run.out / "customer_daily_sales").to_pylist()
    assert "99999" not in {r["customer_id"] for r in daily}
    _check_samples(run.metrics["quarantine_samples"])


def test_the_quarantine_holds_each_refused_lines_fields_as_written(run_job, tmp_path):
    """parse() keeps no raw field (the queries read less): the quarantine splits its lines
    again from their text. Each row's fields are then the line's CSV fields, quoting and all,
    also for a line refused with its group (its totals) after the lines were judged."""
    quoted = _line("536992", '"PICTURE FRAME 7"", WHITE' + "X" * 280 + '"')
    refused = [quoted, *(line for line, _ in REFUSED)]
    run = run_job(_write(tmp_path / "fields.csv", refused), "2010-12-01")
    assert run.code == 0, run.stderr
    header, _ = data_lines(DAY)
    names = header.split(",")
    rows = {r["_source_line"]: r for r in _table(run.out / "quarantine").to_pylist()}
    assert sorted(rows) == [LINES + 2 + i for i in range(len(refused))]
    for i, line in enumerate(refused):
        [fields] = csv.reader([line])
        row = rows[LINES + 2 + i]
        assert [row[n] for n in names] == [f or None for f in fields], line[:60]
    assert rows[LINES + 2]["Description"].startswith('PICTURE FRAME 7", WHITEXX')
    assert rows[LINES + 2 + 5]["_reason"].startswith("customer_daily_sales.revenue")


def _check_samples(samples: list[dict]) -> None:
    """The first five quarantined lines (by line number), clipped, shown without NUL."""
    assert [s["line"] for s in samples] == [LINES + 2 + i for i in range(5)]
    assert [s["reason"] for s in samples] == [reason for _, reason in REFUSED[:5]]
    lines = [line for line, _ in REFUSED[:5]]
    assert samples[0]["text"] == lines[0][:200] and len(samples[0]["text"]) == 200
    assert samples[1]["text"] == lines[1][:200]
    assert samples[2]["text"] == lines[2].replace("\x00", "\ufffd")
    assert samples[3]["text"] == lines[3]
    assert samples[4]["text"] == lines[4]




# ---------------------------------------------------------------------------------------------
# Encodings


# Characters cp1252 has and Latin-1 has not (bytes 0x80-0x9F).
WINDOWS = ("\N{LEFT DOUBLE QUOTATION MARK}EURO\N{RIGHT DOUBLE QUOTATION MARK} \N{EURO SIGN} "
           "SIGN \N{EN DASH} DASH")
ACCENTED = [_line("537001", "CAFÉ CRÈME BOWL"), _line("537002", "PÂTÉ DISH"),
            _line("537003", "NAÏVE ART FRAME")]


def test_a_latin1_file_read_as_utf8_quarantines_the_lines_it_cannot_decode(run_job, tmp_path):
    run = run_job(_write(tmp_path / "latin1.csv", ACCENTED, encoding="latin-1"), "2010-12-01")
    assert run.code == 0, run.stderr
    m = run.metrics
    _check_counts(m, 3)
    assert m["quarantine_reasons"] == {"line is not valid UTF-8 text": 3}
    assert sorted(_quarantined(run)) == [LINES + 2, LINES + 3, LINES + 4]
    assert m["quarantine_samples"][0]["text"] == ACCENTED[0].replace("É", "\ufffd").replace(
        "È", "\ufffd")
    descriptions = _table(run.out / "sales_line_items").column("description").to_pylist()
    assert not any("\ufffd" in (d or "") for d in descriptions)


# Not "iso-8859-1" or "windows-1252": parse_args makes them "latin-1" and "cp1252" before the
# job reads a byte (test_common.py::test_encoding_argument_defaults_to_utf8_and_is_canonical).
@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_a_dataset_declared_latin1_or_cp1252_loads_its_text(run_job, tmp_path, encoding):
    extra = ACCENTED + ([_line("537004", WINDOWS)] if encoding == "cp1252" else [])
    path = _write(tmp_path / "day.csv", extra, encoding=encoding)
    run = run_job(path, "2010-12-01", extra=["--encoding", encoding])
    assert run.code == 0, run.stderr
    m = run.metrics
    _check_counts(m, 0)
    assert m["lines_written"] == WRITTEN + len(extra)
    descriptions = set(_table(run.out / "sales_line_items").column("description").to_pylist())
    assert {"CAFÉ CRÈME BOWL", "PÂTÉ DISH", "NAÏVE ART FRAME"} <= descriptions
    if encoding == "cp1252":
        assert WINDOWS in descriptions


def test_cp1252_bytes_it_leaves_undefined_are_quarantined(run_job, tmp_path):
    path = _write(tmp_path / "day.csv", [])
    path.write_bytes(path.read_bytes() + b"537005,22633,BAD \x81 BYTE,6,2010-12-01 10:00:00,"
                     b"1.85,17850.0,United Kingdom\n")
    run = run_job(path, "2010-12-01", extra=["--encoding", "cp1252"])
    assert run.code == 0, run.stderr
    assert run.metrics["quarantine_reasons"] == {
        "line is not valid cp1252 (Windows-1252) text": 1}


def test_utf8_with_a_bom_and_crlf_line_ends_loads_like_the_plain_file(run_job, tmp_path):
    extra = [_line("537006", "CAFÉ CRÈME BOWL")]
    plain = run_job(_write(tmp_path / "plain.csv", extra), "2010-12-01")
    windows = run_job(_write(tmp_path / "windows.csv", extra, newline="\r\n",
                             prefix=b"\xef\xbb\xbf"), "2010-12-01")
    assert plain.code == windows.code == 0, windows.stderr
    for key in ("lines_read", "lines_written", "lines_quarantined", "duplicates", "blank_lines",
                "quarantine_reasons", "null_counts", "min", "max"):
        assert windows.metrics[key] == plain.metrics[key], key
    assert windows.metrics["lines_written"] == WRITTEN + 1
    items = _table(windows.out / "sales_line_items")
    assert "CAFÉ CRÈME BOWL" in items.column("description").to_pylist()
    assert not any(c.endswith("\r") for c in items.column("country").to_pylist())
    assert windows.rule('ColumnValues "country" in [')["outcome"] == "pass"


def test_encoding_refusals(run_job, tmp_path):
    bom = _write(tmp_path / "bom.csv", [], prefix=b"\xef\xbb\xbf")
    run = run_job(bom, "2010-12-01", extra=["--encoding", "latin-1"])
    assert run.code == 2, run.stderr
    assert run.error_lines() == [
        f"JOB ERROR: input {bom} starts with a UTF-8 byte order mark, but the dataset declares "
        "the encoding Latin-1"]
    run = run_job(DAY, "2010-12-01", extra=["--encoding", "utf-16"])
    assert run.code == 2
    assert run.error_lines() == [
        "JOB ERROR: --encoding: 'utf-16' is not one of utf-8, latin-1, iso-8859-1, cp1252, "
        "windows-1252"]
    header = tmp_path / "header.csv"
    header.write_bytes("InvoiceNo\xe9".encode("latin-1") + b",x\n1,2\n")
    run = run_job(header, "2010-12-01")
    assert run.code == 2
    assert run.error_lines() == [f"JOB ERROR: input {header}: the header line is not UTF-8 text"]


# As EMR runs it (spark-submit --py-files spark_jobs.zip), the limits come from the migrations
# inside the zip: test_online_retail_job.py::test_main_runs_from_the_deploy_zip_with_spark_submit
# (one spark-submit JVM proves that with the zip's other properties).
