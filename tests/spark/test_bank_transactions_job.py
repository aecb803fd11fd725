"""The bank_transactions job end to end in the shared session, on a real sample day."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest
from spark_helpers import REPO

pytestmark = pytest.mark.spark

SAMPLE = REPO / "sample_data" / "bank_transactions" / "1994-01-30.jsonl"


def _rows(spark, run, table):
    return [r.asDict() for r in spark.read.parquet(str(run.out / table)).collect()]


def test_a_real_day_loads_every_line(spark, run_dataset):
    lines = SAMPLE.read_text().splitlines()
    run = run_dataset("bank_transactions", SAMPLE, "1994-01-30")
    assert run.code == 0, run.stderr
    assert run.failed_errors == []
    transactions = _rows(spark, run, "bank_transactions")
    assert len(transactions) == len(lines)
    assert {r["trans_id"] for r in transactions} == {json.loads(v)["trans_id"] for v in lines}
    summary = _rows(spark, run, "account_daily_summary")
    assert sum(r["transactions"] for r in summary) == len(lines)
    assert sum(r["net"] for r in summary) == sum(r["signed_amount"] for r in transactions)
    tables = run.metrics["tables"]
    assert tables["bank_transactions"]["rows"] == len(lines)
    assert tables["account_daily_summary"]["rows"] == len(summary)


def test_bad_lines_are_quarantined_with_their_reason(spark, run_dataset, tmp_path):
    lines = SAMPLE.read_text().splitlines()
    first = json.loads(lines[0])
    unknown = json.dumps({**first, "trans_id": 1, "k_symbol": "DANE"})
    stray = json.dumps({**first, "trans_id": 2, "date": "1994-01-31"})
    long_bank = json.dumps({**first, "trans_id": 3, "operation": "PREVOD NA UCET",
                            "bank": "AB", "account": "9" * 25})
    path = tmp_path / "1994-01-30.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join([*lines, unknown, stray, long_bank]).encode()))
    run = run_dataset("bank_transactions", path, "1994-01-30")
    assert run.code == 0, run.stderr
    quarantine = {r["_source_line"]: r["_reason"] for r in _rows(spark, run, "quarantine")}
    n = len(lines)
    assert quarantine == {
        n + 1: "k_symbol 'DANE' is not a known k_symbol code",
        n + 2: "date 1994-01-31 is not the run's partition 1994-01-30",
        n + 3: "account '" + "9" * 25 + "' is not an account number",
    }
    assert len(_rows(spark, run, "bank_transactions")) == n
    assert Decimal(0) != sum(r["credits"] for r in _rows(spark, run, "account_daily_summary"))
