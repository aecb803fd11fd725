"""The online_retail job end to end: real sample days, broken deliveries, refusals."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import importlib.util
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import zipfile
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spark_helpers import REPO, RULES, SAMPLES, data_lines, write_lines

from pipeline_core.dqdl import evaluate_threshold, parse_rule
from spark_jobs.online_retail import transforms as tr

pytestmark = pytest.mark.spark

DAY = SAMPLES / "2010-12-01.csv"
# Row counts of ten real days before a collapse (2010-12-01..2010-12-13), newest first.
REAL_ROW_COUNTS = [1760, 1427, 1186, 2963, 1595, 1882, 2725, 2018, 1563, 3108]


def _parquet_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("part-*.zstd.parquet"))


def _read_table(directory: Path) -> pa.Table:
    files = _parquet_files(directory)
    assert files, f"no parquet part files in {directory}"
    return pa.concat_tables([pq.read_table(f) for f in files])


def _python_reference(path: Path):
    """Counts and customer_daily_sales of a clean sample day, computed with csv + Decimal."""
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows = [tuple(r) for r in reader]
    distinct = list(dict.fromkeys(rows))
    sales = defaultdict(lambda: {"orders": set(), "units": 0, "revenue": Decimal(0),
                                 "returned": Decimal(0), "ts": []})
    for inv, _, _, qty, ts, price, cust, _ in distinct:
        if not cust:
            continue
        when = dt.datetime.fromisoformat(ts)
        key = (when.date(), cust.removesuffix(".0"))
        value = int(qty) * Decimal(price)
        entry = sales[key]
        if inv.startswith("C"):
            entry["returned"] += value
        else:
            entry["orders"].add(inv)
            entry["units"] += int(qty)
            entry["revenue"] += value
            entry["ts"].append(when)
    cents = Decimal("0.01")
    daily = sorted(
        (day, cust, len(e["orders"]), e["units"], e["revenue"].quantize(cents, ROUND_HALF_UP),
         abs(e["returned"]).quantize(cents, ROUND_HALF_UP),
         min(e["ts"]) if e["ts"] else None, max(e["ts"]) if e["ts"] else None)
        for (day, cust), e in sales.items())
    return len(rows), len(rows) - len(distinct), daily


# ---------------------------------------------------------------------------------------------
# A real day


def _check_day_metrics(m: dict, lines: int, duplicates: int, daily: list) -> None:
    assert (m["lines_read"], m["duplicates"], m["lines_quarantined"]) == (lines, duplicates, 0)
    assert (m["quarantine_reasons"], m["quarantine_samples"]) == ({}, [])
    assert m["lines_read"] == m["lines_written"] + m["lines_quarantined"] + m["duplicates"]
    assert m["tables"]["sales_line_items"]["rows"] == m["lines_written"] == 3064
    assert m["tables"]["customer_daily_sales"]["rows"] == len(daily) == 98
    assert m["null_counts"]["customer_id"] == 1140 and m["null_counts"]["invoice_no"] == 0
    assert m["min"]["invoice_ts"] == "2010-12-01 08:26:00"
    assert m["max"]["order_date"] == "2010-12-01"
    # The input is scanned once: Spark read the file's bytes and nothing more.
    assert m["input_bytes"] == DAY.stat().st_size
    assert m["bytes_read"] is not None
    assert m["input_bytes"] <= m["bytes_read"] <= 1.05 * m["input_bytes"]


def _check_zstd_part_files_only(run) -> None:
    """Outputs: zstd parquet part files only, no _SUCCESS marker."""
    for directory in (run.out / "sales_line_items", run.out / "customer_daily_sales",
                      run.out / "quarantine"):
        assert not (directory / "_SUCCESS").exists()
        for part in _parquet_files(directory):
            meta = pq.ParquetFile(part).metadata
            assert all(meta.row_group(g).column(c).compression == "ZSTD"
                       for g in range(meta.num_row_groups) for c in range(meta.num_columns))


def _check_line_items(run) -> None:
    """sales_line_items: columns in contract order and types."""
    items_dir = run.out / "sales_line_items"
    items = _read_table(items_dir)
    assert items.schema.names == list(tr.LINE_ITEM_COLUMNS)
    assert [str(t) for t in items.schema.types] == [
        "string", "string", "string", "int32", "decimal128(12, 3)", "timestamp[us, tz=UTC]",
        "date32[day]", "string", "string", "bool", "decimal128(18, 3)", "string"]
    ts_column = pq.ParquetFile(_parquet_files(items_dir)[0]).schema.column(5)
    assert ts_column.physical_type == "INT64"
    assert ts_column.converted_type == "TIMESTAMP_MICROS"
    assert items.num_rows == 3064
    assert set(items.column("run_id").to_pylist()) == {f"test-2010-12-01-{run.out.name}"}
    assert "17850" in items.column("customer_id").to_pylist()


def _check_daily_sales_and_quarantine(run, daily: list) -> None:
    """customer_daily_sales: contract columns and the reference's rows; no quarantined rows."""
    got = _read_table(run.out / "customer_daily_sales")
    assert got.schema.names == list(tr.CUSTOMER_DAILY_COLUMNS)
    assert [str(t) for t in got.schema.types] == [
        "date32[day]", "string", "int64", "int64", "decimal128(14, 2)", "decimal128(14, 2)",
        "timestamp[us, tz=UTC]", "timestamp[us, tz=UTC]", "string"]
    rows = sorted(
        (r["order_date"], r["customer_id"], r["orders"], r["units"], r["revenue"],
         r["returned_value"],
         r["first_purchase_ts"] and r["first_purchase_ts"].replace(tzinfo=None),
         r["last_purchase_ts"] and r["last_purchase_ts"].replace(tzinfo=None))
        for r in got.to_pylist())
    assert rows == daily

    quarantine = _read_table(run.out / "quarantine") if _parquet_files(
        run.out / "quarantine") else None
    if quarantine is not None:
        assert quarantine.num_rows == 0
        assert quarantine.schema.names == list(tr.QUARANTINE_COLUMNS)


def _check_day_quality(run) -> None:
    quality = run.quality
    assert quality["rules_file"] == "online_retail.dqdl"
    assert quality["reference_time"] == "2010-12-02T00:00:00Z"
    assert run.failed_errors == []
    outcomes = {r["outcome"] for r in quality["rules"]}
    assert outcomes == {"pass", "deferred"}
    for rule in quality["rules"]:
        assert {"rule", "line", "severity", "metric_name", "metric", "threshold",
                "outcome"} <= set(rule)
        assert quality["metrics"][rule["metric_name"]] == rule["metric"]
    assert quality["metrics"]["Dataset.*.RowCount"] == 3108
    assert run.rule("RowCount > median(last(10))")["outcome"] == "deferred"


def test_a_real_day_end_to_end(run_job):
    run = run_job(DAY, "2010-12-01")
    assert run.code == 0, run.stderr
    lines, duplicates, daily = _python_reference(DAY)
    _check_day_metrics(run.metrics, lines, duplicates, daily)
    _check_zstd_part_files_only(run)
    _check_line_items(run)
    _check_daily_sales_and_quarantine(run, daily)
    _check_day_quality(run)


@pytest.mark.parametrize("day", ["2010-12-02", "2010-12-03"])
def test_other_sample_days_pass_every_rule(run_job, day):
    run = run_job(SAMPLES / f"{day}.csv", day)
    assert run.code == 0, run.stderr
    m = run.metrics
    assert m["lines_read"] == m["lines_written"] + m["lines_quarantined"] + m["duplicates"]
    assert run.failed_errors == []
    assert [r["rule"] for r in run.quality["rules"] if r["outcome"] == "fail"] == []


def test_gzip_input(run_job, tmp_path):
    packed = tmp_path / "2010-12-01.csv.gz"
    packed.write_bytes(gzip.compress(DAY.read_bytes()))
    run = run_job(packed, "2010-12-01")
    assert run.code == 0, run.stderr
    m = run.metrics
    assert (m["lines_read"], m["lines_written"], m["duplicates"]) == (3108, 3064, 44)
    assert m["input_bytes"] == packed.stat().st_size
    assert m["input_bytes"] <= m["bytes_read"] <= 1.05 * m["input_bytes"]


# ---------------------------------------------------------------------------------------------
# Broken deliveries the rules must catch


def _rewrite(tmp_path: Path, name: str, change) -> Path:
    """The sample day with `change(index, fields)` applied to each data line's fields."""
    with DAY.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [change(i, list(r)) for i, r in enumerate(reader)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / name
    path.write_text(buffer.getvalue())
    return path


def test_half_the_customer_ids_missing_fails(run_job, tmp_path):
    def blank_every_other(i, fields):
        if i % 2:
            fields[6] = ""
        return fields

    run = run_job(_rewrite(tmp_path, "half.csv", blank_every_other), "2010-12-01")
    assert run.code == 0, run.stderr
    invoice_rule = run.rule('CustomSql "select count(*) from (select invoice_no')
    assert invoice_rule["outcome"] == "fail" and invoice_rule["metric"] > 50
    assert invoice_rule["rule"] in run.failed_errors
    # Completeness alone stays within what real days show (0.13 .. 1.0).
    assert run.rule('Completeness "customer_id"')["outcome"] == "pass"


def test_truncated_file_fails_and_quarantines_the_partial_line(run_job, tmp_path):
    data = DAY.read_bytes()
    cut = int(len(data) * 0.4)
    while data[cut - 1:cut] == b"\n" or data[cut:cut + 1] == b"\n":
        cut += 1  # mid-line, not at a line break
    truncated = tmp_path / "truncated.csv"
    truncated.write_bytes(data[:cut])
    run = run_job(truncated, "2010-12-01")
    assert run.code == 0, run.stderr
    last_line = data[:cut].count(b"\n") + 1
    m = run.metrics
    assert m["lines_read"] == last_line - 1
    assert m["lines_quarantined"] == 1
    assert run.failed_errors, "a truncated file must not load"
    rejected = _read_table(run.out / "quarantine").to_pylist()
    assert [r["_source_line"] for r in rejected] == [last_line]
    partial = data[:cut].decode().rsplit("\n", 1)[1]
    assert rejected[0]["InvoiceNo"] == partial.split(",")[0]


def test_an_attempt_that_refuses_nothing_empties_an_earlier_attempts_quarantine(
        spark, tmp_path):
    """No line refused: no quarantine is written, unless an earlier attempt of the run (same
    --quarantine) left one: then it is replaced by an empty one, never left to contradict
    metrics.json."""
    from spark_jobs.online_retail import main as job
    header, lines = data_lines(DAY)
    (tmp_path / "bad").mkdir()
    bad = write_lines(tmp_path / "bad" / "2010-12-01.csv", header, [*lines[:40], "536999,X"])
    clean = write_lines(tmp_path / "2010-12-01.csv", header, lines[:40])
    fresh, again = tmp_path / "fresh", tmp_path / "again"
    assert job.main(_arguments(fresh, clean, "2010-12-01")) == 0
    assert not (fresh / "q").exists()
    assert json.loads((fresh / "metrics.json").read_text())["lines_quarantined"] == 0
    assert job.main(_arguments(again, bad, "2010-12-01")) == 0
    assert _read_table(again / "q").num_rows == 1
    assert job.main(_arguments(again, clean, "2010-12-01")) == 0
    assert _read_table(again / "q").num_rows == 0
    assert json.loads((again / "metrics.json").read_text())["lines_quarantined"] == 0


def test_truncated_inside_the_country_fails(run_job, tmp_path):
    data = DAY.read_bytes()
    at = data.index(b",United Kingdom\n", int(len(data) * 0.4)) + len(b",United Kin")
    truncated = tmp_path / "cut-country.csv"
    truncated.write_bytes(data[:at])
    run = run_job(truncated, "2010-12-01")
    assert run.code == 0, run.stderr
    assert [r for r in run.failed_errors if r.startswith('ColumnValues "country" in [')]
    rejected = _read_table(run.out / "quarantine").to_pylist()
    assert [(r["Country"], r["_reason"][:28]) for r in rejected] == [
        ("United Kin", 'ColumnValues "country" in [ ')]


def test_same_content_twice_fails_and_counts_once(run_job, tmp_path):
    header, lines = data_lines(DAY)
    doubled = write_lines(tmp_path / "doubled.csv", header, lines + lines)
    run = run_job(doubled, "2010-12-01")
    assert run.code == 0, run.stderr
    uniqueness = run.rule("Uniqueness")
    assert uniqueness["outcome"] == "fail" and uniqueness["metric"] == 0
    m = run.metrics
    assert (m["lines_read"], m["lines_written"], m["duplicates"]) == (6216, 3064, 3152)


def test_zero_unit_prices_fail(run_job, tmp_path):
    def zero_every_third(i, fields):
        if i % 3 == 0:
            fields[5] = "0"
        return fields

    run = run_job(_rewrite(tmp_path, "zero.csv", zero_every_third), "2010-12-01")
    assert run.code == 0, run.stderr
    zero_rule = run.rule('CustomSql "select avg(case when unit_price = 0')
    assert zero_rule["outcome"] == "fail"
    assert zero_rule["metric"] == pytest.approx(1 / 3, abs=0.02)
    assert run.metrics["lines_quarantined"] == 0  # zero-priced lines are kept, not refused


def test_row_count_collapse_fails_at_the_gate(run_job, tmp_path):
    header, lines = data_lines(DAY)
    small = write_lines(tmp_path / "small.csv", header, lines[:60])
    run = run_job(small, "2010-12-01")
    assert run.code == 0, run.stderr
    assert run.failed_errors == []  # nothing wrong inside the file itself
    measured = run.rule("RowCount > median(last(10))")
    assert (measured["outcome"], measured["metric"]) == ("deferred", 60)
    # What the gate does with it: the metric against the dataset's history.
    rule = parse_rule(measured["rule"], measured["line"], measured["severity"])
    assert not evaluate_threshold(rule, measured["metric"], REAL_ROW_COUNTS).passed
    assert evaluate_threshold(rule, 3108, REAL_ROW_COUNTS).passed
    assert 0.1 * statistics.median(REAL_ROW_COUNTS) > 60


# ---------------------------------------------------------------------------------------------
# Refused inputs: exit code 2 and one JOB ERROR line naming the problem


def _refused(run, *fragments: str) -> str:
    assert run.code == 2, run.stderr
    errors = run.error_lines()
    assert len(errors) == 1, run.stderr
    for fragment in fragments:
        assert fragment in errors[0]
    assert not (run.out / "metrics.json").exists()
    return errors[0]


def test_wrong_header_is_refused(run_job, tmp_path):
    _, lines = data_lines(DAY)
    bad = write_lines(tmp_path / "bad.csv",
                      "InvoiceNo,StockCode,Desc,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
                      lines[:5])
    _refused(run_job(bad, "2010-12-01"), "header does not match the catalog",
             "column 3 is 'Desc', expected 'Description'")
    short = write_lines(tmp_path / "short.csv", "InvoiceNo,StockCode", lines[:5])
    _refused(run_job(short, "2010-12-01"), "header does not match the catalog",
             "2 columns, expected 8")


def test_empty_and_header_only_files_are_refused(run_job, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    _refused(run_job(empty, "2010-12-01"), "empty (0 bytes)")
    header, _ = data_lines(DAY)
    only = write_lines(tmp_path / "header.csv", header, [])
    _refused(run_job(only, "2010-12-01"), "has a header but no data lines")
    packed_empty = tmp_path / "empty.csv.gz"
    packed_empty.write_bytes(gzip.compress(b""))
    _refused(run_job(packed_empty, "2010-12-01"), "empty (no header line)")


def test_bad_gzip_is_refused(run_job, tmp_path):
    fake = tmp_path / "2010-12-01.csv.gz"
    fake.write_bytes(DAY.read_bytes())
    _refused(run_job(fake, "2010-12-01"), "ends in .gz but is not gzip data")
    packed = tmp_path / "packed.csv"
    packed.write_bytes(gzip.compress(DAY.read_bytes()))
    _refused(run_job(packed, "2010-12-01"), "is gzip data but its name does not end in .gz")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(DAY.read_bytes())[:-5000])
    _refused(run_job(broken, "2010-12-01"), "cannot be read", "EOFException")


def test_missing_input_and_bad_arguments_are_refused(run_job, tmp_path):
    _refused(run_job(tmp_path / "nope.csv", "2010-12-01"), "does not exist")
    _refused(run_job(DAY, "2010-13-01"), "partition '2010-13-01' is not a real date")
    _refused(run_job(tmp_path / "day-*.csv", "2010-12-01"), "must name one object")


def test_invalid_rules_stop_the_job_with_exit_code_3(run_job, tmp_path):
    rules = tmp_path / "bad.dqdl"
    rules.write_text('Rules = [\n  RowCount > 0,\n  IsComplete "nope"\n]\n')
    run = run_job(DAY, "2010-12-01", rules=rules)
    assert run.code == 3
    assert run.error_lines() == [
        "JOB ERROR: bad.dqdl line 3: no column 'nope' (columns: invoice_no, stock_code, "
        "description, quantity, unit_price, invoice_ts, order_date, customer_id, country, "
        "is_cancellation, line_revenue); rule: IsComplete \"nope\""]
    rules.write_text("Rules = [ RowCount >> 0 ]")
    run = run_job(DAY, "2010-12-01", rules=rules)
    assert run.code == 3 and "bad.dqdl line 1: " in run.error_lines()[0]


# ---------------------------------------------------------------------------------------------
# As EMR runs it: a script, packages from the deploy zip. Each process here starts a JVM of its
# own (the dearest thing in this layer), so each one proves several things in a row.


def _job_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SPARK_HOME", "PYSPARK_GATEWAY_PORT")}
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env


def _arguments(out: Path, source: Path, partition: str, run_id: str = "script-1") -> list[str]:
    return ["--input", str(source), "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/q/", "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json", "--rules", str(RULES), "--run-id", run_id,
            "--partition", partition]


def _small_day(tmp_path: Path, extra: tuple[str, ...] = ()) -> Path:
    """The sample day's first 40 lines (all distinct) and `extra`: the launch is under test
    here, not the counts (the whole sample day's are held by the in-process tests)."""
    header, lines = data_lines(DAY)
    return write_lines(tmp_path / "2010-12-01.csv", header, [*lines[:40], *extra])


# Runs the checkout's main.py as `python spark_jobs/online_retail/main.py` does (its folder
# first on sys.path, the repository root not on it), then, in the same process and JVM, the job
# again with a step that SIGKILLs the driver JVM mid-run (the test session's JVM must live).
_CHECKOUT_THEN_KILL = textwrap.dedent("""
    import json, os, runpy, signal, sys

    script, checkout_args, kill_args = sys.argv[1], *map(json.loads, sys.argv[2:4])
    sys.path[0] = os.path.dirname(script)
    try:
        import spark_jobs
    except ImportError:
        pass
    else:
        sys.exit(f"spark_jobs importable before the script ran: {spark_jobs.__file__}")
    sys.argv = [script, *checkout_args]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        print(f"checkout run exit code: {done.code}", file=sys.stderr, flush=True)
    else:
        sys.exit("the script ended without sys.exit")

    from spark_jobs.common.outputs import LineOutput
    from spark_jobs.online_retail import main, transforms

    original = transforms.sales_line_items

    def kill_the_jvm(frame, run_id):
        proc = frame.sparkSession.sparkContext._gateway.proc
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return original(frame, run_id)

    transforms.OUTPUTS["sales_line_items"] = LineOutput(kill_the_jvm)
    sys.exit(main.main(kill_args))
""")


def test_main_runs_as_a_script_from_a_checkout_and_a_killed_driver_jvm_is_named(tmp_path):
    """(1) The checkout's main.py as a script finds its packages (it puts the repository root
    on sys.path itself) and writes the day. (2) The driver JVM SIGKILLed mid-run: the job
    names the lost JVM (exit 1), and the failing spark.stop() after it is only secondary
    (spark_jobs.common.entry; the other failure causes: test_job_failure_causes.py)."""
    day, out, killed = _small_day(tmp_path), tmp_path / "out", tmp_path / "killed"
    done = subprocess.run(
        [sys.executable, "-c", _CHECKOUT_THEN_KILL,
         str(REPO / "spark_jobs" / "online_retail" / "main.py"),
         json.dumps(_arguments(out, day, "2010-12-01")),
         json.dumps(_arguments(killed, day, "2010-12-01", "killed"))],
        cwd=tmp_path, env=_job_env(), capture_output=True, text=True, timeout=300)
    checkout, marker, kill = done.stderr.partition("checkout run exit code: 0\n")
    assert marker, done.stderr[-3000:]
    assert "JOB ERROR:" not in checkout, checkout[-3000:]
    assert "online_retail script-1: read 40 lines, wrote 40" in done.stdout
    assert (out / "metrics.json").is_file() and _parquet_files(out / "sales_line_items")

    errors = [ln for ln in kill.splitlines() if ln.startswith("JOB ERROR:")]
    assert done.returncode == 1, done.stderr[-3000:]
    assert len(errors) == 1, kill[-3000:]
    assert errors[0].startswith("JOB ERROR: the Spark driver JVM is gone (killed or crashed): "), \
        errors[0]
    later = kill[kill.index(errors[0]):]
    assert "failed (secondary error, the first one is reported above)" in later, kill[-3000:]
    assert not (killed / "metrics.json").exists()


# The spark-submit entry: the job's main.py copied beside it (as the deploy ships it) run as a
# script, once per `--next-run`-separated argument list; exits with the last run's code.
_RUNS_MAIN = textwrap.dedent("""
    import os, runpy, sys

    main = os.path.join(os.path.dirname(os.path.abspath(__file__)), "main.py")
    args, runs = sys.argv[1:], [[]]
    for arg in args:
        if arg == "--next-run":
            runs.append([])
        else:
            runs[-1].append(arg)
    for run in runs:
        sys.argv = [main, *run]
        try:
            runpy.run_path(main, run_name="__main__")
        except SystemExit as done:
            code = done.code
        print(f"run exit code: {code}", file=sys.stderr, flush=True)
    sys.exit(code)
""")


def test_main_runs_from_the_deploy_zip_with_spark_submit(tmp_path):
    """spark-submit --py-files spark_jobs.zip (scripts/package_jobs.py) of a lone main.py, as
    EMR runs it: a day loads, with the column limits read from the migrations inside the zip
    (the 300-byte description is quarantined); a refused input exits 2 through spark-submit
    with one `JOB ERROR` line."""
    spec = importlib.util.spec_from_file_location("package_jobs",
                                                  REPO / "scripts" / "package_jobs.py")
    package_jobs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package_jobs)
    archive = tmp_path / "spark_jobs.zip"
    package_jobs.build_zip(REPO, archive)
    with zipfile.ZipFile(archive) as zf:
        assert any(n.startswith("warehouse/migrations/") and n.endswith(".sql")
                   for n in zf.namelist())
    entry = tmp_path / "entry"
    entry.mkdir()
    shutil.copy(REPO / "spark_jobs" / "online_retail" / "main.py", entry / "main.py")
    (entry / "runs.py").write_text(_RUNS_MAIN)
    refused_line = ("536993,22633," + "X" * 300
                    + ",6,2010-12-01 10:00:00,1.85,17850.0,United Kingdom")
    day = _small_day(tmp_path, (refused_line,))
    header, lines = data_lines(DAY)
    bad = write_lines(tmp_path / "bad.csv", header.replace("Country", "Land"), lines[:3])
    out = tmp_path / "out"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
         "--py-files", str(archive), str(entry / "runs.py"),
         *_arguments(out, day, "2010-12-01", "zip-1"), "--next-run",
         *_arguments(tmp_path / "bad-out", bad, "2010-12-01", "zip-2")],
        cwd=tmp_path, env=_job_env(), capture_output=True, text=True, timeout=300)
    # spark-submit hands the Python driver's stderr to its own stdout (the JVM log is stderr).
    codes = [ln for ln in done.stdout.splitlines() if ln.startswith("run exit code: ")]
    assert codes == ["run exit code: 0", "run exit code: 2"], done.stderr[-3000:]
    assert "online_retail zip-1: read 41 lines, wrote 40, quarantined 1" in done.stdout
    assert "description is 300 bytes, over varchar(256)" in (out / "metrics.json").read_text()
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("JOB ERROR:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"JOB ERROR: input {bad}: header does not match the catalog "
                                "(column 8 is 'Land', expected 'Country'")
