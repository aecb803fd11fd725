"""One batch of real days through the online_retail job in one local[2] Spark (issue 12 item 5):
how long the days take run one at a time (the reference: one `main(argv)` per day, what a run
per object costs once Spark is up) and as one batch (one `main(argv)` with one `--input` group
per day, as the backfill's job run gets them: `RawJob.run_batch`, one pass over every file).

Both on the same warm session (a first batch of a few days warms the JVM and is not counted).
Prints per pass: wall time, seconds per day, Spark jobs run, and the wall time's ratio to the
reference's. Figures, not assertions.

usage: python bench/bench_batch.py [--start 2011-03-01] [--days 31] [--passes each,batch]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a file from the checkout

DATA = Path("/work/shared/data/online-retail/by-day")
RETAINED_JOBS = 100_000  # spark.ui.retainedJobs: every job of the passes is counted


def batch_argv(files: list[Path], out: Path) -> list[str]:
    """The job's arguments for a batch of `files` (the shared options in the first group), in
    the product's layout (pipeline_aws.resolve.RunPaths): a run of one file under its run's
    folder, a batch's partitions under the batch's."""
    argv: list[str] = []
    for i, path in enumerate(files):
        day, runs = path.name[:10], out / "_runs" / path.name[:10]
        folder = (f"batch=bench/partition={day}/" if len(files) > 1
                  else f"partition={day}/run_id=bench-{day}/")
        argv += ["--input", str(path), "--output-root", f"{out}/{{table}}/{folder}",
                 "--quarantine", f"{out}/quarantine/{folder}",
                 "--metrics", f"{runs}/metrics.json", "--quality", f"{runs}/quality.json",
                 "--run-id", f"bench-{day}", "--partition", day]
        if i == 0:
            argv += ["--rules", str(REPO / "datasets" / "online_retail.dqdl")]
    return argv


def _spark_jobs(spark: Any) -> int:
    """Spark jobs the application has run (its status store keeps RETAINED_JOBS)."""
    return int(spark._jsc.sc().statusStore().jobsList(None).size())


def one_pass(files: list[Path], out: Path, mode: str) -> dict[str, Any]:
    """The days through the job, `each` one main() per day or `batch` one main() for all."""
    from pyspark.sql import SparkSession

    from spark_jobs.online_retail import main as job

    spark = SparkSession.getActiveSession()
    assert spark is not None
    jobs_before = _spark_jobs(spark)
    groups = [[f] for f in files] if mode == "each" else [files]
    started = time.monotonic()
    for group in groups:
        with contextlib.redirect_stdout(io.StringIO()):  # the job's line per partition
            code = job.main(batch_argv(group, out))
        if code != 0:
            raise SystemExit(f"{mode}: the job failed with exit code {code}")
    wall = time.monotonic() - started
    jobs = _spark_jobs(spark) - jobs_before
    loaded = [json.loads((out / "_runs" / f.name[:10] / "metrics.json").read_text())
              ["lines_written"] for f in files]
    return {"pass": mode, "wall_s": round(wall, 1), "s_per_day": round(wall / len(files), 2),
            "spark_jobs": jobs, "lines_written": sum(loaded)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2011-03-01", help="first day (a file's date)")
    parser.add_argument("--days", type=int, default=31, help="files in the batch")
    parser.add_argument("--passes", default="each,batch",
                        help="each (one run per day) and/or batch (one run of every day), "
                             "the first the reference")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    files = [f for f in sorted(args.data.glob("*.csv")) if f.name[:10] >= args.start]
    files = files[:args.days]
    if len(files) < args.days:
        raise SystemExit(f"only {len(files)} day files from {args.start} in {args.data}")

    from pyspark.sql import SparkSession

    passes = args.passes.split(",")
    if not passes or set(passes) - {"each", "batch"}:
        raise SystemExit(f"--passes takes each and batch, not {args.passes!r}")
    spark = (SparkSession.builder.master("local[2]").appName("bench_batch")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.retainedJobs", str(RETAINED_JOBS)).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    print(f"load before      {os.getloadavg()[0]:.2f} (1 min)")
    try:
        one_pass(files[:4], work / "warm-up", "batch")
        results = []
        for n, mode in enumerate(passes):
            results.append(one_pass(files, work / f"pass{n}", mode))
            results[-1]["ratio"] = round(results[-1]["wall_s"] / results[0]["wall_s"], 2)
            print(json.dumps(results[-1]), flush=True)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"batch            {len(files)} files, {files[0].name} .. {files[-1].name}")
    print(f"load after       {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
