"""Each function's environment as a pydantic model, validated once at cold start.

A missing or malformed variable is a ConfigurationError naming the variable, raised at import
time, so a bad deploy fails on its first invocation instead of half-way through a run. Empty
strings count as unset: CloudFormation cannot leave a variable out conditionally, so the
template passes "" for optional values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline_core.errors import ConfigurationError

_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


def _message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(environment)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class _Env(BaseModel):
    """Common reading rules: aliases are the variable names, unknown variables are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    environment: str = Field(alias="ENVIRONMENT", min_length=1, max_length=32)
    app_name: str = Field(alias="APP_NAME", min_length=1, max_length=128)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as e:
            raise ConfigurationError(f"{cls.__name__}: invalid environment: {_message(e)}") from e


class _LedgerEnv(_Env):
    ledger_table: str = Field(alias="LEDGER_TABLE", min_length=3, max_length=255)


class _RedshiftEnv(_Env):
    """Where the Redshift Data API connects, and how it authenticates."""

    redshift_database: str = Field(alias="REDSHIFT_DATABASE", min_length=1, max_length=127)
    redshift_workgroup: str | None = Field(alias="REDSHIFT_WORKGROUP", default=None)
    redshift_cluster_id: str | None = Field(alias="REDSHIFT_CLUSTER_ID", default=None)
    redshift_secret_arn: str | None = Field(
        alias="REDSHIFT_SECRET_ARN", default=None, pattern=r"^arn:aws[\w-]*:secretsmanager:"
    )
    redshift_db_user: str | None = Field(alias="REDSHIFT_DB_USER", default=None, max_length=128)

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if bool(self.redshift_workgroup) == bool(self.redshift_cluster_id):
            raise ValueError("set exactly one of REDSHIFT_WORKGROUP and REDSHIFT_CLUSTER_ID")
        if self.redshift_secret_arn and self.redshift_db_user:
            raise ValueError("set at most one of REDSHIFT_SECRET_ARN and REDSHIFT_DB_USER")
        if self.redshift_cluster_id and not (self.redshift_secret_arn or self.redshift_db_user):
            raise ValueError(
                "a provisioned cluster needs REDSHIFT_SECRET_ARN or REDSHIFT_DB_USER "
                "(temporary credentials)"
            )
        if self.redshift_workgroup and self.redshift_db_user:
            raise ValueError(
                "REDSHIFT_DB_USER is for provisioned clusters; a serverless workgroup uses "
                "REDSHIFT_SECRET_ARN or the function's IAM identity"
            )
        return self

    def connection_kwargs(self) -> dict[str, str]:
        """The Data API's target and authentication parameters, shared by every call."""
        kwargs = {"Database": self.redshift_database}
        if self.redshift_workgroup:
            kwargs["WorkgroupName"] = self.redshift_workgroup
        else:
            kwargs["ClusterIdentifier"] = str(self.redshift_cluster_id)
        if self.redshift_secret_arn:
            kwargs["SecretArn"] = self.redshift_secret_arn
        elif self.redshift_db_user:
            kwargs["DbUser"] = self.redshift_db_user
        return kwargs


class ResolveRunSettings(_LedgerEnv):
    raw_bucket: str = Field(alias="RAW_BUCKET", pattern=_BUCKET)
    curated_bucket: str = Field(alias="CURATED_BUCKET", pattern=_BUCKET)
    artifacts_bucket: str = Field(alias="ARTIFACTS_BUCKET", pattern=_BUCKET)
    job_code_version: str = Field(alias="JOB_CODE_VERSION", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    emr_subnet_ids: tuple[str, ...] = Field(alias="EMR_SUBNET_IDS", default=())
    catalog_dir: str | None = Field(alias="CATALOG_DIR", default=None)

    @field_validator("emr_subnet_ids", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("emr_subnet_ids")
    @classmethod
    def _subnets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for subnet in value:
            if not subnet.startswith("subnet-"):
                raise ValueError(f"{subnet!r} is not a subnet id (subnet-...)")
        return value


class StartLoadSettings(_RedshiftEnv):
    redshift_copy_role_arn: str = Field(
        alias="REDSHIFT_COPY_ROLE_ARN", pattern=r"^arn:aws[\w-]*:iam::\d{12}:role/"
    )
    catalog_dir: str | None = Field(alias="CATALOG_DIR", default=None)
    migrations_dir: str | None = Field(alias="MIGRATIONS_DIR", default=None)


class RecordRunSettings(_LedgerEnv):
    pass


class HandleFailureSettings(_LedgerEnv):
    alert_topic_arn: str = Field(alias="ALERT_TOPIC_ARN", pattern=r"^arn:aws[\w-]*:sns:")
    artifacts_bucket: str = Field(alias="ARTIFACTS_BUCKET", pattern=_BUCKET)
    # Cleaner.from_env reads it: job runs of this application tagged with the execution.
    emr_serverless_application_id: str | None = Field(
        alias="EMR_SERVERLESS_APPLICATION_ID", default=None
    )
    catalog_dir: str | None = Field(alias="CATALOG_DIR", default=None)


# --- EvaluateQuality -------------------------------------------------------------------------

# --- CleanupExecution, AutoTerminator and TrackCost -------------------------------------------
