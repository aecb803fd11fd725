"""One principal owns the Redshift load statement: the function that submits it is the only one
granted to describe, read and cancel statements, under the owner condition, and the state
machine reaches the statement only through that function.

AWS documents:
- "Configuring IAM permissions" (Amazon Redshift Management Guide),
  https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-iam.html: start your own policy from
  the managed policy AmazonRedshiftDataFullAccess;
- AmazonRedshiftDataFullAccess (AWS Managed Policy Reference),
  https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonRedshiftDataFullAccess.html:
  DescribeStatement, GetStatementResult and CancelStatement are allowed on "*" only with
  StringEquals redshift-data:statement-owner-iam-userid = ${aws:userid};
- Service Authorization Reference, Amazon Redshift Data API,
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonredshiftdataapi.html:
  those three actions have no resource type and take the condition key
  redshift-data:statement-owner-iam-userid;
- IAM policy elements: variables (IAM User Guide),
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html:
  aws:userid of an assumed role is `role-id:caller-specified-role-name` (for Lambda, the
  function's name): two functions, or a function and the state machine, are different owners.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

SUBMIT = {"redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"}
OWNED = {"redshift-data:DescribeStatement", "redshift-data:GetStatementResult",
         "redshift-data:CancelStatement"}
OWNER_CONDITION = {"StringEquals": {
    "redshift-data:statement-owner-iam-userid": "${aws:userid}"}}
LOAD_STATES = ("StartLoad", "DescribeLoad", "CancelLoad")


def _nodes(node: Any) -> Iterator[Any]:
    """Every dict and list inside `node` (SAM Policies, Fn::If branches), `node` included."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(
        node, list) else []
    for child in children:
        yield from _nodes(child)


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement.get("Action", [])
    return set(action if isinstance(action, list) else [action])


def _redshift_data_grants(resources: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Resource name -> its statements that allow any redshift-data action."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, resource in resources.items():
        for node in _nodes(resource.get("Properties", {})):
            if (isinstance(node, dict) and node.get("Effect") == "Allow"
                    and any(a.startswith("redshift-data:") or a == "*" for a in _actions(node))):
                found.setdefault(name, []).append(node)
    return found


def _owner(resources: dict[str, Any]) -> str:
    submitters = [name for name, grants in _redshift_data_grants(resources).items()
                  if any(_actions(g) & SUBMIT for g in grants)]
    assert len(submitters) == 1, f"one function submits statements, found {submitters}"
    return submitters[0]


def test_the_function_that_submits_is_the_one_that_describes_and_cancels(
        resources: dict[str, Any]) -> None:
    owner = _owner(resources)
    assert resources[owner]["Type"] == "AWS::Serverless::Function"
    owned = [g for g in _redshift_data_grants(resources)[owner] if _actions(g) & OWNED]
    assert len(owned) == 1 and _actions(owned[0]) == OWNED
    assert owned[0]["Resource"] == "*"
    assert owned[0]["Condition"] == OWNER_CONDITION


def test_no_other_role_has_a_redshift_data_grant(resources: dict[str, Any]) -> None:
    """The state machine's role and HandleFailure's included: a describe or cancel by anyone
    but the submitter would fail in AWS (the statement is not theirs)."""
    owner = _owner(resources)
    others = {name for name in _redshift_data_grants(resources) if name != owner}
    assert others == set(), f"redshift-data granted outside {owner}: {sorted(others)}"


def test_the_state_machine_reaches_the_statement_only_through_its_owner(
        resources: dict[str, Any], definitions: dict[str, Any]) -> None:
    owner = _owner(resources)
    [machine] = [r for r in resources.values() if r["Type"] == "AWS::Serverless::StateMachine"
                 and r["Properties"]["DefinitionUri"].endswith("/pipeline.asl.json")]
    substitutions = machine["Properties"]["DefinitionSubstitutions"]
    placeholders = {name for name, value in substitutions.items()
                    if value == {"Fn::GetAtt": [owner, "Arn"]}}
    assert len(placeholders) == 1
    [placeholder] = placeholders
    for file, definition in definitions.items():
        states = definition["States"]
        assert "aws-sdk:redshiftdata" not in json.dumps(definition), (
            f"{file}: a state machine task calls the Data API itself")
        if file != "pipeline.asl.json":  # the only machine that loads
            continue
        operations = {}
        for name in LOAD_STATES:
            assert states[name]["Resource"] == "${" + placeholder + "}", name
            operations[name] = states[name]["Parameters"]["operation"]
        assert operations == {"StartLoad": "submit", "DescribeLoad": "describe",
                              "CancelLoad": "cancel"}


def test_every_failure_after_the_submit_that_leaves_it_running_cancels_it(
        definitions: dict[str, Any]) -> None:
    """A timed-out load and a describe that failed go through CancelLoad before
    HandleFailure; the poll loop has no arithmetic states left."""
    for definition in [definitions["pipeline.asl.json"]]:
        states = definition["States"]
        assert states["LoadTimedOut"]["Next"] == "CancelLoad"
        assert [c["Next"] for c in states["DescribeLoad"]["Catch"]] == ["CancelLoad"]
        assert states["CancelLoad"]["Next"] == "HandleFailure"
        assert {c["Next"] for c in states["CancelLoad"]["Catch"]} == {"HandleFailure"}
        assert not {"NextLoadPoll", "CapLoadWait", "UseMaxLoadWait"} & set(states)
        assert states["WaitForLoad"]["Next"] == "DescribeLoad"
        assert states["DescribeLoad"]["Next"] == "LoadStatus"
        assert states["WaitBeforeLoadRetry"]["Next"] == "StartLoad"
