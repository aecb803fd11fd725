"""`python -m pipeline_aws runs`: recent runs from the run ledger, with status, duration, rows
and cost.

`list_runs` takes a boto3 Table resource so the local runtime can call it on its restored
ledger; it reads through RunLedger, which only Queries the GSI `by_dataset` (one query per
dataset of the catalog when no dataset is given): a Scan would read every item of every dataset
ever run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from pipeline_aws.ledger import LedgerPort, RunLedger, parse_iso_utc

_FIELDS = ("run_id", "dataset", "partition", "status", "compute", "started_at", "ended_at",
           "rows_loaded", "lines", "cost", "failure")


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a, b = parse_iso_utc(start), parse_iso_utc(end)
    except ValueError:
        return None
    return (b - a).total_seconds()


def summarize(item: dict[str, Any]) -> dict[str, Any]:
    """One ledger item (numbers as int/float) -> the row the CLI shows."""
    rows_loaded = item.get("rows_loaded") or {}
    lines = item.get("lines") or {}
    rows = sum(v for v in rows_loaded.values() if isinstance(v, int)) if rows_loaded else (
        lines.get("out"))
    cost = item.get("cost") or {}
    return {
        "run_id": item.get("run_id"),
        "dataset": item.get("dataset"),
        "partition": item.get("partition"),
        "status": item.get("status", "UNKNOWN"),
        "compute": item.get("compute"),
        "started_at": item.get("started_at"),
        "ended_at": item.get("ended_at"),
        "duration_s": _seconds_between(item.get("started_at"), item.get("ended_at")),
        "rows": rows,
        "cost_usd": cost.get("total_usd"),
        "cost_complete": cost.get("complete"),
        "failed_state": (item.get("failure") or {}).get("state"),
    }


def list_runs(table: Any, dataset: str | None = None, since: date | str | None = None,
              limit: int = 50, *, datasets: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The newest `limit` runs (of `dataset`, or of every catalog dataset), newest first.

    `since` (a date or YYYY-MM-DD) keeps runs started that day or later. `datasets` replaces the
    catalog's dataset names when no `dataset` is given.
    """
    return recent_runs(RunLedger(table), dataset, since, limit, datasets=datasets)


def recent_runs(ledger: LedgerPort, dataset: str | None = None,
                since: date | str | None = None, limit: int = 50, *,
                datasets: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """`list_runs` over any LedgerPort."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    since_key = since.isoformat() if isinstance(since, date) else since
    if dataset:
        names: Iterable[str] = [dataset]
    elif datasets is not None:
        names = datasets
    else:
        from pipeline_core.catalog import load_catalog

        names = sorted(load_catalog(os.environ.get("CATALOG_DIR") or None).datasets)
    items = [item for name in names
             for item in ledger.query_by_dataset(name, since_key, limit, fields=_FIELDS)]
    items.sort(key=lambda i: str(i.get("started_at", "")), reverse=True)
    return [summarize(item) for item in items[:limit]]


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = ("STARTED", "DATASET", "PARTITION", "STATUS", "DURATION", "ROWS", "COST USD",
               "RUN ID")
    lines = [headers]
    for r in rows:
        cost = "-" if r["cost_usd"] is None else f"{r['cost_usd']:.4f}"
        if r["cost_usd"] is not None and r.get("cost_complete") is False:
            cost += "+"  # a lower bound: some component could not be priced
        lines.append((str(r["started_at"] or "-"), str(r["dataset"] or "-"),
                      str(r["partition"] or "-"), str(r["status"]),
                      _fmt_duration(r["duration_s"]),
                      "-" if r["rows"] is None else str(r["rows"]), cost, str(r["run_id"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
                     for line in lines)


def _since(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date written YYYY-MM-DD") from e


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m pipeline_aws runs")
    parser.description = "Recent pipeline runs with status, duration, rows and cost."
    parser.add_argument("--dataset", help="one dataset (default: every dataset in the catalog)")
    parser.add_argument("--since", type=_since, help="runs started on or after YYYY-MM-DD")
    parser.add_argument("--limit", type=_positive, default=50, help="at most N runs (50)")
    parser.add_argument("--table", default=os.environ.get("LEDGER_TABLE"),
                        help="ledger table name (default: $LEDGER_TABLE)")
    parser.add_argument("--region", default=None, help="AWS region (default: the SDK's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None, table: Any = None) -> int:
    """Entry point; `table` lets a caller (tests, the local runtime) pass its own Table."""
    args = build_parser().parse_args(argv)
    if table is None:
        if not args.table:
            print("error: give --table or set LEDGER_TABLE", file=sys.stderr)
            return 2
        import boto3

        table = boto3.resource("dynamodb", region_name=args.region).Table(args.table)
    from pipeline_core.errors import PipelineError

    try:
        rows = list_runs(table, args.dataset, args.since, args.limit)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
