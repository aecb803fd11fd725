"""One batch of real days through the online_retail job in one local[2] Spark (issue 12 item 5):
how long a batch takes when its partitions run one at a time (the reference, workers 1) and
when they run concurrently (`RawJob.run_batch`, PARTITION_WORKERS at once), in one process.

Each pass is `main(argv)` with one `--input` group per day (as the backfill's job run gets
them), on the same warm session (a first pass of a few days warms the JVM and is not counted),
with `raw_job.PARTITION_WORKERS` set to the pass's workers. Prints per pass: wall time, the sum,
median and max of the partitions' own `duration_seconds`, and its wall time's ratio to the first
pass's. Figures, not assertions.

usage: python bench/bench_batch.py [--start 2011-03-01] [--days 31] [--workers 1,4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a file from the checkout

DATA = Path("/work/shared/data/online-retail/by-day")


def batch_argv(files: list[Path], out: Path) -> list[str]:
    """The job's arguments for a batch of `files`: the shared options in the first group."""
    argv: list[str] = []
    for i, path in enumerate(files):
        day, base = path.name[:10], out / path.name[:10]
        argv += ["--input", str(path), "--output-root", f"{base}/{{table}}/",
                 "--quarantine", f"{base}/quarantine/", "--metrics", f"{base}/metrics.json",
                 "--quality", f"{base}/quality.json", "--run-id", f"bench-{day}",
                 "--partition", day]
        if i == 0:
            argv += ["--rules", str(REPO / "datasets" / "online_retail.dqdl")]
    return argv


def one_pass(files: list[Path], out: Path, workers: int) -> dict[str, Any]:
    from spark_jobs.common import raw_job
    from spark_jobs.online_retail import main as job

    raw_job.PARTITION_WORKERS = workers
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):  # the job's line per partition
        code = job.main(batch_argv(files, out))
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"the batch failed with exit code {code}")
    durations = [json.loads((out / f.name[:10] / "metrics.json").read_text())
                 ["duration_seconds"] for f in files]
    return {"workers": workers, "wall_s": round(wall, 1),
            "partition_s_sum": round(sum(durations), 1),
            "partition_s_median": round(statistics.median(durations), 2),
            "partition_s_max": round(max(durations), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2011-03-01", help="first day (a file's date)")
    parser.add_argument("--days", type=int, default=31, help="files in the batch")
    parser.add_argument("--workers", default=None,
                        help="partitions at once, one pass each, the first the reference "
                             "(default: 1 and PARTITION_WORKERS)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    files = [f for f in sorted(args.data.glob("*.csv")) if f.name[:10] >= args.start]
    files = files[:args.days]
    if len(files) < args.days:
        raise SystemExit(f"only {len(files)} day files from {args.start} in {args.data}")

    from pyspark.sql import SparkSession

    from spark_jobs.common import raw_job

    concurrent = raw_job.PARTITION_WORKERS
    passes = [int(w) for w in (args.workers or f"1,{concurrent}").split(",")]
    spark = (SparkSession.builder.master("local[2]").appName("bench_batch")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    print(f"load before      {os.getloadavg()[0]:.2f} (1 min)")
    try:
        one_pass(files[:4], work / "warm-up", concurrent)
        results = []
        for n, workers in enumerate(passes):
            results.append(one_pass(files, work / f"pass{n}", workers))
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
