"""The online_retail Spark job against DuckDB on the same input and the same outputs.

For each input size (a real day; the real year as one day's file; synthetic files of 5M and 10M
lines in the real format, bench/retail_lines.py), it first runs the product's job and the
DuckDB program (bench/duckdb_retail.py, with and without the rules) once and checks that their
tables are equal row for row and that the rule metrics agree; then it times interleaved rounds,
each run in a fresh process (the job as a job run pays Spark's start; its own timer is shown
apart), and prints each time, CPU seconds, the ratios to DuckDB and seconds per million lines;
for the job also its Spark jobs, task seconds and shuffle bytes written (from the driver's
status store) and the bytes_read / input_bytes of its metrics.json.
Figures, not assertions: the exit code is non-zero only when the outputs differ.

usage: python bench/bench_vs_duckdb.py [--sizes day,year,5m,10m] [--rounds 3] [--keep]
Memory: the job runs in local[2] with a 4 GiB driver (the catalog's executor memory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import retail_lines  # noqa: E402

REAL_DAY = retail_lines.DATA / "2011-03-01.csv"
DAY = "2011-06-01"
SIZES = {"day": None, "year": -1, "1m": 1_000_000, "5m": 5_000_000, "10m": 10_000_000}

SPARK_DRIVER = """
import json, os, resource, sys, time
sys.path.insert(0, {repo!r})
started = time.monotonic()
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[2]").appName("bench_vs_duckdb")
         .config("spark.driver.memory", "4g").config("spark.ui.enabled", "false")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
from spark_jobs.online_retail import main as job
code = job.main({argv!r})
jvm = spark.sparkContext._gateway.proc.pid
with open(f"/proc/{{jvm}}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
jvm_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
own = resource.getrusage(resource.RUSAGE_SELF)
sc = spark.sparkContext
sc._jsc.sc().listenerBus().waitUntilEmpty(15000)
store = sc._jsc.sc().statusStore()
stages = store.stageList(None, False, False, sc._gateway.new_array(sc._jvm.double, 0), None)
shuffle = task_ms = 0
it = stages.iterator()
while it.hasNext():
    stage = it.next()
    shuffle += int(stage.shuffleWriteBytes())
    task_ms += int(stage.executorRunTime())
jobs = store.jobsList(None).size()
spark.stop()
print("BENCH " + json.dumps({{"code": code, "jvm_cpu": jvm_cpu,
                              "py_cpu": own.ru_utime + own.ru_stime, "jobs": jobs,
                              "shuffle_bytes": shuffle, "task_seconds": task_ms / 1000}}))
"""

# quality.json metric name -> the DuckDB program's metric (bench/duckdb_retail.py)
METRICS = {
    "Column.invoice_no.Completeness": "invoice_no_complete",
    "Column.customer_id.Completeness": "customer_id_complete",
    "Column.description.Completeness": "description_complete",
    "Dataset.*.RowCount": "row_count",
}


def build_input(size: str, work: Path, rows: list[list[str]] | None) -> tuple[Path, str]:
    if SIZES[size] is None:
        return REAL_DAY, REAL_DAY.stem
    target = work / f"input-{size}.csv"
    if not target.exists():
        assert rows is not None
        count = len(rows) if SIZES[size] == -1 else SIZES[size]
        retail_lines.write(target, rows, count, DAY)
    return target, DAY


def reference_time(day: str) -> str:
    con = duckdb.connect()
    value = con.execute("SELECT CAST(CAST($d AS DATE) + INTERVAL 1 DAY AS DATE)",
                        {"d": day}).fetchone()
    return f"{value[0]}T00:00:00Z"


def run_spark(source: Path, day: str, out: Path) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    argv = ["--input", str(source), "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/quarantine/", "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json",
            "--rules", str(REPO / "datasets" / "online_retail.dqdl"),
            "--run-id", "bench", "--partition", day, "--reference-time", reference_time(day)]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SPARK_DRIVER.format(repo=str(REPO), argv=argv)],
                          capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"the Spark job failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(line[6:])
    if result["code"] != 0:
        raise SystemExit(f"the job exited {result['code']}:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall": wall, "job": metrics["duration_seconds"],
            "cpu": result["jvm_cpu"] + result["py_cpu"], "metrics": metrics,
            "jobs": result["jobs"], "shuffle_mb": result["shuffle_bytes"] / 1e6,
            "task_seconds": result["task_seconds"],
            "read_ratio": (metrics["bytes_read"] / metrics["input_bytes"]
                           if metrics.get("bytes_read") is not None else None)}


def run_duckdb(source: Path, day: str, out: Path, rules: bool) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, str(REPO / "bench" / "duckdb_retail.py"), "--input", str(source),
               "--partition", day, "--out", str(out)] + (["--rules"] if rules else [])
    started = time.monotonic()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)  # the child's own CPU, not the bench's
    wall = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"the DuckDB program failed (status {status})")
    figures = json.loads((out / "figures.json").read_text())
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "figures": figures}


def differences(spark_out: Path, duck_out: Path) -> list[str]:
    """Rows in one table and not the other (multisets), per table, run_id aside."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    found = []
    for table, columns in (
        ("sales_line_items", "invoice_no, stock_code, description, quantity, unit_price, "
                             "CAST(invoice_ts AS TIMESTAMP), order_date, customer_id, country, "
                             "is_cancellation, line_revenue"),
        ("customer_daily_sales", "order_date, customer_id, orders, units, revenue, "
                                 "returned_value, CAST(first_purchase_ts AS TIMESTAMP), "
                                 "CAST(last_purchase_ts AS TIMESTAMP)"),
    ):
        spark = f"SELECT {columns} FROM read_parquet('{spark_out}/{table}/*.parquet')"
        duck = f"SELECT {columns} FROM read_parquet('{duck_out}/{table}.parquet')"
        for label, left, right in (("only in Spark", spark, duck), ("only in DuckDB", duck, spark)):
            rows = con.execute(f"SELECT * FROM ({left} EXCEPT ALL {right}) LIMIT 3").fetchall()
            total = con.execute(f"SELECT count(*) FROM ({left} EXCEPT ALL {right})").fetchone()[0]
            if total:
                found.append(f"{table}: {total} rows {label}, e.g. {rows}")
    return found


def metric_differences(spark_quality: dict[str, Any], duck_metrics: dict[str, Any]) -> list[str]:
    found = []
    measured = {r.get("metric_name"): r.get("metric") for r in spark_quality["rules"]}
    for name, ours in METRICS.items():
        if name in measured and abs(float(measured[name]) - float(duck_metrics[ours])) > 1e-9:
            found.append(f"{name}: job {measured[name]} vs DuckDB {duck_metrics[ours]}")
    return found


def check(source: Path, day: str, work: Path) -> tuple[bool, int]:
    spark = run_spark(source, day, work / "spark")
    ok = True
    for rules in (False, True):
        duck = run_duckdb(source, day, work / f"duck-{rules}", rules)
        problems = differences(work / "spark", work / f"duck-{rules}")
        if rules:
            quality = json.loads((work / "spark" / "quality.json").read_text())
            problems += metric_differences(quality, duck["figures"]["metrics"])
            if duck["figures"]["quarantined"] != spark["metrics"]["lines_quarantined"]:
                problems.append(f"quarantined: job {spark['metrics']['lines_quarantined']} vs "
                                f"DuckDB {duck['figures']['quarantined']}")
        for problem in problems:
            print(f"  DIFFERENT ({'with' if rules else 'without'} rules): {problem}")
        ok = ok and not problems
    return ok, int(spark["metrics"]["lines_read"])


def time_rounds(source: Path, day: str, work: Path, rounds: int) -> dict[str, list[dict]]:
    runners = {
        "spark": lambda: run_spark(source, day, work / "spark"),
        "duckdb_rules": lambda: run_duckdb(source, day, work / "duck-rules", True),
        "duckdb": lambda: run_duckdb(source, day, work / "duck", False),
    }
    times: dict[str, list[dict]] = {name: [] for name in runners}
    order = list(runners)
    for index in range(rounds):
        for name in order[index % 3:] + order[:index % 3]:  # interleaved, rotating the order
            times[name].append(runners[name]())
    return times


def report(size: str, lines: int, size_bytes: int, times: dict[str, list[dict]]) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(t[key] for t in times[name])

    print(f"\n{size}: {lines:,} lines, {size_bytes / 1e6:.1f} MB")
    for name, runs in times.items():
        walls = ", ".join(f"{t['wall']:.1f}" for t in runs)
        cpus = ", ".join(f"{t['cpu']:.1f}" for t in runs)
        own = ", ".join(f"{t['job']:.1f}" for t in runs) if name == "spark" else ""
        extra = f"; the job's own timer {own} s" if own else ""
        print(f"  {name:13s} wall {walls} s; CPU {cpus} s{extra}")
        if name == "spark":
            print("  spark: " + "; ".join(
                f"{t['jobs']} Spark jobs, {t['task_seconds']:.1f} task-s, shuffle written "
                f"{t['shuffle_mb']:.1f} MB, bytes_read/input_bytes "
                + (f"{t['read_ratio']:.2f}" if t["read_ratio"] is not None else "unknown")
                for t in runs))
    spark_wall, spark_job = med("spark", "wall"), med("spark", "job")
    for ref in ("duckdb_rules", "duckdb"):
        print(f"  spark / {ref:12s} wall {spark_wall / med(ref, 'wall'):.1f}x (job's own timer "
              f"{spark_job / med(ref, 'wall'):.1f}x), CPU "
              f"{med('spark', 'cpu') / med(ref, 'cpu'):.1f}x")
    millions = lines / 1e6
    print(f"  per million lines: spark {spark_wall / millions:.1f} s (job's own "
          f"{spark_job / millions:.1f} s), duckdb with rules "
          f"{med('duckdb_rules', 'wall') / millions:.1f} s, duckdb "
          f"{med('duckdb', 'wall') / millions:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="day,year,5m,10m",
                        help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    if unknown := [s for s in sizes if s not in SIZES]:
        raise SystemExit(f"unknown sizes {unknown}: choose from {', '.join(SIZES)}")
    work = Path(tempfile.mkdtemp(prefix="bench_vs_duckdb_"))
    rows = retail_lines.real_rows() if any(SIZES[s] for s in sizes) else None
    all_equal = True
    try:
        for size in sizes:
            source, day = build_input(size, work, rows)
            equal, lines = check(source, day, work / size)
            print(f"{size}: outputs {'equal' if equal else 'DIFFERENT'} ({lines:,} lines)")
            all_equal = all_equal and equal
            if equal:
                report(size, lines, source.stat().st_size,
                       time_rounds(source, day, work / size, args.rounds))
    finally:
        if args.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())
