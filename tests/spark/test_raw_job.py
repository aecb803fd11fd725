"""The raw job framework (spark_jobs.common.raw_job) on a toy dataset defined here, in each input
format: csv with a header, JSON Lines, text lines by pattern; plus every job module of the
catalog held to its catalog file."""

from __future__ import annotations

import gzip
import importlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from spark_helpers import REPO, JobRun

from pipeline_core import catalog
from pipeline_core.errors import ConfigurationError
from pipeline_core.warehouse_limits import parse_statements
from spark_jobs.common import entry, raw_input, warehouse
from spark_jobs.common.derived_job import DerivedJob
from spark_jobs.common.raw_job import GroupedOutput, LineOutput, RawJob

pytestmark = pytest.mark.spark

DAY = "2024-01-02"
TOY_DDL = [
    "create table analytics.toy_items (day date not null, name varchar(8), "
    "amount decimal(8,2), run_id varchar(64))",
    "create table analytics.toy_daily (day date, name varchar(8), total decimal(6,2), "
    "lines bigint, run_id varchar(64))",
]
RULES = 'Rules = [ RowCount > 0, IsComplete "name", ColumnValues "amount" >= 0 ]\n'
NEGATIVE = 'ColumnValues "amount" >= 0'

# (day, name, amount) of each line; None is a blank line, bytes a line given as bytes.
ROWS: list[tuple[str, str, str] | bytes | None] = [
    (DAY, "ann", "1.50"),
    (DAY, "ann", "1.50"),  # an exact duplicate
    None,
    (DAY, "bob", "abc"),  # does not parse
    ("2024-01-03", "cat", "2.00"),  # another day
    (DAY, "verylongname", "1.00"),  # 12 bytes, over varchar(8)
    (DAY, "dan", "-1.00"),  # fails a row-level rule
    (DAY, "eve", "6000.00"),  # eve's total, 11000.00, is over decimal(6,2)
    (DAY, "eve", "5000.00"),
    (DAY, "ann", "2.25"),
    (DAY, "zoë", "3.00"),  # 4 bytes in UTF-8: fits
    (DAY, "x\udcff", "1.00"),  # the byte 0xFF: not UTF-8; "xÿ" in Latin-1
]


def _line(fmt: str, row: tuple[str, str, str]) -> str:
    if fmt == "csv":
        return ",".join(row)
    if fmt == "jsonl":
        return json.dumps(dict(zip(("day", "name", "amount"), row, strict=True)),
                          ensure_ascii=False)
    return " ".join(row)


def toy_file(path: Path, fmt: str, encoding: str = "utf-8", compress: bool = False) -> Path:
    lines = ["day,name,amount"] if fmt == "csv" else []
    lines += ["" if row is None else _line(fmt, row) for row in ROWS]  # type: ignore[arg-type]
    data = ("\n".join(lines) + "\n").encode(encoding, errors="surrogateescape")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# -- the toy dataset's transforms ---------------------------------------------------------------


def _fields(lines: DataFrame, fmt: str) -> DataFrame:
    names = ("day", "name", "amount")
    if fmt == "csv":
        parsed = F.from_csv("value", "day STRING, name STRING, amount STRING")
        return lines.withColumn("_f", parsed).select(
            "*", *[F.col(f"_f.{n}").alias(f"{n}_text") for n in names]).drop("_f")
    if fmt == "jsonl":
        parsed = F.from_json("value", "day STRING, name STRING, amount STRING")
        return lines.withColumn("_f", parsed).select(
            "*", *[F.col(f"_f.{n}").alias(f"{n}_text") for n in names]).drop("_f")
    pattern = r"^(\S+) (\S+) (\S+)$"
    return lines.select("*", *[
        F.when(F.col("value").rlike(pattern), F.regexp_extract("value", pattern, i + 1))
        .alias(f"{n}_text") for i, n in enumerate(names)])


def toy_parse(fmt: str):
    def parse(lines: DataFrame) -> DataFrame:
        fields = _fields(lines, fmt)
        day = F.to_date(F.try_to_timestamp(F.col("day_text"), F.lit("yyyy-MM-dd")))
        amount = F.col("amount_text").try_cast("decimal(8,2)")
        reason = (F.when(F.col("day_text").isNull(), F.lit("line does not parse"))
                  .when(day.isNull(), F.concat(F.lit("day '"), "day_text",
                                               F.lit("' is not a date")))
                  .when(amount.isNull(), F.concat(F.lit("amount '"), "amount_text",
                                                  F.lit("' is not a number"))))
        return fields.select("*", day.alias("day"), F.col("name_text").alias("name"),
                             amount.alias("amount"), reason.alias("_reason"))
    return parse


def toy_partition_reason(partition: Column) -> Column:
    return F.when(F.col("day") != partition, F.concat(
        F.lit("day "), F.col("day").cast("string"),
        F.lit(" is not the run's partition "), partition.cast("string")))


def toy_totals(valid: DataFrame) -> DataFrame:
    return valid.groupBy("day", "name").agg(F.sum("amount").alias("total"),
                                            F.count(F.lit(1)).alias("lines"))


def toy_daily(valid: DataFrame, run_id: str) -> DataFrame:
    total = F.col("total").cast("decimal(6,2)").alias("total")
    return toy_totals(valid).select("day", "name", total, "lines", F.lit(run_id).alias("run_id"))


def toy_items(valid: DataFrame, run_id: str) -> DataFrame:
    return valid.select("day", "name", "amount", F.lit(run_id).alias("run_id"))


def toy_job(fmt: str, **changes) -> RawJob:
    declared = dict(
        dataset="toy", input_format=fmt, parse=toy_parse(fmt),
        header=("day", "name", "amount") if fmt == "csv" else (),
        typed_columns=("day", "name", "amount"), partition_reason=toy_partition_reason,
        outputs={"toy_items": LineOutput(toy_items),
                 "toy_daily": GroupedOutput(toy_daily, keys=("day", "name"), totals=toy_totals,
                                            lines=lambda: F.col("name").isNotNull())},
        null_count_columns=("name", "amount"), range_columns=("day", "amount"))
    return RawJob(**{**declared, **changes})


@pytest.fixture
def run_toy(spark, tmp_path: Path, capsys, monkeypatch):
    """Runs a toy RawJob on a file, the toy tables standing in for the warehouse migrations."""
    monkeypatch.setattr(warehouse, "shipped_tables", lambda: parse_statements(TOY_DDL))
    rules = tmp_path / "toy.dqdl"
    rules.write_text(RULES)
    counter = iter(range(100))

    def run(job: RawJob, source: Path, *extra: str) -> JobRun:
        out = tmp_path / f"run{next(counter)}"
        capsys.readouterr()
        code = job.main([
            "--input", str(source), "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/quarantine/", "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json", "--rules", str(rules),
            "--run-id", f"toy-{out.name}", "--partition", DAY, *extra])
        return JobRun(code, capsys.readouterr().err, out)

    return run


def _rows(run: JobRun, table: str) -> list[dict]:
    return pq.read_table(run.out / table).to_pylist()


# -- a whole run, per format ----------------------------------------------------------------------

TOTAL = "toy_daily.total 11000.00 is out of range for decimal(6,2)"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "text"])
def test_every_reason_metric_and_file_in_each_format(run_toy, tmp_path, fmt):
    run = run_toy(toy_job(fmt), toy_file(tmp_path / f"{DAY}.{fmt}", fmt))
    assert run.code == 0, run.stderr[-3000:]
    first = 2 if fmt == "csv" else 1  # the line number of ROWS[0]
    m = run.metrics
    assert (m["dataset"], m["lines_read"], m["blank_lines"], m["duplicates"]) == ("toy", 11, 1, 1)
    assert (m["lines_written"], m["lines_quarantined"]) == (3, 7)
    assert m["quarantine_reasons"] == {
        "amount 'abc' is not a number": 1, f"day 2024-01-03 is not the run's partition {DAY}": 1,
        "name is 12 bytes, over varchar(8)": 1, NEGATIVE: 1, TOTAL: 2,
        "line is not valid UTF-8 text": 1}
    assert [(s["line"], s["reason"]) for s in m["quarantine_samples"]] == [
        (first + 3, "amount 'abc' is not a number"),
        (first + 4, f"day 2024-01-03 is not the run's partition {DAY}"),
        (first + 5, "name is 12 bytes, over varchar(8)"), (first + 6, NEGATIVE),
        (first + 7, TOTAL)]
    assert m["quarantine_samples"][0]["text"] == _line(fmt, ROWS[3])  # type: ignore[arg-type]
    assert {t: v["rows"] for t, v in m["tables"].items()} == {"toy_items": 3, "toy_daily": 2}
    # Over every data line as parsed: the duplicate and the refused lines count.
    assert m["null_counts"] == {"name": 0, "amount": 1}
    assert (m["min"], m["max"]) == ({"day": DAY, "amount": -1}, {"day": "2024-01-03",
                                                                 "amount": 6000})
    assert m["quality"] == {"pass": 2, "fail": 1, "deferred": 0}
    assert run.rule("RowCount")["metric"] == 11
    assert run.rule(NEGATIVE)["outcome"] == "fail"
    items = sorted((r["name"], str(r["amount"])) for r in _rows(run, "toy_items"))
    assert items == [("ann", "1.50"), ("ann", "2.25"), ("zoë", "3.00")]
    daily = sorted((r["name"], str(r["total"]), r["lines"]) for r in _rows(run, "toy_daily"))
    assert daily == [("ann", "3.75", 2), ("zoë", "3.00", 1)]
    quarantine = pq.read_table(run.out / "quarantine")
    assert quarantine.schema.names == ["line", "_reason", "_source_line", "run_id"]
    assert sorted(quarantine.column("_source_line").to_pylist()) == [
        first + i for i in (3, 4, 5, 6, 7, 8, 11)]


def test_a_job_that_keeps_duplicates_loads_every_copy(run_toy, tmp_path):
    """keep_duplicates (an access log: two identical lines are two requests): the copy is
    judged, written and counted like any line, in the line table and in the group totals."""
    run = run_toy(toy_job("csv", keep_duplicates=True), toy_file(tmp_path / f"{DAY}.csv", "csv"))
    assert run.code == 0, run.stderr[-3000:]
    m = run.metrics
    assert (m["lines_read"], m["duplicates"], m["lines_written"]) == (11, 0, 4)
    items = sorted((r["name"], str(r["amount"])) for r in _rows(run, "toy_items"))
    assert items == [("ann", "1.50"), ("ann", "1.50"), ("ann", "2.25"), ("zoë", "3.00")]
    daily = sorted((r["name"], str(r["total"]), r["lines"]) for r in _rows(run, "toy_daily"))
    assert daily == [("ann", "5.25", 3), ("zoë", "3.00", 1)]


def test_gzip_and_the_declared_encoding(run_toy, tmp_path):
    """The same csv, gzip'd and in Latin-1: 0xFF is "ÿ" there, so that line loads."""
    source = toy_file(tmp_path / f"{DAY}.csv.gz", "csv", encoding="latin-1", compress=True)
    run = run_toy(toy_job("csv"), source, "--encoding", "latin-1")
    assert run.code == 0, run.stderr[-3000:]
    assert (run.metrics["lines_read"], run.metrics["lines_written"]) == (11, 4)
    assert "line is not valid UTF-8 text" not in run.metrics["quarantine_reasons"]
    assert sorted(r["name"] for r in _rows(run, "toy_items")) == ["ann", "ann", "xÿ", "zoë"]


# -- refused inputs and declarations --------------------------------------------------------------


def test_a_wrong_csv_header_is_refused_before_the_scan(run_toy, tmp_path):
    source = tmp_path / "h.csv"
    source.write_text("day,amount,name\n2024-01-02,1.00,ann\n")
    run = run_toy(toy_job("csv"), source)
    assert run.code == entry.EXIT_REFUSED
    assert "header does not match the catalog (column 2 is 'amount', expected 'name'" \
        in run.error_lines()[0]


@pytest.mark.parametrize(("fmt", "body", "message"), [
    ("csv", "day,name,amount\n\n  \n", "has a header but no data lines"),
    ("jsonl", "\n \n\n", "has no data lines, only blank ones"),
    ("text", "", "is empty (0 bytes)"),
])
def test_inputs_without_data_lines_are_refused(run_toy, tmp_path, fmt, body, message):
    source = tmp_path / f"e.{fmt}"
    source.write_text(body)
    run = run_toy(toy_job(fmt), source)
    assert run.code == entry.EXIT_REFUSED, run.stderr[-2000:]
    assert message in run.error_lines()[0]


def test_gzip_magic_and_name_must_agree(run_toy, tmp_path):
    plain = toy_file(tmp_path / "p.jsonl.gz", "jsonl")
    packed = tmp_path / "g.jsonl"
    packed.write_bytes(gzip.compress(b'{"day": "2024-01-02"}\n'))
    assert "ends in .gz but is not gzip data" in run_toy(toy_job("jsonl"), plain).error_lines()[0]
    assert "is gzip data but its name does not end in .gz" in \
        run_toy(toy_job("jsonl"), packed).error_lines()[0]


def test_a_parse_that_fails_on_a_line_fails_the_run_and_never_refuses_the_input(run_toy,
                                                                               tmp_path):
    """Only bytes that cannot be decoded make the input invalid (exit 2, never retried): a
    failing parse is the job's own error (exit 1), which a retry or a fix of the job can mend."""
    def failing(lines: DataFrame) -> DataFrame:
        parsed = toy_parse("text")(lines)
        return parsed.withColumn("amount", F.when(
            F.col("name") == "dan", F.raise_error(F.lit("parse broke on dan"))
        ).otherwise(F.col("amount")))

    run = run_toy(toy_job("text", parse=failing), toy_file(tmp_path / "t.log", "text"))
    assert run.code == entry.EXIT_FAILED
    assert "parse broke on dan" in run.error_lines()[0]
    assert "cannot be read" not in run.stderr


def test_a_parse_that_drops_its_input_columns_is_a_configuration_error(run_toy, tmp_path):
    def dropping(lines: DataFrame) -> DataFrame:
        return toy_parse("text")(lines).select("value", "day", "name", "amount", "_reason")

    run = run_toy(toy_job("text", parse=dropping), toy_file(tmp_path / "t.log", "text"))
    assert run.code == entry.EXIT_CONFIGURATION
    assert "parse() must keep its input's columns and add _reason (lost: ['_line', '_part'" \
        in run.error_lines()[0]


def test_a_line_output_column_parse_does_not_give_is_a_configuration_error(run_toy, tmp_path):
    def renamed(valid: DataFrame, run_id: str) -> DataFrame:
        return valid.select("day", F.col("name_text").alias("name"), "amount",
                            F.lit(run_id).alias("run_id"))

    def parse(lines: DataFrame) -> DataFrame:
        return toy_parse("text")(lines).drop("name")

    job = toy_job("text", parse=parse, typed_columns=("day", "amount"),
                  null_count_columns=("amount",),
                  outputs={"toy_items": LineOutput(renamed)})
    run = run_toy(job, toy_file(tmp_path / "t.log", "text"))
    assert run.code == entry.EXIT_CONFIGURATION
    assert "output toy_items is checked per line, but the parsed lines have no column name" \
        in run.error_lines()[0]


@pytest.mark.parametrize(("changes", "message"), [
    ({"input_format": "xml"}, "input format 'xml' is not one of"),
    ({"input_format": "csv", "header": ()}, "a csv job declares its header"),
    ({"header": ("day",)}, "a text job has no header line"),
    ({"outputs": {}}, "declare typed_columns and outputs"),
])
def test_a_wrong_declaration_is_refused_at_import(changes, message):
    with pytest.raises(ConfigurationError, match=message):
        toy_job("text", **changes)


# -- every job module against its catalog file ----------------------------------------------------


def test_the_frameworks_formats_are_the_catalogs():
    assert raw_input.FORMATS == catalog.INPUT_FORMATS


@pytest.mark.parametrize("path", sorted((REPO / "datasets").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_job_declares_its_catalog_files_format_header_and_tables(path):
    dataset = catalog.parse_dataset(yaml.safe_load(path.read_text()), path)
    main = REPO / "spark_jobs" / dataset.job.name / "main.py"
    assert main.is_file(), f"{path.name}: its job has no spark_jobs/{dataset.job.name}/main.py"
    module = importlib.import_module(f"spark_jobs.{dataset.job.name}.main")
    # A job shared by several datasets (bank_reference) declares JOBS, one per value of the
    # `table` argument each dataset passes it.
    job = (module.JOBS[dataset.job.arguments["table"]] if hasattr(module, "JOBS")
           else module.JOB)
    if dataset.derived is not None:  # computed from curated tables: no file format to declare
        assert isinstance(job, DerivedJob)
        assert (job.dataset, tuple(job.outputs)) == (
            dataset.name, tuple(t.name for t in dataset.load.tables))
        return
    assert isinstance(job, RawJob)
    assert (job.dataset, job.input_format, job.header, job.delimiter) == (
        dataset.name, dataset.source.format, dataset.source.header, dataset.source.delimiter)
    assert tuple(job.outputs) == tuple(t.name for t in dataset.load.tables)
    assert dataset.load.schema == "analytics"
