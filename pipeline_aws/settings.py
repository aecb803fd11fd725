"""Each function's environment as a pydantic model, validated once at cold start.

A missing or malformed variable is a ConfigurationError naming the variable, raised at import
time, so a bad deploy fails on its first invocation instead of half-way through a run. Empty
strings count as unset: CloudFormation cannot leave a variable out conditionally, so the
template passes "" for optional values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline_aws.contracts import validation_message
from pipeline_core.errors import ConfigurationError

_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class _Env(BaseModel):
    """Common reading rules: aliases are the variable names, unknown variables are ignored.

    A handler reads one of these models: defer_build builds only its validator (on
    from_environ), not the validators of every function's settings at import.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True,
                              defer_build=True)

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
            raise ConfigurationError(
                f"{cls.__name__}: invalid environment: {validation_message(e)}") from e


class _LedgerEnv(_Env):
    ledger_table: str = Field(alias="LEDGER_TABLE", min_length=3, max_length=255)


class _CatalogEnv(_Env):
    """CATALOG_DIR: where the dataset catalog is (unset: the copy packaged in the layer)."""

    catalog_dir: str | None = Field(alias="CATALOG_DIR", default=None)


class _AlertsEnv(_Env):
    alert_topic_arn: str = Field(alias="ALERT_TOPIC_ARN", pattern=r"^arn:aws[\w-]*:sns:")


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
        # A cluster with neither signs in as the caller's IAM identity (the Data API's
        # "temporary credentials using your IAM identity": GetClusterCredentialsWithIAM, which
        # the template grants under its ClusterIamAuth condition).
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


class ResolveRunSettings(_LedgerEnv, _CatalogEnv):
    raw_bucket: str = Field(alias="RAW_BUCKET", pattern=_BUCKET)
    curated_bucket: str = Field(alias="CURATED_BUCKET", pattern=_BUCKET)
    artifacts_bucket: str = Field(alias="ARTIFACTS_BUCKET", pattern=_BUCKET)
    job_code_version: str = Field(alias="JOB_CODE_VERSION", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    emr_subnet_ids: tuple[str, ...] = Field(alias="EMR_SUBNET_IDS", default=())

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


class StartLoadSettings(_RedshiftEnv, _LedgerEnv, _CatalogEnv):
    """The load statement's owner; the ledger holds the task token AwaitLoad waits with."""

    redshift_copy_role_arn: str = Field(
        alias="REDSHIFT_COPY_ROLE_ARN", pattern=r"^arn:aws[\w-]*:iam::\d{12}:role/"
    )
    migrations_dir: str | None = Field(alias="MIGRATIONS_DIR", default=None)


class RecordRunSettings(_LedgerEnv):
    pass


class HandleFailureSettings(_LedgerEnv, _AlertsEnv, _CatalogEnv):
    artifacts_bucket: str = Field(alias="ARTIFACTS_BUCKET", pattern=_BUCKET)
    # Cleaner.from_settings reads it: job runs of this application tagged with the execution.
    emr_serverless_application_id: str | None = Field(
        alias="EMR_SERVERLESS_APPLICATION_ID", default=None
    )


# --- EvaluateQuality -------------------------------------------------------------------------


class EvaluateQualitySettings(_LedgerEnv, _AlertsEnv, _CatalogEnv):
    """EvaluateQuality: the ledger (history and verdict), the alert topic, the catalog."""


# --- CleanupExecution, AutoTerminator and TrackCost -------------------------------------------


_MAX_MINUTES = 7 * 24 * 60
_CLUSTER_ID = re.compile(r"^j-[0-9A-Z]{1,64}\Z")


def _strict_bool(value: Any) -> bool:
    """Only "true" and "false" (any case): a typo must not silently mean "terminate"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"must be 'true' or 'false', not {value!r}")


def _whole_minutes(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    raise ValueError(f"must be a whole number of minutes, not {value!r}")


def _cluster_ids(value: Any) -> frozenset[str]:
    if isinstance(value, frozenset | set | list | tuple):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    else:
        raise ValueError("must be a comma-separated list of cluster ids")
    bad = [item for item in items if not _CLUSTER_ID.match(item)]
    if bad:
        raise ValueError(f"not EMR cluster ids (j-XXXXXXXXXXXXX): {', '.join(bad)}")
    return frozenset(items)


Minutes = Annotated[int, BeforeValidator(_whole_minutes), Field(gt=0, le=_MAX_MINUTES)]
StrictBoolText = Annotated[bool, BeforeValidator(_strict_bool)]
ClusterIds = Annotated[frozenset[str], BeforeValidator(_cluster_ids)]


class AutoTerminatorSettings(_Env):
    """The auto-terminator: which idle clusters of APP_NAME it terminates, and whether for real."""

    idle_threshold_minutes: Minutes = Field(alias="IDLE_THRESHOLD_MINUTES")
    grace_period_minutes: Minutes = Field(alias="GRACE_PERIOD_MINUTES")
    dry_run: StrictBoolText = Field(alias="DRY_RUN")
    allow_protected_cluster_ids: ClusterIds = Field(
        alias="ALLOW_PROTECTED_CLUSTER_IDS", default=frozenset())

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """As for every function, except DRY_RUN: blank there is a mistake, not "unset"."""
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items()
                    if k == "DRY_RUN" or not (isinstance(v, str) and not v.strip())}
        return data


class CleanupExecutionSettings(_LedgerEnv):
    """CleanupExecution: the ledger it records in, the application whose job runs it cancels."""

    emr_serverless_application_id: str | None = Field(
        alias="EMR_SERVERLESS_APPLICATION_ID", default=None)


class TriggerDerivedSettings(_CatalogEnv):
    """TriggerDerived: the pipeline state machine whose successful loads start the derived
    datasets' runs (on that same machine)."""

    pipeline_state_machine_arn: str = Field(alias="PIPELINE_STATE_MACHINE_ARN",
                                            pattern=r"^arn:aws[\w-]*:states:[^:]+:\d{12}:"
                                                    r"stateMachine:[A-Za-z0-9_-]{1,80}$")


class TrackCostSettings(_LedgerEnv, _AlertsEnv, _CatalogEnv):
    """TrackCost's environment.

    LAMBDA_MEMORY_MB is the memory of the pipeline's functions (the template's Globals
    MemorySize); LAMBDA_MEMORY_MAP ({"function name": MB}) overrides it per function.
    """

    region: str = Field(alias="AWS_REGION", min_length=1)
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
    serverless_architecture: Literal["ARM64", "X86_64"] | None = Field(
        alias="EMR_SERVERLESS_ARCHITECTURE", default=None)
    rate_card_parameter: str | None = Field(alias="RATE_CARD_PARAMETER", default=None)
    lambda_memory_mb: int | None = Field(alias="LAMBDA_MEMORY_MB", default=None, ge=128, le=10240)
    lambda_memory_map: dict[str, int] = Field(alias="LAMBDA_MEMORY_MAP", default_factory=dict)
    lambda_architecture: Literal["arm64", "x86_64"] = Field(alias="LAMBDA_ARCHITECTURE",
                                                            default="arm64")

    @field_validator("lambda_memory_map", mode="before")
    @classmethod
    def _json_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"not valid JSON: {e}") from e
        return value

    def memory_mb(self, function: str) -> int | None:
        return self.lambda_memory_map.get(function, self.lambda_memory_mb)
