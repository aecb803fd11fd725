"""The three ML jobs of issue 13 on the full real Online Retail year (305 daily files).

Reads every daily file with the online_retail job's own parsing (spark_jobs.online_retail
.transforms.parse; lines the job itself refuses are left out, exact duplicate lines kept once,
as the job does; the DQDL row rules, which refuse a few more lines, are not applied), then for
each job trains (fixed seed) and scores at --as-of, and prints the figures issue 13 asks for:
the chosen k and silhouette, the value model's MAE/RMSE against the naive forecast,
precision@10 against popularity, and each job's seconds (train + score, outputs counted).
Figures, not assertions.

usage: python bench/analytics_models.py [--as-of 2011-12-09] [--k 2-8] [--holdout-days 30]
       [--jobs customer_segments,customer_value,product_recommendations]
(--jobs: which jobs, in that order; all three by default. Each job's time is its own, so two
runs of a few jobs each give the same figures as one run of all.)
Memory: local[2], 4 GiB driver (the catalog's executor memory).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from spark_jobs.customer_segments.transforms import score_segments, train_segments  # noqa: E402
from spark_jobs.customer_value.transforms import score_value, train_value  # noqa: E402
from spark_jobs.online_retail import transforms as retail  # noqa: E402
from spark_jobs.product_recommendations.transforms import (  # noqa: E402
    score_recommendations,
    train_recommender,
)

DATA = Path("/work/shared/data/online-retail/by-day")
SEED = 42


def read_lines(spark: SparkSession, folder: Path) -> DataFrame:
    """sales_line_items rows (TYPED_COLUMNS) of every daily CSV in `folder`."""
    files = sorted(str(p) for p in folder.glob("*.csv"))
    if not files:
        raise SystemExit(f"no daily files in {folder}")
    header = ",".join(retail.HEADER)
    text = spark.read.text(files).where(F.col("value") != header).dropDuplicates(["value"])
    parsed = retail.parse(text)
    return parsed.where(F.col("_reason").isNull()).select(*retail.TYPED_COLUMNS)


def timed(label: str, work) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    work()
    seconds = time.monotonic() - started
    print(f"{label}: {seconds:.1f} s")
    return seconds


JOBS = ("customer_segments", "customer_value", "product_recommendations")


def run(spark: SparkSession, as_of: date, k_values: list[int], holdout_days: int,
        jobs: list[str]) -> None:
    lines = read_lines(spark, DATA).cache()
    print(f"lines: {lines.count():,}  files: {len(list(DATA.glob('*.csv')))}  as_of: {as_of}")

    def segments() -> None:
        model = train_segments(lines, as_of, k_values=k_values, seed=SEED)
        rows, profiles = score_segments(lines, as_of, model)
        print(f"  chosen k: {model.k}  silhouette: {model.silhouette:.4f}  "
              f"customers: {rows.count():,}")
        print("  silhouette by k: " + ", ".join(
            f"{k}={v}" for k, v in model.params.items() if k.startswith("silhouette_k")))
        profiles.orderBy("segment_id").show(truncate=False)

    def value() -> None:
        model = train_value(lines, as_of, horizon_days=90, seed=SEED)
        rows = score_value(lines, as_of, model)
        m = model.metrics
        print(f"  model MAE {m['model_mae']:.2f} vs naive MAE {m['baseline_mae']:.2f}; "
              f"RMSE {m['model_rmse']:.2f} vs {m['baseline_rmse']:.2f} "
              f"({m['eval_customers']:.0f} held-back customers, {m['train_customers']:.0f} "
              f"training); scored {rows.count():,}")

    def recommendations() -> None:
        model = train_recommender(lines, as_of, top_n=10, holdout_days=holdout_days, seed=SEED)
        rows = score_recommendations(lines, as_of, model, top_n=10)
        m = model.metrics
        print(f"  precision@10 {m['precision_at_10']:.4f} vs popularity "
              f"{m['popularity_precision_at_10']:.4f} ({m['eval_customers']:.0f} customers); "
              f"rows {rows.count():,}")

    works = {"customer_segments": segments, "customer_value": value,
             "product_recommendations": recommendations}
    for label in jobs:
        print(label)
        timed(f"  {label} time", works[label])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2011, 12, 9))
    parser.add_argument("--k", default="2-8", help="k range, e.g. 2-8")
    parser.add_argument("--holdout-days", type=int, default=30)
    parser.add_argument("--jobs", default=",".join(JOBS), help="comma-separated, in order")
    args = parser.parse_args()
    jobs = args.jobs.split(",")
    if unknown := sorted(set(jobs) - set(JOBS)):
        parser.error(f"unknown jobs {unknown}: choose from {', '.join(JOBS)}")
    low, high = (int(x) for x in args.k.split("-"))
    spark = (SparkSession.builder.master("local[2]").appName("analytics_models")
             .config("spark.driver.memory", "4g").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "8")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        run(spark, args.as_of, list(range(low, high + 1)), args.holdout_days, jobs)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
