"""The throwaway stack: its `sam deploy` command, its outputs and resources, publishing the job
code into it as `make deploy` does, and deleting it with everything it kept.

template.yaml keeps the raw and curated buckets and the run ledger when a stack is deleted
(DeletionPolicy: Retain, so production data survives a mistaken delete); a throwaway stack must
not leave them behind, so they are deleted here after the stack is gone.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from botocore.exceptions import ClientError

from verify_aws.buckets import delete_bucket, empty_bucket
from verify_aws.config import REPO, Settings

BUCKETS = ("ArtifactsBucket", "RawBucket", "CuratedBucket")
RETAINED_BUCKETS = ("RawBucket", "CuratedBucket")
LEDGER = "RunLedger"
NEEDED_OUTPUTS = ("RawBucketName", "ArtifactsBucketName", "PipelineStateMachineArn",
                  "RunLedgerTableName", "RedshiftCopyRoleArn", "EmrServerlessApplicationId")


def deploy_parameters(settings: Settings) -> dict[str, str]:
    """What the throwaway stack is deployed with: dev settings, short retentions, the schedule
    off, the job code version just published and the user's Redshift target."""
    return {
        "Environment": "dev",
        "JobCodeVersion": settings.version,
        "OnlineRetailScheduleState": "DISABLED",
        "LogRetentionDays": "1",
        "QuarantineRetentionDays": "1",
        "EmrServerlessIdleTimeoutMinutes": "1",
        **settings.redshift.template_parameters(),
    }


def build_args() -> list[str]:
    return ["build", "--parallel", "--cached"]


def deploy_args(settings: Settings) -> list[str]:
    params = [f"{k}={v}" for k, v in deploy_parameters(settings).items()]
    return ["deploy", "--stack-name", settings.stack, "--region", settings.region,
            "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
            "--resolve-s3", "--s3-prefix", settings.stack,
            "--no-confirm-changeset", "--no-fail-on-empty-changeset",
            "--parameter-overrides", *params,
            "--tags", "Project=emr-pipelines", "Environment=dev",
            f"pipeline:verify={settings.stack}"]


def stack_exists(cfn: Any, stack: str) -> bool:
    try:
        cfn.describe_stacks(StackName=stack)
    except ClientError as e:
        if "does not exist" in str(e):
            return False
        raise
    return True


def stack_outputs(cfn: Any, stack: str) -> dict[str, str]:
    """The stack's outputs; an error naming any the verification needs that are missing."""
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    missing = [name for name in NEEDED_OUTPUTS if name not in outputs]
    if missing:
        raise RuntimeError(f"stack {stack} ({described.get('StackStatus')}) has no output "
                           f"{', '.join(missing)}")
    return outputs


def stack_resources(cfn: Any, stack: str) -> dict[str, str]:
    """Logical id -> physical id of the stack's resources (also of a rolled-back stack)."""
    found: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page.get("StackResourceSummaries", []):
            if resource.get("PhysicalResourceId"):
                found[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    return found


def _deploy_script() -> ModuleType:
    """scripts/deploy.py, the code `make deploy` publishes with (one way to publish)."""
    path = REPO / "scripts" / "deploy.py"
    spec = importlib.util.spec_from_file_location("_verify_aws_deploy", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def publish_job_code(s3: Any, bucket: str, package: Path, version: str) -> None:
    """Upload build/jobs/<version>/ to jobs/<version>/ and point jobs/current.json at it."""
    deploy = _deploy_script()
    deploy.upload(s3, bucket, package, version)
    deploy.mark_current(s3, bucket, version)


@dataclass
class Teardown:
    """What deleting the stack removed, for the step's line."""

    objects_deleted: int = 0
    buckets_deleted: list[str] = field(default_factory=list)
    tables_deleted: list[str] = field(default_factory=list)


def empty_stack_buckets(s3: Any, resources: dict[str, str]) -> int:
    return sum(empty_bucket(s3, resources[name]) for name in BUCKETS if name in resources)


def delete_stack(cfn: Any, stack: str, poll_seconds: float, timeout_seconds: float) -> None:
    cfn.delete_stack(StackName=stack)
    attempts = max(1, int(timeout_seconds // max(poll_seconds, 1.0)))
    cfn.get_waiter("stack_delete_complete").wait(
        StackName=stack, WaiterConfig={"Delay": max(1, int(poll_seconds)), "MaxAttempts": attempts})


def delete_retained(s3: Any, dynamodb: Any, resources: dict[str, str]) -> Teardown:
    """Delete what the template retains on stack deletion (buckets emptied first)."""
    done = Teardown()
    for name in RETAINED_BUCKETS:
        if name in resources and delete_bucket(s3, resources[name]):
            done.buckets_deleted.append(resources[name])
    table = resources.get(LEDGER)
    if table:
        try:
            dynamodb.delete_table(TableName=table)
            done.tables_deleted.append(table)
        except ClientError as e:
            if "ResourceNotFoundException" not in str(e):
                raise
    return done
