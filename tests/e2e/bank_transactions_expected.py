"""An independent computation of what a bank_transactions day loads, straight from the JSON
Lines text (json + decimal, no Spark, no product code).

Rules (from the brief and berka.pdf): type PRIJEM is a credit, VYDAJ a debit, VYBER a cash
withdrawal (both debits subtract); codes become berka.pdf's English labels, blank codes none;
partner account 0 means no partner; money is exact to the cent. The closing balance is where
the account's chain of balances ends: the balance no other transaction of the day starts from
(start = balance - signed amount, equal within 0.1 because the source rounds interest); when
no or several such transactions exist, the highest trans_id among them (or among all).
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

SIGN = {"PRIJEM": 1, "VYDAJ": -1, "VYBER": -1}
DIRECTION = {"PRIJEM": "credit", "VYDAJ": "debit", "VYBER": "cash_withdrawal"}
OPERATION = {"VYBER KARTOU": "credit card withdrawal", "VKLAD": "credit in cash",
             "PREVOD Z UCTU": "collection from another bank", "VYBER": "withdrawal in cash",
             "PREVOD NA UCET": "remittance to another bank"}
PURPOSE = {"POJISTNE": "insurance payment", "SLUZBY": "payment for statement",
           "UROK": "interest credited", "SANKC. UROK": "sanction interest if negative balance",
           "SIPO": "household", "DUCHOD": "old-age pension", "UVER": "loan payment"}
CENT = Decimal("0.01")


def _code(value: str | None, labels: dict[str, str]) -> str | None:
    return None if value is None or not value.strip() else labels[value]


def transactions(path: Path) -> dict[int, tuple]:
    """trans_id -> the row of analytics.bank_transactions (without run_id)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line, parse_float=Decimal)
        amount = Decimal(r["amount"]).quantize(CENT)
        account = r["account"]
        out[r["trans_id"]] = (
            r["trans_id"], r["account_id"], r["date"], DIRECTION[r["type"]],
            _code(r["operation"], OPERATION), _code(r["k_symbol"], PURPOSE), amount,
            amount * SIGN[r["type"]], Decimal(r["balance"]).quantize(CENT), r["bank"],
            None if account in (None, 0) else str(account))
    return out


def _closing(rows: list[tuple]) -> Decimal:
    ends = [r for r in rows
            if not any(o[0] != r[0] and abs(o[8] - o[7] - r[8]) <= Decimal("0.1")
                       for o in rows)]
    return max(ends or rows, key=lambda r: r[0])[8]


def summary(path: Path) -> dict[int, tuple]:
    """account_id -> (transactions, credits, debits, net, closing_balance) of the day."""
    by_account: dict[int, list[tuple]] = defaultdict(list)
    for row in transactions(path).values():
        by_account[row[1]].append(row)
    out = {}
    for account, rows in by_account.items():
        credits = sum((r[6] for r in rows if r[3] == "credit"), Decimal("0.00"))
        debits = sum((r[6] for r in rows if r[3] != "credit"), Decimal("0.00"))
        out[account] = (len(rows), credits, debits, credits - debits, _closing(rows))
    return out
