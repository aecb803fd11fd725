"""The state machine role grants the managed EventBridge rules that each `.sync` integration
in the ASL needs, named as AWS documents them, and no others.

Sources (AWS Step Functions developer guide, "IAM policies for ..." page of each integration):
- https://docs.aws.amazon.com/step-functions/latest/dg/emr-iam.html (createCluster.sync,
  addStep.sync, terminateCluster.sync: `StepFunctionsGetEventForEMR...Rule`, singular "Event")
- https://docs.aws.amazon.com/step-functions/latest/dg/emr-serverless-iam.html
  (startJobRun.sync: `StepFunctionsGetEventsForEMRServerlessJobRule`, plural "Events")
Each rule needs events:PutTargets, events:PutRule and events:DescribeRule.
"""

from __future__ import annotations

from typing import Any

SYNC_RULES = {
    "arn:aws:states:::elasticmapreduce:createCluster.sync":
        "StepFunctionsGetEventForEMRRunJobFlowRule",
    "arn:aws:states:::elasticmapreduce:addStep.sync":
        "StepFunctionsGetEventForEMRAddJobFlowStepsRule",
    "arn:aws:states:::elasticmapreduce:terminateCluster.sync":
        "StepFunctionsGetEventForEMRTerminateJobFlowsRule",
    "arn:aws:states:::emr-serverless:startJobRun.sync":
        "StepFunctionsGetEventsForEMRServerlessJobRule",
}
RULE_ACTIONS = {"events:PutTargets", "events:PutRule", "events:DescribeRule"}


def _task_resources(definition: Any) -> set[str]:
    """The Resource of every Task, inside Map and Parallel branches too."""
    found: set[str] = set()
    if isinstance(definition, dict):
        if definition.get("Type") == "Task":
            found.add(definition["Resource"])
        for value in definition.values():
            found |= _task_resources(value)
    elif isinstance(definition, list):
        for value in definition:
            found |= _task_resources(value)
    return found


def _granted_rules(role: dict[str, Any]) -> dict[str, set[str]]:
    """Rule name -> the events actions the role allows on it."""
    granted: dict[str, set[str]] = {}
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = {actions} if isinstance(actions, str) else set(actions)
            resources = statement["Resource"]
            for resource in resources if isinstance(resources, list) else [resources]:
                text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else resource
                if ":rule/" in text and statement["Effect"] == "Allow":
                    name = text.rsplit(":rule/", 1)[1]
                    granted.setdefault(name, set()).update(a for a in actions
                                                           if a.startswith("events:"))
    return granted


def test_sync_tasks_have_exactly_their_documented_rules(
    resources: dict[str, Any], definitions: dict[str, Any]
) -> None:
    machines = {n: r for n, r in resources.items()
                if r["Type"] == "AWS::Serverless::StateMachine"}
    assert machines
    for name, machine in machines.items():
        uri = machine["Properties"]["DefinitionUri"]
        tasks = _task_resources(definitions[uri.rsplit("/", 1)[-1]])
        unknown = {t for t in tasks if t.endswith(".sync") and t not in SYNC_RULES}
        assert not unknown, f"{name}: add the documented managed rule of {unknown} to SYNC_RULES"
        needed = {SYNC_RULES[t] for t in tasks if t in SYNC_RULES}
        role = resources[machine["Properties"]["Role"]["Fn::GetAtt"][0]]
        granted = _granted_rules(role)
        assert set(granted) == needed, name
        for rule, actions in granted.items():
            assert actions == RULE_ACTIONS, rule
