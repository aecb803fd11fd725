"""What one verification needs, read from the environment and the command line.

The account and the region are never guessed: the user names them (VERIFY_AWS_ACCOUNT,
VERIFY_AWS_REGION) and the caller's account must match, so a shell left on the wrong profile
cannot deploy into production. The Redshift target is the one thing the template needs that a
throwaway stack cannot create: an existing Serverless workgroup or provisioned cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from verify_aws import Refusal

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_data" / "online_retail"
DATASET_PREFIX = "online_retail/"
STACK_PREFIX = "emr-pipeline-verify-"
_ACCOUNT = re.compile(r"^\d{12}\Z")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d\Z")
_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,126}\Z")

ENV_ACCOUNT = "VERIFY_AWS_ACCOUNT"
ENV_REGION = "VERIFY_AWS_REGION"
ENV_WORKGROUP = "VERIFY_REDSHIFT_WORKGROUP"
ENV_WORKGROUP_ID = "VERIFY_REDSHIFT_WORKGROUP_ID"
ENV_CLUSTER = "VERIFY_REDSHIFT_CLUSTER"
ENV_DATABASE = "VERIFY_REDSHIFT_DATABASE"
ENV_SECRET = "VERIFY_REDSHIFT_SECRET_ARN"  # noqa: S105 (a variable name, not a secret)
ENV_DB_USER = "VERIFY_REDSHIFT_DB_USER"


@dataclass(frozen=True)
class RedshiftTarget:
    """The existing warehouse the throwaway stack loads into."""

    database: str
    workgroup: str = ""
    workgroup_id: str = ""
    cluster: str = ""
    secret_arn: str = ""
    db_user: str = ""

    def template_parameters(self) -> dict[str, str]:
        """template.yaml's Redshift parameters (its Rules want exactly one target)."""
        params = {"RedshiftDatabase": self.database,
                  "RedshiftWorkgroupName": self.workgroup,
                  "RedshiftClusterIdentifier": self.cluster,
                  "RedshiftSecretArn": self.secret_arn,
                  "RedshiftDbUser": self.db_user}
        if self.workgroup_id:
            params["RedshiftWorkgroupId"] = self.workgroup_id
        return {k: v for k, v in params.items() if v}

    def connection(self) -> dict[str, str]:
        """The Data API's target and authentication, as StartLoad's settings build them."""
        kwargs = {"Database": self.database}
        if self.workgroup:
            kwargs["WorkgroupName"] = self.workgroup
        else:
            kwargs["ClusterIdentifier"] = self.cluster
        if self.secret_arn:
            kwargs["SecretArn"] = self.secret_arn
        elif self.db_user:
            kwargs["DbUser"] = self.db_user
        return kwargs


def redshift_target(env: Mapping[str, str]) -> RedshiftTarget:
    """The Redshift target from VERIFY_REDSHIFT_*; Refusal naming what is missing or wrong."""
    workgroup = env.get(ENV_WORKGROUP, "").strip()
    cluster = env.get(ENV_CLUSTER, "").strip()
    if bool(workgroup) == bool(cluster):
        raise Refusal(f"set exactly one of {ENV_WORKGROUP} (Redshift Serverless) and "
                      f"{ENV_CLUSTER} (provisioned): the stack loads into an existing warehouse")
    database = env.get(ENV_DATABASE, "").strip() or "dev"
    if not _DATABASE.match(database):
        raise Refusal(f"{ENV_DATABASE}={database!r} is not a Redshift database name")
    secret = env.get(ENV_SECRET, "").strip()
    db_user = env.get(ENV_DB_USER, "").strip()
    if secret and db_user:
        raise Refusal(f"set at most one of {ENV_SECRET} and {ENV_DB_USER}")
    return RedshiftTarget(database=database, workgroup=workgroup,
                          workgroup_id=env.get(ENV_WORKGROUP_ID, "").strip(), cluster=cluster,
                          secret_arn=secret, db_user=db_user)


def confirmed_region(env: Mapping[str, str]) -> str:
    region = env.get(ENV_REGION, "").strip()
    if not region:
        raise Refusal(f"set {ENV_REGION}=<region> to confirm where the throwaway stack goes")
    if not _REGION.match(region):
        raise Refusal(f"{ENV_REGION}={region!r} is not an AWS region name")
    return region


def confirm_account(env: Mapping[str, str], caller_account: str, caller_arn: str) -> str:
    """The caller's account, if the user named it in VERIFY_AWS_ACCOUNT; Refusal otherwise."""
    named = env.get(ENV_ACCOUNT, "").strip()
    if not named:
        raise Refusal(f"the credentials are for account {caller_account} ({caller_arn}); "
                      f"set {ENV_ACCOUNT}={caller_account} to confirm it is a sandbox")
    if not _ACCOUNT.match(named):
        raise Refusal(f"{ENV_ACCOUNT}={named!r} is not a 12-digit account id")
    if named != caller_account:
        raise Refusal(f"the credentials are for account {caller_account} ({caller_arn}), "
                      f"not {ENV_ACCOUNT}={named}: nothing was deployed")
    return named


def sample_file(day: str) -> Path:
    """The bundled sample for one day; Refusal when there is none."""
    try:
        date.fromisoformat(day)
    except ValueError as e:
        raise Refusal(f"--day {day!r} is not a YYYY-MM-DD date") from e
    path = SAMPLES / f"{day}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SAMPLES.glob("*.csv")))
        raise Refusal(f"no sample for --day {day} in {SAMPLES} (known: {known})")
    return path


def stack_name(now: datetime | None = None) -> str:
    """A fresh stack name per run, so a verification never touches an existing stack."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{STACK_PREFIX}{moment:%Y%m%d-%H%M%S}"


@dataclass(frozen=True)
class Settings:
    account: str
    region: str
    stack: str
    version: str
    job_package: Path
    sample: Path
    day: str
    redshift: RedshiftTarget
    timeout_seconds: float = 45 * 60
    poll_seconds: float = 15.0
    keep: bool = False

    @property
    def sample_key(self) -> str:
        return f"{DATASET_PREFIX}{self.sample.name}"
