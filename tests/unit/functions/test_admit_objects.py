"""AdmitObjects' handler on moto: events/admit_objects through functions/admit_objects/app.py
with its real adapter (StartExecution, ListExecutions of the pipeline state machine).

Held against "StartExecution" (Step Functions API Reference,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html): a
closed execution's name is refused with ExecutionAlreadyExists, which AdmitObjects counts as
done, so a redelivered batch starts nothing new; and the partial batch response of "Handling
errors for an SQS event source in Lambda" (Lambda Developer Guide,
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html)."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.support.aws import REGION, read_event


@pytest.fixture
def pipeline(env, aws, monkeypatch):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name="emr-pipelines-dev-pipeline", roleArn="arn:aws:iam::123456789012:role/sm",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
    )["stateMachineArn"]
    monkeypatch.setenv("PIPELINE_STATE_MACHINE_ARN", arn)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "admit_objects")
    return sfn, arn


def test_the_burst_event_starts_one_batch_and_a_redelivery_nothing(pipeline, load_handler,
                                                                   context):
    sfn, arn = pipeline
    handler = load_handler("admit_objects").lambda_handler
    event = read_event("admit_objects", "burst.json")
    assert handler(event, context) == {"batchItemFailures": []}
    [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
    given = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert [o["key"] for o in given["batch"]["objects"]] == [
        "online_retail/2010-12-01.csv", "online_retail/2010-12-02.csv"]
    assert given["batch"]["batch_id"] == execution["name"]
    assert handler(event, context) == {"batchItemFailures": []}
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1


def test_a_record_that_is_no_event_returns_to_the_queue(pipeline, load_handler, context):
    handler = load_handler("admit_objects").lambda_handler
    event = read_event("admit_objects", "burst.json")
    event["Records"][1]["body"] = "{}"
    out = handler(event, context)
    assert out == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
