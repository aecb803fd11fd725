"""The bank_reference DQDL rules (datasets/bank_{accounts,clients,dispositions,districts}.dqdl),
measured by the real engine (spark_jobs.common.quality) on the lines as the job parses them:
every real file passes, realistic corruptions of it fail the rule that names the problem.

The real files are whole in sample_data/bank_reference/ (the same bytes as the released
account.asc, client.asc, disp.asc, district.asc), dated as one snapshot of 1998-12-31.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from spark_helpers import REPO

from pipeline_core.dqdl import load_ruleset
from spark_jobs.bank_reference import transforms as tr
from spark_jobs.common.quality import QualityEngine

pytestmark = pytest.mark.spark

SNAPSHOT = "1998-12-31"
SAMPLES = REPO / "sample_data" / "bank_reference"


def lines_of(table: tr.Table) -> list[str]:
    """The real file's data lines (its header dropped, as the framework does)."""
    text = (SAMPLES / table.source / f"{SNAPSHOT}.asc").read_text()
    return text.splitlines()[1:]


def failed_rules(spark, table: tr.Table, lines: list[str]) -> set[str]:
    """The text of every error rule that fails (history rules are the gate's: deferred)."""
    frame = spark.createDataFrame([(v, i + 2) for i, v in enumerate(lines)],
                                  "value string, _line long")
    typed = (table.parse(frame).withColumn(tr.SNAPSHOT, F.lit(SNAPSHOT).cast("date"))
             .select(*table.typed_columns))
    rules = load_ruleset(REPO / "datasets" / f"{table.dataset}.dqdl")
    end = dt.datetime(1999, 1, 1, tzinfo=dt.UTC)  # freshness_reference: partition_end
    report, _ = QualityEngine(rules, end).measure(typed)
    return {r.rule.text for r in report.results
            if r.rule.severity == "error" and r.outcome == "fail"}


@pytest.mark.parametrize("table", list(tr.TABLES.values()), ids=lambda t: t.source)
def test_every_real_file_passes_every_rule(spark, table):
    lines = lines_of(table)
    assert failed_rules(spark, table, lines) == set()
    frame = spark.createDataFrame([(v, 1) for v in lines], "value string, _line long")
    assert table.parse(frame).where(F.col("_reason").isNotNull()).count() == 0


def _field(line: str, i: int) -> str:
    return line.split(";")[i]


def _swap(line: str, i: int, j: int) -> str:
    fields = line.split(";")
    fields[i], fields[j] = fields[j], fields[i]
    return ";".join(fields)


def _set(line: str, i: int, value: str) -> str:
    fields = line.split(";")
    fields[i] = value
    return ";".join(fields)


def _women_unshifted(line: str) -> str:
    """A birth_number written without the +50 of women's months (a lost export rule)."""
    number = _field(line, 1).strip('"')
    month = int(number[2:4])
    return _set(line, 1, f'"{number[:2]}{month % 50:02d}{number[4:]}"')


Corruption = Callable[[list[str]], list[str]]
CORRUPTIONS: list[tuple[str, Corruption, str]] = [
    # account.asc
    ("account", lambda ls: ls + ls, 'IsPrimaryKey "account_id"'),
    ("account", lambda ls: [_swap(x, 0, 1) for x in ls],
     'ColumnValues "district_id" between 0 and 78'),
    ("account", lambda ls: ls[:60], "RowCount > 100"),
    ("account", lambda ls: [_set(ls[0], 3, "921231"), *ls[1:]],
     "CustomSql \"select count(*) from primary where opened_date < date '1993-01-01'\" = 0"),
    # client.asc
    ("client", lambda ls: ls + ls[:10], 'IsPrimaryKey "client_id"'),
    ("client", lambda ls: [_women_unshifted(x) for x in ls],
     "CustomSql \"select avg(case when sex = 'female' then 1.0 else 0.0 end) from primary\" "
     "between 0.3 and 0.7"),
    ("client", lambda ls: [*ls, '99999;"950101";1'],  # a 3-year-old client
     'ColumnValues "birth_date" < (now() - 1826 days)'),
    ("client", lambda ls: [_set(x, 2, "0") for x in ls],
     'ColumnValues "district_id" between 0 and 78'),
    # disp.asc
    ("disp", lambda ls: [*ls, '99999;99999;1;"OWNER"'],
     "CustomSql \"select count(*) from (select account_id from primary where disposition_type "
     "= 'owner' group by account_id having count(*) > 1)\" = 0"),
    ("disp", lambda ls: [*ls, '99999;99999;99999;"DISPONENT"'],
     "CustomSql \"select count(*) from primary u left anti join primary o on o.account_id = "
     "u.account_id and o.disposition_type = 'owner' where u.disposition_type = 'user'\" = 0"),
    ("disp", lambda ls: [*ls, ls[0].replace("1;1;1", "99999;1;1", 1)],
     'Uniqueness "client_id" "account_id" = 1.0'),
    ("disp", lambda ls: ls + ls, 'IsPrimaryKey "disp_id"'),
    # district.asc
    ("district", lambda ls: ls[:-1], "RowCount = 77"),
    ("district", lambda ls: [_set(x, 10, _field(x, 10) + "00") for x in ls],
     'ColumnValues "average_salary" between 5000 and 50000'),
    ("district", lambda ls: [_swap(x, 9, 10) for x in ls],
     'ColumnValues "urban_inhabitants_ratio" <= 100'),
    ("district", lambda ls: [_set(x, 2, '"Prague"') for x in ls],
     'DistinctValuesCount "region" = 8'),
]


@pytest.mark.parametrize(("source", "corrupt", "rule"), CORRUPTIONS,
                         ids=[f"{s}-{r[:40]}" for s, _, r in CORRUPTIONS])
def test_a_realistic_corruption_fails_its_rule(spark, source, corrupt, rule):
    table = tr.TABLES[source]
    failed = failed_rules(spark, table, corrupt(lines_of(table)))
    assert rule in failed, sorted(failed)


def test_the_samples_are_the_released_files():
    """The sample folder holds the four files whole, as released (the real files)."""
    real = Path("/work/shared/data/bank-berka")
    if not real.is_dir():
        pytest.skip("the released files are not on this machine")
    for source in tr.TABLES:
        assert (SAMPLES / source / f"{SNAPSHOT}.asc").read_bytes() == (
            real / f"{source}.asc").read_bytes()


@pytest.mark.parametrize("source", ["district", "client"])
def test_the_job_writes_a_real_file_whole(run_dataset, spark, source):
    """The shared job through the framework (--table picks the file's declaration): every line
    written, none quarantined, every rule passing, snapshot_date the run's partition."""
    table = tr.TABLES[source]
    run = run_dataset("bank_reference", SAMPLES / source / f"{SNAPSHOT}.asc", SNAPSHOT,
                      rules=REPO / "datasets" / f"{table.dataset}.dqdl",
                      extra=["--table", source])
    assert run.code == 0, run.stderr[-3000:]
    lines = len(lines_of(table))
    assert (run.metrics["lines_read"], run.metrics["lines_written"],
            run.metrics["lines_quarantined"]) == (lines, lines, 0)
    assert run.metrics["quality"]["fail"] == 0
    out = spark.read.parquet(str(run.out / table.dataset))
    assert tuple(out.columns) == table.table_columns
    assert out.select(tr.SNAPSHOT).distinct().collect()[0][0] == dt.date(1998, 12, 31)
