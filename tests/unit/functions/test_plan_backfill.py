"""PlanBackfill's handler on moto shaped like template.yaml: the events/plan_backfill files
through functions/plan_backfill/app.py, with its real adapters (ListObjectVersions, the plan in
the curated bucket, the ledger's loaded_versions, DescribeExecution)."""

from __future__ import annotations

import json

import pytest

from tests.support.aws import read_event
from tests.unit.run.support import CURATED, RAW

PIPELINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:emr-pipelines-dev-pipeline"


@pytest.fixture
def backfill_env(env, monkeypatch):
    monkeypatch.setenv("PIPELINE_STATE_MACHINE_ARN", PIPELINE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "plan_backfill")
    return env


def test_the_plan_event_plans_the_raw_objects_and_stores_the_plan(backfill_env, aws,
                                                                  load_handler, context):
    aws.put_sample("online_retail/2010-12-01.csv")
    aws.put_sample("online_retail/2010-12-02.csv")
    aws.put_raw("online_retail/notes.txt", b"x")
    aws.put_sample("online_retail/2011-01-01.csv")  # outside the event's range
    handler = load_handler("plan_backfill").lambda_handler
    plan = handler(read_event("plan_backfill", "plan.json"), context)
    assert plan["counts"] == {"batches": 1, "partitions": 2, "skipped": 0, "refused": 1,
                              "outside_range": 1}
    [batch] = plan["batches"]
    head = aws.s3.head_object(Bucket=RAW, Key="online_retail/2010-12-01.csv")
    assert batch["objects"][0] == {"key": "online_retail/2010-12-01.csv",
                                   "version_id": head["VersionId"],
                                   "size": head["ContentLength"]}
    assert plan["plan_uri"] == f"s3://{CURATED}/_backfills/online_retail/december/plan.json"
    stored = json.loads(aws.s3.get_object(Bucket=CURATED,
                                          Key="_backfills/online_retail/december/plan.json")
                        ["Body"].read())
    assert stored["refused"][0]["key"] == "online_retail/notes.txt"


def test_the_summarize_event_reads_the_stored_plan(backfill_env, aws, load_handler, context):
    aws.put_sample("online_retail/2010-12-01.csv")
    handler = load_handler("plan_backfill").lambda_handler
    plan = handler(read_event("plan_backfill", "plan.json"), context)
    event = read_event("plan_backfill", "summarize.json")
    event["plan"]["plan_uri"] = plan["plan_uri"]
    event["results"] = [{"batch_id": plan["batches"][0]["batch_id"], "status": "FAILED",
                         "error": "States.TaskFailed"}]
    summary = handler(event, context)
    # the batch's execution does not exist in this account: reported as the Map said
    assert summary["status"] == "failed" and summary["failed"] == ["2010-12-01"]
    assert summary["batches"][0]["status"] == "FAILED"
    assert summary["summary_uri"].endswith("/_backfills/online_retail/december/summary.json")
