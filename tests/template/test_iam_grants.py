"""Grants AWS requires anywhere in template.yaml, whichever role holds them.

Sources:
- IAM User Guide, "Granting a user permissions to pass a role to an AWS service"
  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html and the condition
  key iam:PassedToService
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService
  (a role is passed to the service that assumes it, i.e. the service its trust policy names).
- EMR Management Guide, "Using service-linked roles for Amazon EMR"
  https://docs.aws.amazon.com/emr/latest/ManagementGuide/using-service-linked-roles.html and
  Step Functions developer guide "Create and manage Amazon EMR clusters with Step Functions"
  https://docs.aws.amazon.com/step-functions/latest/dg/connect-emr.html: whoever creates clusters
  must be allowed to create AWSServiceRoleForEMRCleanup (iam:CreateServiceLinkedRole, condition
  iam:AWSServiceName elasticmapreduce.amazonaws.com).
- Redshift Management Guide, "Authorizing access to the Amazon Redshift Data API"
  https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-access.html and the API reference of
  GetClusterCredentialsWithIAM
  https://docs.aws.amazon.com/redshift/latest/APIReference/API_GetClusterCredentialsWithIAM.html:
  the credential each way of connecting needs (a secret: secretsmanager:GetSecretValue; a
  workgroup and the caller's IAM identity: redshift-serverless:GetCredentials; a cluster and a
  database user: redshift:GetClusterCredentials; a cluster and the caller's IAM identity:
  redshift:GetClusterCredentialsWithIAM on the dbname resource).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

CREDENTIAL_ACTIONS = {"secretsmanager:GetSecretValue", "redshift-serverless:GetCredentials",
                      "redshift:GetClusterCredentials", "redshift:GetClusterCredentialsWithIAM"}
DATA_API_SUBMIT = {"redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"}
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:redshift-AbCdEf"

# (parameter values, the one credential action the Data API needs for them)
AUTH_MODES = {
    "workgroup-secret": ({"RedshiftWorkgroupName": "wg", "RedshiftSecretArn": SECRET},
                         "secretsmanager:GetSecretValue"),
    "workgroup-iam": ({"RedshiftWorkgroupName": "wg"}, "redshift-serverless:GetCredentials"),
    "cluster-secret": ({"RedshiftClusterIdentifier": "c1", "RedshiftSecretArn": SECRET},
                       "secretsmanager:GetSecretValue"),
    "cluster-db-user": ({"RedshiftClusterIdentifier": "c1", "RedshiftDbUser": "loader"},
                        "redshift:GetClusterCredentials"),
    "cluster-iam": ({"RedshiftClusterIdentifier": "c1"}, "redshift:GetClusterCredentialsWithIAM"),
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class Conditions:
    """Evaluates the template's Conditions for given parameter values (Fn::Equals, Fn::Not,
    Fn::And, Fn::Or, Condition, Ref to a parameter)."""

    def __init__(self, template: dict[str, Any], values: dict[str, str]) -> None:
        params = template["Parameters"]
        self.values = {name: str(p.get("Default", "")) for name, p in params.items()}
        unknown = set(values) - set(params)
        assert not unknown, f"no such parameters: {unknown}"
        self.values.update(values)
        self.conditions = template.get("Conditions", {})

    def holds(self, name: str) -> bool:
        return bool(self._eval(self.conditions[name]))

    def _eval(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        (key, arg), = node.items()
        if key == "Ref":
            return self.values[arg]
        if key == "Condition":
            return self.holds(arg)
        if key == "Fn::Equals":
            return self._eval(arg[0]) == self._eval(arg[1])
        if key == "Fn::Not":
            return not self._eval(arg[0])
        if key == "Fn::And":
            return all(self._eval(a) for a in arg)
        if key == "Fn::Or":
            return any(self._eval(a) for a in arg)
        raise AssertionError(f"cannot evaluate {key}")


def _statements(node: Any, conditions: Conditions) -> Iterator[dict[str, Any]]:
    """The statements in force under `conditions` (Fn::If resolved, AWS::NoValue dropped)."""
    if isinstance(node, list):
        for item in node:
            yield from _statements(item, conditions)
    elif isinstance(node, dict) and "Fn::If" in node:
        name, yes, no = node["Fn::If"]
        yield from _statements(yes if conditions.holds(name) else no, conditions)
    elif isinstance(node, dict) and "Effect" in node:
        yield node
    elif isinstance(node, dict):
        for key in ("Statement", "PolicyDocument", "Policies", "Properties"):
            if key in node:
                yield from _statements(node[key], conditions)


def _allowed(resource: dict[str, Any], conditions: Conditions) -> set[str]:
    return {a for s in _statements(resource, conditions) if s["Effect"] == "Allow"
            for a in _as_list(s["Action"])}


def _trusted_services(role: dict[str, Any]) -> set[str]:
    services: set[str] = set()
    for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
        services |= set(_as_list(statement.get("Principal", {}).get("Service", [])))
    return services


def _passed_to(statement: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for operator in ("StringEquals", "StringLike"):
        found += _as_list(statement.get("Condition", {}).get(operator, {})
                          .get("iam:PassedToService", []))
    return found


def test_every_pass_role_names_the_service_its_role_trusts(
        resources: dict[str, Any], iam_statements: list[tuple[str, dict[str, Any]]]) -> None:
    passes = [(name, s) for name, s in iam_statements
              if "iam:PassRole" in _as_list(s["Action"]) and s["Effect"] == "Allow"]
    assert passes
    for name, statement in passes:
        services = _passed_to(statement)
        assert services, f"{name} {statement.get('Sid')}: iam:PassRole without iam:PassedToService"
        for target in _as_list(statement["Resource"]):
            assert isinstance(target, dict) and "Fn::GetAtt" in target, (
                f"{name}: pass a role of this stack, named by !GetAtt, not {target!r}")
            trusted = _trusted_services(resources[target["Fn::GetAtt"][0]])
            for service in services:
                assert service.rstrip("*") in trusted, (
                    f"{name}: passes {target['Fn::GetAtt'][0]} to {service}; it trusts {trusted}")


def test_whoever_creates_clusters_may_create_the_emr_cleanup_role(
        iam_statements: list[tuple[str, dict[str, Any]]]) -> None:
    creators = {name for name, s in iam_statements if s["Effect"] == "Allow"
                and "elasticmapreduce:RunJobFlow" in _as_list(s["Action"])}
    assert creators
    for creator in creators:
        grants = [s for name, s in iam_statements if name == creator and s["Effect"] == "Allow"
                  and "iam:CreateServiceLinkedRole" in _as_list(s["Action"])]
        assert len(grants) == 1, f"{creator}: one statement for AWSServiceRoleForEMRCleanup"
        (grant,) = grants
        resource = grant["Resource"]["Fn::Sub"]
        assert resource.endswith(
            ":role/aws-service-role/elasticmapreduce.amazonaws.com*/AWSServiceRoleForEMRCleanup*")
        assert "${AWS::AccountId}" in resource, "this account's role, not any account's"
        names = grant["Condition"]["StringLike"]["iam:AWSServiceName"]
        assert set(_as_list(names)) == {"elasticmapreduce.amazonaws.com",
                                        "elasticmapreduce.amazonaws.com.cn"}


@pytest.mark.parametrize("mode", sorted(AUTH_MODES))
def test_data_api_callers_get_the_credential_of_their_connection(
        template: dict[str, Any], functions: dict[str, Any], mode: str) -> None:
    values, needed = AUTH_MODES[mode]
    conditions = Conditions(template, values)
    callers = {name: _allowed(fn, conditions) for name, fn in functions.items()}
    submitters = {name: allowed for name, allowed in callers.items() if allowed & DATA_API_SUBMIT}
    assert submitters, "no function submits Redshift Data API statements"
    for name, allowed in submitters.items():
        assert allowed & CREDENTIAL_ACTIONS == {needed}, f"{name} ({mode})"


def test_cluster_iam_credentials_are_scoped_to_the_database(
        template: dict[str, Any], functions: dict[str, Any]) -> None:
    conditions = Conditions(template, AUTH_MODES["cluster-iam"][0])
    grants = [s for fn in functions.values() for s in _statements(fn, conditions)
              if "redshift:GetClusterCredentialsWithIAM" in _as_list(s["Action"])]
    assert grants
    for grant in grants:
        assert _as_list(grant["Resource"]) == [{"Fn::Sub": (
            "arn:${AWS::Partition}:redshift:${AWS::Region}:${AWS::AccountId}"
            ":dbname:${RedshiftClusterIdentifier}/${RedshiftDatabase}")}]


def test_the_condition_evaluator_reads_the_template(template: dict[str, Any]) -> None:
    iam = Conditions(template, AUTH_MODES["cluster-iam"][0])
    assert iam.holds("HasCluster") and not iam.holds("HasSecret")
    assert not Conditions(template, AUTH_MODES["cluster-db-user"][0]).holds("HasSecret")
    with pytest.raises(AssertionError, match="no such parameters"):
        Conditions(template, {"NoSuchParameter": "x"})
