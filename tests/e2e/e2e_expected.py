"""An independent computation of the loaded numbers straight from the CSV (csv + decimal).

Rules (from the issue): exact duplicate lines count once; a line whose quantity, unit price or
date does not parse, or whose unit price is negative, is quarantined; customer ids lose ".0";
money is rounded ROUND_HALF_UP to 2 places; cancellations (InvoiceNo "C...") are returns.
"""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any


def expected_day(path: Path) -> dict:
    seen: set[str] = set()
    lines = quarantined = duplicates = 0
    kept = []
    with open(path, newline="", encoding="utf-8") as f:
        header = f.readline()
        del header
        for raw in f:
            lines += 1
            if raw in seen:
                duplicates += 1
                continue
            seen.add(raw)
            row = next(csv.reader([raw]))
            try:
                qty = int(row[3])
                price = Decimal(row[5])
                date = row[4][:10]
            except (ValueError, InvalidOperation, IndexError):
                quarantined += 1
                continue
            if price < 0:
                quarantined += 1
                continue
            cid = row[6].strip()
            cid = cid[:-2] if cid.endswith(".0") else cid
            kept.append((row[0], qty, price, date, cid or None))
    per_customer: dict[tuple[str, str], dict] = {}
    for inv, qty, price, date, cid in kept:
        if not cid:
            continue
        acc = per_customer.setdefault((date, cid), {"orders": set(), "units": 0,
                                                    "revenue": Decimal(0),
                                                    "returned": Decimal(0)})
        if inv.startswith("C"):
            acc["returned"] += qty * price
        else:
            acc["orders"].add(inv)
            acc["units"] += qty
            acc["revenue"] += qty * price
    cents = Decimal("0.01")
    return {
        "lines": lines, "duplicates": duplicates, "quarantined": quarantined,
        "line_items": len(kept),
        # (order_date, customer_id) -> (orders, units, revenue, returned_value)
        "customers": {k: (len(v["orders"]), v["units"],
                          v["revenue"].quantize(cents, ROUND_HALF_UP),
                          abs(v["returned"]).quantize(cents, ROUND_HALF_UP))
                      for k, v in per_customer.items()},
    }


def loaded_day_figures(q: Any, day: str) -> dict[str, Any]:
    """What the warehouse holds of one online_retail day: its line count and its
    customer_daily_sales rows, in expected_day's shape."""
    items = q("select count(*) from analytics.sales_line_items where order_date = %s",
              (day,))[0][0]
    customers = {(str(d), c): (o, u, r, rv) for d, c, o, u, r, rv in q(
        "select order_date, customer_id, orders, units, revenue, returned_value "
        "from analytics.customer_daily_sales where order_date = %s", (day,))}
    return {"line_items": items, "customers": customers}
