"""What the warehouse must hold after loading one shop_events day, computed independently of the
product: plain Python (`csv`, `re`, `datetime`, `Decimal`), no Spark, no product code.

The REES46 export: a header, then event_time ("YYYY-MM-DD HH:MM:SS UTC"), event_type, product_id,
category_id, category_code, brand, price, user_id, user_session. Exact duplicate lines count once
(the pipeline drops exact copies). A line is not loaded when it does not have nine fields, a
field is missing or malformed (ids: digits within BIGINT; price: a plain decimal with at most two
decimals, at most 9999999999.99), its type is not view/cart/purchase, its session is not a
lowercase UUID (the rules file's row-level rule), or it is of another UTC day than the file's.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import re
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

HEADER = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand",
          "price", "user_id", "user_session"]
TYPES = {"view", "cart", "purchase"}
BIGINT_MAX = 2**63 - 1
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PRICE = re.compile(r"[0-9]+(\.[0-9]+)?")


def _text(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode("utf-8")


def _id(text: str) -> int | None:
    return int(text) if text.isdigit() and text.isascii() and int(text) <= BIGINT_MAX else None


def _price(text: str) -> Decimal | None:
    if not PRICE.fullmatch(text):
        return None
    value = Decimal(text)
    if value != value.quantize(Decimal("0.01")) or value > Decimal("9999999999.99"):
        return None
    return value.quantize(Decimal("0.01"))


def _event(fields: list[str], day: dt.date) -> tuple[Any, ...] | None:
    """The shop_events row of one line, None when it is not loaded."""
    if len(fields) != 9:
        return None
    f = [v.strip() for v in fields]
    if not f[0].endswith(" UTC"):
        return None
    try:
        ts = dt.datetime.strptime(f[0][:-4], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    ids = [_id(f[2]), _id(f[3]), _id(f[7])]
    price = _price(f[6])
    if (ts.date() != day or f[1] not in TYPES or None in ids or price is None
            or not UUID.fullmatch(f[8])):
        return None
    return (ts, ts.date(), f[1], ids[0], ids[1], f[4] or None, f[5] or None, price, ids[2],
            f[8])


def _abandonment(events: list[tuple[Any, ...]]) -> dict[tuple[dt.date, str], tuple[Any, ...]]:
    purchased = {(e[1], e[9]) for e in events if e[2] == "purchase"}
    carted: dict[tuple[dt.date, str], set[str]] = defaultdict(set)
    for e in events:
        if e[2] == "cart":
            category = (e[5] or "unknown").split(".")[0]
            carted[(e[1], category)].add(e[9])
    out = {}
    for (day, category), sessions in carted.items():
        bought = sum(1 for s in sessions if (day, s) in purchased)
        abandoned = len(sessions) - bought
        rate = (Decimal(abandoned) / Decimal(len(sessions))).quantize(
            Decimal("0.0001"), rounding=ROUND_HALF_UP)
        out[(day, category)] = (len(sessions), bought, abandoned, rate)
    return out


def expected_day(path: Path, day: dt.date) -> dict[str, Any]:
    """events (sorted rows), funnel {date: (sessions, viewed, carted, purchased)}, abandonment
    {(date, category): (with_cart, with_purchase, abandoned, rate)}, lines, quarantined."""
    header, *lines = _text(path).splitlines()
    assert next(csv.reader([header])) == HEADER
    distinct = list(dict.fromkeys(line for line in lines if line.strip()))
    events = []
    for line in distinct:
        event = _event(next(csv.reader([line])), day)
        if event is not None:
            events.append(event)
    kinds: dict[tuple[dt.date, str], set[str]] = defaultdict(set)
    for e in events:
        kinds[(e[1], e[9])].add(e[2])
    funnel = {}
    for d in {key[0] for key in kinds}:
        sets = [k for (dd, _), k in kinds.items() if dd == d]
        funnel[d] = (len(sets), *(sum(1 for k in sets if t in k)
                                  for t in ("view", "cart", "purchase")))
    return {
        "events": sorted(events, key=repr),
        "funnel": funnel,
        "abandonment": _abandonment(events),
        "lines": len([line for line in lines if line.strip()]),
        "quarantined": len(distinct) - len(events),
    }
