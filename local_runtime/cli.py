"""`python -m local_runtime run|demo|warehouse|runs|check`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from local_runtime.stack import REPO, LocalDeployment, LocalRuntimeError

SAMPLE_DIR = REPO / "sample_data"
DEMO_QUERY = ("select order_date, count(*), sum(revenue) from analytics.customer_daily_sales "
              "group by 1 order by 1")


def _start_deployment(args: argparse.Namespace) -> LocalDeployment:
    return LocalDeployment(warehouse_url=getattr(args, "warehouse_url", None),
                           time_factor=getattr(args, "time_factor", 0.01)).start()


def _database(deployment: LocalDeployment) -> str:
    for fn in deployment.functions.values():
        if fn.env.get("REDSHIFT_DATABASE"):
            return fn.env["REDSHIFT_DATABASE"]
    return "dev"


def run_file(deployment: LocalDeployment, file: Path, key: str, *, compute: str | None = None,
             out: Any = sys.stdout, rerun: bool = False) -> Any:
    from local_runtime.runner import (
        check_event,
        put_raw_object,
        run_execution,
        s3_object_created_event,
    )

    bucket, size, etag = put_raw_object(deployment, key, Path(file).read_bytes())
    if compute or rerun:
        payload: dict[str, Any] = {"bucket": bucket, "key": key}
        if compute:
            payload["compute"] = compute
        if rerun:
            payload["rerun"] = True
    else:
        payload = s3_object_created_event(bucket, key, size, etag)
        check_event(deployment, payload)
    print(f"\n== {key} ({size} bytes) -> {deployment.state_machine_arn.rsplit(':', 1)[-1]}",
          file=out, flush=True)
    return run_execution(deployment, payload, out=out)


def run_schedule(deployment: LocalDeployment, dataset: str, date: str, file: Path | None,
                 compute: str | None = None, out: Any = sys.stdout) -> Any:
    from local_runtime.runner import put_raw_object, run_execution
    from pipeline_core.catalog import load_catalog

    ds = load_catalog(REPO / "datasets").get(dataset)
    key = f"{ds.source.prefix}{date}.csv"
    source = file or SAMPLE_DIR / dataset / f"{date}.csv"
    if not Path(source).exists():
        raise LocalRuntimeError(f"no sample file for {dataset} {date}: pass --file")
    put_raw_object(deployment, key, Path(source).read_bytes())
    scheduled = dt.datetime.fromisoformat(date) - dt.timedelta(days=ds.schedule.date_offset_days)
    payload: dict[str, Any] = {"source": "pipeline.schedule", "dataset": dataset,
                               "scheduled_time": scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")}
    print(f"\n== schedule {dataset} {date}", file=out, flush=True)
    if compute:
        payload = {"dataset": dataset, "date": date, "compute": compute}
    return run_execution(deployment, payload, out=out)


def query(deployment: LocalDeployment, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(deployment.warehouse.database_url(_database(deployment))) as conn:
        return conn.execute(sql).fetchall()


def cmd_run(args: argparse.Namespace) -> int:
    from local_runtime.runner import print_summary

    deployment = _start_deployment(args)
    try:
        if args.schedule:
            res = run_schedule(deployment, args.schedule, args.date, args.file, args.compute)
        else:
            if not args.file or not args.key:
                raise LocalRuntimeError("run needs --file and --key (or --schedule and --date)")
            res = run_file(deployment, args.file, args.key, compute=args.compute, rerun=args.rerun)
        print_summary(res.summary, res.alerts, sys.stdout)
        if args.summary_json:
            Path(args.summary_json).write_text(json.dumps(
                {**res.summary, "timeline": res.timeline, "alerts": res.alerts}, indent=2,
                default=str))
        return 0 if res.status == "SUCCEEDED" else 1
    finally:
        deployment.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    from local_runtime.runner import print_summary

    deployment = _start_deployment(args)
    files = sorted((SAMPLE_DIR / "online_retail").glob("*.csv"))
    ok = True
    summaries = []
    try:
        for f in files:
            res = run_file(deployment, f, f"online_retail/{f.name}")
            print_summary(res.summary, res.alerts, sys.stdout)
            summaries.append(res.summary)
            ok = ok and res.status == "SUCCEEDED"
        rows = query(deployment, DEMO_QUERY)
        url = deployment.warehouse.database_url(_database(deployment))
        print("\nQuery the warehouse:", flush=True)
        print(f"  psql '{url}' -c \"{DEMO_QUERY}\"")
        print("  order_date | count | sum(revenue)")
        for r in rows:
            print(f"  {r[0]} | {r[1]} | {r[2]}")
        print("  (python -m local_runtime warehouse status|stop|psql)")
        if args.summary_json:
            Path(args.summary_json).write_text(json.dumps(
                {"runs": summaries, "query": DEMO_QUERY, "rows": rows}, indent=2, default=str))
        return 0 if ok else 1
    finally:
        deployment.stop()


def cmd_warehouse(args: argparse.Namespace) -> int:
    from local_runtime.warehouse import saved_warehouse

    base = REPO / ".local" / "warehouse"
    wh = saved_warehouse(base)
    if args.action == "status":
        print(f"running: {wh.url}" if wh else "not running")
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
        print(f"psql is not installed; connect to {wh.url}")
        return 1
    db = args.database or "dev"
    return subprocess.call([psql, wh.database_url(db)])


def cmd_runs(args: argparse.Namespace) -> int:
    import os

    from moto import mock_aws

    from local_runtime.stack import FAKE_ENV

    for k, v in FAKE_ENV.items():
        os.environ.setdefault(k, v)
    sys.path.insert(0, str(REPO))
    from local_runtime import cfn
    from local_runtime.runner import _num

    path = REPO / ".local" / "ledger.json"
    if not path.exists():
        print("no runs recorded yet (.local/ledger.json)")
        return 0
    template = cfn.load_template(REPO / "template.yaml")
    with mock_aws():
        import boto3

        deployment = LocalDeployment()
        deployment.template = template
        deployment.resolver = cfn.Resolver(template, parameters=deployment._parameter_values())
        deployment.session = boto3.session.Session(region_name=cfn.REGION)
        deployment._name_resources()
        for lid, res in template["Resources"].items():
            if res.get("Type") == "AWS::DynamoDB::Table":
                deployment.template = {"Resources": {lid: res}, **{
                    k: v for k, v in template.items() if k != "Resources"}}
                deployment._create_resources()
                deployment.template = template
        data = json.loads(path.read_text())
        ddb = deployment.client("dynamodb")
        for item in data["items"]:
            ddb.put_item(TableName=data["table"], Item=item)
        from pipeline_aws.runs_cli import list_runs

        table = deployment.session.resource("dynamodb").Table(data["table"])
        runs = list_runs(table, args.dataset, args.since, args.limit)
        for r in runs:
            print(json.dumps(_num(r), default=str))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from local_runtime.warehouse import missing_prerequisites

    problems = missing_prerequisites()
    for p in problems:
        print(p)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m local_runtime",
                                description="Run the pipeline's real state machine locally.")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one execution")
    r.add_argument("--file", type=Path)
    r.add_argument("--key")
    r.add_argument("--schedule", metavar="DATASET")
    r.add_argument("--date")
    r.add_argument("--compute", choices=["serverless", "cluster"])
    r.add_argument("--rerun", action="store_true")
    r.add_argument("--warehouse-url")
    r.add_argument("--summary-json", type=Path)
    r.add_argument("--time-factor", type=float, default=0.01)
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("demo", help="run every sample day and query the result")
    d.add_argument("--warehouse-url")
    d.add_argument("--summary-json", type=Path)
    d.add_argument("--time-factor", type=float, default=0.01)
    d.set_defaults(func=cmd_demo)
    w = sub.add_parser("warehouse", help="the local warehouse")
    w.add_argument("action", choices=["status", "stop", "psql"])
    w.add_argument("--database")
    w.set_defaults(func=cmd_warehouse)
    rs = sub.add_parser("runs", help="list recorded runs (from .local/ledger.json)")
    rs.add_argument("--dataset")
    rs.add_argument("--since")
    rs.add_argument("--limit", type=int, default=50)
    rs.set_defaults(func=cmd_runs)
    c = sub.add_parser("check", help="check that Java and PostgreSQL are installed")
    c.set_defaults(func=cmd_check)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from local_runtime.sfn_hooks import quiet_moto_logging

    quiet_moto_logging()
    if args.command == "run" and args.schedule and not args.date:
        p.error("--schedule needs --date")
    try:
        return args.func(args)
    except LocalRuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
