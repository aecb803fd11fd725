"""bank_transactions transformations: pure DataFrame -> DataFrame (no I/O, no session).

Input lines are the raw JSON Lines text of one booking day (`value`, one JSON object a line,
with the Berka source's field names). Codes become the English labels of the source's
documentation (berka.pdf); a code it does not list is refused with a reason, never guessed.

Money stays decimal end to end: amounts and balances are parsed by `from_json` as DECIMAL
straight from the JSON text (never through a double), and a value with more than two decimals
is refused instead of rounded. Each line is parsed three times: once with every field as text
(to say what is wrong with a field) and once per money field as a decimal (the value).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs.common.outputs import GroupedOutput, LineOutput, Output, RunId
from spark_jobs.common.raw_job import other_day_reason

SOURCE_FIELDS = ("trans_id", "account_id", "date", "type", "operation", "amount", "balance",
                 "k_symbol", "bank", "account")
_CORRUPT = "_corrupt"
JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
_TEXT_SCHEMA = ", ".join(f"`{name}` STRING" for name in (*SOURCE_FIELDS, _CORRUPT))
# decimal(38,18): exact for any amount a bank books; a number with more than 20 whole digits
# does not parse (the line gets "... is out of range"). One parse per money field, so that a bad
# balance does not hide the amount (a value that does not parse voids its whole record).
MONEY_FIELDS = ("amount", "balance")
MONEY = "decimal(38,2)"  # typed money: the table's decimal(14,2) range is the framework's check

# berka.pdf, relation Transaction. The source also uses VYBER (cash withdrawal) as a type.
DIRECTIONS = {"PRIJEM": "credit", "VYDAJ": "debit", "VYBER": "cash_withdrawal"}
OPERATIONS = {
    "VYBER KARTOU": "credit card withdrawal",
    "VKLAD": "credit in cash",
    "PREVOD Z UCTU": "collection from another bank",
    "VYBER": "withdrawal in cash",
    "PREVOD NA UCET": "remittance to another bank",
}
PURPOSES = {
    "POJISTNE": "insurance payment",
    "SLUZBY": "payment for statement",
    "UROK": "interest credited",
    "SANKC. UROK": "sanction interest if negative balance",
    "SIPO": "household",
    "DUCHOD": "old-age pension",
    "UVER": "loan payment",
}
CREDIT = "credit"
# The source rounds interest (and a few balances) to one decimal: within an account's day,
# consecutive balances drift from balance + amount by up to 0.1 (149 of the 7,409 account-days
# with several transactions in the 454 real days; none by more).
CHAIN_TOLERANCE = Decimal("0.1")

TYPED_COLUMNS = ("trans_id", "account_id", "txn_date", "direction", "operation", "purpose",
                 "amount", "signed_amount", "balance", "partner_bank", "partner_account")
TRANSACTION_COLUMNS = (*TYPED_COLUMNS, "run_id")
DAILY_KEYS = ("txn_date", "account_id")
SUMMARY_COLUMNS = (*DAILY_KEYS, "transactions", "credits", "debits", "net", "closing_balance",
                   "run_id")
NULL_COUNT_COLUMNS = ("trans_id", "account_id", "txn_date", "direction", "operation", "purpose",
                      "amount", "balance", "partner_bank", "partner_account")
RANGE_COLUMNS = ("trans_id", "txn_date", "amount", "balance")

NOT_AN_OBJECT = "the line is not a JSON object"
_INTEGER = r"^[0-9]{1,18}$"
_NUMBER = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_BANK = r"^[A-Z]{2}$"  # berka.pdf: "each bank has unique two-letter code"
_ACCOUNT = r"^[0-9]{1,18}$"


def _field(name: str) -> Column:
    return F.col(f"_text.`{name}`")


def _blank(column: Column) -> Column:
    """NULL or only spaces (the source writes an unknown k_symbol as " ")."""
    return column.isNull() | (F.trim(column) == "")


def _quoted(name: str) -> Column:
    """`name 'text'` for reasons (the text cut at 60 characters)."""
    text = _field(name)
    shown = F.when(F.length(text) > 60, F.concat(F.substring(text, 1, 60), F.lit("...")))
    return F.concat(F.lit(f"{name} '"), F.coalesce(shown, text), F.lit("'"))


def _label(code: Column, labels: Mapping[str, str]) -> Column:
    """The label of a code; NULL for a blank or unknown code."""
    chain = None
    for key, label in labels.items():
        chain = (F.when(code == key, label) if chain is None
                 else chain.when(code == key, label))
    assert chain is not None
    return chain


def _money(name: str) -> Column:
    """The exact value of a money field, NULL unless it is a plain number with at most two
    decimals."""
    exact = F.col(f"_{name}.{name}")
    plain = _field(name).rlike(_NUMBER) & (exact == F.round(exact, 2))
    return F.when(plain, exact.cast(MONEY))


def _typed() -> list[Column]:
    direction = _label(_field("type"), DIRECTIONS)
    amount = _money("amount")
    account = _field("account")
    return [
        F.when(_field("trans_id").rlike(_INTEGER), _field("trans_id").cast("bigint"))
        .alias("trans_id"),
        F.when(_field("account_id").rlike(_INTEGER), _field("account_id").cast("bigint"))
        .alias("account_id"),
        F.when(_field("date").rlike(_DATE), F.try_to_date(_field("date"), "yyyy-MM-dd"))
        .alias("txn_date"),
        direction.alias("direction"),
        _label(_field("operation"), OPERATIONS).alias("operation"),
        _label(_field("k_symbol"), PURPOSES).alias("purpose"),
        F.when(amount > 0, amount).alias("amount"),
        F.when(amount > 0, F.when(direction == CREDIT, amount).otherwise(-amount))
        .alias("signed_amount"),
        _money("balance").alias("balance"),
        F.when(_field("bank").rlike(_BANK), _field("bank")).alias("partner_bank"),
        # Account 0 is how the source says "no partner" (cash and card withdrawals).
        F.when(account.rlike(_ACCOUNT) & (account != "0"), account).alias("partner_account"),
    ]


def _required_reasons(name: str, pattern: str, what: str) -> list[tuple[Column, Column]]:
    text = _field(name)
    return [(text.isNull(), F.lit(f"{name} is missing")),
            (~text.rlike(pattern), F.concat(_quoted(name), F.lit(f" is not {what}")))]


def _code_reason(name: str, labels: Mapping[str, str], what: str) -> tuple[Column, Column]:
    text = _field(name)
    known = text.isin(*labels)
    return (~_blank(text) & ~known, F.concat(_quoted(name), F.lit(f" is not {what}")))


def _money_reasons(name: str, positive: bool) -> list[tuple[Column, Column]]:
    text, exact = _field(name), F.col(f"_{name}.{name}")
    reasons = [
        (text.isNull(), F.lit(f"{name} is missing")),
        (~text.rlike(_NUMBER), F.concat(_quoted(name), F.lit(" is not a number"))),
        (exact.isNull(), F.concat(_quoted(name), F.lit(" is out of range"))),
        (exact != F.round(exact, 2), F.concat(_quoted(name), F.lit(" has more than 2 decimals"))),
    ]
    if positive:
        reasons.append((exact <= 0, F.concat(_quoted(name), F.lit(" is not positive"))))
    return reasons


def _reasons() -> list[tuple[Column, Column]]:
    bank, account = _field("bank"), _field("account")
    return [
        (F.col("_text").isNull() | _field(_CORRUPT).isNotNull(), F.lit(NOT_AN_OBJECT)),
        *_required_reasons("trans_id", _INTEGER, "an integer id"),
        *_required_reasons("account_id", _INTEGER, "an integer id"),
        *_required_reasons("date", _DATE, "a YYYY-MM-DD date"),
        (F.col("txn_date").isNull(), F.concat(_quoted("date"), F.lit(" is not a calendar date"))),
        (_field("type").isNull(), F.lit("type is missing")),
        (F.col("direction").isNull(),
         F.concat(_quoted("type"), F.lit(" is not PRIJEM, VYDAJ or VYBER"))),
        _code_reason("operation", OPERATIONS, "a known operation code"),
        *_money_reasons("amount", positive=True),
        *_money_reasons("balance", positive=False),
        _code_reason("k_symbol", PURPOSES, "a known k_symbol code"),
        (bank.isNotNull() & ~bank.rlike(_BANK),
         F.concat(_quoted("bank"), F.lit(" is not a two-letter bank code"))),
        (account.isNotNull() & ~account.rlike(_ACCOUNT),
         F.concat(_quoted("account"), F.lit(" is not an account number"))),
    ]


def _first(checks: list[tuple[Column, Column]]) -> Column:
    (condition, reason), *rest = checks
    chain = F.when(condition, reason)
    for condition, reason in rest:
        chain = chain.when(condition, reason)
    return chain


def parse(lines: DataFrame) -> DataFrame:
    """Adds TYPED_COLUMNS and `_reason` (NULL: the line parsed) to `value`/`_line` lines."""
    parsed = lines.select(
        "*",
        F.from_json("value", _TEXT_SCHEMA, JSON_OPTIONS).alias("_text"),
        *[F.from_json("value", f"`{name}` DECIMAL(38,18)", JSON_OPTIONS).alias(f"_{name}")
          for name in MONEY_FIELDS],
    )
    typed = parsed.select("*", *_typed())
    return typed.select(*lines.columns, *TYPED_COLUMNS, _first(_reasons()).alias("_reason"))


def partition_reason(partition: Column) -> Column:
    """Transactions of another day than its partition (a date column): the load replaces
    the days its rows carry, so such a row would replace a day this run does not own."""
    return other_day_reason("txn_date", "date", partition)


def bank_transactions(valid: DataFrame, run_id: RunId) -> DataFrame:
    """Accepted transactions in the column order and types of analytics.bank_transactions."""
    money = {"amount", "signed_amount", "balance"}
    return valid.select(
        *[F.col(c).cast("decimal(14,2)").alias(c) if c in money else F.col(c)
          for c in TYPED_COLUMNS],
        F.lit(run_id).alias("run_id"),
    )


def chain_ends(valid: DataFrame) -> DataFrame:
    """(txn_date, account_id, closing_balance): the balance after each account's last
    transaction of the day.

    trans_id does not order an account's day (in the real data the balances of consecutive
    trans_ids do not follow from the amounts on 5,911 of 8,176 such pairs; an account's opening
    deposit often has a higher trans_id than the day's later payments), so the last
    transaction is the one whose balance no other transaction of the day starts from
    (balance - signed_amount, within CHAIN_TOLERANCE). Every real account-day has exactly one
    such transaction except one whose net is zero (a cycle); when there is not exactly one,
    the highest trans_id among them (or among all, for a cycle) decides.
    """
    rows = valid.select(*DAILY_KEYS, "trans_id", "balance", "signed_amount")
    starts = rows.select(*DAILY_KEYS, F.col("trans_id").alias("_next_id"),
                         (F.col("balance") - F.col("signed_amount")).alias("_start"))
    continued = rows.alias("t").join(
        starts.alias("s"),
        (F.col("t.txn_date") == F.col("s.txn_date"))
        & (F.col("t.account_id") == F.col("s.account_id"))
        & (F.col("t.trans_id") != F.col("s._next_id"))
        & (F.abs(F.col("s._start") - F.col("t.balance")) <= F.lit(CHAIN_TOLERANCE)),
        "left_semi",
    ).select(*DAILY_KEYS, "trans_id", F.lit(True).alias("_continued"))
    ranked = rows.join(continued, [*DAILY_KEYS, "trans_id"], "left").withColumn(
        "_rank", F.row_number().over(Window.partitionBy(*DAILY_KEYS).orderBy(
            F.col("_continued").isNotNull().asc(), F.col("trans_id").desc())))
    return ranked.where(F.col("_rank") == 1).select(
        *DAILY_KEYS, F.col("balance").alias("closing_balance"))


def daily_totals(valid: DataFrame) -> DataFrame:
    """One row per (txn_date, account_id): the SUMMARY_COLUMNS but run_id, exact (not yet cast
    to the table's types)."""
    credit = F.col("direction") == CREDIT
    totals = valid.groupBy(*DAILY_KEYS).agg(
        F.count(F.lit(1)).alias("transactions"),
        F.coalesce(F.sum(F.when(credit, F.col("amount"))), F.lit(0)).alias("credits"),
        F.coalesce(F.sum(F.when(~credit, F.col("amount"))), F.lit(0)).alias("debits"),
    )
    return totals.join(chain_ends(valid), list(DAILY_KEYS)).select(
        *DAILY_KEYS, "transactions", "credits", "debits",
        (F.col("credits") - F.col("debits")).alias("net"), "closing_balance")


def account_daily_summary(valid: DataFrame, run_id: RunId) -> DataFrame:
    """daily_totals in the column order and types of analytics.account_daily_summary (the
    framework has quarantined the lines of any account-day whose totals would not fit)."""
    return daily_totals(valid).select(
        *DAILY_KEYS,
        F.col("transactions").cast("bigint").alias("transactions"),
        *[F.col(c).cast("decimal(18,2)").alias(c) for c in ("credits", "debits", "net")],
        F.col("closing_balance").cast("decimal(14,2)").alias("closing_balance"),
        F.lit(run_id).alias("run_id"),
    )


OUTPUTS: dict[str, Output] = {
    "bank_transactions": LineOutput(bank_transactions),
    "account_daily_summary": GroupedOutput(account_daily_summary, keys=DAILY_KEYS,
                                           totals=daily_totals, day="txn_date"),
}
