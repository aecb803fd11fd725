"""An independent computation of what the Berka reference files load, straight from their text
(csv + decimal + datetime, no Spark, no product code).

Rules (from the brief and berka.pdf): fields are `;`-separated with quoted strings; YYMMDD dates
are 19YY; birth_number is YYMMDD for men and YYMM+50DD for women; frequency POPLATEK MESICNE is
monthly, POPLATEK TYDNE weekly, POPLATEK PO OBRATU after transaction; disposition OWNER is an
owner, DISPONENT a user; district.asc's A1..A16 in order, '?' unknown (NULL).
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

FREQUENCY = {"POPLATEK MESICNE": "monthly", "POPLATEK TYDNE": "weekly",
             "POPLATEK PO OBRATU": "after transaction"}
DISPOSITION = {"OWNER": "owner", "DISPONENT": "user"}


def _records(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="ascii") as f:
        rows = list(csv.reader(f, delimiter=";"))
    return rows[1:]


def _date(yymmdd: str, women_offset: bool = False) -> tuple[dt.date, str]:
    month = int(yymmdd[2:4])
    sex = "male"
    if women_offset and month > 50:
        month, sex = month - 50, "female"
    return dt.date(1900 + int(yymmdd[:2]), month, int(yymmdd[4:])), sex


def accounts(path: Path) -> dict[int, tuple]:
    """account_id -> (district_id, statement_frequency, opened_date)."""
    return {int(a): (int(d), FREQUENCY[f], _date(day)[0]) for a, d, f, day in _records(path)}


def clients(path: Path) -> dict[int, tuple]:
    """client_id -> (birth_date, sex, district_id)."""
    out = {}
    for c, number, d in _records(path):
        born, sex = _date(number, women_offset=True)
        out[int(c)] = (born, sex, int(d))
    return out


def dispositions(path: Path) -> dict[int, tuple]:
    """disp_id -> (client_id, account_id, disposition_type)."""
    return {int(i): (int(c), int(a), DISPOSITION[t]) for i, c, a, t in _records(path)}


def _figure(text: str) -> int | Decimal | None:
    if text == "?":
        return None
    return Decimal(text) if "." in text else int(text)


def districts(path: Path) -> dict[int, tuple]:
    """district_id -> (name, region, A4..A16 with '?' as None)."""
    return {int(r[0]): (r[1], r[2], *[_figure(v) for v in r[3:]]) for r in _records(path)}
