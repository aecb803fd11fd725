"""bank_reference's pure transforms on tiny frames: the four reference files' lines as the
framework hands them to parse() (header dropped, `;`-separated), their typed columns and
reasons; birth_number decoding (men, women, leap days, dates not in the calendar), district.asc's
'?' cells, hostile values; and the shared job's --table dispatch."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_jobs.bank_reference import main as job
from spark_jobs.bank_reference import transforms as tr
from spark_jobs.common import entry

pytestmark = pytest.mark.spark


def day(text: str) -> Column:
    """A partition day as partition_reason gets it: a date column."""
    return F.to_date(F.lit(text))


def parsed(spark, table: tr.Table, lines: list[str]) -> list[dict]:
    frame = spark.createDataFrame([(v, i + 1) for i, v in enumerate(lines)],
                                  "value string, _line long")
    columns = [c for c in table.typed_columns if c != tr.SNAPSHOT]
    rows = table.parse(frame).orderBy("_line").collect()
    return [{**{c: r[c] for c in columns}, "_reason": r["_reason"]} for r in rows]


def test_accounts_label_the_frequency_and_read_yymmdd_dates(spark):
    rows = parsed(spark, tr.ACCOUNTS, [
        '576;55;"POPLATEK MESICNE";930101',
        '3818;74;"POPLATEK TYDNE";971229',
        '1;1;"POPLATEK PO OBRATU";960229',   # a leap day
        '2;1;"POPLATEK PO OBRATU";970229',   # not a leap year
        '3;1;"POPLATEK ROCNE";930101',       # a frequency berka.pdf does not list
        '4;x1;"POPLATEK MESICNE";930101',
        '5;1;"POPLATEK MESICNE";9301',
        '6;1;"POPLATEK MESICNE"',
        '7;1;"POPLATEK MESICNE";930101;extra',
        ' 8 ; 2 ;"POPLATEK MESICNE"; 930102 ',  # spaces around fields
    ])
    assert rows[0] == {"account_id": 576, "district_id": 55, "statement_frequency": "monthly",
                       "opened_date": dt.date(1993, 1, 1), "_reason": None}
    assert rows[1]["statement_frequency"] == "weekly"
    assert rows[1]["opened_date"] == dt.date(1997, 12, 29)
    assert (rows[2]["statement_frequency"], rows[2]["opened_date"], rows[2]["_reason"]) == (
        "after transaction", dt.date(1996, 2, 29), None)
    assert rows[3]["_reason"] == "date '970229' is not a calendar date"
    assert rows[4]["_reason"] == ("frequency 'POPLATEK ROCNE' is not a known statement frequency "
                                  "(POPLATEK MESICNE, POPLATEK TYDNE, POPLATEK PO OBRATU)")
    assert rows[5]["_reason"] == "district_id 'x1' is not a whole number"
    assert rows[6]["_reason"] == "date '9301' is not a YYMMDD date"
    assert rows[7]["_reason"] == "date is missing"
    assert rows[8]["_reason"] == "line has more fields than the header's 4"
    assert rows[9]["_reason"] is None and rows[9]["account_id"] == 8


@pytest.mark.parametrize(("birth_number", "birth_date", "sex", "reason"), [
    ("706213", dt.date(1970, 12, 13), "female", None),   # the real first client
    ("450204", dt.date(1945, 2, 4), "male", None),
    ("110820", dt.date(1911, 8, 20), "male", None),       # the oldest real client
    ("875927", dt.date(1987, 9, 27), "female", None),     # the youngest
    ("600229", dt.date(1960, 2, 29), "male", None),       # a leap day, a man
    ("605229", dt.date(1960, 2, 29), "female", None),     # the same day, a woman
    ("610229", None, None, "a birth date"),               # 1961 is not a leap year
    ("615229", None, None, "a birth date"),
    ("701301", None, None, "a birth date"),               # month 13
    ("706301", None, None, "a birth date"),               # month 63 (13 for a woman)
    ("705001", None, None, "a birth date"),               # month 50: 0 for a woman
    ("700001", None, None, "a birth date"),               # month 0
    ("700431", None, None, "a birth date"),               # April has 30 days
    ("70123", None, None, "is not a YYMMDD date"),
    ("7O1213", None, None, "is not a YYMMDD date"),       # a letter O
    ("-70121", None, None, "is not a YYMMDD date"),
])
def test_birth_number_gives_birth_date_and_sex(spark, birth_number, birth_date, sex, reason):
    [row] = parsed(spark, tr.CLIENTS, [f'1;"{birth_number}";18'])
    assert (row["birth_date"], row["sex"]) == (birth_date, sex)
    if reason is None:
        assert row["_reason"] is None and row["client_id"] == 1 and row["district_id"] == 18
    else:
        assert row["_reason"].startswith(f"birth_number '{birth_number}'")
        assert reason in row["_reason"]


def test_dispositions_label_owner_and_user(spark):
    rows = parsed(spark, tr.DISPOSITIONS, ['1;1;1;"OWNER"', '3;3;2;"DISPONENT"',
                                           '4;4;3;"owner"', '5;;3;"OWNER"'])
    assert [r["disposition_type"] for r in rows[:2]] == ["owner", "user"]
    assert rows[1] == {"disp_id": 3, "client_id": 3, "account_id": 2,
                       "disposition_type": "user", "_reason": None}
    assert rows[2]["_reason"] == ("type 'owner' is not a known disposition type (OWNER, "
                                  "DISPONENT)")
    assert rows[3]["_reason"] == "client_id is missing"


PRAGUE = '1;"Hl.m. Praha";"Prague";1204953;0;0;0;1;1;100.0;12541;0.29;0.43;167;85677;99107'
JESENIK = '69;"Jesenik";"north Moravia";42821;4;13;5;1;3;48.4;8173;?;7.01;124;?;1358'


def test_districts_name_the_demographics_and_read_question_marks_as_null(spark):
    prague, jesenik = parsed(spark, tr.DISTRICTS, [PRAGUE, JESENIK])
    assert prague == {
        "district_id": 1, "name": "Hl.m. Praha", "region": "Prague", "inhabitants": 1204953,
        "municipalities_under_500": 0, "municipalities_500_1999": 0,
        "municipalities_2000_9999": 0, "municipalities_over_10000": 1, "cities": 1,
        "urban_inhabitants_ratio": Decimal("100.0"), "average_salary": 12541,
        "unemployment_rate_1995": Decimal("0.29"), "unemployment_rate_1996": Decimal("0.43"),
        "entrepreneurs_per_1000": 167, "crimes_1995": 85677, "crimes_1996": 99107,
        "_reason": None}
    assert jesenik["unemployment_rate_1995"] is None and jesenik["crimes_1995"] is None
    assert jesenik["unemployment_rate_1996"] == Decimal("7.01") and jesenik["_reason"] is None


@pytest.mark.parametrize(("change", "reason"), [
    (("0.29", "0.295"), "A12 '0.295' has more than 2 decimal(s)"),
    (("100.0", "100.05"), "A10 '100.05' has more than 1 decimal(s)"),
    (("12541", "12 541"), "A11 '12 541' is not a whole number"),
    (("12541", "-12541"), "A11 '-12541' is not a whole number"),
    (("0.43", "n/a"), "A13 'n/a' is not a number"),
    (("0.43", ""), "A13 is missing"),
    ((";99107", ";1e5"), "A16 '1e5' is not a whole number"),
    (('"Prague"', '""'), "A3 is missing"),
    (("1204953", "?"), None),  # '?' is an unknown figure in any demographic column
])
def test_a_bad_district_figure_is_refused_with_its_field(spark, change, reason):
    [row] = parsed(spark, tr.DISTRICTS, [PRAGUE.replace(*change, 1)])
    assert row["_reason"] == reason


def test_hostile_values_never_break_the_parse(spark):
    huge = "x" * 100_000
    rows = parsed(spark, tr.DISTRICTS, [
        f'2;"{huge}";"central Bohemia";88884;80;26;6;2;5;46.7;8507;1.67;1.85;132;2159;2674',
        '3;"Be\x00roun";"central Bohemia";75232;55;26;4;1;5;41.7;8980;1.95;2.21;111;2824;2813',
        '4;"Kladno; city";"central Bohemia";149893;63;29;6;2;6;67.4;9753;4.64;5.44;100;5244;5892',
        f'{"9" * 40};"X";"Y";1;1;1;1;1;1;1.0;1;1.00;1.00;1;1;1',
        '"5;"Unclosed;"central Bohemia"',
    ])
    # Too long and NUL are the framework's checks against the table (per line): parsed here.
    assert rows[0]["name"] == huge and rows[0]["_reason"] is None
    assert rows[1]["name"] == "Be\x00roun"
    assert rows[2]["name"] == "Kladno; city" and rows[2]["_reason"] is None  # quoted ';'
    assert rows[3]["_reason"] == f"A1 '{'9' * 40}' is not a whole number"
    assert rows[4]["_reason"] is not None


def test_every_table_declares_its_warehouse_columns_in_order(spark):
    """The columns build() writes are the typed ones, snapshot_date and run_id, in the order of
    warehouse/migrations/V005 (the framework checks the types at start)."""
    for table in tr.TABLES.values():
        frame = spark.createDataFrame([], "value string, _line long")
        lines = table.parse(frame).withColumn(tr.SNAPSHOT, F.lit("1998-12-31").cast("date"))
        built = table.build(lines, "r1")
        assert tuple(built.columns) == table.table_columns
        assert table.table_columns[-2:] == (tr.SNAPSHOT, "run_id")


def test_a_snapshot_holds_nothing_after_its_date(spark):
    frame = spark.createDataFrame([(dt.date(1998, 12, 31),), (dt.date(1999, 1, 1),), (None,)],
                                  "opened_date date")
    reasons = [r[0] for r in
               frame.select(tr.ACCOUNTS.partition_reason(day("1998-12-31"))).collect()]
    assert reasons == [None, "account opened 1999-01-01 is after the snapshot date 1998-12-31",
                       None]
    assert tr.DISPOSITIONS.partition_reason(day("1998-12-31")) is not None  # a NULL column


@pytest.mark.parametrize(("argv", "table", "rest"), [
    (["--table", "client", "--run-id", "r"], "client", ["--run-id", "r"]),
    (["--run-id", "r", "--table=disp"], "disp", ["--run-id", "r"]),
    (["--run-id", "r"], None, ["--run-id", "r"]),
    (["--table", "client", "--table", "disp"], None, []),
    (["--table"], "", []),
])
def test_the_table_argument_is_taken_out_of_the_contracts(argv, table, rest):
    assert job.split_table(argv) == (table, rest)


def test_an_unknown_table_is_refused_before_spark_starts(capsys):
    assert job.main(["--table", "card", "--run-id", "r"]) == entry.EXIT_REFUSED
    assert ("JOB ERROR: bad job arguments: --table must be given once, as one of account, "
            "client, disp, district (got 'card')") in capsys.readouterr().err
