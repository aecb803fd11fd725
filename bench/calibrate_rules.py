"""Calibration sweep: a dataset's real job and DQDL rules over EVERY real file of that dataset.

The test suite keeps a handful of real files that exercise the rules' edge cases; this check
runs the whole real data set (outside the repository, /work/shared/data; --data overrides the
location), one job run a day in one local Spark session, in day order, as the pipeline would:

- the job (spark_jobs.<dataset>.main) with datasets/<dataset>.dqdl, its partition the file's day
  (evaluation time: the end of that day, the catalog's freshness_reference: partition_end);
- the rules the job defers to the gate (RowCount > median(last(10)) ..., DetectAnomalies) are
  decided as the gate decides them (pipeline_core.dqdl.evaluate_threshold) with the earlier
  days' values of the same metric as the history, newest first.

Prints one line a day (lines read / written / quarantined and any failed rule) and a summary.
Exit code 1 when a real day fails: the job exits non-zero or an error rule fails (--strict: a
warn rule too); 2 when the real data is not there.

usage: python bench/calibrate_rules.py --dataset NAME [--data PATH] [--days D1,D2,...]
                                       [--limit N] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a file from the checkout

SHARED = Path("/work/shared/data")
MONTHS = {m: i + 1 for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])}


def _by_day(folder: Path, pattern: str) -> Iterator[tuple[str, Path]]:
    for path in sorted(folder.glob(pattern)):
        yield path.name.split(".")[0], path


def _web_log_days(log: Path, work: Path) -> Iterator[tuple[str, Path]]:
    """The Apache log split by each line's own day ([dd/Mon/yyyy:), as days are delivered."""
    days: dict[str, list[str]] = defaultdict(list)
    for text in log.read_text(encoding="utf-8").splitlines():
        found = re.search(r"\[(\d\d)/(\w{3})/(\d{4}):", text)
        if found is None:
            raise SystemExit(f"{log}: a line without a [dd/Mon/yyyy: time: {text[:80]!r}")
        day, month, year = found.groups()
        days[f"{year}-{MONTHS[month]:02d}-{day}"].append(text)
    for day, lines in sorted(days.items()):
        path = work / f"{day}.log"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        yield day, path


def _single_day(path: Path) -> Iterator[tuple[str, Path]]:
    found = re.match(r"\d{4}-\d{2}-\d{2}", path.name)
    if found is None:
        raise SystemExit(f"{path}: the file name does not start with its day (YYYY-MM-DD)")
    yield found.group(0), path


# dataset -> (default location, how its real days are found)
SOURCES: dict[str, tuple[Path, Any]] = {
    "online_retail": (SHARED / "online-retail" / "by-day",
                      lambda data, work: _by_day(data, "*.csv")),
    "bank_transactions": (SHARED / "bank-berka" / "transactions" / "by-day",
                          lambda data, work: _by_day(data, "*.jsonl")),
    "web_logs": (SHARED / "apache-logs" / "apache_logs", _web_log_days),
    "shop_events": (SHARED / "clickstream-rees46" / "2019-10-01-first-17k-events.csv",
                    lambda data, work: _single_day(data)),
}


@dataclass
class Sweep:
    """The rules of a dataset, the metric history so far and the failures found."""

    rules: Any  # pipeline_core.dqdl Ruleset
    strict: bool
    history: dict[str, list[float | None]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def judge(self, quality: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(failed error rules, failed warn rules) of one day; deferred rules decided here."""
        from pipeline_core.dqdl import evaluate_threshold

        by_text = {r.text: r for r in self.rules.rules}
        errors, warns = [], []
        for result in quality["rules"]:
            outcome = result["outcome"]
            if outcome == "deferred":
                rule = by_text[result["rule"]]
                history = list(self.history[str(rule.metric_name)])
                passed = evaluate_threshold(rule, result["metric"], history).passed
                outcome = "pass" if passed else "fail"
            if outcome == "fail":
                (errors if result["severity"] == "error" else warns).append(result["rule"])
        if not errors:  # the gate's history: the same metric in earlier successful runs
            for name, value in quality["metrics"].items():
                self.history[name].insert(0, value)
        return errors, warns


def _run_day(job: Any, day: str, path: Path, rules_file: Path, out: Path
             ) -> tuple[int, dict[str, Any], dict[str, Any]]:
    out.mkdir(parents=True)
    code = job.main([
        "--input", str(path), "--output-root", f"{out}/{{table}}/",
        "--quarantine", f"{out}/quarantine/", "--metrics", f"{out}/metrics.json",
        "--quality", f"{out}/quality.json", "--rules", str(rules_file),
        "--run-id", f"calibrate-{day}", "--partition", day,
    ])
    if code != 0:
        return code, {}, {}
    return (code, json.loads((out / "metrics.json").read_text()),
            json.loads((out / "quality.json").read_text()))


def _report_day(sweep: Sweep, day: str, code: int, metrics: dict[str, Any],
                quality: dict[str, Any]) -> None:
    if code != 0:
        sweep.failures[day] = [f"the job exited {code}"]
        print(f"{day}  FAIL  the job exited {code}", flush=True)
        return
    errors, warns = sweep.judge(quality)
    if errors or (sweep.strict and warns):
        sweep.failures[day] = errors + (warns if sweep.strict else [])
    if warns:
        sweep.warnings[day] = warns
    verdict = "FAIL" if day in sweep.failures else "pass"
    print(f"{day}  {verdict}  read {metrics['lines_read']}, written {metrics['lines_written']}, "
          f"quarantined {metrics['lines_quarantined']}"
          + "".join(f"\n    error rule failed: {t}" for t in errors)
          + "".join(f"\n    warn rule failed: {t}" for t in warns), flush=True)


def _session() -> Any:
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("calibrate_rules")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "4")  # a day is small: 200 tasks idle
             .config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(SOURCES))
    parser.add_argument("--data", type=Path, help="the real files (default: under /work/shared)")
    parser.add_argument("--days", help="only these days (comma-separated YYYY-MM-DD)")
    parser.add_argument("--limit", type=int, help="only the first N days")
    parser.add_argument("--strict", action="store_true", help="a failed warn rule fails too")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    os.environ["TZ"] = "UTC"  # the jobs mean UTC wall-clock (as the tests' conftest sets)
    time.tzset()
    default, find_days = SOURCES[args.dataset]
    data = args.data or default
    if not data.exists():
        print(f"no real data at {data}: see /work/shared/data/README.md", file=sys.stderr)
        return 2

    import importlib

    from pipeline_core.dqdl import load_ruleset

    rules_file = REPO / "datasets" / f"{args.dataset}.dqdl"
    sweep = Sweep(load_ruleset(rules_file), args.strict)
    wanted = set(args.days.split(",")) if args.days else None
    work = Path(tempfile.mkdtemp(prefix="calibrate_"))
    started = time.monotonic()
    try:
        job = importlib.import_module(f"spark_jobs.{args.dataset}.main")
        _session()
        days = [(d, p) for d, p in find_days(data, work) if wanted is None or d in wanted]
        for day, path in days[:args.limit]:
            code, metrics, quality = _run_day(job, day, path, rules_file, work / "out" / day)
            _report_day(sweep, day, code, metrics, quality)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ran = len(days[:args.limit])
    print(f"\n{args.dataset}: {ran} real days from {data}, {ran - len(sweep.failures)} pass, "
          f"{len(sweep.failures)} fail, {len(sweep.warnings)} with a failed warn rule "
          f"({time.monotonic() - started:.0f} s)")
    for day, failed in sweep.failures.items():
        print(f"  FAILED {day}: " + "; ".join(failed))
    if ran == 0:
        print("no real day ran: check --data/--days", file=sys.stderr)
        return 2
    return 1 if sweep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
