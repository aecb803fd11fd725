"""Does the online_retail job read its input once, with every rule on?

Builds one large input from real days (30 by default, header once), runs the real job on it in a
fresh local Spark, and prints the input size, the bytes Spark reports it read (stage input
metrics from the status store), their ratio and the wall time. The bound the job promises is a
ratio of at most 1.05.

The rules are datasets/online_retail.dqdl minus its DataFreshness rule: that rule says "every
line belongs to the partition day", which a file of 30 days breaks on purpose.

usage: python bench/bench_one_pass.py [--days 30] [--gzip] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a file from the checkout

DATA = Path("/work/shared/data/online-retail/by-day")


def build_input(days: int, target: Path, compress: bool, source: Path) -> tuple[Path, int]:
    files = sorted(source.glob("*.csv"))[:days]
    if len(files) < days:
        raise SystemExit(f"only {len(files)} day files in {source}")
    lines = 0
    parts: list[bytes] = []
    for i, path in enumerate(files):
        header, _, body = path.read_bytes().partition(b"\n")
        if i == 0:
            parts.append(header + b"\n")
        parts.append(body if body.endswith(b"\n") else body + b"\n")
        lines += body.count(b"\n")
    data = b"".join(parts)
    if compress:
        target = target.with_suffix(".csv.gz")
        target.write_bytes(gzip.compress(data))
    else:
        target.write_bytes(data)
    return target, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--gzip", action="store_true", help="gzip the input first")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    from spark_jobs.online_retail import main as job

    work = Path(tempfile.mkdtemp(prefix="bench_one_pass_"))
    try:
        source, lines = build_input(args.days, work / "input.csv", args.gzip, args.data)
        rules = work / "rules.dqdl"
        kept = [line for line in (REPO / "datasets" / "online_retail.dqdl").read_text()
                .splitlines() if not line.strip().startswith("DataFreshness")]
        rules.write_text("\n".join(kept) + "\n")

        spark = (SparkSession.builder.master("local[2]").appName("bench_one_pass")
                 .config("spark.ui.enabled", "true").config("spark.ui.port", "0")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        out = work / "out"
        started = time.monotonic()
        code = job.main([
            "--input", str(source), "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/quarantine/", "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json", "--rules", str(rules),
            "--run-id", "bench-one-pass", "--partition", "2010-12-01",
        ])
        wall = time.monotonic() - started
        spark.stop()
        if code != 0:
            print(f"the job failed with exit code {code}")
            return code
        metrics = json.loads((out / "metrics.json").read_text())
        quality = json.loads((out / "quality.json").read_text())
        size, read = metrics["input_bytes"], metrics["bytes_read"]
        ratio = None if read is None else read / size
        print(f"input            {source.name}: {args.days} real days, {lines} data lines")
        print(f"rules            {len(quality['rules'])} ({metrics['quality']})")
        print(f"lines            read {metrics['lines_read']}, written {metrics['lines_written']}"
              f", quarantined {metrics['lines_quarantined']}, duplicates "
              f"{metrics['duplicates']}")
        print(f"input bytes      {size}")
        unknown = "unknown (status store did not settle)"
        print(f"bytes read       {read if read is not None else unknown}")
        print(f"ratio            {ratio:.4f}" if ratio is not None else "ratio            n/a")
        print(f"wall time        {wall:.1f} s (job's own timer: "
              f"{metrics['duration_seconds']:.1f} s)")
        verdict = "within" if ratio is not None and ratio <= 1.05 else "NOT within"
        print(f"one pass         {verdict} the 1.05 x input bound")
        return 0
    finally:
        if args.keep:
            print(f"work directory   {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
