"""What the shared adapters do beyond their ports' contracts (moved from the run-path adapter
tests): how AWS errors become domain errors, and how an alert reads in e-mail and JSON."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from pipeline_aws import domain_error
from pipeline_aws.alerts import Alert, AlertPublisher, clip, safe_subject
from pipeline_aws.ledger import RunLedger
from pipeline_core.errors import ConfigurationError, TransientError
from tests.support.aws import REGION, TOPIC, TOPIC_ARN


def test_ledger_maps_throttling_to_transient_error() -> None:
    class Throttled:
        def put_item(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "slow down"}}, "PutItem")

    with pytest.raises(TransientError, match="ProvisionedThroughputExceededException"):
        RunLedger(Throttled()).create_run({"run_id": "r"})


def test_domain_error_classification() -> None:
    def err(code: str, status: int = 400) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert isinstance(domain_error(err("AccessDenied", 403), "x"), ConfigurationError)
    assert isinstance(domain_error(err("ThrottlingException"), "x"), TransientError)
    assert isinstance(domain_error(err("Whatever", 503), "x"), TransientError)
    bad_request = ParamValidationError(report="Sql: missing")
    assert isinstance(domain_error(bad_request, "x"), ConfigurationError)


def test_subject_is_ascii_one_line_and_short() -> None:
    subject = safe_subject("[dev] online_retail — failed\nat RunServerlessJob: " + "x" * 200)
    assert len(subject) <= 99 and "\n" not in subject and subject.isascii()
    assert subject.endswith("...")


def test_clip_says_how_much_was_cut() -> None:
    assert clip("abc", 10) == "abc"
    clipped = clip("a" * 5000, 100)
    assert len(clipped) == 100 and "[4927 more characters]" in clipped


def test_alert_reaches_json_and_text_subscribers(moto: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    sns.create_topic(Name=TOPIC)
    url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=arn["QueueArn"])
    message_id = AlertPublisher(sns, TOPIC_ARN).publish(Alert(
        subject="[dev] online_retail 2010-12-01 failed at Load: LoadFailed",
        title="Pipeline run failed",
        fields={"Dataset": "online_retail", "Cause": "c" * 9000, "Logs": None,
                "Cleanup": [{"action": "cancel_statement"}]},
        attributes={"dataset": "online_retail"}))
    assert message_id
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == "[dev] online_retail 2010-12-01 failed at Load: LoadFailed"
    document = json.loads(envelope["Message"])
    assert document["Dataset"] == "online_retail" and len(document["Cause"]) == 4000
    text = Alert("s", "Pipeline run failed", {"Dataset": "d", "Logs": None}).text()
    assert text == "Pipeline run failed\n\nDataset: d"


@pytest.mark.parametrize("shape", ["many fields", "long list", "wide text"])
def test_the_whole_sns_message_stays_within_the_publish_limit(shape: str) -> None:
    """SNS Publish (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html): the message
    is at most 256 KB. The text goes out twice and the JSON six times (one per protocol), so
    bounding single fields is not enough; the first fields always stay."""
    from pipeline_aws.alerts import MESSAGE_MAX_BYTES, sns_message

    wide = "\u2603\"x" * 3000  # three UTF-8 bytes and a JSON escape per pair of characters
    fields: dict[str, Any] = {"dataset": "online_retail", "run_id": "r-1"}
    if shape == "many fields":
        fields.update({f"rule {i}": wide[:300] for i in range(2000)})
    elif shape == "long list":
        fields["failed_rules"] = [{"rule": wide[:200], "line": i} for i in range(5000)]
    else:
        fields.update({f"text {i}": wide for i in range(200)})
    message = sns_message(Alert("s", "t", fields))

    assert len(message.encode()) <= MESSAGE_MAX_BYTES
    document = json.loads(json.loads(message)["sqs"])
    assert document["dataset"] == "online_retail" and document["run_id"] == "r-1"
    assert json.loads(message)["email"].startswith("t\n\ndataset: online_retail\nrun_id: r-1")
    if shape == "long list":
        assert document["failed_rules_total"] == 5000
        assert 0 < len(document["failed_rules"]) < 5000
