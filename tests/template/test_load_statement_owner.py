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
- "Monitoring events for the Amazon Redshift Data API in Amazon EventBridge" (Amazon Redshift
  Management Guide), https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-monitoring-events.html:
  a statement submitted WithEvent sends an event of source `aws.redshift-data`, detail-type
  "Redshift Data Statement Status Change", with detail.statementName, statementId and state
  (FINISHED, FAILED, ABORTED); the EventBridge events reference ("Amazon Redshift Data API
  events") calls its delivery best effort, hence AwaitLoad's timeout;
- Service Authorization Reference, AWS Step Functions,
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html,
  and "IAM policies for ... callback" ("Creating granular permissions for non-admin users",
  https://docs.aws.amazon.com/step-functions/latest/dg/concept-create-iam-advanced.html: task
  status calls carry "the token of the instance", not a resource ARN): SendTaskSuccess and
  SendTaskFailure are granted on "*", the narrowest IAM allows; the token names the task.
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
CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"


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
        awaiting = states["AwaitLoad"]
        assert awaiting["Resource"] == CALLBACK
        assert awaiting["Parameters"]["FunctionName"] == "${" + placeholder + "}"
        operations["AwaitLoad"] = awaiting["Parameters"]["Payload"]["operation"]
        assert operations == {"StartLoad": "submit", "AwaitLoad": "await",
                              "DescribeLoad": "describe", "CancelLoad": "cancel"}


def test_every_failure_after_the_submit_that_leaves_it_running_cancels_it(
        definitions: dict[str, Any]) -> None:
    """A timed-out load, a wait that failed and a describe that failed go through CancelLoad
    before HandleFailure; there is no poll loop left."""
    for definition in [definitions["pipeline.asl.json"]]:
        states = definition["States"]
        assert states["LoadTimedOut"]["Next"] == "CancelLoad"
        assert [c["Next"] for c in states["DescribeLoad"]["Catch"]] == ["CancelLoad"]
        assert states["CancelLoad"]["Next"] == "HandleFailure"
        assert {c["Next"] for c in states["CancelLoad"]["Catch"]} == {"HandleFailure"}
        assert not {"NextLoadPoll", "CapLoadWait", "UseMaxLoadWait", "WaitForLoad"} & set(states)
        assert states["StartLoad"]["Next"] == "AwaitLoad"
        assert states["AwaitLoad"]["Next"] == "LoadStatus"
        assert [(c["ErrorEquals"], c["Next"]) for c in states["AwaitLoad"]["Catch"]] == [
            (["States.Timeout"], "DescribeLoad"), (["States.ALL"], "CancelLoad")]
        assert states["DescribeLoad"]["Next"] == "LoadStatus"
        assert states["WaitBeforeLoadRetry"]["Next"] == "StartLoad"
        assert "running" not in {c["StringEquals"] for c in states["LoadStatus"]["Choices"]}


def test_the_wait_lasts_the_loads_time_limit_and_passes_its_token(
        definitions: dict[str, Any], resources: dict[str, Any]) -> None:
    from pipeline_aws.load_policy import LOAD_TIMEOUT_SECONDS

    awaiting = definitions["pipeline.asl.json"]["States"]["AwaitLoad"]
    assert awaiting["TimeoutSeconds"] == LOAD_TIMEOUT_SECONDS
    assert awaiting["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert awaiting["ResultPath"] == "$.load_status"  # what LoadStatus and RecordRun read
    [timeout] = [c for c in awaiting["Catch"] if c["ErrorEquals"] == ["States.Timeout"]]
    assert timeout["ResultPath"] is None  # a lost event is no failure: DescribeLoad decides
    retried = {e for r in awaiting["Retry"] for e in r["ErrorEquals"]}
    assert "States.Timeout" not in retried and "States.ALL" not in retried
    rule = resources[_owner(resources)]["Properties"]["Events"]["StatementEnded"]["Properties"]
    assert rule["RetryPolicy"]["MaximumEventAgeInSeconds"] == LOAD_TIMEOUT_SECONDS


def _sample_event(name: str) -> dict[str, Any]:
    """The finished-statement example of the Redshift Management Guide's events page."""
    return {"version": "0", "id": "18e7079c-dd4b-dd64-caf9-e2a31640dab0",
            "detail-type": "Redshift Data Statement Status Change",
            "source": "aws.redshift-data", "account": "123456789012",
            "time": "2020-10-01T21:14:26Z", "region": "us-east-1",
            "resources": ["arn:aws:redshift:us-east-1:123456789012:cluster:redshift-cluster-1"],
            "detail": {"principal": "arn:aws:iam::123456789012:user/myuser",
                       "statementName": name,
                       "statementId": "dd2e1ec9-2ee3-49a0-819f-905fa7d75a4a",
                       "redshiftQueryId": -1, "state": "FINISHED", "rows": 1,
                       "expireAt": 1601673265}}


def test_the_completion_event_of_this_stacks_loads_reaches_their_owner(
        resources: dict[str, Any]) -> None:
    from local_runtime.runner import pattern_matches
    from pipeline_aws.load import statement_name

    owner = _owner(resources)
    events = resources[owner]["Properties"]["Events"]
    [event] = [e for e in events.values() if e["Type"] == "EventBridgeRule"]
    pattern = event["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.redshift-data"]
    assert pattern["detail-type"] == ["Redshift Data Statement Status Change"]
    assert pattern["detail"]["state"] == ["FINISHED", "FAILED", "ABORTED"]
    [prefix] = pattern["detail"]["statementName"]
    assert prefix == {"prefix": {"Fn::Sub": "${AWS::StackName}-load/"}}
    stack = "emr-pipelines-dev"
    resolved = {**pattern, "detail": {**pattern["detail"],
                                      "statementName": [{"prefix": f"{stack}-load/"}]}}
    ours = statement_name(stack, "online_retail-2010-12-01-32dc43c7cee3", 1)
    assert pattern_matches(resolved, _sample_event(ours))
    assert not pattern_matches(resolved, _sample_event("test.testtable"))  # AWS's example
    assert not pattern_matches(resolved, _sample_event(
        statement_name(f"{stack}-two", "online_retail-2010-12-01-32dc43c7cee3", 1)))
    assert not pattern_matches(resolved, {**_sample_event(ours), "source": "aws.redshift"})


def test_only_the_owner_ends_the_wait_and_only_with_success_or_failure(
        resources: dict[str, Any]) -> None:
    owner = _owner(resources)
    grants = {name: [n for n in _nodes(r.get("Properties", {})) if isinstance(n, dict)
                     and n.get("Effect") == "Allow"
                     and any(a.startswith("states:SendTask") for a in _actions(n))]
              for name, r in resources.items()}
    assert {name for name, found in grants.items() if found} == {owner}
    [grant] = grants[owner]
    assert _actions(grant) == {"states:SendTaskSuccess", "states:SendTaskFailure"}
    assert grant["Resource"] == "*"
    [ledger] = [n for n in _nodes(resources[owner]["Properties"]) if isinstance(n, dict)
                and n.get("Sid") == "AwaitLoadToken"]
    assert _actions(ledger) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert ledger["Resource"] == {"Fn::GetAtt": ["RunLedger", "Arn"]}
