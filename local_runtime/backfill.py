"""`python -m local_runtime backfill`: the backfill state machine (statemachines/backfill.asl.json)
on the local deployment, over the files of a directory or the raw objects under a prefix.

- `--from-dir DIR` stages each file of DIR whose name makes a key of the dataset
  (`<prefix><file name>` matches its key pattern) as a raw object; other files are named and
  left out. A key that already holds the same bytes is left as it is (its version stays, so a
  loaded day is skipped); a key holding different bytes gets a new version, and the command
  says so, line by line (the raw bucket is versioned: the old version is kept, as in AWS).
- The local raw bucket lives only as long as the process: staged files are also kept under
  `<work dir>/raw/<key>`, and both `--from-dir` (before staging) and `--prefix PREFIX` put
  those back first (with the version ids the ledger knows, local_runtime.runner
  .put_raw_object), so a file that changed since an earlier run is seen as a new version.
- Progress: the plan's counts, then one line per batch as it ends; at the end a summary
  (partitions loaded, skipped, failed, refused; job runs; cost; wall time).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from local_runtime.errors import LocalRuntimeError

BACKFILL_MACHINE = "BackfillStateMachine"
RAW_DIR = "raw"
# The execution's history is read at every poll until the plan line is out, then this often:
# each read serializes the whole history (moto honours no page size), which cost the local
# runtime a quarter of its CPU at five reads a second on a 2-batch backfill.
HISTORY_EVERY_SECONDS = 2.0
_BATCH_ENDS = {"BatchSucceeded": "loaded", "BatchFailed": "FAILED",
               "BatchAlreadyRan": "already ran (not started again)"}


@dataclass(frozen=True)
class BackfillRequest:
    dataset: Any  # pipeline_core.catalog.Dataset
    from_dir: Path | None
    prefix: str | None
    start: str | None
    end: str | None
    force: bool

    def execution_input(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"dataset": self.dataset.name, "force": self.force}
        for name in ("start", "end"):
            if getattr(self, name):
                payload[name] = getattr(self, name)
        if self.prefix and self.prefix != self.dataset.source.prefix:
            payload["prefix"] = self.prefix
        return payload


@dataclass
class StageReport:
    staged: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def _day(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    try:
        if len(text) != 10 or not text.isascii():
            raise ValueError("not YYYY-MM-DD")
        dt.date.fromisoformat(text)
    except ValueError as e:
        raise LocalRuntimeError(f"{option} {text!r} is not a real date written YYYY-MM-DD "
                                f"({e})") from None
    return text


def plan_request(args: Any, catalog: Any) -> BackfillRequest:
    """What `backfill` is asked, checked before anything starts (LocalRuntimeError)."""
    from pipeline_core.errors import UnknownDataset

    try:
        ds = catalog.get(args.dataset)
    except UnknownDataset:
        known = ", ".join(sorted(catalog.datasets)) or "none"
        raise LocalRuntimeError(f"unknown dataset {args.dataset!r}: the catalog (datasets/) "
                                f"has {known}") from None
    if (args.from_dir is None) == (args.prefix is None):
        raise LocalRuntimeError("backfill needs one of --from-dir DIR or --prefix PREFIX")
    start, end = _day(args.start, "--start"), _day(args.end, "--end")
    if start and end and start > end:
        raise LocalRuntimeError(f"--start {start} is after --end {end}")
    if args.from_dir is not None and not Path(args.from_dir).is_dir():
        raise LocalRuntimeError(f"--from-dir {args.from_dir} is not a directory")
    if args.prefix is not None and not args.prefix.startswith(ds.source.prefix):
        raise LocalRuntimeError(f"--prefix {args.prefix!r} is not under dataset {ds.name}'s "
                                f"prefix {ds.source.prefix!r}")
    return BackfillRequest(ds, Path(args.from_dir) if args.from_dir else None, args.prefix,
                           start, end, bool(args.force))


# -- raw objects ------------------------------------------------------------------------------

def _saved(deployment: Any, key: str) -> Path:
    return Path(deployment.work_dir) / RAW_DIR / key


def stage_dir(deployment: Any, request: BackfillRequest, out: TextIO) -> StageReport:
    """Each file of the directory as the raw object `<prefix><file name>` (module docstring)."""
    from local_runtime.runner import put_raw_object

    ds, report = request.dataset, StageReport()
    assert request.from_dir is not None
    s3, bucket = deployment.client("s3"), deployment.bucket("raw")
    for path in sorted(p for p in request.from_dir.iterdir() if p.is_file()):
        key = f"{ds.source.prefix}{path.name}"
        if ds.partition_for_key(key) is None:
            report.left_out.append(path.name)
            continue
        before = _current(s3, bucket, key)
        body = path.read_bytes()
        put = put_raw_object(deployment, key, body)
        if before is not None and before[1] != put.version_id:
            report.replaced.append(key)
            print(f"  replaced {key}: version {before[1]} ({before[0]} bytes) -> new version "
                  f"{put.version_id} ({len(body)} bytes); the old version is kept", file=out)
        elif before is not None:
            report.unchanged.append(key)
        report.staged.append(key)
        saved = _saved(deployment, key)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_bytes(body)
    if report.left_out:
        print(f"  left out {len(report.left_out)} file(s) whose name is not a {ds.name} key "
              f"(YYYY-MM-DD and one of {', '.join(ds.source.suffixes)}): "
              f"{', '.join(report.left_out[:10])}", file=out)
    return report


def _current(s3: Any, bucket: str, key: str) -> tuple[int, str | None] | None:
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return None
    return int(head["ContentLength"]), head.get("VersionId")


def restore_saved(deployment: Any, prefix: str) -> int:
    """The files saved by earlier `--from-dir` runs under `prefix` back into the raw bucket."""
    from local_runtime.runner import put_raw_object

    root = Path(deployment.work_dir) / RAW_DIR
    count = 0
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        key = path.relative_to(root).as_posix()
        if path.is_file() and key.startswith(prefix):
            put_raw_object(deployment, key, path.read_bytes())
            count += 1
    return count


# -- the execution ------------------------------------------------------------------------------

@dataclass
class BackfillResult:
    status: str
    execution_arn: str
    summary: dict[str, Any]
    wall_seconds: float
    error: str | None = None
    cause: str | None = None


class _Progress:
    """Prints the plan's counts and each batch as it ends, from the execution's history."""

    def __init__(self, out: TextIO, on_batch: Any):
        self.out, self.on_batch, self.seen, self.total, self.done = out, on_batch, 0, 0, 0
        self.planned = False

    def feed(self, events: list[dict[str, Any]]) -> None:
        for ev in events[self.seen:]:
            details = ev.get("stateExitedEventDetails") or {}
            name = details.get("name")
            if name == "Plan":
                plan = json.loads(details.get("output") or "{}").get("plan")
                if plan:  # absent when the plan failed (the execution's error says why)
                    self._plan(plan)
            elif name in _BATCH_ENDS:
                self.done += 1
                batch = json.loads(details.get("output") or "{}")
                print(f"  batch {self.done}/{self.total} {batch.get('batch_id')}: "
                      f"{_BATCH_ENDS[name]}", file=self.out, flush=True)
                self.on_batch()
        self.seen = len(events)

    def _plan(self, plan: dict[str, Any]) -> None:
        self.planned = True
        counts = plan.get("counts") or {}
        self.total = counts.get("batches", 0)
        print(f"  plan: {counts.get('partitions', 0)} partition(s) in {self.total} batch(es), "
              f"at most {plan.get('max_concurrency')} at once; skipped "
              f"{counts.get('skipped', 0)}, refused {counts.get('refused', 0)}, outside the "
              f"range {counts.get('outside_range', 0)}", file=self.out, flush=True)


def run_backfill(deployment: Any, request: BackfillRequest, out: TextIO, *,
                 timeout_s: float = 6 * 3600) -> BackfillResult:
    """Start the backfill state machine and follow it to its end."""
    from local_runtime.runner import _history

    sfn = deployment.client("stepfunctions")
    arn = deployment.state_machine_arns.get(BACKFILL_MACHINE)
    if not arn:
        raise LocalRuntimeError(f"template.yaml has no {BACKFILL_MACHINE}")
    t0 = time.monotonic()
    name = f"local-{request.dataset.name[:40]}-{uuid.uuid4().hex[:12]}"
    execution = sfn.start_execution(stateMachineArn=arn, name=name,
                                    input=json.dumps(request.execution_input()))["executionArn"]
    progress = _Progress(out, deployment.dump_ledger)
    read_at = -HISTORY_EVERY_SECONDS
    while (desc := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        if not progress.planned or time.monotonic() - read_at >= HISTORY_EVERY_SECONDS:
            read_at = time.monotonic()
            progress.feed(_history(sfn, execution))
        if time.monotonic() - t0 > timeout_s:
            sfn.stop_execution(executionArn=execution, error="LocalTimeout")
        time.sleep(0.2)
    progress.feed(_history(sfn, execution))
    deployment.dump_ledger()
    summary = json.loads(desc.get("output") or "{}")
    return BackfillResult(desc["status"], execution, summary, time.monotonic() - t0,
                          desc.get("error"), desc.get("cause"))


def print_backfill_summary(result: BackfillResult, out: TextIO) -> None:
    s = result.summary
    if result.status != "SUCCEEDED":
        print(f"\n  backfill {result.status}: {result.error}: {_message(result.cause)}",
              file=out)
        return
    c = s["counts"]
    print(f"\n  backfill {s['dataset']}: {s['status']}", file=out)
    print(f"  partitions: loaded {c['loaded']}, failed {c['failed']}, skipped {c['skipped']} "
          f"(already loaded from the same version), refused {c['refused']}, outside the range "
          f"{c['outside_range']}", file=out)
    print(f"  batches: {c['batches']} ({c['batches_failed']} not loaded), job runs "
          f"{c['job_runs']}", file=out)
    cost = f"${s['cost_usd']:.4f}" + ("" if s.get("cost_complete") else " (some not priced)")
    print(f"  cost on AWS (estimate): {cost}; {result.wall_seconds:.1f} s", file=out)
    for label in ("failed", "refused"):
        if s.get(label):
            print(f"  {label}: {json.dumps(s[label][:20], default=str)}", file=out)
    print(f"  plan: {s.get('plan_uri')}; summary: {s.get('summary_uri')}", file=out)


def _message(cause: str | None) -> str | None:
    """A Lambda error's message without its stack trace (the cause is Lambda's error JSON)."""
    try:
        data = json.loads(cause or "")
    except ValueError:
        return cause
    return str(data.get("errorMessage", cause)) if isinstance(data, dict) else cause
