"""bank_transactions transforms on tiny inline frames (lines shaped like the real files)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import functions as F

from spark_jobs.bank_transactions import transforms as tr

pytestmark = pytest.mark.spark

D = Decimal
DAY = dt.date(1994, 1, 31)


def line(**changes: Any) -> str:
    """A real line of 1994-01-31 (a remittance) with `changes` applied; a value of ... drops
    the field."""
    record: dict[str, Any] = {
        "trans_id": 1112186, "account_id": 3795, "date": "1994-01-31", "type": "VYDAJ",
        "operation": "PREVOD NA UCET", "amount": 2500.0, "balance": 30148.1,
        "k_symbol": "SIPO", "bank": "ST", "account": 79174483}
    record.update(changes)
    # A Decimal is written as the JSON number of its exact text (json.dumps would refuse it).
    text = json.dumps({k: f"\u0001{v}\u0001" if isinstance(v, Decimal) else v
                       for k, v in record.items() if v is not ...})
    return re.sub(r'"\\u0001([^"]*)\\u0001"', r"\1", text)


def parsed(spark, *lines: str) -> list[dict[str, Any]]:
    frame = spark.createDataFrame([(v, i + 1) for i, v in enumerate(lines)],
                                  "value string, _line long")
    out = tr.parse(frame)
    assert out.columns == ["value", "_line", *tr.TYPED_COLUMNS, "_reason"]
    return [r.asDict() for r in out.orderBy("_line").collect()]


def test_a_real_line_is_typed(spark):
    (row,) = parsed(spark, line())
    assert row["_reason"] is None
    assert {c: row[c] for c in tr.TYPED_COLUMNS} == {
        "trans_id": 1112186, "account_id": 3795, "txn_date": DAY, "direction": "debit",
        "operation": "remittance to another bank", "purpose": "household",
        "amount": D("2500.00"), "signed_amount": D("-2500.00"), "balance": D("30148.10"),
        "partner_bank": "ST", "partner_account": "79174483"}


def test_codes_become_labels_and_directions_sign_the_amount(spark):
    rows = parsed(
        spark,
        line(type="PRIJEM", operation=None, k_symbol="UROK", bank=None, account=None,
             amount=85.4),
        line(type="VYBER", operation="VYBER", k_symbol=" ", bank=None, account=0),
        line(type="VYDAJ", operation="VYBER KARTOU", k_symbol=None, bank=None, account=0),
        line(type="PRIJEM", operation="PREVOD Z UCTU", k_symbol="DUCHOD"),
        line(type="VYDAJ", operation="VYBER", k_symbol="SANKC. UROK", bank=None, account=0),
        line(operation="", k_symbol=""),
    )
    got = [(r["direction"], r["operation"], r["purpose"], r["signed_amount"],
            r["partner_bank"], r["partner_account"], r["_reason"]) for r in rows]
    assert got == [
        ("credit", None, "interest credited", D("85.40"), None, None, None),
        # " " is how the source writes an unknown purpose; account 0 means no partner.
        ("cash_withdrawal", "withdrawal in cash", None, D("-2500.00"), None, None, None),
        ("debit", "credit card withdrawal", None, D("-2500.00"), None, None, None),
        ("credit", "collection from another bank", "old-age pension", D("2500.00"), "ST",
         "79174483", None),
        ("debit", "withdrawal in cash", "sanction interest if negative balance",
         D("-2500.00"), None, None, None),
        ("debit", None, None, D("-2500.00"), "ST", "79174483", None),
    ]


def test_every_source_code_has_a_label():
    """The codes of berka.pdf, relation Transaction (type, operation, k_symbol)."""
    assert set(tr.OPERATIONS) == {"VYBER KARTOU", "VKLAD", "PREVOD Z UCTU", "VYBER",
                                  "PREVOD NA UCET"}
    assert set(tr.PURPOSES) == {"POJISTNE", "SLUZBY", "UROK", "SANKC. UROK", "SIPO", "DUCHOD",
                                "UVER"}
    assert tr.DIRECTIONS == {"PRIJEM": "credit", "VYDAJ": "debit", "VYBER": "cash_withdrawal"}


def test_money_is_exact_decimal(spark):
    """Through a double, 0.1 + 0.2 style noise or 16+ significant digits would change the
    value; from_json as DECIMAL reads the JSON text."""
    rows = parsed(spark, line(amount=D("1234567890.12"), balance=D("-99999999999.99")),
                  line(amount="12.5", balance=1e5), line(balance=D("0.10")))
    assert [(r["amount"], r["balance"], r["_reason"]) for r in rows] == [
        (D("1234567890.12"), D("-99999999999.99"), None),
        (D("12.50"), D("100000.00"), None),
        (D("2500.00"), D("0.10"), None),
    ]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"trans_id": ...}, "trans_id is missing"),
    ({"trans_id": 5.5}, "trans_id '5.5' is not an integer id"),
    ({"trans_id": -3}, "trans_id '-3' is not an integer id"),
    ({"account_id": "x"}, "account_id 'x' is not an integer id"),
    ({"account_id": None}, "account_id is missing"),
    ({"date": "31.01.1994"}, "date '31.01.1994' is not a YYYY-MM-DD date"),
    ({"date": "1994-02-30"}, "date '1994-02-30' is not a calendar date"),
    ({"date": 940131}, "date '940131' is not a YYYY-MM-DD date"),
    ({"type": ...}, "type is missing"),
    ({"type": "prijem"}, "type 'prijem' is not PRIJEM, VYDAJ or VYBER"),
    ({"operation": "PREVOD"}, "operation 'PREVOD' is not a known operation code"),
    ({"k_symbol": "UROKY"}, "k_symbol 'UROKY' is not a known k_symbol code"),
    ({"amount": ...}, "amount is missing"),
    ({"amount": "abc"}, "amount 'abc' is not a number"),
    ({"amount": "1,234.5"}, "amount '1,234.5' is not a number"),
    ({"amount": True}, "amount 'true' is not a number"),
    ({"amount": {"v": 1}}, "amount '{\"v\":1}' is not a number"),
    ({"amount": D("12.345")}, "amount '12.345' has more than 2 decimals"),
    ({"amount": 0.0}, "amount '0.0' is not positive"),
    ({"amount": -14.6}, "amount '-14.6' is not positive"),
    ({"amount": 1e25}, "amount '1.0E25' is out of range"),
    ({"balance": "n/a"}, "balance 'n/a' is not a number"),
    ({"balance": D("1.001")}, "balance '1.001' has more than 2 decimals"),
    ({"bank": "st"}, "bank 'st' is not a two-letter bank code"),
    ({"account": "79-174483"}, "account '79-174483' is not an account number"),
])
def test_reasons(spark, changes, reason):
    (row,) = parsed(spark, line(**changes))
    assert row["_reason"] == reason


def test_a_bad_balance_does_not_hide_a_good_amount(spark):
    (row,) = parsed(spark, line(balance="n/a"))
    assert (row["amount"], row["balance"]) == (D("2500.00"), None)


@pytest.mark.parametrize("text", [
    '{"trans_id": 1112186, "account_id": 3795, "date": "1994-01-31", "type": "VY',  # truncated
    "[1, 2]", '"text"', "garbage", "1112186;3795;940131;VYDAJ",
])
def test_lines_that_are_not_json_objects(spark, text):
    (row,) = parsed(spark, text)
    assert row["_reason"] == tr.NOT_AN_OBJECT
    assert all(row[c] is None for c in tr.TYPED_COLUMNS)


def test_hostile_values(spark):
    huge = "A" * 1_000_000
    rows = parsed(spark, line(bank=huge), line(k_symbol="UROK\u0000"),
                  line(type="VYDAJ\u0000"), line(operation=huge), line(extra=huge))
    reasons = [r["_reason"] for r in rows]
    assert reasons[0] == f"bank '{'A' * 60}...' is not a two-letter bank code"
    assert reasons[1] == "k_symbol 'UROK\u0000' is not a known k_symbol code"
    assert reasons[2] == "type 'VYDAJ\u0000' is not PRIJEM, VYDAJ or VYBER"
    assert reasons[3].startswith("operation 'AAAA") and len(reasons[3]) < 120
    # An unknown extra field is ignored: the source's fields are all there.
    assert reasons[4] is None


def test_partition_reason(spark):
    rows = spark.createDataFrame([(DAY,), (dt.date(1994, 2, 1),), (None,)], "txn_date date")
    got = [r[0] for r in rows.select(tr.partition_reason(F.to_date(F.lit("1994-01-31")))).collect()]
    assert got == [None, "date 1994-02-01 is not the run's partition 1994-01-31", None]


def typed_rows(spark, *records: tuple[int, int, str, float, float]):
    """(trans_id, account_id, type, amount, balance) records of 1994-01-31, parsed."""
    lines = [line(trans_id=t, account_id=a, type=k, amount=m, balance=b)
             for t, a, k, m, b in records]
    frame = tr.parse(spark.createDataFrame([(v, i) for i, v in enumerate(lines)],
                                           "value string, _line long"))
    assert frame.where(F.col("_reason").isNotNull()).count() == 0
    return frame


def test_bank_transactions_output(spark):
    frame = typed_rows(spark, (1, 10, "PRIJEM", 100.0, 100.0))
    out = tr.bank_transactions(frame, "run-1")
    assert tuple(out.columns) == tr.TRANSACTION_COLUMNS
    assert dict(out.dtypes)["amount"] == "decimal(14,2)"
    assert out.first()["run_id"] == "run-1"


def test_daily_summary_totals_and_closing_balance_by_the_chain(spark):
    """Account 10: its opening deposit (id 9) has a higher id than the day's later payments,
    as in the real data; the closing balance is where the chain of balances ends (800.0), not
    the balance of the highest id. Account 20: one transaction. Account 30: interest rounded
    to one decimal (a 0.1 drift, as the source does). Account 40: the day nets to zero and
    ends on its opening balance (a cycle): the highest id decides."""
    frame = typed_rows(
        spark,
        (9, 10, "PRIJEM", 1000.0, 1000.0), (3, 10, "VYDAJ", 150.0, 850.0),
        (5, 10, "VYBER", 50.0, 800.0),
        (7, 20, "VYDAJ", 30.0, -12.5),
        (100, 30, "PRIJEM", 199.0, 72144.1), (101, 30, "PRIJEM", 39285.0, 111429.2),
        (1, 40, "PRIJEM", 10.0, 510.0), (2, 40, "VYDAJ", 10.0, 500.0),
    )
    out = tr.account_daily_summary(frame, "run-1")
    assert tuple(out.columns) == tr.SUMMARY_COLUMNS
    assert dict(out.dtypes)["credits"] == "decimal(18,2)"
    got = {r["account_id"]: (r["transactions"], r["credits"], r["debits"], r["net"],
                             r["closing_balance"]) for r in out.collect()}
    assert got == {
        10: (3, D("1000.00"), D("200.00"), D("800.00"), D("800.00")),
        20: (1, D("0.00"), D("30.00"), D("-30.00"), D("-12.50")),
        30: (2, D("39484.00"), D("0.00"), D("39484.00"), D("111429.20")),
        40: (2, D("10.00"), D("10.00"), D("0.00"), D("500.00")),
    }
    assert {r["txn_date"] for r in out.collect()} == {DAY}


def test_outputs_are_the_catalog_tables():
    import yaml
    from spark_helpers import REPO

    from pipeline_core.catalog import parse_dataset

    path = REPO / "datasets" / "bank_transactions.yaml"
    dataset = parse_dataset(yaml.safe_load(path.read_text()), path)
    assert dataset.source.format == "jsonl"
    assert [t.name for t in dataset.load.tables] == list(tr.OUTPUTS)


def test_outputs_match_the_warehouse_tables(spark):
    from spark_jobs.common.outputs import builder
    from spark_jobs.common.warehouse import check_schema, shipped_tables

    tables = shipped_tables()
    frame = typed_rows(spark, (1, 10, "PRIJEM", 100.0, 100.0))
    for name, output in tr.OUTPUTS.items():
        check_schema(builder(output)(frame, "run-1").schema, tables.table("analytics", name))
