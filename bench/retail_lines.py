"""Bench inputs in the real Online Retail format, all on one trading day.

The job judges every line against its run's partition day, so a file that holds the whole year
would quarantine 304 days of it: the generated files move every line to one day (the time of day
kept) and measure the throughput of lines that load.

- `real_year_one_day`: the 305 real daily files as one file (541,909 lines, about 46 MB).
- `synthetic`: copies of the real year until N lines. Each copy shifts invoice numbers into a
  range of its own (six digits, as the rules require; at most 19 copies, about 10.3M lines) and
  customer ids by 100,000 (the same share of guests and cancellations, and a customer's lines
  stay on their invoices), so copies are new orders, not duplicates.

usage: python bench/retail_lines.py (--year | --lines N) --day YYYY-MM-DD --out FILE
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path

DATA = Path("/work/shared/data/online-retail/by-day")
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
_INVOICE_BASE = 536_000  # the real invoices run from 536365 to 581587
_INVOICE_SPAN = 46_000
_FIRST_COPY_AT = 100_000
MAX_COPIES = (1_000_000 - _FIRST_COPY_AT) // _INVOICE_SPAN  # 19: invoice numbers keep 6 digits
_CUSTOMER_STEP = 100_000


def real_rows(data: Path = DATA) -> list[list[str]]:
    """Every data line of the real daily files, parsed (RFC 4180), in day order."""
    files = sorted(data.glob("*.csv"))
    if not files:
        raise SystemExit(f"no daily files in {data}: see /work/shared/data/README.md")
    rows: list[list[str]] = []
    for path in files:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            if next(reader, None) != HEADER.split(","):
                raise SystemExit(f"{path}: not the Online Retail header")
            rows.extend(reader)
    return rows


def _shift(row: list[str], copy: int, day: str) -> list[str]:
    invoice, stock, description, quantity, when, price, customer, country = row
    prefix = invoice[0] if invoice[0].isalpha() else ""
    number = int(invoice[len(prefix):]) - _INVOICE_BASE + _FIRST_COPY_AT + copy * _INVOICE_SPAN
    if customer:
        customer = f"{int(float(customer)) + copy * _CUSTOMER_STEP}.0"
    return [f"{prefix}{number:06d}", stock, description, quantity, f"{day} {when[11:]}", price,
            customer, country]


def generate(rows: list[list[str]], lines: int, day: str) -> Iterator[str]:
    """CSV text of `lines` data lines (header first) from copies of `rows`."""
    copies = -(-lines // len(rows))
    if copies > MAX_COPIES:
        raise SystemExit(f"at most {MAX_COPIES * len(rows):,} lines: invoice numbers have six "
                         "digits")
    yield HEADER + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    written = 0
    for copy in range(copies):
        for row in rows:
            if written == lines:
                return
            writer.writerow(_shift(row, copy, day))
            written += 1
            if written % 50_000 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()
        out.seek(0)
        out.truncate()


def write(target: Path, rows: list[list[str]], lines: int, day: str) -> Path:
    with target.open("w", encoding="utf-8", newline="") as f:
        for chunk in generate(rows, lines, day):
            f.write(chunk)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--year", action="store_true", help="the real year, once")
    size.add_argument("--lines", type=int, help="this many lines from copies of the year")
    parser.add_argument("--day", default="2011-06-01")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = real_rows()
    write(args.out, rows, len(rows) if args.year else args.lines, args.day)
    print(f"{args.out}: {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
