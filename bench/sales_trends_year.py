"""sales_trends on the full real Online Retail year (305 daily files): the figures of issue 13.

Reads every daily file with the online_retail job's own parsing (lines the job refuses left
out, exact duplicate lines kept once; the DQDL row rules, which refuse a few more lines, are
not applied), writes them as curated folders (one per day, as the pipeline does), then times:
- the whole year's trends in one transform (every day from the first to the last);
- one pipeline run as the catalog declares it (the DerivedJob's main on an inputs.json of the
  30 days up to --as-of: read, compute, the warehouse checks, write, the rules, metrics).
Figures, not assertions.

usage: python bench/sales_trends_year.py [--as-of 2011-12-09] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline_core.catalog import load_catalog  # noqa: E402
from pipeline_core.derived import UpstreamRun, inputs_bytes, inputs_document  # noqa: E402
from spark_jobs.online_retail import transforms as retail  # noqa: E402
from spark_jobs.sales_trends import main as job  # noqa: E402
from spark_jobs.sales_trends import transforms  # noqa: E402

DATA = Path("/work/shared/data/online-retail/by-day")


def read_lines(spark: SparkSession, folder: Path) -> DataFrame:
    """sales_line_items rows (TYPED_COLUMNS) of every daily CSV in `folder`."""
    files = sorted(str(p) for p in folder.glob("*.csv"))
    if not files:
        raise SystemExit(f"no daily files in {folder}")
    header = ",".join(retail.HEADER)
    text = spark.read.text(files).where(F.col("value") != header).dropDuplicates(["value"])
    parsed = retail.parse(text)
    return parsed.where(F.col("_reason").isNull()).select(*retail.TYPED_COLUMNS)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--as-of", default="2011-12-09")
    p.add_argument("--work", type=Path, default=None)
    a = p.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="sales-trends-"))
    spark = (SparkSession.builder.master("local[2]").appName("sales_trends_year")
             .config("spark.driver.memory", "4g").config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.enabled", "false").getOrCreate())
    curated = work / "online_retail" / "sales_line_items"
    started = time.monotonic()
    lines = read_lines(spark, DATA).withColumn("run_id", F.lit("bench"))
    # One folder per day that keeps its order_date column (as the pipeline's folders do).
    lines.withColumn("day", F.col("order_date")).write.mode("overwrite").partitionBy(
        "day").parquet(str(curated))
    print(f"curated year written: {time.monotonic() - started:.1f} s")
    year = spark.read.parquet(str(curated)).drop("day").cache()
    first, last = year.agg(F.min("order_date"), F.max("order_date")).first()
    print(f"lines: {year.count():,}  days: {year.select('order_date').distinct().count()}")

    started = time.monotonic()
    rows = transforms.sales_trends(year, first, last).cache()
    n = rows.count()
    print(f"whole year in one transform: {n:,} rows ({first} to {last}) in "
          f"{time.monotonic() - started:.1f} s")
    rows.where(F.col("country") == "ALL").orderBy(F.desc("revenue_30d")).show(3)

    dataset = load_catalog().get("sales_trends")
    days = sorted(str(d.name).split("=", 1)[1] for d in curated.glob("day=*"))
    runs = [UpstreamRun("online_retail", d, "bench",
                        (("sales_line_items", str(curated / f"day={d}") + "/"),))
            for d in days]
    inputs = work / "inputs.json"
    inputs.write_bytes(inputs_bytes(inputs_document(dataset, a.as_of, runs)))
    out = work / "run"
    started = time.monotonic()
    code = job.main(["--input", str(inputs), "--output-root", f"{out}/{{table}}/",
                     "--metrics", f"{out}/metrics.json", "--quality", f"{out}/quality.json",
                     "--rules", str(REPO / "datasets" / "sales_trends.dqdl"),
                     "--run-id", f"bench-{a.as_of}", "--partition", a.as_of])
    seconds = time.monotonic() - started
    metrics = json.loads((out / "metrics.json").read_text())
    quality = json.loads((out / "quality.json").read_text())
    print(f"one run (as_of {date.fromisoformat(a.as_of)}, exit {code}): {seconds:.1f} s; "
          f"inputs {metrics['inputs']}; rows read {metrics['lines_read']:,}, written "
          f"{metrics['lines_written']}; rules {[r['outcome'] for r in quality['rules']]}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
