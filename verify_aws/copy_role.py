"""Associating the stack's COPY role with the user's warehouse for the run, and removing it.

Redshift runs COPY ... IAM_ROLE '<arn>' only with a role associated with the cluster or the
Serverless namespace (Amazon Redshift Management Guide, "Authorizing COPY, UNLOAD, CREATE
EXTERNAL FUNCTION, and CREATE EXTERNAL SCHEMA operations using IAM roles"). The throwaway stack
creates its own role, so it is associated here and removed again at teardown, leaving the
warehouse's other roles as they were.

- provisioned: ModifyClusterIamRoles adds or removes one role;
- Serverless: UpdateNamespace replaces the whole list, and iamRoles must be sent together with
  defaultIamRoleArn (Redshift Serverless API Reference, UpdateNamespace), so the current list
  is read, changed by one role and written back with the current default. GetNamespace lists
  roles either as ARNs or as "IamRole(applyStatus=..., iamRoleArn=...)" strings; both are read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from verify_aws.config import RedshiftTarget

_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[^\s,)]+")


class CopyRoleBinding(Protocol):
    def attach(self, role_arn: str) -> bool:
        """Associate the role; False when it already was (then detach must leave it)."""
        ...

    def detach(self, role_arn: str) -> None:
        """Remove the association made by attach."""
        ...


def role_arns(entries: list[str]) -> list[str]:
    """The role ARNs in GetNamespace's iamRoles, whichever of its two forms each entry has."""
    arns: list[str] = []
    for entry in entries:
        match = _ROLE_ARN.search(entry)
        if match and match.group(0) not in arns:
            arns.append(match.group(0))
    return arns


class NamespaceRoles:
    """The roles of the namespace behind a Redshift Serverless workgroup."""

    def __init__(self, client: Any, workgroup: str, poll_seconds: float = 5.0,
                 timeout_seconds: float = 300.0, sleep: Callable[[float], None] = time.sleep):
        self._client = client
        self._workgroup = workgroup
        self._poll = poll_seconds
        self._timeout = timeout_seconds
        self._sleep = sleep

    def _namespace(self) -> dict[str, Any]:
        workgroup = self._client.get_workgroup(workgroupName=self._workgroup)["workgroup"]
        name = workgroup["namespaceName"]
        return dict(self._client.get_namespace(namespaceName=name)["namespace"])

    def _write(self, namespace: dict[str, Any], roles: list[str], default: str) -> None:
        kwargs: dict[str, Any] = {"namespaceName": namespace["namespaceName"], "iamRoles": roles}
        if default:
            kwargs["defaultIamRoleArn"] = default
        self._client.update_namespace(**kwargs)
        self._wait_available(namespace["namespaceName"])

    def _wait_available(self, name: str) -> None:
        waited = 0.0
        while True:
            status = self._client.get_namespace(namespaceName=name)["namespace"].get("status")
            if status == "AVAILABLE":
                return
            if waited >= self._timeout:
                raise RuntimeError(f"namespace {name} still {status} after {waited:.0f}s")
            self._sleep(self._poll)
            waited += self._poll

    def attach(self, role_arn: str) -> bool:
        namespace = self._namespace()
        roles = role_arns(list(namespace.get("iamRoles", [])))
        if role_arn in roles:
            return False
        default = str(namespace.get("defaultIamRoleArn") or "")
        self._write(namespace, [*roles, role_arn], default or role_arn)
        return True

    def detach(self, role_arn: str) -> None:
        namespace = self._namespace()
        current = role_arns(list(namespace.get("iamRoles", [])))
        if role_arn not in current:
            return
        roles = [r for r in current if r != role_arn]
        default = str(namespace.get("defaultIamRoleArn") or "")
        if default == role_arn:
            default = roles[0] if roles else ""
        self._write(namespace, roles, default)


class ClusterRoles:
    """The roles of a provisioned cluster; an added role is usable once it is "in-sync"."""

    def __init__(self, client: Any, cluster: str, poll_seconds: float = 5.0,
                 timeout_seconds: float = 300.0, sleep: Callable[[float], None] = time.sleep):
        self._client = client
        self._cluster = cluster
        self._poll = poll_seconds
        self._timeout = timeout_seconds
        self._sleep = sleep

    def _roles(self) -> dict[str, str]:
        cluster = self._client.describe_clusters(ClusterIdentifier=self._cluster)["Clusters"][0]
        return {str(r["IamRoleArn"]): str(r.get("ApplyStatus", "")) for r in
                cluster.get("IamRoles", [])}

    def attach(self, role_arn: str) -> bool:
        if role_arn in self._roles():
            return False
        self._client.modify_cluster_iam_roles(ClusterIdentifier=self._cluster,
                                              AddIamRoles=[role_arn])
        waited = 0.0
        while (status := self._roles().get(role_arn)) != "in-sync":
            if waited >= self._timeout:
                raise RuntimeError(f"role {role_arn} still {status!r} on cluster "
                                   f"{self._cluster} after {waited:.0f}s")
            self._sleep(self._poll)
            waited += self._poll
        return True

    def detach(self, role_arn: str) -> None:
        if role_arn not in self._roles():
            return
        self._client.modify_cluster_iam_roles(ClusterIdentifier=self._cluster,
                                              RemoveIamRoles=[role_arn])


def binding_for(target: RedshiftTarget, session: Any) -> CopyRoleBinding:
    if target.workgroup:
        return NamespaceRoles(session.client("redshift-serverless"), target.workgroup)
    return ClusterRoles(session.client("redshift"), target.cluster)
