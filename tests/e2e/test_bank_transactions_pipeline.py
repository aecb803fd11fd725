"""bank_transactions through the real state machine on the local deployment (real sample days):
the warehouse holds exactly what an independent computation over the JSON says."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from bank_transactions_expected import summary, transactions

from local_runtime.cli import run_file

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "bank_transactions"
MONTH_END = SAMPLES / "1994-01-31.jsonl"


def test_a_day_loads_what_an_independent_computation_says(deployment, warehouse_db):
    started = time.monotonic()
    res = run_file(deployment, MONTH_END, "bank_transactions/1994-01-31.jsonl", out=None)
    print(f"bank_transactions 1994-01-31 local run: {time.monotonic() - started:.1f} s")
    assert res.status == "SUCCEEDED", res.summary
    expected = transactions(MONTH_END)
    got = {r[0]: (*r[:2], str(r[2]), *r[3:]) for r in warehouse_db(
        "select trans_id, account_id, txn_date, direction, operation, purpose, amount, "
        "signed_amount, balance, partner_bank, partner_account from analytics.bank_transactions "
        "where txn_date = '1994-01-31'")}
    assert got == expected
    daily = {r[0]: tuple(r[1:]) for r in warehouse_db(
        "select account_id, transactions, credits, debits, net, closing_balance "
        "from analytics.account_daily_summary where txn_date = '1994-01-31'")}
    assert daily == summary(MONTH_END)
    assert res.summary["lines"]["in"] == len(expected)
    assert res.summary["lines"]["quarantined"] == 0


# A tampered amount fails the gate and loads nothing: the gate's behaviour is one for every
# dataset (test_pipeline.py::test_quality_gate_failure_is_not_loaded); bank_transactions' balance
# chain rule catching it: tests/spark/test_bank_transactions_rules.py::
# test_corruptions_fail["tampered amount"].


def test_an_unknown_code_is_quarantined_and_the_rest_loads(deployment, warehouse_db, tmp_path):
    lines = (SAMPLES / "1994-01-30.jsonl").read_text().splitlines()
    odd = {**json.loads(lines[0]), "trans_id": 99999999, "account_id": 99999,
           "k_symbol": "DANE"}
    src = tmp_path / "1994-01-30.jsonl"
    src.write_text("\n".join([*lines, json.dumps(odd)]) + "\n")
    res = run_file(deployment, src, "bank_transactions/1994-01-30.jsonl", out=None)
    assert res.status == "SUCCEEDED", res.summary
    assert res.summary["lines"]["quarantined"] == 1
    assert warehouse_db("select count(*) from analytics.bank_transactions "
                        "where txn_date = '1994-01-30'")[0][0] == len(lines)
    quarantine = deployment.client("s3").list_objects_v2(
        Bucket=deployment.bucket("curated"),
        Prefix="quarantine/bank_transactions/partition=1994-01-30/")
    assert quarantine.get("KeyCount", 0) > 0
