"""`python -m verify_aws` (what `make verify-aws` runs): checks the environment, then verifies.

Exit codes: 0 every step passed; 1 a step failed (named on the last line); 2 refused before
anything was created (no credentials, account or region not confirmed, incomplete settings).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from verify_aws import Refusal
from verify_aws import config as cfg
from verify_aws.runner import SamRunner, SubprocessSam
from verify_aws.verify import (
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    Clients,
    caller_identity,
    env_summary,
    teardown_only,
    verify,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m verify_aws",
                                     description="Deploy a throwaway stack to a sandbox "
                                     "account, run one sample day through it, check, tear down.")
    parser.add_argument("--version", required=True, help="job code version (make passes it)")
    parser.add_argument("--sam", type=Path, default=cfg.REPO / ".venv-tools" / "bin" / "sam")
    parser.add_argument("--jobs-dir", type=Path, default=cfg.REPO / "build" / "jobs")
    parser.add_argument("--day", default="2010-12-01", help="sample day to load (YYYY-MM-DD)")
    parser.add_argument("--timeout-minutes", type=float, default=45.0,
                        help="how long to wait for the execution (default 45)")
    parser.add_argument("--poll-seconds", type=float, default=15.0)
    parser.add_argument("--keep", action="store_true",
                        help="leave the stack in place (teardown later with --teardown)")
    parser.add_argument("--teardown", metavar="STACK",
                        help=f"only tear down a kept stack ({cfg.STACK_PREFIX}...)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, env: Mapping[str, str], account: str,
                  region: str) -> cfg.Settings:
    """Everything else the run needs; Refusal for what is missing or wrong."""
    redshift = cfg.redshift_target(env)
    sample = cfg.sample_file(args.day)
    package = args.jobs_dir / args.version
    if not args.teardown and not (package / "manifest.json").is_file():
        raise Refusal(f"{package} is not packaged: run make package-jobs")
    if args.teardown and not args.teardown.startswith(cfg.STACK_PREFIX):
        raise Refusal(f"--teardown only removes verification stacks ({cfg.STACK_PREFIX}...), "
                      f"not {args.teardown!r}")
    if args.timeout_minutes <= 0 or args.poll_seconds <= 0:
        raise Refusal("--timeout-minutes and --poll-seconds must be positive")
    return cfg.Settings(
        account=account, region=region, stack=args.teardown or cfg.stack_name(),
        version=args.version, job_package=package, sample=sample, day=args.day,
        redshift=redshift, timeout_seconds=args.timeout_minutes * 60,
        poll_seconds=args.poll_seconds, keep=args.keep)


def boto_clients(session: Any, settings: cfg.Settings) -> Clients:
    from pipeline_aws.redshift import RedshiftData
    from verify_aws.copy_role import binding_for

    return Clients(
        cloudformation=session.client("cloudformation"), s3=session.client("s3"),
        stepfunctions=session.client("stepfunctions"), dynamodb=session.resource("dynamodb"),
        emr=session.client("emr"), emr_serverless=session.client("emr-serverless"),
        redshift_data=RedshiftData(session.client("redshift-data"),
                                   settings.redshift.connection()),
        copy_roles=binding_for(settings.redshift, session))


def boto_session(region: str) -> Any:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.session.Session(region_name=region)
    except BotoCoreError as e:  # e.g. AWS_PROFILE names a profile that does not exist
        raise Refusal(f"no usable AWS credentials ({e})") from e


def run(argv: Sequence[str] | None, env: Mapping[str, str], out: TextIO,
        session_for: Callable[[str], Any] = boto_session,
        clients_for: Callable[[Any, cfg.Settings], Clients] = boto_clients,
        sam_for: Callable[[Path], SamRunner] | None = None,
        sleep: Callable[[float], None] = time.sleep) -> int:
    args = parse_args(argv)
    try:
        region = cfg.confirmed_region(env)
        session = session_for(region)
        account = cfg.confirm_account(env, *caller_identity(session.client("sts")))
        settings = settings_from(args, env, account, region)
    except Refusal as e:
        print(f"verify-aws: refused: {e}", file=out)
        return EXIT_REFUSED
    for name, value in env_summary(settings).items():
        print(f"  {name}: {value}", file=out)
    clients = clients_for(session, settings)
    if args.teardown:
        return teardown_only(settings, clients, out)
    sam = (sam_for or (lambda path: SubprocessSam(path, cfg.REPO)))(args.sam)
    try:
        return verify(settings, clients, sam, out, sleep)
    except KeyboardInterrupt:  # teardown already ran (verify's finally)
        after = "kept (--keep)" if settings.keep else "torn down as far as the lines above say"
        print(f"verify-aws: interrupted; {settings.stack} {after}", file=out)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv, os.environ, sys.stdout)
