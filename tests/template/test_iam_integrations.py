"""The state machine role grants exactly what AWS documents for the service integrations its
ASL uses: one table, one row per integration, the doc page beside each row.

Every Task state of every statemachines/*.asl.json (inside Parallel branches and Map
processors too) is looked up in INTEGRATIONS; the role must allow the union of the rows' IAM
actions, the managed EventBridge rules of the `.sync` rows, iam:PassRole (with
iam:PassedToService) for each role the task passes, the service-linked roles the integration
creates, plus the rows of the state machine's own settings (logging, tracing). Nothing more.

Sources (AWS Step Functions developer guide unless said otherwise):
- "IAM policies for Amazon EMR Serverless" https://docs.aws.amazon.com/step-functions/latest/dg/emr-serverless-iam.html
- "IAM policies for Amazon EMR" https://docs.aws.amazon.com/step-functions/latest/dg/emr-iam.html
  (managed rules spelled `StepFunctionsGetEventForEMR...`, singular "Event")
- "Create and manage Amazon EMR clusters with Step Functions" https://docs.aws.amazon.com/step-functions/latest/dg/connect-emr.html
  (createCluster needs the service-linked role AWSServiceRoleForEMRCleanup) and EMR Management
  Guide "Using service-linked roles for Amazon EMR"
  https://docs.aws.amazon.com/emr/latest/ManagementGuide/using-service-linked-roles.html
- EMR Management Guide "Using identity-based policies with tags for cluster access"
  https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-fine-grained-cluster-access.html
  ("To create a cluster with a tag, you must also have permission for elasticmapreduce:AddTags")
- "IAM policies for AWS Lambda" https://docs.aws.amazon.com/step-functions/latest/dg/lambda-iam.html
- "IAM policies for AWS Step Functions" (nested workflows, startExecution.sync)
  https://docs.aws.amazon.com/step-functions/latest/dg/stepfunctions-iam.html
- "Learning to use AWS service SDK integrations in Step Functions"
  https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html (Step
  Functions cannot generate IAM for aws-sdk tasks: the action is the service's IAM prefix and the
  API name) and the Service Authorization Reference "Actions, resources, and condition keys for
  Amazon Redshift Data API" (prefix redshift-data)
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonredshiftdataapi.html
- "IAM policies for integrated services" https://docs.aws.amazon.com/step-functions/latest/dg/service-integration-iam-templates.html
  (each `.sync` managed rule needs events:PutTargets, events:PutRule, events:DescribeRule)
- "Using CloudWatch Logs to log execution history" https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html
- "Trace Step Functions request data in AWS X-Ray" https://docs.aws.amazon.com/step-functions/latest/dg/concepts-xray-tracing.html
- IAM User Guide "Granting a user permissions to pass a role to an AWS service"
  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html and the condition
  key iam:PassedToService
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

STATES = "arn:aws:states:::"
DG = "https://docs.aws.amazon.com/step-functions/latest/dg/"
RULE_ACTIONS = frozenset({"events:PutTargets", "events:PutRule", "events:DescribeRule"})


@dataclass(frozen=True)
class Grant:
    """What AWS documents for one integration (or one state machine setting)."""

    source: str
    actions: frozenset[str] = frozenset()
    # The managed EventBridge rule Step Functions creates for a `.sync` integration.
    rule: str | None = None
    # (request field naming a role, the service that role is passed to)
    passes: tuple[tuple[str, str], ...] = ()
    # (service name, service-linked role name) the integration may have to create
    linked_roles: tuple[tuple[str, str], ...] = ()
    # Extra actions when the request carries Tags, and where that is documented.
    tagged: frozenset[str] = frozenset()
    tagged_source: str = ""
    # aws-sdk rows: the service's IAM prefix; the action is prefix:ApiAction.
    sdk_prefix: str | None = None
    invokes_function: bool = False


_EMR_SERVERLESS_RUN = frozenset({"emr-serverless:StartJobRun", "emr-serverless:GetJobRun",
                                 "emr-serverless:CancelJobRun"})
_EMR_CREATE = frozenset({"elasticmapreduce:RunJobFlow", "elasticmapreduce:DescribeCluster",
                         "elasticmapreduce:TerminateJobFlows"})
_EMR_ADD_STEP = frozenset({"elasticmapreduce:AddJobFlowSteps", "elasticmapreduce:DescribeStep",
                           "elasticmapreduce:CancelSteps"})
_EMR_TERMINATE = frozenset({"elasticmapreduce:TerminateJobFlows",
                            "elasticmapreduce:DescribeCluster"})
_EMR_PASSES = (("ServiceRole", "elasticmapreduce.amazonaws.com"),
               ("JobFlowRole", "ec2.amazonaws.com"),
               ("AutoScalingRole", "application-autoscaling.amazonaws.com"))
_EMR_CLEANUP = (("elasticmapreduce.amazonaws.com", "AWSServiceRoleForEMRCleanup"),)
_EMR_TAGS = "https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-fine-grained-cluster-access.html"

INTEGRATIONS: dict[str, Grant] = {
    "emr-serverless:startJobRun.sync": Grant(
        DG + "emr-serverless-iam.html", _EMR_SERVERLESS_RUN,
        rule="StepFunctionsGetEventsForEMRServerlessJobRule",
        passes=(("ExecutionRoleArn", "emr-serverless.amazonaws.com"),)),
    "emr-serverless:startJobRun": Grant(
        DG + "emr-serverless-iam.html", frozenset({"emr-serverless:StartJobRun"}),
        passes=(("ExecutionRoleArn", "emr-serverless.amazonaws.com"),)),
    "emr-serverless:cancelJobRun": Grant(
        DG + "emr-serverless-iam.html", frozenset({"emr-serverless:CancelJobRun"})),
    "elasticmapreduce:createCluster.sync": Grant(
        DG + "emr-iam.html", _EMR_CREATE, rule="StepFunctionsGetEventForEMRRunJobFlowRule",
        passes=_EMR_PASSES, linked_roles=_EMR_CLEANUP,
        tagged=frozenset({"elasticmapreduce:AddTags"}), tagged_source=_EMR_TAGS),
    "elasticmapreduce:createCluster": Grant(
        DG + "emr-iam.html", _EMR_CREATE, passes=_EMR_PASSES, linked_roles=_EMR_CLEANUP,
        tagged=frozenset({"elasticmapreduce:AddTags"}), tagged_source=_EMR_TAGS),
    "elasticmapreduce:addStep.sync": Grant(
        DG + "emr-iam.html", _EMR_ADD_STEP, rule="StepFunctionsGetEventForEMRAddJobFlowStepsRule"),
    "elasticmapreduce:addStep": Grant(DG + "emr-iam.html", _EMR_ADD_STEP),
    "elasticmapreduce:cancelStep": Grant(
        DG + "emr-iam.html", frozenset({"elasticmapreduce:CancelSteps"})),
    "elasticmapreduce:terminateCluster.sync": Grant(
        DG + "emr-iam.html", _EMR_TERMINATE,
        rule="StepFunctionsGetEventForEMRTerminateJobFlowsRule"),
    "elasticmapreduce:terminateCluster": Grant(DG + "emr-iam.html", _EMR_TERMINATE),
    "elasticmapreduce:setClusterTerminationProtection": Grant(
        DG + "emr-iam.html", frozenset({"elasticmapreduce:SetTerminationProtection"})),
    # A nested workflow run to its end, output as JSON ("IAM policies for AWS Step Functions":
    # StartExecution on the state machine, DescribeExecution and StopExecution on its
    # executions, and the managed rule).
    "states:startExecution.sync:2": Grant(
        DG + "stepfunctions-iam.html",
        frozenset({"states:StartExecution", "states:DescribeExecution", "states:StopExecution"}),
        rule="StepFunctionsGetEventsForStepFunctionsExecutionRule"),
    # A Task whose Resource is the function's ARN, and the optimized lambda:invoke.
    "lambda:function": Grant(DG + "lambda-iam.html", frozenset({"lambda:InvokeFunction"}),
                             invokes_function=True),
    "lambda:invoke": Grant(DG + "lambda-iam.html", frozenset({"lambda:InvokeFunction"}),
                           invokes_function=True),
    # The callback pattern: the same invoke; the token comes back through the function's own
    # SendTaskSuccess, which the state machine's role does not need.
    "lambda:invoke.waitForTaskToken": Grant(
        DG + "lambda-iam.html", frozenset({"lambda:InvokeFunction"}), invokes_function=True),
    # aws-sdk:<service>:<apiAction>: any API of the service, as prefix:ApiAction.
    "aws-sdk:redshiftdata": Grant(
        DG + "supported-services-awssdk.html; https://docs.aws.amazon.com/service-authorization/"
        "latest/reference/list_amazonredshiftdataapi.html", sdk_prefix="redshift-data"),
    # The state machine's own settings.
    "logging": Grant(DG + "cw-logs.html", frozenset({
        "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"})),
    "tracing": Grant(DG + "concepts-xray-tracing.html", frozenset({
        "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
        "xray:GetSamplingTargets"})),
}


# --- reading the ASL and the template --------------------------------------------------------


def task_states(definition: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, state) for every Task, inside Parallel branches and Map processors too."""
    for name, state in definition.get("States", {}).items():
        where = f"{path}{name}"
        if state.get("Type") == "Task":
            yield where, state
        for i, branch in enumerate(state.get("Branches", [])):
            yield from task_states(branch, f"{where}/branch{i}/")
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from task_states(state[key], f"{where}/{key}/")


def integration_key(resource: str, substitutions: dict[str, Any]) -> str:
    """The INTEGRATIONS key of a Task's Resource."""
    if resource.startswith(STATES + "aws-sdk:"):
        return ":".join(resource[len(STATES):].split(":")[:2])
    if resource.startswith(STATES):
        return resource[len(STATES):]
    if resource.startswith("arn:") and ":lambda:" in resource and ":function:" in resource:
        return "lambda:function"
    target = substitutions.get(resource.strip("${}"))
    if resource.startswith("${") and isinstance(target, dict) and "Fn::GetAtt" in target:
        return "lambda:function"
    return resource


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    """Policy statements, both branches of an Fn::If (the most the role can ever allow)."""
    if isinstance(node, list):
        for item in node:
            yield from _statements(item)
    elif isinstance(node, dict) and "Fn::If" in node:
        yield from _statements(node["Fn::If"][1:])
    elif isinstance(node, dict) and "Effect" in node:
        yield node


def role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in role["Properties"].get("Policies", []):
        found.extend(s for s in _statements(policy["PolicyDocument"]["Statement"])
                     if s["Effect"] == "Allow")
    assert not role["Properties"].get("ManagedPolicyArns"), "managed policies hide the grants"
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_text(resource: Any) -> str:
    """A statement resource as text: a literal, an Fn::Sub string, or Ref/GetAtt as a name."""
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    if "Fn::GetAtt" in resource:
        return ".".join(resource["Fn::GetAtt"])
    return f"Ref:{resource['Ref']}"


def resolve_role(value: Any, substitutions: dict[str, Any], resources: dict[str, Any]) -> str:
    """The logical id of the IAM role a request field names (a ${Placeholder} substituted with
    a role's Arn, or an instance profile whose role it is)."""
    if not (isinstance(value, str) and value.startswith("${") and value.endswith("}")):
        raise ValueError(f"{value!r} is not a ${{Placeholder}}: IAM cannot be checked")
    target = substitutions[value[2:-1]]
    name = target["Fn::GetAtt"][0] if "Fn::GetAtt" in target else target["Ref"]
    if resources[name]["Type"] == "AWS::IAM::InstanceProfile":
        (role,) = resources[name]["Properties"]["Roles"]
        name = role["Ref"]
    if resources[name]["Type"] != "AWS::IAM::Role":
        raise ValueError(f"{value} resolves to {name}, not a role")
    return str(name)


def _request(state: dict[str, Any]) -> dict[str, Any]:
    return dict(state.get("Parameters") or state.get("Arguments") or {})


def _field(request: dict[str, Any], name: str) -> tuple[bool, Any]:
    if name in request:
        return True, request[name]
    if f"{name}.$" in request:
        return True, request[f"{name}.$"]
    return False, None


# --- what the ASL needs ------------------------------------------------------------------------


@dataclass
class Needs:
    actions: set[str] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)
    passes: set[tuple[str, str]] = field(default_factory=set)  # (role id, service)
    linked_roles: set[tuple[str, str]] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)


def _add_task(needs: Needs, where: str, state: dict[str, Any], machine: dict[str, Any],
              resources: dict[str, Any]) -> None:
    substitutions = machine["Properties"].get("DefinitionSubstitutions", {})
    key = integration_key(state["Resource"], substitutions)
    grant = INTEGRATIONS.get(key)
    if grant is None:
        needs.unknown.append(f"{where}: {state['Resource']} has no row in INTEGRATIONS")
        return
    request = _request(state)
    needs.actions |= grant.actions
    if grant.sdk_prefix:
        api = state["Resource"][len(STATES):].split(":")[2].split(".")[0]
        needs.actions.add(f"{grant.sdk_prefix}:{api[0].upper()}{api[1:]}")
    if grant.rule:
        needs.rules.add(grant.rule)
    for name, service in grant.passes:
        present, value = _field(request, name)
        if present:
            needs.passes.add((resolve_role(value, substitutions, resources), service))
    needs.linked_roles |= set(grant.linked_roles)
    if _field(request, "Tags")[0]:
        needs.actions |= grant.tagged
    if grant.invokes_function:
        target = (state["Resource"] if key == "lambda:function"
                  else _field(request, "FunctionName")[1])
        needs.functions.add(substitutions[str(target).strip("${}")]["Fn::GetAtt"][0])


def machine_needs(machine: dict[str, Any], definition: dict[str, Any],
                  resources: dict[str, Any]) -> Needs:
    needs = Needs()
    for where, state in task_states(definition):
        _add_task(needs, where, state, machine, resources)
    props = machine["Properties"]
    if props.get("Logging", {}).get("Level", "OFF") != "OFF":
        needs.actions |= INTEGRATIONS["logging"].actions
    if props.get("Tracing", {}).get("Enabled"):
        needs.actions |= INTEGRATIONS["tracing"].actions
    if needs.rules:
        needs.actions |= RULE_ACTIONS
    if needs.passes:
        needs.actions.add("iam:PassRole")
    if needs.linked_roles:
        needs.actions.add("iam:CreateServiceLinkedRole")
    return needs


# --- what the role grants, against what the ASL needs ------------------------------------------


def _service_patterns(statement: dict[str, Any], key: str) -> list[str]:
    patterns: list[str] = []
    for operator in ("StringEquals", "StringLike"):
        patterns += as_list(statement.get("Condition", {}).get(operator, {}).get(key, []))
    return patterns


def names_exactly(pattern: str, service: str) -> bool:
    """A PassedToService / AWSServiceName value that names `service` and nothing but its China
    partition variant (".com.cn", or a trailing "*" as AWS's own EMR policies write it)."""
    return pattern in (service, f"{service}.cn", f"{service}*")


def _pass_findings(statements: list[dict[str, Any]], needs: Needs) -> list[str]:
    findings: list[str] = []
    granted: set[tuple[str, str]] = set()
    for s in statements:
        if "iam:PassRole" not in as_list(s["Action"]):
            continue
        patterns = _service_patterns(s, "iam:PassedToService")
        if not patterns:
            findings.append(f"{s.get('Sid')}: iam:PassRole without iam:PassedToService")
        for resource in as_list(s["Resource"]):
            role = resource["Fn::GetAtt"][0] if isinstance(resource, dict) else resource
            granted |= {(role, p) for p in patterns}
    for role, service in needs.passes:
        if not any(r == role and names_exactly(p, service) for r, p in granted):
            findings.append(f"iam:PassRole of {role} to {service} not granted")
    for role, pattern in granted:
        if not any(r == role and names_exactly(pattern, svc) for r, svc in needs.passes):
            findings.append(f"iam:PassRole of {role} to {pattern} not needed")
    return findings


def _linked_role_findings(statements: list[dict[str, Any]], needs: Needs) -> list[str]:
    findings: list[str] = []
    granted: set[tuple[str, str]] = set()
    for s in statements:
        if "iam:CreateServiceLinkedRole" not in as_list(s["Action"]):
            continue
        for resource in as_list(s["Resource"]):
            text = resource_text(resource)
            granted |= {(p, text) for p in _service_patterns(s, "iam:AWSServiceName")}
    for service, role_name in needs.linked_roles:
        if not any(names_exactly(p, service) and f"aws-service-role/{service}" in text
                   and text.endswith(f"/{role_name}*") for p, text in granted):
            findings.append(f"iam:CreateServiceLinkedRole of {role_name} for {service} "
                            "(with iam:AWSServiceName) not granted")
    for pattern, text in granted:
        if not any(names_exactly(pattern, service) for service, _ in needs.linked_roles):
            findings.append(f"iam:CreateServiceLinkedRole for {pattern} ({text}) not needed")
    return findings


def _rule_findings(statements: list[dict[str, Any]], needs: Needs) -> list[str]:
    findings: list[str] = []
    granted: dict[str, set[str]] = {}
    for s in statements:
        events = {a for a in as_list(s["Action"]) if a.startswith("events:")}
        for resource in as_list(s["Resource"]) if events else []:
            text = resource_text(resource)
            if ":rule/" not in text:
                findings.append(f"{s.get('Sid')}: events actions on {text}, not a managed rule")
                continue
            granted.setdefault(text.rsplit(":rule/", 1)[1], set()).update(events)
    if set(granted) != needs.rules:
        findings.append(f"managed rules granted {sorted(granted)}, needed {sorted(needs.rules)}")
    findings += [f"rule {rule}: {sorted(actions)}, needed {sorted(RULE_ACTIONS)}"
                 for rule, actions in granted.items() if actions != RULE_ACTIONS]
    return findings


def _function_findings(statements: list[dict[str, Any]], needs: Needs) -> list[str]:
    invokable = {resource_text(r).removesuffix(".Arn") for s in statements
                 if "lambda:InvokeFunction" in as_list(s["Action"]) for r in as_list(s["Resource"])}
    if invokable != needs.functions:
        return [f"lambda:InvokeFunction on {sorted(invokable)}, needed {sorted(needs.functions)}"]
    return []


def role_findings(template: dict[str, Any], machine_name: str,
                  definitions: dict[str, Any]) -> list[str]:
    """Every difference between the machine's role and what its ASL needs (empty: exact)."""
    resources = template["Resources"]
    machine = resources[machine_name]
    definition = definitions[machine["Properties"]["DefinitionUri"].rsplit("/", 1)[-1]]
    needs = machine_needs(machine, definition, resources)
    statements = role_statements(resources[machine["Properties"]["Role"]["Fn::GetAtt"][0]])
    granted = {a for s in statements for a in as_list(s["Action"])}
    findings = list(needs.unknown)
    findings += [f"needed, not granted: {a}" for a in sorted(needs.actions - granted)]
    findings += [f"granted, not needed: {a}" for a in sorted(granted - needs.actions)]
    findings += _pass_findings(statements, needs)
    findings += _linked_role_findings(statements, needs)
    findings += _rule_findings(statements, needs)
    findings += _function_findings(statements, needs)
    return findings


def _machines(template: dict[str, Any]) -> list[str]:
    return [n for n, r in template["Resources"].items()
            if r["Type"] in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")]


# --- tests -------------------------------------------------------------------------------------


def test_every_row_names_its_source() -> None:
    for key, grant in INTEGRATIONS.items():
        assert grant.source.startswith("https://docs.aws.amazon.com/"), key
        assert grant.actions or grant.sdk_prefix, key
        assert not grant.tagged or grant.tagged_source.startswith("https://docs.aws.amazon.com/")
        if grant.rule:
            assert key.endswith((".sync", ".sync:2")), key
            assert grant.rule.startswith("StepFunctionsGetEvent"), key


def test_state_machine_roles_grant_exactly_what_their_integrations_need(
        template: dict[str, Any], definitions: dict[str, Any]) -> None:
    machines = _machines(template)
    assert machines
    for name in machines:
        assert role_findings(template, name, definitions) == [], name


def test_the_walk_reaches_nested_tasks() -> None:
    definition = {"States": {
        "P": {"Type": "Parallel",
              "Branches": [{"States": {"A": {"Type": "Task", "Resource": "a"}}}]},
        "M": {"Type": "Map", "ItemProcessor": {"States": {
            "B": {"Type": "Task", "Resource": "b"},
            "I": {"Type": "Map", "Iterator": {"States": {"C": {"Type": "Task", "Resource": "c"}}}},
        }}},
    }}
    assert {s["Resource"] for _, s in task_states(definition)} == {"a", "b", "c"}


def _pipeline(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (name,) = [n for n in _machines(template) if template["Resources"][n]["Properties"][
        "DefinitionUri"].endswith("/pipeline.asl.json")]
    role = template["Resources"][template["Resources"][name]["Properties"]["Role"]["Fn::GetAtt"][0]]
    return name, role


def _statement(role: dict[str, Any], sid: str) -> dict[str, Any]:
    (found,) = [s for s in role_statements(role) if s.get("Sid") == sid]
    return found


def _with_sid(role: dict[str, Any], action: str) -> str:
    for s in role_statements(role):
        if action in as_list(s["Action"]):
            return str(s["Sid"])
    raise AssertionError(f"no statement allows {action}")


@pytest.mark.parametrize("action", ["emr-serverless:StartJobRun", "elasticmapreduce:AddTags",
                                    "events:PutRule", "lambda:InvokeFunction"])
def test_a_missing_grant_is_found(template: dict[str, Any], definitions: dict[str, Any],
                                  action: str) -> None:
    mutated = copy.deepcopy(template)
    name, role = _pipeline(mutated)
    statement = _statement(role, _with_sid(role, action))
    kept = [a for a in as_list(statement["Action"]) if a != action]
    statement["Action"] = kept or ["s3:GetObject"]
    assert f"needed, not granted: {action}" in role_findings(mutated, name, definitions)


def test_an_extra_grant_is_found(template: dict[str, Any], definitions: dict[str, Any]) -> None:
    mutated = copy.deepcopy(template)
    name, role = _pipeline(mutated)
    statement = _statement(role, _with_sid(role, "emr-serverless:GetJobRun"))
    statement["Action"] = [*as_list(statement["Action"]), "emr-serverless:TagResource"]
    assert "granted, not needed: emr-serverless:TagResource" in role_findings(
        mutated, name, definitions)


def test_a_pass_role_without_its_service_is_found(template: dict[str, Any],
                                                  definitions: dict[str, Any]) -> None:
    mutated = copy.deepcopy(template)
    name, role = _pipeline(mutated)
    for s in role_statements(role):
        if "iam:PassRole" in as_list(s["Action"]):
            s.pop("Condition", None)
    findings = role_findings(mutated, name, definitions)
    assert any("without iam:PassedToService" in f for f in findings)
    assert "iam:PassRole of EmrInstanceRole to ec2.amazonaws.com not granted" in findings


def test_a_role_passed_to_the_wrong_service_is_found(template: dict[str, Any],
                                                     definitions: dict[str, Any]) -> None:
    mutated = copy.deepcopy(template)
    name, role = _pipeline(mutated)
    for s in role_statements(role):
        if "iam:PassRole" in as_list(s["Action"]):
            s["Condition"] = {"StringLike": {"iam:PassedToService": "*"}}
    findings = role_findings(mutated, name, definitions)
    assert ("iam:PassRole of EmrServiceRole to elasticmapreduce.amazonaws.com not granted"
            in findings)


def test_an_undocumented_integration_is_refused(template: dict[str, Any],
                                                definitions: dict[str, Any]) -> None:
    mutated_definitions = copy.deepcopy(definitions)
    name, _ = _pipeline(template)
    file = template["Resources"][name]["Properties"]["DefinitionUri"].rsplit("/", 1)[-1]
    mutated_definitions[file]["States"]["Extra"] = {
        "Type": "Task", "Resource": STATES + "aws-sdk:glue:startJobRun"}
    assert any("has no row in INTEGRATIONS" in f
               for f in role_findings(template, name, mutated_definitions))


def test_aws_sdk_tasks_need_their_prefixed_action(template: dict[str, Any],
                                                  definitions: dict[str, Any]) -> None:
    """Whatever Redshift Data API call the ASL makes, the role must allow exactly that one."""
    mutated_definitions = copy.deepcopy(definitions)
    name, _ = _pipeline(template)
    file = template["Resources"][name]["Properties"]["DefinitionUri"].rsplit("/", 1)[-1]
    mutated_definitions[file]["States"]["Extra"] = {
        "Type": "Task", "Resource": STATES + "aws-sdk:redshiftdata:getStatementResult"}
    assert "needed, not granted: redshift-data:GetStatementResult" in role_findings(
        template, name, mutated_definitions)


def test_a_managed_rule_misspelled_is_found(template: dict[str, Any],
                                            definitions: dict[str, Any]) -> None:
    mutated = copy.deepcopy(template)
    name, role = _pipeline(mutated)
    statement = _statement(role, _with_sid(role, "events:PutRule"))
    text = json.dumps(statement).replace("GetEventForEMRRunJobFlowRule",
                                         "GetEventsForEMRRunJobFlowRule")
    statement.clear()
    statement.update(json.loads(text))
    assert any(f.startswith("managed rules granted")
               for f in role_findings(mutated, name, definitions))
