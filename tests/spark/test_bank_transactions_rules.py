"""The bank_transactions DQDL rules, measured by the real engine (spark_jobs.common.quality):
every real day passes them, realistic corruptions of a real day fail them.

The real days are /work/shared/data/bank-berka/transactions/by-day (454 files, outside the
repository; BANK_REAL_DAYS overrides the folder); without them those tests are skipped, the
corruption tests run on the sample day in sample_data/. The job and its rules over every real
day: `make calibrate` (bench/calibrate_rules.py --dataset bank_transactions).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from spark_helpers import REPO

from pipeline_core.dqdl import evaluate_threshold, load_ruleset
from spark_jobs.bank_transactions import transforms as tr
from spark_jobs.common.quality import QualityEngine, QualityReport

pytestmark = pytest.mark.spark

RULES = REPO / "datasets" / "bank_transactions.dqdl"
SAMPLE = REPO / "sample_data" / "bank_transactions" / "1994-01-31.jsonl"
REAL_DAYS = Path(os.environ.get("BANK_REAL_DAYS",
                                "/work/shared/data/bank-berka/transactions/by-day"))
DAY_RULES = ("DataFreshness", "ColumnValues \"txn_date\"")  # per-day reference time
CHAIN = "CustomSql \"select count(*) from (select t.txn_date"
CODES = "CustomSql \"select count(*) from primary where (direction = 'credit'"
PARTNERS = "CustomSql \"select count(*) from primary where direction is not null"


IS_COMPLETE = tuple(f'IsComplete "{c}"' for c in ("trans_id", "account_id", "txn_date",
                                                  "direction", "amount", "balance"))
KEY = 'IsPrimaryKey "trans_id"'
NEXT_DAY = 'ColumnValues "txn_date" < now()'
PREVIOUS_DAY = 'DataFreshness "txn_date" <= 24 hours'
PREFIXES = (*IS_COMPLETE, KEY, CHAIN, CODES, PARTNERS, NEXT_DAY, PREVIOUS_DAY, "RowCount")


def day_end(day: str) -> dt.datetime:
    """The evaluation time of a partition (quality.freshness_reference: partition_end)."""
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)


def measure(spark, lines: list[str], day: str = "1994-01-31") -> QualityReport:
    frame = spark.createDataFrame([(v, i + 1) for i, v in enumerate(lines)],
                                  "value string, _line long")
    typed = tr.parse(frame).select(*tr.TYPED_COLUMNS)
    report, _ = QualityEngine(load_ruleset(RULES), day_end(day)).measure(typed)
    return report


def failed(report: QualityReport) -> set[str]:
    """The error rules that failed, each by the one prefix of PREFIXES its text starts with."""
    texts = [r.rule.text for r in report.results
             if r.rule.severity == "error" and r.outcome == "fail"]
    return {next(p for p in PREFIXES if t.startswith(p)) for t in texts}


def sample_lines() -> list[str]:
    return SAMPLE.read_text().splitlines()


# Real days measured here; every real day: `make calibrate` (bench/calibrate_rules.py). The
# sample days (1994-01-30, 1994-01-31: 35 negative balances, 24 penalty interests) are measured
# by test_the_sample_day_passes and the job tests.
REPRESENTATIVE = {
    "1993-01-01": "the first day: accounts opened, every chain starts at its deposit",
    "1993-01-16": "the quietest day: one line",
    "1993-09-30": "a month end with negative balances, penalty interest and a blank k_symbol",
    "1993-12-05": "23 blank (single space) k_symbols and a negative balance",
    "1994-02-28": "the busiest day (2061 lines): interest on every account, 22 penalties",
}


def _real_day_lines() -> list[tuple[Path, list[str]]]:
    if not REAL_DAYS.is_dir():
        pytest.skip(f"no real days in {REAL_DAYS}")
    files = sorted(REAL_DAYS.glob("*.jsonl"))
    assert len(files) == 454
    return [(path, path.read_text().splitlines()) for path in files]


def test_every_real_day_passes_row_count_against_its_history():
    """RowCount (deferred to the gate) on all 454 days, each with its 10 earlier days as the
    history: plain line counts, no Spark. Every line carries its file's day, which the two
    rules measured against each day's own end rely on."""
    days = _real_day_lines()
    (row_count,) = [r for r in load_ruleset(RULES).rules if r.rule_type == "RowCount"]
    counts = []
    for path, day_lines in days:
        assert all(json.loads(v)["date"] == path.stem for v in day_lines), path
        counts.append(len(day_lines))
    for i, count in enumerate(counts):
        history = [float(c) for c in reversed(counts[max(0, i - 10):i])]
        assert evaluate_threshold(row_count, count, history).passed, days[i][0]


def test_representative_real_days_pass(spark):
    """The error rules on the REPRESENTATIVE days measured at once (the rules that group,
    group by txn_date; ids unique across days imply unique per day); the two rules measured
    against a day's own end are left out (every line carries its file's day, checked above)."""
    lines = [v for path, day_lines in _real_day_lines() if path.stem in REPRESENTATIVE
             for v in day_lines]
    assert len(lines) == 4 + 1 + 1189 + 251 + 2061
    report = measure(spark, lines, "1994-03-30")
    outcomes = {r.rule.text[:60]: r.outcome for r in report.results
                if r.rule.severity == "error" and not r.rule.text.startswith(DAY_RULES)}
    assert outcomes.pop("RowCount > median(last(10)) * 0.05") == "deferred"
    assert set(outcomes.values()) == {"pass"}, outcomes


def test_the_sample_day_passes(spark):
    report = measure(spark, sample_lines())
    assert failed(report) == set()


def _edit(lines: list[str], index: int, **changes: object) -> list[str]:
    record = json.loads(lines[index], parse_float=Decimal)
    record.update(changes)
    edited = re.sub(r'"\\u0001([^"]*)\\u0001"', r"\1", json.dumps(
        {k: f"\u0001{v}\u0001" if isinstance(v, Decimal) else v for k, v in record.items()}))
    return [*lines[:index], edited, *lines[index + 1:]]


def _continued_index(lines: list[str]) -> int:
    """A line whose starting balance is another line's balance (not its day's first)."""
    records = [json.loads(v, parse_float=Decimal) for v in lines]
    for i, r in enumerate(records):
        start = r["balance"] + (-r["amount"] if r["type"] == "PRIJEM" else r["amount"])
        if any(o is not r and o["account_id"] == r["account_id"] and o["balance"] == start
               for o in records):
            return i
    raise AssertionError("no chained transaction in the sample")


def _first_index(lines: list[str], **fields: object) -> int:
    return next(i for i, v in enumerate(lines)
                if all(json.loads(v)[k] == x for k, x in fields.items()))


def _tamper_amount(lines: list[str]) -> list[str]:
    i = _continued_index(lines)
    return _edit(lines, i, amount=json.loads(lines[i], parse_float=Decimal)["amount"] + 100)


def _tamper_balance(lines: list[str]) -> list[str]:
    i = _continued_index(lines)
    return _edit(lines, i, balance=json.loads(lines[i], parse_float=Decimal)["balance"] - 1)


CORRUPTIONS: dict[str, tuple[Callable[[list[str]], list[str]], set[str]]] = {
    # The copy stopped mid-line: the last line is not JSON.
    "truncated": (lambda ls: [*ls[:-1], ls[-1][:40]],
                  {*IS_COMPLETE, KEY}),
    "doubled": (lambda ls: ls + ls, {KEY, CHAIN}),
    "tampered amount": (_tamper_amount, {CHAIN}),
    "tampered balance": (_tamper_balance, {CHAIN}),
    # A statement fee turned into a credit: its codes say debit (and its account's day, which
    # also has the month's interest, no longer chains).
    "flipped type": (lambda ls: _edit(ls, _first_index(ls, k_symbol="SLUZBY"), type="PRIJEM"),
                     {CODES, CHAIN}),
    # Interest credited "from" a partner account: only transfers have one.
    "partner on a non-transfer": (
        lambda ls: _edit(ls, _first_index(ls, k_symbol="UROK"), bank="AB", account=12345678),
        {PARTNERS}),
    "next day's file": (
        lambda ls: [v.replace('"1994-01-31"', '"1994-02-01"') for v in ls],
        {NEXT_DAY}),
    "previous day's file": (
        lambda ls: [v.replace('"1994-01-31"', '"1994-01-30"') for v in ls],
        {PREVIOUS_DAY}),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_fail(spark, name):
    corrupt, expected = CORRUPTIONS[name]
    assert failed(measure(spark, corrupt(sample_lines()))) == expected


def test_a_collapsed_day_fails_row_count():
    (rule,) = [r for r in load_ruleset(RULES).rules if r.rule_type == "RowCount"]
    history = [1960.0, 169.0, 160.0, 173.0, 189.0, 167.0, 189.0, 164.0, 169.0, 193.0]
    assert evaluate_threshold(rule, 60, history).passed  # a real quiet day
    assert not evaluate_threshold(rule, 8, history).passed
