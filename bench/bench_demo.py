"""Benchmark: `demo` end to end over the 3 sample days, and the time outside Spark and SQL.

orchestration overhead per run = run wall time - Spark job subprocess time - SQL time
(Spark time: the job subprocesses' wall time; SQL time: the Data API stand-in's statement time).
Targets: <= 90 s end to end on 2 cores, <= 5 s outside Spark and SQL per run.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    from local_runtime.cli import DEMO_QUERY, SAMPLE_DIR, query, run_file
    from local_runtime.sfn_hooks import quiet_moto_logging
    from local_runtime.stack import LocalDeployment

    quiet_moto_logging()
    # A fresh work dir: with the repo's .local, whose ledger remembers earlier runs, every day
    # would be a duplicate that loads nothing and measures nothing.
    work_dir = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    t0 = time.monotonic()
    deployment = LocalDeployment(work_dir=work_dir).start()
    setup = time.monotonic() - t0
    runs = []
    try:
        for f in sorted((SAMPLE_DIR / "online_retail").glob("*.csv")):
            res = run_file(deployment, f, f"online_retail/{f.name}", out=None)
            runs.append(res)
        query(deployment, DEMO_QUERY)
    finally:
        deployment.stop(stop_warehouse=True)
        shutil.rmtree(work_dir, ignore_errors=True)
    total = time.monotonic() - t0
    print(f"setup (moto, warehouse, artifacts): {setup:6.2f} s")
    for r in runs:
        s = r.summary
        print(f"{s.get('partition')}: {r.status:<9} total {r.wall_seconds:6.2f} s  "
              f"spark {r.job_seconds:6.2f} s  sql {r.sql_seconds:5.2f} s  "
              f"lambda {r.lambda_seconds:5.2f} s  outside spark+sql "
              f"{r.wall_seconds - r.job_seconds - r.sql_seconds:5.2f} s")
    worst = max((r.wall_seconds - r.job_seconds - r.sql_seconds for r in runs), default=0)
    print(f"end to end: {total:6.2f} s (target <= 90 s); worst outside Spark and SQL per run: "
          f"{worst:5.2f} s (target <= 5 s)")
    ok = all(r.status == "SUCCEEDED" for r in runs)
    return 0 if ok and total <= 90 and worst <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
