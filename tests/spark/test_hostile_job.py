"""Hostile input files through the online_retail job (main.main in the shared Spark session).

Line-level hostility is judged in ONE run over one crafted day (the first 300 lines of a real
day, then one hostile entry per case): each case then checks what became of its own line(s) -
quarantined with a reason naming the problem, or loaded with its value intact - so the table
below costs a single Spark job. Whole-file hostility (encodings, line endings, gzip members,
garbage) gets its own small run; files the driver refuses never start a Spark job.

Cases already held elsewhere are not repeated: tests/spark/test_online_retail_job.py (wrong and
short header, empty and header-only files, bad and truncated gzip, doubled content, missing
input) and tests/spark/test_online_retail_loadable.py (lines of another day, 300-byte and
multi-byte descriptions, NUL in the description, 20-digit customer id, Latin-1 read as UTF-8,
BOM + CRLF, encoding refusals).

Redshift's VARCHAR(n) counts bytes and cannot hold NUL (Amazon Redshift Database Developer
Guide, "Character types",
https://docs.aws.amazon.com/redshift/latest/dg/r_Character_types.html); gzip files may hold
several members, which a reader must read in turn (RFC 1952, "GZIP file format
specification", section 2.2, https://www.rfc-editor.org/rfc/rfc1952#section-2.2).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spark_helpers import RULES, SAMPLES, data_lines

pytestmark = [pytest.mark.spark, pytest.mark.hostile]

DAY = SAMPLES / "2010-12-01.csv"
BASE_LINES = 300  # real lines before the hostile ones
TS = "2010-12-01 10:00:00"


def _line(invoice: str, description: str = "HAND WARMER", *, stock: str = "22633",
          quantity: str = "6", ts: str = TS, price: str = "1.85", customer: str = "17850.0",
          country: str = "United Kingdom") -> str:
    return f"{invoice},{stock},{description},{quantity},{ts},{price},{customer},{country}"


@dataclass(frozen=True)
class Quarantined:
    reason: str  # a regular expression the line's _reason must match


@dataclass(frozen=True)
class Loaded:
    values: dict[str, Any]  # sales_line_items columns the loaded row must hold


# case -> (the entry's bytes: one line, or two physical lines for an embedded newline; outcome)
HOSTILE_LINES: dict[str, tuple[bytes, Any]] = {
    "embedded-newline-in-a-quoted-description": (
        _line("536900", '"TWO\nLINES"').encode(), Quarantined(r".")),
    "extra-field": (
        (_line("536901") + ",EXTRA").encode(), Quarantined(r"^more fields than the header$")),
    "missing-last-field": (
        _line("536902").rsplit(",", 1)[0].encode(), Quarantined(r'"country"')),
    "quoted-fields-with-a-comma-inside": (
        b'"536903","22633","HAND WARMER, RED",6,2010-12-01 10:00:00,1.85,17850.0,'
        b'United Kingdom', Loaded({"description": "HAND WARMER, RED", "quantity": 6})),
    "nul-byte-in-stock-code": (
        _line("536904", stock="226\x0033").encode(),
        Quarantined(r"^stock_code contains a NUL character, which varchar\(32\) cannot hold$")),
    "nul-byte-in-country": (
        _line("536905", country="United\x00Kingdom").encode(),
        Quarantined(r"^country contains a NUL character, which varchar\(64\) cannot hold$")),
    "customer-id-of-17-digits": (
        _line("536906", customer="12345678901234567.0").encode(),
        Quarantined(r"^customer_id is 17 bytes, over varchar\(16\)$")),
    "customer-id-of-16-digits-fits": (
        _line("536907", customer="1234567890123456.0").encode(),
        Loaded({"customer_id": "1234567890123456"})),
    "description-of-257-ascii-bytes": (
        _line("536908", "D" * 257).encode(),
        Quarantined(r"^description is 257 bytes, over varchar\(256\)$")),
    "description-of-exactly-256-bytes-fits": (
        _line("536909", "E" * 256).encode(), Loaded({"description": "E" * 256})),
    "description-of-86-euro-signs-is-258-bytes": (
        _line("536910", "\N{EURO SIGN}" * 86).encode(),
        Quarantined(r"^description is 258 bytes, over varchar\(256\)$")),
    "overlong-utf8-encoding": (
        _line("536911", "SLASH \xc0\xaf").encode("latin-1"),
        Quarantined(r"^line is not valid UTF-8 text$")),
    "utf16-surrogate-encoded-as-utf8": (
        _line("536912").encode().replace(b"HAND", b"\xed\xa0\x80HAND"),
        Quarantined(r"^line is not valid UTF-8 text$")),
    "invoice-date-in-us-format": (
        _line("536913", ts="12/1/2010 10:00").encode(),
        Quarantined(r"^unparseable invoice date$")),
    "quantity-written-as-a-decimal": (
        _line("536914", quantity="6.0").encode(), Quarantined(r"^unparseable quantity$")),
    "quantity-beyond-32-bit": (
        _line("536915", quantity="99999999999").encode(),
        Quarantined(r"^unparseable quantity$")),
    "unit-price-with-4-decimals": (
        _line("536916", price="1.8555").encode(),
        Quarantined(r"^unit price has more than 3 decimals$")),
    "a-line-of-only-commas": (b",,,,,,,", Quarantined(r"^missing invoice number$")),
    "unicode-line-separator-in-description": (
        _line("536917", "LINE\u2028SEPARATOR").encode(),
        Loaded({"description": "LINE\u2028SEPARATOR"})),
    "control-characters-in-description": (
        _line("536918", "BELL\x07 ESC\x1b[31m RED").encode(),
        Loaded({"description": "BELL\x07 ESC\x1b[31m RED"})),
}
BLANK = b"    "  # a line of spaces among the data: a blank line, not a data line


@dataclass
class HostileDay:
    code: int
    stderr: str
    out: Path
    first_line: dict[str, int]  # case -> its first physical line number (header = 1)
    physical_lines: dict[str, int]

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.out / "metrics.json").read_text())

    def table(self, name: str) -> list[dict[str, Any]]:
        files = sorted((self.out / name).glob("part-*.parquet"))
        return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def _run_main(out: Path, source: Path, partition: str = "2010-12-01",
              extra: list[str] | None = None) -> tuple[int, str]:
    """main.main on `source` with outputs under `out`; (exit code, stderr)."""
    from spark_jobs.online_retail import main

    out.mkdir(parents=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main.main([
            "--input", str(source), "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/quarantine/", "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json", "--rules", str(RULES),
            "--run-id", f"hostile-{out.name}", "--partition", partition, *(extra or [])])
    return code, err.getvalue()


@pytest.fixture(scope="module")
def hostile_day(spark, tmp_path_factory) -> HostileDay:
    header, lines = data_lines(DAY)
    body = bytearray(("\n".join([header, *lines[:BASE_LINES]]) + "\n").encode())
    line = BASE_LINES + 2
    first, physical = {}, {}
    for case, (entry, _) in HOSTILE_LINES.items():
        first[case], physical[case] = line, entry.count(b"\n") + 1
        body += entry + b"\n"
        line += physical[case]
        if case == "a-line-of-only-commas":
            body += BLANK + b"\n"
            line += 1
    base = tmp_path_factory.mktemp("hostile-day")
    source = base / "2010-12-01.csv"
    source.write_bytes(bytes(body))
    code, stderr = _run_main(base / "out", source)
    assert source.read_bytes() == bytes(body)  # the job never changes its input
    return HostileDay(code, stderr, base / "out", first, physical)


def test_the_hostile_day_runs_to_the_end_and_accounts_for_every_line(hostile_day):
    assert hostile_day.code == 0, hostile_day.stderr
    m = hostile_day.metrics
    physical = sum(hostile_day.physical_lines.values())
    assert m["lines_read"] == BASE_LINES + physical
    assert m["blank_lines"] == 1
    assert m["lines_read"] == m["lines_written"] + m["lines_quarantined"] + m["duplicates"]


@pytest.mark.parametrize("case", list(HOSTILE_LINES), ids=list(HOSTILE_LINES))
def test_each_hostile_line_is_quarantined_or_loaded_intact(hostile_day, case):
    assert hostile_day.code == 0, hostile_day.stderr
    outcome = HOSTILE_LINES[case][1]
    first = hostile_day.first_line[case]
    numbers = set(range(first, first + hostile_day.physical_lines[case]))
    quarantined = {r["_source_line"]: r for r in hostile_day.table("quarantine")
                   if r["_source_line"] in numbers}
    if isinstance(outcome, Quarantined):
        assert set(quarantined) == numbers, f"lines {sorted(numbers)} not all quarantined"
        for row in quarantined.values():
            assert re.search(outcome.reason, row["_reason"]), row["_reason"]
        reasons = hostile_day.metrics["quarantine_reasons"]
        assert all(reasons.get(r["_reason"], 0) >= 1 for r in quarantined.values())
        # Nothing of the line reached the tables.
        invoice = HOSTILE_LINES[case][0].split(b",", 1)[0].strip(b'"').decode("utf-8", "replace")
        if invoice:
            assert invoice not in {r["invoice_no"] for r in hostile_day.table("sales_line_items")}
    else:
        assert quarantined == {}
        invoice = HOSTILE_LINES[case][0].split(b",", 1)[0].strip(b'"').decode()
        [row] = [r for r in hostile_day.table("sales_line_items") if r["invoice_no"] == invoice]
        for column, value in outcome.values.items():
            assert row[column] == value, column


# -- whole files ----------------------------------------------------------------------------------


def _refused(code: int, stderr: str, *fragments: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("JOB ERROR:")]
    assert code == 2 and len(errors) == 1, stderr[-3000:]
    for fragment in fragments:
        assert re.search(fragment, errors[0]), errors[0]
    return errors[0]


HEADER_BYTES = (data_lines(DAY)[0] + "\n").encode()
FIVE_LINES = HEADER_BYTES + "".join(x + "\n" for x in data_lines(DAY)[1][:5]).encode()
# case -> (file name, its bytes, what the one JOB ERROR line says)
REFUSED_FILES = {
    "utf-16-with-bom": ("2010-12-01.csv", lambda: FIVE_LINES.decode().encode("utf-16"),
                        [r"the header line is not UTF-8 text"]),
    "png-image-named-csv": ("2010-12-01.csv", lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
                            [r"the header line is not UTF-8 text"]),
    "semicolon-delimited": ("2010-12-01.csv", lambda: FIVE_LINES.replace(b",", b";"),
                            [r"semicolon-separated"]),
    "pipe-delimited": ("2010-12-01.csv", lambda: FIVE_LINES.replace(b",", b"|"),
                       [r"pipe-separated"]),
    "gzip-with-trailing-garbage": (
        "2010-12-01.csv.gz", lambda: gzip.compress(FIVE_LINES, mtime=0) + b"GARBAGE" * 20,
        [r"cannot read", r"not a gzip file"]),
}


@pytest.mark.parametrize("case", list(REFUSED_FILES), ids=list(REFUSED_FILES))
def test_a_file_that_is_not_the_datasets_csv_is_refused_by_name(spark, tmp_path, case):
    name, build, fragments = REFUSED_FILES[case]
    source = tmp_path / name
    body = build()
    source.write_bytes(body)
    code, stderr = _run_main(tmp_path / "out", source)
    line = _refused(code, stderr, *fragments)
    assert str(source) in line
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert source.read_bytes() == body


def test_a_file_with_cr_only_line_endings_is_refused_by_name(spark, tmp_path):
    header, lines = data_lines(DAY)
    source = tmp_path / "2010-12-01.csv"
    source.write_bytes(("\r".join([header, *lines[:20]]) + "\r").encode())
    code, stderr = _run_main(tmp_path / "out", source)
    _refused(code, stderr, r"line")


def test_two_gzip_members_of_the_same_day_are_read_whole_and_deduped(spark, tmp_path):
    """`cat day.csv.gz day.csv.gz`: a doubled delivery as a two-member gzip. Both members are
    read (RFC 1952 2.2), the second header is a quarantined line, every data line counts once."""
    header, lines = data_lines(DAY)
    one = gzip.compress(("\n".join([header, *lines[:200]]) + "\n").encode(), mtime=0)
    source = tmp_path / "2010-12-01.csv.gz"
    source.write_bytes(one + one)
    code, stderr = _run_main(tmp_path / "out", source)
    assert code == 0, stderr[-3000:]
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    distinct = len(set(lines[:200]))
    assert m["lines_read"] == 200 * 2 + 1  # the second member's header is a data line there
    assert m["lines_written"] == distinct
    assert m["lines_quarantined"] == 1 and m["duplicates"] == 400 - distinct
    assert source.read_bytes() == one + one


def test_binary_garbage_after_a_valid_header_loads_nothing_and_says_why(spark, tmp_path):
    rnd = random.Random(20101201)
    garbage = bytes(rnd.randrange(256) for _ in range(16_000))
    source = tmp_path / "2010-12-01.csv"
    source.write_bytes(HEADER_BYTES + garbage)
    code, stderr = _run_main(tmp_path / "out", source)
    assert code == 0, stderr[-3000:]
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["lines_written"] == 0
    assert m["lines_quarantined"] + m["duplicates"] == m["lines_read"] > 0
    assert "line is not valid UTF-8 text" in m["quarantine_reasons"]
    # Samples are for people: no control character but tab survives (spark_jobs.common.text).
    assert m["quarantine_samples"]
    assert not [s for s in m["quarantine_samples"]
                if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", s["text"])]
    assert m["tables"]["sales_line_items"]["rows"] == 0  # the gate's min_output_rows fails it


def test_a_5000_character_description_is_quarantined_not_fatal(spark, tmp_path):
    header, lines = data_lines(DAY)
    source = tmp_path / "2010-12-01.csv"
    source.write_text("\n".join([header, *lines[:50], _line("536999", "Z" * 5000)]) + "\n")
    code, stderr = _run_main(tmp_path / "out", source)
    assert code == 0, stderr[-2000:]
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["quarantine_reasons"] == {"description is 5000 bytes, over varchar(256)": 1}
    assert m["lines_written"] == len(set(lines[:50]))
    [sample] = m["quarantine_samples"]
    assert sample["line"] == 52 and len(sample["text"]) == 200
