"""`python -m local_runtime run|demo|backfill|warehouse|runs|spark|check`.

- A command-line mistake (a date that is not a real day or out of a schedule's range, an
  unknown dataset, a missing --file, a key outside every dataset prefix, an unreachable
  --warehouse-url) prints one line `error: ...` on stderr and exits 2, before Spark or
  anything else starts.
- `run` and `demo` hold the work directory's lock while they run and restore the run ledger
  first, so a redelivered object is a duplicate and `--rerun` makes the next attempt, also
  across processes (local_runtime.state).
- Passwords (of --warehouse-url or any URL in a message) are redacted in everything printed or
  written: messages, log lines, run summaries, --summary-json, alerts, the psql hint and an
  unexpected error's traceback (local_runtime.redaction).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from local_runtime.redaction import RedactingFormatter, redact, redact_obj
from local_runtime.stack import REPO, LocalDeployment, LocalRuntimeError

SAMPLE_DIR = REPO / "sample_data"
DEFAULT_WORK_DIR = REPO / ".local"
# Each dataset's sample folder holds its sample days and `demo.sql`: the question `demo` asks of
# them (its first line, a `-- comment`, is the question in words).
DEMO_QUERY_FILE = "demo.sql"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
# A schedule fires at a real (Unix) time.
_FIRST_SCHEDULE_DAY = dt.date(1970, 1, 1)


def _start_deployment(args: argparse.Namespace) -> LocalDeployment:
    return LocalDeployment(warehouse_url=getattr(args, "warehouse_url", None),
                           time_factor=getattr(args, "time_factor", 0.01),
                           work_dir=getattr(args, "work_dir", None) or DEFAULT_WORK_DIR,
                           lock_timeout=getattr(args, "lock_timeout", None)).start()


def _database(deployment: LocalDeployment) -> str:
    for fn in deployment.functions.values():
        if fn.env.get("REDSHIFT_DATABASE"):
            return fn.env["REDSHIFT_DATABASE"]
    return "dev"


# -- what a `run` asks for, checked before anything starts --------------------------------------

@dataclass(frozen=True)
class RunPlan:
    """One `run`: an object (`file` put at `key`), or a dataset's day for a schedule."""

    file: Path | None  # None: a derived dataset's day (no raw file; its upstream's loads)
    key: str | None
    dataset: str | None = None  # set: the schedule (or a manual day run) of this dataset
    date: str | None = None
    compute: str | None = None
    rerun: bool = False


def _catalog() -> Any:
    from pipeline_core.catalog import load_catalog
    from pipeline_core.errors import ConfigurationError

    try:
        return load_catalog(REPO / "datasets")
    except ConfigurationError as e:
        raise LocalRuntimeError(f"the dataset catalog is broken: {e}") from e


def _existing_file(path: Path) -> Path:
    if not path.exists():
        raise LocalRuntimeError(f"--file {path} does not exist")
    if not path.is_file():
        raise LocalRuntimeError(f"--file {path} is not a file")
    return path


def _day(text: str) -> dt.date:
    if not _DATE.match(text):
        raise LocalRuntimeError(f"--date {text!r} is not a date written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise LocalRuntimeError(f"--date {text} is not a real date ({e})") from None


def _shift(day: dt.date, days: int) -> dt.date:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max if days > 0 else dt.date.min


def schedule_time(day: dt.date, offset_days: int, timezone: str = "UTC") -> dt.datetime:
    """When (in UTC, as EventBridge Scheduler's `<aws.scheduler.scheduled-time>` says) the
    schedule that processes `day` fires: noon of the day the catalog's offset gives, as a
    clock in the schedule's `timezone` reads it; or LocalRuntimeError when no schedule can
    fire then."""
    from zoneinfo import ZoneInfo

    first, last = _shift(_FIRST_SCHEDULE_DAY, offset_days), _shift(dt.date.max, offset_days)
    out_of_range = LocalRuntimeError(
        f"--date {day.isoformat()} is out of range for a schedule: give a date from "
        f"{first.isoformat()} to {last.isoformat()} (a schedule fires at a time from 1970 on)")
    if not first <= day <= last:
        raise out_of_range
    fires = day - dt.timedelta(days=offset_days)
    zone = dt.UTC if timezone == "UTC" else ZoneInfo(timezone)
    try:
        return dt.datetime.combine(fires, dt.time(12), tzinfo=zone).astimezone(dt.UTC)
    except OverflowError:
        raise out_of_range from None


def _plan_schedule(args: argparse.Namespace) -> RunPlan:
    from pipeline_core.errors import UnknownDataset

    if not args.date:
        raise LocalRuntimeError("--schedule needs --date YYYY-MM-DD")
    catalog = _catalog()
    try:
        ds = catalog.get(args.schedule)
    except UnknownDataset:
        known = ", ".join(sorted(catalog.datasets)) or "none"
        raise LocalRuntimeError(
            f"unknown dataset {args.schedule!r}: the catalog (datasets/) has {known}") from None
    if ds.schedule is None:
        raise LocalRuntimeError(
            f"dataset {ds.name} has no schedule in the catalog (it runs when its files are "
            f"dropped): run a file with --file and --key {ds.source.prefix}"
            f"{args.date}{ds.source.suffixes[0]}")
    day = _day(args.date)
    schedule_time(day, ds.schedule.date_offset_days, ds.schedule.timezone)
    if ds.derived is not None:
        if args.file:
            raise LocalRuntimeError(
                f"dataset {ds.name} is derived (from {', '.join(ds.derived.upstream)}): it has "
                "no file; its run reads the upstream days already loaded: drop --file")
        return RunPlan(None, None, ds.name, day.isoformat(), args.compute, args.rerun)
    source, key = _day_file(ds, day.isoformat(), args.file)
    return RunPlan(source, key, ds.name, day.isoformat(), args.compute, args.rerun)


def _day_file(ds: Any, day: str, file: Path | None) -> tuple[Path, str]:
    """The file to upload for a dataset's day (--file, else its sample under any of the key
    pattern's suffixes) and its key, which takes the file's own suffix (the longest that
    fits)."""
    suffixes = sorted(ds.source.suffixes, key=len, reverse=True)
    if file:
        source = _existing_file(file)
    else:
        folder = SAMPLE_DIR / ds.source.prefix.rstrip("/")  # as demo_datasets finds it
        samples = [folder / f"{day}{s}" for s in suffixes]
        found = [f for f in samples if f.exists()]
        if not found:
            raise LocalRuntimeError(f"no sample file for {ds.name} {day} "
                                    f"({', '.join(map(str, samples))}): pass --file")
        source = found[0]
    ext = next((s for s in suffixes if source.name.endswith(s)), None)
    if ext is None:
        raise LocalRuntimeError(f"--file {source.name} does not end with a suffix of "
                                f"{ds.name}'s keys ({', '.join(ds.source.suffixes)})")
    return source, f"{ds.source.prefix}{day}{ext}"


def _plan_object(args: argparse.Namespace) -> RunPlan:
    from pipeline_core.errors import InvalidInput, UnknownDataset

    if args.date:
        raise LocalRuntimeError("--date goes with --schedule DATASET")
    if not args.file or not args.key:
        raise LocalRuntimeError("run needs --file and --key (or --schedule and --date)")
    _existing_file(args.file)
    try:
        _catalog().match_key(args.key)
    except UnknownDataset as e:
        raise LocalRuntimeError(f"--key: {e}: the object would not start the pipeline") from None
    except InvalidInput as e:
        raise LocalRuntimeError(f"--key: {e}") from None
    return RunPlan(args.file, args.key, compute=args.compute, rerun=args.rerun)


def plan_run(args: argparse.Namespace) -> RunPlan:
    """The run `args` ask for, or LocalRuntimeError saying what is wrong with them."""
    return _plan_schedule(args) if args.schedule else _plan_object(args)


# -- runs -----------------------------------------------------------------------------------------

def run_file(deployment: LocalDeployment, file: Path, key: str, *, compute: str | None = None,
             out: Any = sys.stdout, rerun: bool = False) -> Any:
    from local_runtime.runner import check_event, put_raw_object, run_execution

    put = put_raw_object(deployment, key, Path(file).read_bytes())
    if compute or rerun:
        payload: dict[str, Any] = {"bucket": put.bucket, "key": key}
        if compute:
            payload["compute"] = compute
        if rerun:
            payload["rerun"] = True
    else:
        payload = put.event()
        check_event(deployment, payload)
    if out is not None:  # print(file=None) would print to stdout
        print(f"\n== {key} ({put.size} bytes) -> "
              f"{deployment.state_machine_arn.rsplit(':', 1)[-1]}", file=out, flush=True)
    return run_execution(deployment, payload, out=out)


def run_schedule(deployment: LocalDeployment, dataset: str, date: str, file: Path | None,
                 compute: str | None = None, out: Any = sys.stdout, *, rerun: bool = False
                 ) -> Any:
    """The dataset's scheduled run for `date` (a manual day run with `compute` or `rerun`)."""
    from local_runtime.runner import put_raw_object, run_execution

    plan = _plan_schedule(argparse.Namespace(schedule=dataset, date=date, file=file,
                                             compute=compute, rerun=rerun))
    if plan.file is not None and plan.key is not None:  # a derived dataset has no file
        put_raw_object(deployment, plan.key, plan.file.read_bytes())
    schedule = _catalog().get(dataset).schedule
    assert schedule is not None  # _plan_schedule refused a dataset without one
    scheduled = schedule_time(dt.date.fromisoformat(date), schedule.date_offset_days,
                              schedule.timezone)
    payload: dict[str, Any] = {"source": "pipeline.schedule", "dataset": dataset,
                               "scheduled_time": scheduled.isoformat().replace("+00:00", "Z")}
    if compute or rerun:
        payload = {"dataset": dataset, "date": date}
        payload.update({"compute": compute} if compute else {})
        payload.update({"rerun": True} if rerun else {})
    print(f"\n== schedule {dataset} {date}" + (" (re-run)" if rerun else ""), file=out,
          flush=True)
    return run_execution(deployment, payload, out=out)


def _execute(deployment: LocalDeployment, plan: RunPlan) -> Any:
    if plan.dataset and plan.date:
        return run_schedule(deployment, plan.dataset, plan.date, plan.file, plan.compute,
                            rerun=plan.rerun)
    assert plan.file is not None and plan.key is not None  # _plan_object requires both
    return run_file(deployment, plan.file, plan.key, compute=plan.compute, rerun=plan.rerun)


def query(deployment: LocalDeployment, sql: str) -> list[tuple]:
    return query_with_columns(deployment, sql)[1]


def query_with_columns(deployment: LocalDeployment, sql: str) -> tuple[list[str], list[tuple]]:
    import psycopg

    with psycopg.connect(deployment.warehouse.database_url(_database(deployment))) as conn:
        cursor = conn.execute(sql)
        return [c.name for c in cursor.description or []], cursor.fetchall()


def write_json(path: Path, data: Any) -> None:
    """--summary-json: the data with every password redacted."""
    Path(path).write_text(json.dumps(redact_obj(json.loads(json.dumps(data, default=str))),
                                     indent=2))


@dataclass(frozen=True)
class DemoDataset:
    """A dataset's bundled sample days (file, raw key) and the question `demo` asks of them."""

    name: str
    files: tuple[tuple[Path, str], ...]
    question: str
    sql: str


def demo_datasets(sample_dir: Path | None = None) -> list[DemoDataset]:
    """Every catalog dataset with a sample folder: its files whose key the dataset's pattern
    takes, and its demo.sql (a folder without one, or with no such file, is an error). A
    dataset's sample folder is its raw key prefix under the sample root (online_retail/,
    bank_reference/account/): the files are keyed as they lie."""
    root = sample_dir or SAMPLE_DIR
    catalog = _catalog()
    found = []
    for name in sorted(catalog.raw_datasets):  # a derived dataset has no sample files
        ds = catalog.get(name)
        folder = root / ds.source.prefix.rstrip("/")
        if not folder.is_dir():
            continue
        files = tuple((f, f"{ds.source.prefix}{f.name}") for f in sorted(folder.iterdir())
                      if ds.partition_for_key(f"{ds.source.prefix}{f.name}") is not None)
        sql_file = folder / DEMO_QUERY_FILE
        if not files or not sql_file.is_file():
            raise LocalRuntimeError(
                f"sample folder {folder} needs day files that {ds.source.prefix}<file name> "
                f"keys match (YYYY-MM-DD and one of {', '.join(ds.source.suffixes)}) and "
                f"a {DEMO_QUERY_FILE}")
        sql = sql_file.read_text(encoding="utf-8").strip()
        first = sql.splitlines()[0]
        question = first.removeprefix("--").strip() if first.startswith("--") else name
        found.append(DemoDataset(name, files, question, sql))
    return found


def print_query_hint(url: str, answers: list[tuple[DemoDataset, list[str], list[tuple]]],
                     out: TextIO) -> None:
    """Each dataset's question with its answer, and how to ask it with psql: the URL without its
    password (psql asks for it)."""
    shown = redact(url, mask="")
    print("\nQuery the warehouse:", file=out, flush=True)
    for demo, columns, rows in answers:
        one_line = " ".join(line.strip() for line in demo.sql.splitlines()
                            if not line.lstrip().startswith("--"))
        print(f"\n  {demo.name}: {demo.question}", file=out)
        print(f"  psql '{shown}' -c \"{one_line}\"", file=out)
        print("  " + " | ".join(columns), file=out)
        for r in rows:
            print("  " + " | ".join(str(v) for v in r), file=out)
    if shown != url:
        print("\n  (the password is not shown: psql asks for it, or set PGPASSWORD)", file=out)
    print("  (python -m local_runtime warehouse status|stop|psql)", file=out)


# -- commands -------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from local_runtime.runner import print_summary

    if args.dir is not None or args.dataset is not None:
        return cmd_run_dir(args)
    plan = plan_run(args)
    deployment = _start_deployment(args)
    try:
        res = _execute(deployment, plan)
        print_summary(res.summary, res.alerts, sys.stdout)
        if args.summary_json:
            write_json(args.summary_json,
                       {**res.summary, "timeline": res.timeline, "alerts": res.alerts})
        return 0 if res.status == "SUCCEEDED" else 1
    finally:
        deployment.stop()


def cmd_run_dir(args: argparse.Namespace) -> int:
    """`run --dir DIR --dataset NAME`: every file dropped at once (local_runtime.burst)."""
    from local_runtime import burst

    if args.dir is None or args.dataset is None:
        raise LocalRuntimeError("run --dir DIR goes with --dataset NAME")
    other = [o for o in ("file", "key", "schedule", "date", "compute") if getattr(args, o)]
    if other or args.rerun:
        raise LocalRuntimeError("run --dir takes no --" + ", --".join(other or ["rerun"]) +
                                " (each file is a new object, dropped as an S3 event)")
    request = burst.plan_dir(args.dir, args.dataset, _catalog())
    deployment = _start_deployment(args)
    try:
        print(f"\n== burst: {len(request.files)} file(s) of {args.dir} dropped at once as "
              f"{request.dataset.name} objects", file=sys.stdout, flush=True)
        puts = burst.drop_files(deployment, request)
        result = burst.run_burst(deployment, [p.event() for p in puts], sys.stdout)
        summary = burst.summarize(deployment, request, puts, result)
        burst.print_burst_summary(summary, sys.stdout)
        if args.summary_json:
            write_json(args.summary_json, summary)
        ok = not summary["not_loaded"] and summary["failed"] == 0
        return 0 if ok else 1
    finally:
        deployment.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    """Every sample day of every dataset, then each dataset's question with its answer."""
    from local_runtime.runner import print_summary

    demos = demo_datasets()
    deployment = _start_deployment(args)
    ok = True
    summaries = []
    try:
        for demo in demos:
            for f, key in demo.files:
                res = run_file(deployment, f, key, rerun=args.rerun)
                print_summary(res.summary, res.alerts, sys.stdout)
                summaries.append(res.summary)
                ok = ok and res.status == "SUCCEEDED"
        answers = [(demo, *query_with_columns(deployment, demo.sql)) for demo in demos]
        print_query_hint(deployment.warehouse.database_url(_database(deployment)), answers,
                         sys.stdout)
        if args.summary_json:
            write_json(args.summary_json, {
                "runs": summaries,
                "queries": {d.name: {"sql": d.sql, "columns": c, "rows": r}
                            for d, c, r in answers}})
        return 0 if ok else 1
    finally:
        deployment.stop()


def cmd_backfill(args: argparse.Namespace) -> int:
    """The backfill state machine over the files of --from-dir or the raw objects under
    --prefix (local_runtime.backfill)."""
    from local_runtime import backfill

    request = backfill.plan_request(args, _catalog())
    deployment = _start_deployment(args)
    try:
        print(f"\n== backfill {request.dataset.name}", file=sys.stdout, flush=True)
        if request.from_dir is not None:
            # what earlier runs staged comes back first, so a changed file is a new version
            backfill.restore_saved(deployment, request.dataset.source.prefix)
            staged = backfill.stage_dir(deployment, request, sys.stdout)
            print(f"  staged {len(staged.staged)} object(s) under "
                  f"{request.dataset.source.prefix} ({len(staged.unchanged)} unchanged, "
                  f"{len(staged.replaced)} replaced by a new version)", flush=True)
        else:
            restored = backfill.restore_saved(deployment, request.prefix or "")
            print(f"  {restored} raw object(s) under {request.prefix} (kept in "
                  f"{deployment.work_dir}/{backfill.RAW_DIR})", flush=True)
        result = backfill.run_backfill(deployment, request, sys.stdout)
        backfill.print_backfill_summary(result, sys.stdout)
        if args.summary_json:
            write_json(args.summary_json, {**result.summary, "status_execution": result.status,
                                           "execution_arn": result.execution_arn,
                                           "seconds": round(result.wall_seconds, 2)})
        ok = result.status == "SUCCEEDED" and result.summary.get("status") == "succeeded"
        return 0 if ok else 1
    finally:
        deployment.stop()


def cmd_warehouse(args: argparse.Namespace) -> int:
    from local_runtime.warehouse import saved_warehouse

    wh = saved_warehouse(Path(args.work_dir) / "warehouse")
    if args.action == "status":
        print(f"running: {redact(wh.url)}" if wh else "not running")
        return 0 if wh else 1
    if wh is None:
        print("not running")
        return 1
    if args.action == "stop":
        wh.stop()
        print("stopped")
        return 0
    psql = shutil.which("psql")
    if not psql:
        print(f"psql is not installed; connect to {redact(wh.url, mask='')}")
        return 1
    db = args.database or "dev"
    return subprocess.call([psql, wh.database_url(db)])


@contextlib.contextmanager
def _ledger_in_moto(items: list[dict[str, Any]]) -> Iterator[Any]:
    """A moto DynamoDB with the template's ledger table holding `items` (boto3 Table)."""
    import os

    from moto import mock_aws

    from local_runtime import cfn
    from local_runtime.stack import FAKE_ENV

    for k, v in FAKE_ENV.items():
        os.environ.setdefault(k, v)
    sys.path.insert(0, str(REPO))
    template = cfn.load_template(REPO / "template.yaml")
    with mock_aws():
        import boto3

        deployment = LocalDeployment()
        deployment.resolver = cfn.Resolver(template, parameters=deployment._parameter_values())
        deployment.session = boto3.session.Session(region_name=cfn.REGION)
        deployment._name_resources()
        for lid, res in template["Resources"].items():
            if res.get("Type") == "AWS::DynamoDB::Table":
                deployment.template = {"Resources": {lid: res}, **{
                    k: v for k, v in template.items() if k != "Resources"}}
                deployment._create_resources()
                deployment.template = template
        ddb = deployment.client("dynamodb")
        for item in items:
            ddb.put_item(TableName=deployment.ledger_table, Item=item)
        yield deployment.session.resource("dynamodb").Table(deployment.ledger_table)


def cmd_runs(args: argparse.Namespace) -> int:
    """The runs recorded in the ledger file (read without the lock: it is replaced whole)."""
    from local_runtime.state import ledger_path, read_ledger

    path = ledger_path(Path(args.work_dir))
    items = read_ledger(path)
    if not path.exists():
        print(f"no runs recorded yet ({path})")
        return 0
    from pipeline_aws.runs_cli import list_runs

    with _ledger_in_moto(items) as table:
        runs = list_runs(table, args.dataset, args.since, args.limit)
    for r in runs:
        print(redact(json.dumps(r, default=str)))
    return 0


def cmd_spark(args: argparse.Namespace) -> int:
    """The work directory's warm local Spark (local_runtime.warm_spark): status or stop."""
    from local_runtime.warm_spark import server_status, stop_server

    directory = Path(args.work_dir) / "spark-server"
    status = server_status(directory)
    if args.action == "status":
        if status is None:
            print("not running")
            return 1
        running = ", ".join(status["running"]) or "none"
        print(f"running: pid {status['pid']}, port {status['port']}, jobs run "
              f"{status['jobs_run']}, running now: {running}, idle for {status['idle_for']} s "
              f"(exits after {status['idle_seconds']:.0f} s idle), code {status['code_hash']}"
              + (f", retiring: {status['retired']}" if status.get("retired") else ""))
        return 0
    if status is None:
        stop_server(directory)  # a server that no longer answers, if any
        print("not running")
        return 1
    stop_server(directory)
    print(f"stopped (pid {status['pid']})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from local_runtime.warehouse import missing_prerequisites

    problems = missing_prerequisites()
    for p in problems:
        print(p)
    return 1 if problems else 0


# -- the parser -----------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """An argument mistake is one line on stderr and exit code 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {redact(message)} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _common(work_dir: bool = True, warehouse: bool = False) -> _Parser:
    common = _Parser(add_help=False)
    if work_dir:
        common.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                            help="the local state: ledger, lock, warehouse (default .local)")
    if warehouse:
        common.add_argument("--warehouse-url",
                            help="use this PostgreSQL instead of the embedded one")
        common.add_argument("--summary-json", type=Path)
        common.add_argument("--time-factor", type=float, default=0.01)
        common.add_argument("--lock-timeout", type=float, metavar="SECONDS",
                            help="give up when another local runtime holds the work directory "
                                 "for longer (default: wait)")
        common.add_argument("--rerun", action="store_true",
                            help="process an object again (attempt n+1, replaces the day)")
    return common


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m local_runtime",
                description="Run the pipeline's real state machine locally.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="run one execution", parents=[_common(warehouse=True)])
    r.add_argument("--file", type=Path)
    r.add_argument("--key")
    r.add_argument("--schedule", metavar="DATASET")
    r.add_argument("--date", metavar="YYYY-MM-DD")
    r.add_argument("--compute", choices=["serverless", "cluster"])
    r.add_argument("--dir", type=Path, metavar="DIR",
                   help="drop every file of DIR at once as S3 events (with --dataset)")
    r.add_argument("--dataset", metavar="NAME", help="the dataset of --dir's files")
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("demo", help="run every sample day and query the result",
                       parents=[_common(warehouse=True)])
    d.set_defaults(func=cmd_demo)
    b = sub.add_parser("backfill", help="run the backfill state machine over a directory "
                       "or a raw prefix", parents=[_common()])
    b.add_argument("--dataset", required=True)
    b.add_argument("--from-dir", type=Path, metavar="DIR")
    b.add_argument("--prefix", metavar="PREFIX")
    b.add_argument("--start", metavar="YYYY-MM-DD")
    b.add_argument("--end", metavar="YYYY-MM-DD")
    b.add_argument("--force", action="store_true",
                   help="run partitions again although loaded from the same version")
    b.add_argument("--warehouse-url", help="use this PostgreSQL instead of the embedded one")
    b.add_argument("--summary-json", type=Path)
    b.add_argument("--time-factor", type=float, default=0.01)
    b.add_argument("--lock-timeout", type=float, metavar="SECONDS")
    b.set_defaults(func=cmd_backfill)
    w = sub.add_parser("warehouse", help="the local warehouse", parents=[_common()])
    w.add_argument("action", choices=["status", "stop", "psql"])
    w.add_argument("--database")
    w.set_defaults(func=cmd_warehouse)
    rs = sub.add_parser("runs", help="list recorded runs (from <work dir>/ledger.json)",
                        parents=[_common()])
    rs.add_argument("--dataset")
    rs.add_argument("--since")
    rs.add_argument("--limit", type=int, default=50)
    rs.set_defaults(func=cmd_runs)
    sp = sub.add_parser("spark", help="the warm local Spark (started by the first job run)",
                        parents=[_common()])
    sp.add_argument("action", choices=["status", "stop"])
    sp.set_defaults(func=cmd_spark)
    c = sub.add_parser("check", help="check that Java and PostgreSQL are installed")
    c.set_defaults(func=cmd_check)
    return p


def configure_logging(verbose: bool, stream: TextIO | None = None) -> logging.Handler:
    """One stderr handler on the root logger whose every line is redacted."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_local_runtime", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    handler._local_runtime = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    return handler


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    from local_runtime.sfn_hooks import quiet_moto_logging

    quiet_moto_logging()
    try:
        return int(args.func(args))
    except LocalRuntimeError as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        print(redact(traceback.format_exc()), file=sys.stderr, end="", flush=True)
        return 1
