"""TriggerDerived's handler on moto: events/trigger_derived through
functions/trigger_derived/app.py with its real adapter (pipeline_aws.step_functions, the one
AdmitObjects uses). Held against "StartExecution" (Step Functions API Reference,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html): the
derived run's name and input are deterministic, so the redelivered event's StartExecution
returns the running execution (same name and input) or is refused with ExecutionAlreadyExists
(a closed one), which TriggerDerived counts as started: one execution either way."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.support.aws import REGION, REPO, read_event


@pytest.fixture
def pipeline(env, aws, monkeypatch):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name="emr-pipelines-dev-pipeline", roleArn="arn:aws:iam::123456789012:role/sm",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
    )["stateMachineArn"]
    monkeypatch.setenv("PIPELINE_STATE_MACHINE_ARN", arn)
    monkeypatch.setenv("CATALOG_DIR", str(REPO / "datasets"))  # sales_trends waits for loads
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "trigger_derived")
    return sfn, arn


def test_a_loaded_day_starts_one_derived_execution_even_when_delivered_twice(
        pipeline, load_handler, context):
    sfn, arn = pipeline
    handler = load_handler("trigger_derived").lambda_handler
    event = read_event("trigger_derived", "succeeded.json")
    first = handler(event, context)
    assert [s["result"] for s in first["started"]] == ["started"]
    [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert execution["name"] == first["started"][0]["name"]
    given = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert (given["source"], given["dataset"], given["as_of"]) == (
        "pipeline.upstream", "sales_trends", "2010-12-01")
    assert [s["result"] for s in handler(event, context)["started"]] in (["started"],
                                                                         ["exists"])
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
