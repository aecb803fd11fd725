"""Benchmark (issue 12 item 5): the real year of online_retail through the backfill, against one
run per day, and a burst of 30 days dropped at once.

Three parts, each its own `python -m local_runtime` process on its own fresh work directory (a
new ledger: with an old one every day would be skipped and nothing measured):
- year: `backfill --dataset online_retail --from-dir <the 305 daily files>`: wall time (the
  process, set-up included, and the state machine alone), partitions loaded, job runs and the
  cost estimate the backfill's summary gives (TrackCost of every batch: the product's own
  estimator over what the local stand-ins bill, at list prices);
- one day: `run --file <first day>`: one pipeline execution of one day, the path every object
  took before batches; its TrackCost estimate times the year's days is "one run per day";
- burst: `run --dir <30 days> --dataset online_retail`: every file dropped at once as S3 events
  (queue -> AdmitObjects -> batched executions, local_runtime.burst).
Figures, not assertions: the exit code says only whether every part succeeded.

Usage: python bench/bench_backfill_year.py [--parts year,day,burst] [--days DIR] [--burst N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAYS = REPO.parent / "shared" / "data" / "online-retail" / "by-day"
PYTHON = REPO / ".venv" / "bin" / "python"
sys.path.insert(0, str(REPO))


def _cli(args: list[str], work_dir: Path, summary: Path) -> tuple[int, float, dict[str, Any]]:
    """One local_runtime process: its exit code, wall time and --summary-json."""
    t0 = time.monotonic()
    cmd = [str(PYTHON), "-m", "local_runtime", *args, "--work-dir", str(work_dir),
           "--summary-json", str(summary)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, check=False)
    finally:
        from local_runtime.warehouse import saved_warehouse
        from local_runtime.warm_spark import stop_server

        # the part's warm Spark and embedded PostgreSQL, not left running after it
        stop_server(work_dir / "spark-server")
        warehouse = saved_warehouse(work_dir / "warehouse")
        if warehouse is not None:
            warehouse.stop()
    wall = time.monotonic() - t0
    data = json.loads(summary.read_text()) if summary.exists() else {}
    return proc.returncode, wall, data


def year(days: Path, tmp: Path) -> dict[str, Any]:
    code, wall, s = _cli(["backfill", "--dataset", "online_retail", "--from-dir", str(days)],
                         tmp / "year", tmp / "year.json")
    counts = s.get("counts") or {}
    return {"exit": code, "wall_s": round(wall, 1), "machine_s": s.get("seconds"),
            "status": s.get("status"), "loaded": counts.get("loaded"),
            "failed": counts.get("failed"), "batches": counts.get("batches"),
            "job_runs": counts.get("job_runs"), "cost_usd": s.get("cost_usd"),
            "cost_complete": s.get("cost_complete")}


def one_day(days: Path, tmp: Path) -> dict[str, Any]:
    first = sorted(days.glob("*.csv"))[0]
    code, wall, s = _cli(["run", "--file", str(first), "--key", f"online_retail/{first.name}"],
                         tmp / "day", tmp / "day.json")
    return {"exit": code, "wall_s": round(wall, 1), "run_s": s.get("seconds"),
            "status": s.get("status"), "cost_usd": s.get("estimated_cost_usd"),
            "day": first.name}


def burst(days: Path, tmp: Path, count: int) -> dict[str, Any]:
    folder = tmp / "burst-days"
    folder.mkdir()
    for f in sorted(days.glob("*.csv"))[:count]:
        shutil.copy(f, folder / f.name)
    code, wall, s = _cli(["run", "--dir", str(folder), "--dataset", "online_retail"],
                         tmp / "burst", tmp / "burst.json")
    return {"exit": code, "wall_s": round(wall, 1), "files": count,
            **{k: s.get(k) for k in ("seconds", "executions", "job_runs", "loaded", "failed",
                                     "duplicates", "cost_usd", "max_running")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="year,day,burst")
    p.add_argument("--days", type=Path, default=DAYS)
    p.add_argument("--burst", type=int, default=30)
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    files = sorted(args.days.glob("*.csv"))
    if not files:
        print(f"no daily files in {args.days}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    results: dict[str, Any] = {"days": len(files)}
    try:
        if "year" in parts:
            results["year"] = year(args.days, tmp)
        if "day" in parts:
            results["one_day"] = one_day(args.days, tmp)
        if "burst" in parts:
            results["burst"] = burst(args.days, tmp, args.burst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results)
    return 0 if all(v.get("exit") == 0 for v in results.values() if isinstance(v, dict)) else 1


def report(r: dict[str, Any]) -> None:
    print("\n== bench_backfill_year")
    print(json.dumps(r, indent=2))
    y, d = r.get("year"), r.get("one_day")
    if y and d and d.get("cost_usd") is not None and y.get("cost_usd") is not None:
        per_day = float(d["cost_usd"]) * r["days"]
        print(f"\nyear: {y['loaded']} days loaded in {y['wall_s']} s with {y['job_runs']} job "
              f"runs, estimated ${float(y['cost_usd']):.4f}; one run per day: {r['days']} job "
              f"runs, estimated {r['days']} x ${float(d['cost_usd']):.4f} = ${per_day:.4f}")
    b = r.get("burst")
    if b:
        print(f"burst: {b['files']} files at once in {b['wall_s']} s: {b.get('executions')} "
              f"executions, {b.get('job_runs')} job runs, at most {b.get('max_running')} "
              f"running at once, estimated ${b.get('cost_usd')}")


if __name__ == "__main__":
    sys.exit(main())
