"""The backfill state machine in template.yaml: its role reaches only the pipeline state machine
and its own function, its Map takes the catalog's concurrency, each batch's execution is named
after its content, and its function may read only what a plan needs."""

from __future__ import annotations

from typing import Any

import pytest


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    props = resource["Properties"]
    if "Policies" in props and resource["Type"] == "AWS::IAM::Role":
        return [s for p in props["Policies"] for s in p["PolicyDocument"]["Statement"]]
    return [s for p in props["Policies"] for s in p["Statement"]]


def _by_sid(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in _statements(resource)}


@pytest.fixture
def machine(resources: dict[str, Any]) -> dict[str, Any]:
    return resources["BackfillStateMachine"]


def test_the_backfill_machine_runs_its_definition_with_its_own_role(machine):
    props = machine["Properties"]
    assert props["DefinitionUri"] == "statemachines/backfill.asl.json"
    assert props["Role"] == {"Fn::GetAtt": ["BackfillStateMachineRole", "Arn"]}
    assert props["DefinitionSubstitutions"] == {
        "PipelineStateMachineArn": {"Ref": "PipelineStateMachine"},
        "PlanBackfillFunctionArn": {"Fn::GetAtt": ["PlanBackfillFunction", "Arn"]}}


def test_the_role_starts_only_pipeline_executions(resources):
    """startExecution.sync:2 needs StartExecution on the state machine and DescribeExecution /
    StopExecution on its executions ("IAM policies for AWS Step Functions",
    https://docs.aws.amazon.com/step-functions/latest/dg/stepfunctions-iam.html)."""
    grants = _by_sid(resources["BackfillStateMachineRole"])
    assert grants["StartPipelineExecutions"]["Action"] == "states:StartExecution"
    assert grants["StartPipelineExecutions"]["Resource"] == {"Ref": "PipelineStateMachine"}
    watch = grants["WatchPipelineExecutions"]
    assert sorted(watch["Action"]) == ["states:DescribeExecution", "states:StopExecution"]
    assert watch["Resource"]["Fn::Sub"].endswith(":execution:${AWS::StackName}-pipeline:*")
    assert grants["InvokeFunctions"]["Resource"] == [
        {"Fn::GetAtt": ["PlanBackfillFunction", "Arn"]}]


def test_the_pipeline_machine_name_the_roles_use_is_its_name(resources):
    assert resources["PipelineStateMachine"]["Properties"]["Name"] == {
        "Fn::Sub": "${AWS::StackName}-pipeline"}


def test_the_function_lists_versions_and_writes_only_backfill_files(resources):
    function = resources["PlanBackfillFunction"]
    grants = _by_sid(function)
    assert grants["ListRawVersions"]["Action"] == "s3:ListBucketVersions"
    assert grants["ListRawVersions"]["Resource"] == {"Fn::GetAtt": ["RawBucket", "Arn"]}
    assert grants["BackfillFiles"]["Resource"] == {"Fn::Sub": "${CuratedBucket.Arn}/_backfills/*"}
    assert grants["DescribePipelineExecutions"]["Action"] == "states:DescribeExecution"
    actions = {a for s in _statements(function) for a in
               (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert not {a for a in actions if a.endswith(("Delete", "DeleteObject", "PutItem",
                                                  "UpdateItem", "StartExecution"))}
    env = function["Properties"]["Environment"]["Variables"]
    assert env["PIPELINE_STATE_MACHINE_ARN"] == {"Ref": "PipelineStateMachine"}


def test_the_map_takes_the_catalog_concurrency_and_names_each_batch(definitions):
    states = definitions["backfill.asl.json"]["States"]
    run = states["RunBatches"]
    assert run["MaxConcurrencyPath"] == "$.plan.max_concurrency"
    assert run["ItemProcessor"]["ProcessorConfig"]["Mode"] == "INLINE"
    task = run["ItemProcessor"]["States"]["RunBatch"]
    assert task["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert task["Parameters"]["Name.$"] == "$.batch.batch_id"
    assert task["Parameters"]["Input"] == {"batch": {
        "dataset.$": "$.batch.dataset", "batch_id.$": "$.batch.batch_id",
        "force.$": "$.batch.force", "objects.$": "$.batch.objects"}}


def test_no_batch_failure_escapes_its_iteration(definitions):
    """Inline Map has no tolerated failure percentage: an iteration that fails fails the Map.
    Every Task of the iteration catches States.ALL into a Pass state that reports it."""
    processor = definitions["backfill.asl.json"]["States"]["RunBatches"]["ItemProcessor"]
    for name, state in processor["States"].items():
        if state["Type"] == "Task":
            targets = {c["Next"] for c in state["Catch"] if "States.ALL" in c["ErrorEquals"]}
            assert targets == {"BatchFailed"}, name
    assert processor["States"]["BatchFailed"]["Type"] == "Pass"
