"""The burst path in template.yaml: raw bucket rule -> BurstQueue (dead-letter queue, redrive)
-> AdmitObjectsFunction (SQS event source mapping) -> the pipeline state machine.

AWS documents each rule held here:
- "Lambda parameters for Amazon SQS event source mappings" (Lambda Developer Guide,
  https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html): BatchSize up to
  10,000 for a standard queue; FunctionResponseTypes `ReportBatchItemFailures`; batching window
  (0 to 300 s, "MaximumBatchingWindowInSeconds", CreateEventSourceMapping API reference
  https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html: a BatchSize
  over 10 needs a window of at least 1 s).
- "AWS::Lambda::EventSourceMapping ScalingConfig" (CloudFormation User Guide,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-lambda-eventsourcemapping-scalingconfig.html):
  MaximumConcurrency from 2 to 1000.
- "Creating and configuring an Amazon SQS event source mapping" (Lambda Developer Guide,
  https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html): the queue's
  visibility timeout at least six times the function's timeout; the execution role needs
  sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on the queue.
- "Using resource-based policies for Amazon EventBridge" (EventBridge User Guide,
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sqs-permissions):
  an SQS target is allowed by the queue's policy (events.amazonaws.com, sqs:SendMessage,
  aws:SourceArn the rule) and takes no RoleArn.
- "Using dead-letter queues in Amazon SQS" (SQS Developer Guide,
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html):
  the redrive policy (deadLetterTargetArn, maxReceiveCount); a message's expiry counts from its
  first enqueue, so the dead-letter queue keeps messages longer than the source queue.
- "Actions, resources, and condition keys for AWS Step Functions" (Service Authorization
  Reference, https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html):
  StartExecution and ListExecutions take the stateMachine resource.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def mapping(resources: dict[str, Any]) -> dict[str, Any]:
    [found] = [r["Properties"] for r in resources.values()
               if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    return found


def test_the_raw_rule_sends_to_the_burst_queue(resources: dict[str, Any]) -> None:
    [target] = resources["RawObjectCreatedRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["BurstQueue", "Arn"]}
    assert "RoleArn" not in target, "an SQS target uses the queue's policy, no role"
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["TriggerDeadLetterQueue", "Arn"]}


def test_only_that_rule_may_send_to_the_queue(resources: dict[str, Any]) -> None:
    policy = resources["BurstQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "BurstQueue"}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["BurstQueue", "Arn"]}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["RawObjectCreatedRule", "Arn"]}}}


def test_the_queue_has_a_dead_letter_queue_that_keeps_longer(resources: dict[str, Any]) -> None:
    queue = resources["BurstQueue"]["Properties"]
    dlq = resources["BurstDeadLetterQueue"]["Properties"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["BurstDeadLetterQueue", "Arn"]}
    assert 5 <= redrive["maxReceiveCount"] <= 1000
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    assert dlq["MessageRetentionPeriod"] <= 1209600
    assert queue["SqsManagedSseEnabled"] and dlq["SqsManagedSseEnabled"]


def test_visibility_timeout_is_six_function_timeouts(resources: dict[str, Any],
                                                      template: dict[str, Any]) -> None:
    fn = resources["AdmitObjectsFunction"]["Properties"]
    timeout = fn.get("Timeout", template["Globals"]["Function"]["Timeout"])
    assert resources["BurstQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_the_event_source_mapping(mapping: dict[str, Any]) -> None:
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["BurstQueue", "Arn"]}
    assert mapping["FunctionName"] == {"Ref": "AdmitObjectsFunction"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= mapping["BatchSize"] <= 10000
    assert 0 <= mapping["MaximumBatchingWindowInSeconds"] <= 300
    if mapping["BatchSize"] > 10:
        assert mapping["MaximumBatchingWindowInSeconds"] >= 1
    assert 2 <= mapping["ScalingConfig"]["MaximumConcurrency"] <= 1000


def test_the_function_is_fed_only_by_the_mapping(resources: dict[str, Any]) -> None:
    """No SAM SQS event: it would attach AWSLambdaSQSQueueExecutionRole (every queue)."""
    fn = resources["AdmitObjectsFunction"]["Properties"]
    assert not fn.get("Events")
    assert fn["CodeUri"] == "functions/admit_objects/"
    assert fn["Environment"]["Variables"]["PIPELINE_STATE_MACHINE_ARN"] == {
        "Ref": "PipelineStateMachine"}


def test_the_function_role_is_least_privilege(resources: dict[str, Any]) -> None:
    [policy] = resources["AdmitObjectsFunction"]["Properties"]["Policies"]
    grants = {s["Sid"]: s for s in policy["Statement"]}
    assert set(grants) == {"ReadBurstQueue", "StartPipelineExecutions", "CountRunningExecutions"}
    assert sorted(grants["ReadBurstQueue"]["Action"]) == [
        "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    assert grants["ReadBurstQueue"]["Resource"] == {"Fn::GetAtt": ["BurstQueue", "Arn"]}
    for sid, action in (("StartPipelineExecutions", "states:StartExecution"),
                        ("CountRunningExecutions", "states:ListExecutions")):
        assert grants[sid]["Action"] == action
        assert grants[sid]["Resource"] == {"Ref": "PipelineStateMachine"}
    assert all(s["Effect"] == "Allow" for s in grants.values())


def test_the_trigger_role_serves_only_the_schedules(resources: dict[str, Any]) -> None:
    trust = resources["TriggerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
