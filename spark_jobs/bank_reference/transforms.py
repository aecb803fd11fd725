"""bank_reference transformations: pure DataFrame -> DataFrame (no I/O, no session).

The Berka bank's four reference files (berka.pdf: relations account, client, disposition and
demographic data), each delivered whole as one snapshot: `;`-separated, strings quoted,
numbers and YYMMDD dates bare. Each file is one `Table` here (its header, parse, outputs),
and one catalog dataset (datasets/bank_<table>s.yaml) runs it through the shared job
(spark_jobs/bank_reference/main.py, `--table <source>`).

A snapshot has no date in its lines: its date is the run's partition, which the framework adds
to every parsed line as `snapshot_date` (RawJob.partition_column). Codes become the English
labels of berka.pdf; a code it does not list is refused with a reason, never guessed. YYMMDD
dates are 19YY (the source covers 1911-1998); a date that is not in the calendar is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.common.outputs import LineOutput, Output, RunId

SNAPSHOT = "snapshot_date"  # RawJob.partition_column: the run's partition on every line
DELIMITER = ";"
# RFC 4180 quoting with the source's `;` separator.
CSV_OPTIONS = {"sep": DELIMITER, "quote": '"', "escape": '"', "mode": "PERMISSIVE"}
EXTRA_FIELD = "_extra"  # the text of a field after the header's last, if a line has one
SHOWN = 60  # characters of a bad value a reason repeats
UNKNOWN = "?"  # how district.asc writes a figure it does not know
_WHOLE = r"^[0-9]{1,18}$"
_YYMMDD = r"^[0-9]{6}$"

# berka.pdf, relation account: "frequency of issuance of statements".
FREQUENCIES = {"POPLATEK MESICNE": "monthly", "POPLATEK TYDNE": "weekly",
               "POPLATEK PO OBRATU": "after transaction"}
# berka.pdf, relation disposition: "type of disposition (owner/user)"; the file says DISPONENT.
DISPOSITION_TYPES = {"OWNER": "owner", "DISPONENT": "user"}
FEMALE_MONTH_OFFSET = 50  # berka.pdf: birth_number is YYMM+50DD for women

Check = tuple[Column, Column]


def _raw(name: str) -> Column:
    """A raw field's text, trimmed; NULL when blank."""
    trimmed = F.trim(F.col(f"raw_{name}"))
    return F.when(trimmed != "", trimmed)


def _shown(name: str, what: str) -> Column:
    """"<name> '<its text, cut to SHOWN characters>' <what>"."""
    text = _raw(name)
    cut = F.when(F.length(text) > SHOWN, F.concat(F.substring(text, 1, SHOWN), F.lit("...")))
    return F.concat(F.lit(f"{name} '"), F.coalesce(cut, text), F.lit(f"' {what}"))


def _missing(name: str) -> Check:
    return (_raw(name).isNull(), F.lit(f"{name} is missing"))


def _whole(name: str) -> Column:
    """A non-negative whole number as BIGINT (the table's own range is the framework's
    check); NULL when the text is not one."""
    return F.when(_raw(name).rlike(_WHOLE), _raw(name).cast("bigint"))


def _whole_checks(name: str) -> list[Check]:
    return [_missing(name),
            (~_raw(name).rlike(_WHOLE), _shown(name, "is not a whole number"))]


def _label(name: str, labels: Mapping[str, str]) -> Column:
    """The English label of a code; NULL for a code `labels` does not list."""
    chain = F.when(F.lit(False), F.lit(None).cast("string"))
    for code, label in labels.items():
        chain = chain.when(_raw(name) == code, label)
    return chain


def _label_checks(name: str, labels: Mapping[str, str], what: str) -> list[Check]:
    return [_missing(name),
            (~_raw(name).isin(*labels), _shown(name, f"is not {what} ({', '.join(labels)})"))]


def yymmdd_date(text: Column, month: Column | None = None) -> Column:
    """The 19YY date of a YYMMDD text (with `month` instead of MM when given); NULL when the
    text is not six digits or the date is not in the calendar (1997-02-29, month 13)."""
    month = month if month is not None else F.substring(text, 3, 2).try_cast("int")
    iso = F.concat(F.lit("19"), F.substring(text, 1, 2), F.lit("-"),
                   F.lpad(month.cast("string"), 2, "0"), F.lit("-"), F.substring(text, 5, 2))
    return F.when(text.rlike(_YYMMDD) & month.between(1, 12),
                  F.try_to_date(iso, "yyyy-MM-dd"))


def _date_checks(name: str, date: Column, what: str) -> list[Check]:
    return [_missing(name),
            (~_raw(name).rlike(_YYMMDD), _shown(name, "is not a YYMMDD date")),
            (date.isNull(), _shown(name, f"is not {what}"))]


def _first(checks: list[Check]) -> Column:
    """The reason of the first check that holds; NULL when none does."""
    (condition, reason), *rest = checks
    chain = F.when(condition, reason)
    for condition, reason in rest:
        chain = chain.when(condition, reason)
    return chain


def after_snapshot_reason(column: str, label: str, partition: Column) -> Column:
    """"<label> <date> is after the snapshot date <partition>", NULL when it is not: a
    snapshot taken on a day (`partition`, a date column) cannot hold what happened after it."""
    day = F.col(column)
    return F.when(day > partition,
                  F.concat(F.lit(f"{label} "), day.cast("string"),
                           F.lit(" is after the snapshot date "), partition.cast("string")))


def no_partition_reason(partition: Column) -> Column:
    """A file with no date of its own in its lines: every line belongs to the snapshot."""
    return F.lit(None).cast("string")


@dataclass(frozen=True)
class Table:
    """One reference file and its table: what the shared job's RawJob is built from."""

    source: str  # the --table argument: the file's name in the source (account, client...)
    dataset: str  # the catalog dataset, and the warehouse table it loads
    header: tuple[str, ...]
    typed: Callable[[], list[Column]]  # the typed columns, from the raw_<field> columns
    checks: Callable[[], list[Check]]  # (refused, why), in the order the reasons win
    typed_columns: tuple[str, ...]  # what the DQDL rules see (snapshot_date added)
    partition_reason: Callable[[Column], Column]
    range_columns: tuple[str, ...] = ()
    # the warehouse type of each typed column parsed wider (ids as BIGINT, figures as exact
    # decimals): build() casts, after the framework refused every value out of its range
    casts: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def null_count_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.typed_columns if c != SNAPSHOT)

    @property
    def table_columns(self) -> tuple[str, ...]:
        return (*self.null_count_columns, SNAPSHOT, "run_id")

    def split_fields(self, lines: DataFrame) -> DataFrame:
        """Adds the raw fields (raw_<header name>, text) and `_extra`, parsed from `value`."""
        raw = (*[f"raw_{name}" for name in self.header], EXTRA_FIELD)
        ddl = ", ".join(f"`{c}` STRING" for c in raw)
        fields = F.from_csv(F.col("value"), ddl, CSV_OPTIONS)
        return lines.withColumn("_fields", fields).select(
            "*", *[F.col(f"_fields.`{c}`").alias(c) for c in raw]).drop("_fields")

    def parse(self, lines: DataFrame) -> DataFrame:
        """Adds the typed columns and `_reason` (NULL: the line parsed) to `value`/`_line`
        lines (and whatever else they carry)."""
        typed = self.split_fields(lines).select("*", *self.typed())
        more = (F.col(EXTRA_FIELD).isNotNull(),
                F.lit(f"line has more fields than the header's {len(self.header)}"))
        columns = [c for c in self.typed_columns if c != SNAPSHOT]
        return typed.select(*lines.columns, *columns,
                            _first([more, *self.checks()]).alias("_reason"))

    def build(self, valid: DataFrame, run_id: RunId) -> DataFrame:
        """Accepted lines in the column order and types of the warehouse table (the framework
        has quarantined every line whose value the table would refuse)."""
        return valid.select(
            *[F.col(c).cast(self.casts[c]).alias(c) if c in self.casts else F.col(c)
              for c in self.table_columns if c != "run_id"],
            F.lit(run_id).alias("run_id"))

    @property
    def outputs(self) -> dict[str, Output]:
        return {self.dataset: LineOutput(self.build)}


# -- account.asc ----------------------------------------------------------------------------


def _account_typed() -> list[Column]:
    return [_whole("account_id").alias("account_id"),
            _whole("district_id").alias("district_id"),
            _label("frequency", FREQUENCIES).alias("statement_frequency"),
            yymmdd_date(_raw("date")).alias("opened_date")]


def _account_checks() -> list[Check]:
    return [*_whole_checks("account_id"), *_whole_checks("district_id"),
            *_label_checks("frequency", FREQUENCIES, "a known statement frequency"),
            *_date_checks("date", F.col("opened_date"), "a calendar date")]


ACCOUNTS = Table(
    source="account", dataset="bank_accounts",
    header=("account_id", "district_id", "frequency", "date"),
    typed=_account_typed, checks=_account_checks,
    typed_columns=("account_id", "district_id", "statement_frequency", "opened_date",
                   SNAPSHOT),
    partition_reason=lambda p: after_snapshot_reason("opened_date", "account opened", p),
    range_columns=("account_id", "district_id", "opened_date"),
    casts={"district_id": "int"},
)


# -- client.asc -----------------------------------------------------------------------------


def birth_month(birth_number: Column) -> Column:
    """The month of a birth_number (MM, or MM-50 for women)."""
    month = F.substring(birth_number, 3, 2).try_cast("int")
    return F.when(month > FEMALE_MONTH_OFFSET, month - FEMALE_MONTH_OFFSET).otherwise(month)


def birth_sex(birth_number: Column) -> Column:
    """female when the month is over 50 (berka.pdf), else male; NULL for a text that is not
    six digits."""
    month = F.substring(birth_number, 3, 2).try_cast("int")
    return F.when(birth_number.rlike(_YYMMDD),
                  F.when(month > FEMALE_MONTH_OFFSET, "female").otherwise("male"))


def _client_typed() -> list[Column]:
    number = _raw("birth_number")
    birth = yymmdd_date(number, F.when(number.rlike(_YYMMDD), birth_month(number)))
    return [_whole("client_id").alias("client_id"),
            birth.alias("birth_date"),
            F.when(birth.isNotNull(), birth_sex(number)).alias("sex"),
            _whole("district_id").alias("district_id")]


def _client_checks() -> list[Check]:
    return [*_whole_checks("client_id"),
            *_date_checks("birth_number", F.col("birth_date"),
                          "a birth date (YYMMDD, month + 50 for women)"),
            *_whole_checks("district_id")]


CLIENTS = Table(
    source="client", dataset="bank_clients",
    header=("client_id", "birth_number", "district_id"),
    typed=_client_typed, checks=_client_checks,
    typed_columns=("client_id", "birth_date", "sex", "district_id", SNAPSHOT),
    partition_reason=lambda p: after_snapshot_reason("birth_date", "client born", p),
    range_columns=("client_id", "birth_date", "district_id"),
    casts={"district_id": "int"},
)


# -- disp.asc -------------------------------------------------------------------------------


def _disp_typed() -> list[Column]:
    return [_whole("disp_id").alias("disp_id"), _whole("client_id").alias("client_id"),
            _whole("account_id").alias("account_id"),
            _label("type", DISPOSITION_TYPES).alias("disposition_type")]


def _disp_checks() -> list[Check]:
    return [*_whole_checks("disp_id"), *_whole_checks("client_id"),
            *_whole_checks("account_id"),
            *_label_checks("type", DISPOSITION_TYPES, "a known disposition type")]


DISPOSITIONS = Table(
    source="disp", dataset="bank_dispositions",
    header=("disp_id", "client_id", "account_id", "type"),
    typed=_disp_typed, checks=_disp_checks,
    typed_columns=("disp_id", "client_id", "account_id", "disposition_type", SNAPSHOT),
    partition_reason=no_partition_reason,
    range_columns=("disp_id", "client_id", "account_id"),
)


# -- district.asc ---------------------------------------------------------------------------

# berka.pdf, relation demographic data: A4-A16, each a count or a figure with decimals (the
# scale the table keeps: a value with more decimals is refused, never rounded).
DEMOGRAPHICS: dict[str, tuple[str, int]] = {
    "A4": ("inhabitants", 0),
    "A5": ("municipalities_under_500", 0),
    "A6": ("municipalities_500_1999", 0),
    "A7": ("municipalities_2000_9999", 0),
    "A8": ("municipalities_over_10000", 0),
    "A9": ("cities", 0),
    "A10": ("urban_inhabitants_ratio", 1),
    "A11": ("average_salary", 0),
    "A12": ("unemployment_rate_1995", 2),
    "A13": ("unemployment_rate_1996", 2),
    "A14": ("entrepreneurs_per_1000", 0),
    "A15": ("crimes_1995", 0),
    "A16": ("crimes_1996", 0),
}


def _figure(field: str, scale: int) -> Column:
    """A demographic figure: NULL for '?', else the exact number (BIGINT, or a decimal with
    `scale` decimals); NULL for a text that is neither (the check says why)."""
    text = _raw(field)
    if scale == 0:
        return F.when(text.rlike(_WHOLE), text.cast("bigint"))
    pattern = rf"^[0-9]{{1,18}}(\.[0-9]{{1,{scale}}})?$"
    return F.when(text.rlike(pattern), text.cast(f"decimal(38,{scale})"))


def _figure_checks(field: str, scale: int) -> list[Check]:
    text = _raw(field)
    known = text != UNKNOWN
    checks = [_missing(field)]
    if scale:
        checks.append((known & text.rlike(rf"^[0-9]+\.[0-9]{{{scale + 1},}}$"),
                       _shown(field, f"has more than {scale} decimal(s)")))
    checks.append((known & _figure(field, scale).isNull(),
                   _shown(field, "is not a number" if scale else "is not a whole number")))
    return checks


def _district_typed() -> list[Column]:
    return [_whole("A1").alias("district_id"), _raw("A2").alias("name"),
            _raw("A3").alias("region"),
            *[F.when(_raw(field) != UNKNOWN, _figure(field, scale)).alias(name)
              for field, (name, scale) in DEMOGRAPHICS.items()]]


def _district_checks() -> list[Check]:
    return [*_whole_checks("A1"), _missing("A2"), _missing("A3"),
            *[check for field, (_, scale) in DEMOGRAPHICS.items()
              for check in _figure_checks(field, scale)]]


DISTRICTS = Table(
    source="district", dataset="bank_districts",
    header=tuple(f"A{i}" for i in range(1, 17)),
    typed=_district_typed, checks=_district_checks,
    typed_columns=("district_id", "name", "region",
                   *[name for name, _ in DEMOGRAPHICS.values()], SNAPSHOT),
    partition_reason=no_partition_reason,
    range_columns=("district_id", "inhabitants", "average_salary"),
    casts={"district_id": "int", **{name: f"decimal(5,{scale})" if scale else "int"
                                    for name, scale in DEMOGRAPHICS.values()}},
)

TABLES: dict[str, Table] = {t.source: t for t in (ACCOUNTS, CLIENTS, DISPOSITIONS, DISTRICTS)}
