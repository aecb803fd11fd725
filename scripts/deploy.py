"""Publish the Spark job code and deploy the stack for one environment (`make deploy ENV=dev`).

Order:
- stack exists: upload build/jobs/<version>/ to s3://<ArtifactsBucketName>/jobs/<version>/,
  then `sam deploy` with JobCodeVersion=<version>, then point jobs/current.json at it;
- first deploy (no stack yet, so no artifacts bucket): `sam deploy` creates the stack with
  JobCodeVersion=<version>, then the code is uploaded. A run triggered in the seconds between
  the two would fail in its Spark job and can be re-run; the dev schedule is disabled.

Versions are immutable: an existing jobs/<version>/manifest.json is not overwritten unless it
differs (a dirty tree re-packaged under the same version).

`sam deploy --parameter-overrides` on the command line replaces samconfig.toml's list instead of
extending it, so this script merges the environment's list from samconfig.toml with
JobCodeVersion itself.

usage: python scripts/deploy.py --env dev --version V [--sam .venv-tools/bin/sam] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

_PAIR = re.compile(r'^(?P<key>[A-Za-z0-9]+)=(?P<value>.*)$')


def env_settings(samconfig: Path, env: str) -> dict:
    config = tomllib.loads(samconfig.read_text())
    if env not in config:
        raise SystemExit(f"error: {samconfig} has no [{env}] environment "
                         f"(known: {', '.join(k for k in config if k != 'version')})")
    deploy = config[env].get("deploy", {}).get("parameters", {})
    glob = config[env].get("global", {}).get("parameters", {})
    return {**glob, **deploy}


def parameter_overrides(settings: dict, extra: dict[str, str]) -> dict[str, str]:
    raw = settings.get("parameter_overrides", [])
    items = shlex.split(raw) if isinstance(raw, str) else list(raw)
    params: dict[str, str] = {}
    for item in items:
        match = _PAIR.match(item.strip())
        if not match:
            raise SystemExit(f"error: parameter override {item!r} is not Key=Value")
        value = match["value"]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        params[match["key"]] = value
    params.update(extra)
    return params


def as_cli(params: dict[str, str]) -> list[str]:
    return [f'{k}="{v}"' if (" " in v or not v) else f"{k}={v}" for k, v in params.items()]


def stack_outputs(cfn, stack: str) -> dict[str, str] | None:
    from botocore.exceptions import ClientError

    try:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise
    if described["StackStatus"] == "REVIEW_IN_PROGRESS":
        return None
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def upload(s3, bucket: str, source: Path, version: str) -> None:
    prefix = f"jobs/{version}/"
    manifest = (source / "manifest.json").read_bytes()
    try:
        existing = s3.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        existing = None
    if existing == manifest:
        print(f"s3://{bucket}/{prefix} already holds this code")
        return
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.name != "manifest.json")
    for path in [*files, source / "manifest.json"]:  # the manifest last: it marks completion
        key = prefix + path.relative_to(source).as_posix()
        s3.upload_file(str(path), bucket, key)
        print(f"  uploaded s3://{bucket}/{key}")


def mark_current(s3, bucket: str, version: str) -> None:
    body = json.dumps({"code_version": version}).encode()
    s3.put_object(Bucket=bucket, Key="jobs/current.json", Body=body,
                  ContentType="application/json")
    print(f"s3://{bucket}/jobs/current.json -> {version}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--sam", default=".venv-tools/bin/sam")
    parser.add_argument("--samconfig", default="samconfig.toml", type=Path)
    parser.add_argument("--jobs-dir", default="build/jobs", type=Path)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the sam deploy command and stop (no AWS calls)")
    args = parser.parse_args(argv)

    source = args.jobs_dir / args.version
    if not (source / "manifest.json").is_file():
        raise SystemExit(f"error: {source} is not packaged: run make package-jobs")
    settings = env_settings(args.samconfig, args.env)
    params = parameter_overrides(settings, {"JobCodeVersion": args.version})
    command = [args.sam, "deploy", "--config-env", args.env, "--no-fail-on-empty-changeset",
               "--parameter-overrides", *as_cli(params)]
    if args.dry_run:
        print(shlex.join(command))
        return 0

    import boto3

    region = settings.get("region") or os.environ.get("AWS_REGION") or "eu-west-1"
    stack = settings["stack_name"]
    session = boto3.session.Session(region_name=region)
    cfn, s3 = session.client("cloudformation"), session.client("s3")

    outputs = stack_outputs(cfn, stack)
    if outputs is not None:
        upload(s3, outputs["ArtifactsBucketName"], source, args.version)
        subprocess.run(command, check=True)
        outputs = stack_outputs(cfn, stack) or outputs
    else:
        print(f"stack {stack} does not exist yet: creating it first, then publishing the code")
        subprocess.run(command, check=True)
        outputs = stack_outputs(cfn, stack)
        if outputs is None:
            raise SystemExit(f"error: stack {stack} was not created")
        upload(s3, outputs["ArtifactsBucketName"], source, args.version)
    mark_current(s3, outputs["ArtifactsBucketName"], args.version)
    print(f"deployed {stack} ({args.env}) with job code {args.version}")
    for key in sorted(outputs):
        print(f"  {key}: {outputs[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
