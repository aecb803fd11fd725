"""The run-path functions' environments (pipeline_aws.settings): validated at cold start, a
bad one is a ConfigurationError naming the variable."""

from __future__ import annotations

import json

import pytest

from pipeline_aws.settings import (
    EvaluateQualitySettings,
    HandleFailureSettings,
    ResolveRunSettings,
    StartLoadSettings,
)
from pipeline_core.errors import ConfigurationError
from tests.unit.run.support import RUN_ENV as ENV


def test_settings_split_subnets_and_treat_blank_as_unset() -> None:
    s = ResolveRunSettings.from_environ({**ENV, "EMR_SUBNET_IDS": " subnet-1 , subnet-2,"})
    assert s.emr_subnet_ids == ("subnet-1", "subnet-2")
    assert ResolveRunSettings.from_environ({**ENV, "EMR_SUBNET_IDS": ""}).emr_subnet_ids == ()


def test_settings_name_the_missing_variable() -> None:
    env = {k: v for k, v in ENV.items() if k != "RAW_BUCKET"}
    with pytest.raises(ConfigurationError, match="RAW_BUCKET: Field required"):
        ResolveRunSettings.from_environ(env)
    with pytest.raises(ConfigurationError, match="is not a subnet id"):
        ResolveRunSettings.from_environ({**ENV, "EMR_SUBNET_IDS": "vpc-1"})


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, {"Database": "analytics", "WorkgroupName": "emr-pipelines-dev",
          "SecretArn": ENV["REDSHIFT_SECRET_ARN"]}),
    ({"REDSHIFT_SECRET_ARN": ""}, {"Database": "analytics", "WorkgroupName": "emr-pipelines-dev"}),
    ({"REDSHIFT_WORKGROUP": "", "REDSHIFT_CLUSTER_ID": "c1", "REDSHIFT_SECRET_ARN": "",
      "REDSHIFT_DB_USER": "loader"},
     {"Database": "analytics", "ClusterIdentifier": "c1", "DbUser": "loader"}),
    # Redshift Data API, "Authorizing access": a provisioned cluster with neither a secret
    # nor a database user is reached as the caller's IAM identity (the template's
    # ClusterIamAuth grants redshift:GetClusterCredentialsWithIAM).
    ({"REDSHIFT_WORKGROUP": "", "REDSHIFT_CLUSTER_ID": "c1", "REDSHIFT_SECRET_ARN": ""},
     {"Database": "analytics", "ClusterIdentifier": "c1"}),
])
def test_redshift_connection_kwargs(overrides, expected) -> None:
    assert StartLoadSettings.from_environ({**ENV, **overrides}).connection_kwargs() == expected


@pytest.mark.parametrize(("overrides", "message"), [
    ({"REDSHIFT_CLUSTER_ID": "c1"}, "exactly one of REDSHIFT_WORKGROUP"),
    ({"REDSHIFT_WORKGROUP": ""}, "exactly one of REDSHIFT_WORKGROUP"),
    ({"REDSHIFT_DB_USER": "u", "REDSHIFT_SECRET_ARN": ""}, "REDSHIFT_DB_USER is for"),
    ({"REDSHIFT_COPY_ROLE_ARN": "role"}, "REDSHIFT_COPY_ROLE_ARN"),
])
def test_redshift_settings_refuse_ambiguous_targets(overrides, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        StartLoadSettings.from_environ({**ENV, **overrides})


def test_handle_failure_settings_carry_what_the_cleaner_needs() -> None:
    s = HandleFailureSettings.from_environ({**ENV, "EMR_SERVERLESS_APPLICATION_ID": "00f"})
    assert (s.app_name, s.emr_serverless_application_id) == ("emr-pipelines-dev", "00f")
    assert json.loads(s.model_dump_json())["alert_topic_arn"] == ENV["ALERT_TOPIC_ARN"]


def test_evaluate_quality_environment_is_validated_naming_the_variable() -> None:
    broken = {**ENV, "ALERT_TOPIC_ARN": "alerts"}
    del broken["LEDGER_TABLE"]
    with pytest.raises(ConfigurationError) as raised:
        EvaluateQualitySettings.from_environ(broken)
    assert "LEDGER_TABLE" in str(raised.value) and "ALERT_TOPIC_ARN" in str(raised.value)
