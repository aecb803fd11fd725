"""The alert port's contract: FakeAlerts and AlertPublisher (moto SNS, read back through an SQS
subscription) deliver the same subject, document and attributes for an Alert."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline_aws.alerts import Alert, AlertPort, AlertPublisher, safe_subject
from pipeline_core.errors import ConfigurationError
from tests.support.aws import TOPIC, TOPIC_ARN
from tests.support.fakes.alerts import FakeAlerts
from tests.unit.contracts.conftest import SIDES, client, fake_or_real


@dataclass
class Delivered:
    subject: str
    document: dict[str, Any]
    attributes: dict[str, str]


@dataclass
class Topic:
    port: AlertPort
    delivered: Callable[[], list[Delivered]]


def _fake() -> Topic:
    fake = FakeAlerts()
    return Topic(fake, lambda: [Delivered(safe_subject(a.subject), a.document(),
                                          dict(a.attributes)) for a in fake.published])


def _sns() -> Topic:
    sns = client("sns")
    sqs = client("sqs")
    assert sns.create_topic(Name=TOPIC)["TopicArn"] == TOPIC_ARN
    url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=arn["QueueArn"])

    def delivered() -> list[Delivered]:
        out = []
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]:
            body = json.loads(message["Body"])
            attributes = body.get("MessageAttributes", {})
            out.append(Delivered(body["Subject"], json.loads(body["Message"]),
                                 {k: v["Value"] for k, v in attributes.items()}))
        return out

    return Topic(AlertPublisher(sns, TOPIC_ARN), delivered)


@pytest.fixture(params=SIDES)
def topic(request: pytest.FixtureRequest) -> Topic:
    return fake_or_real(request, _fake, _sns)


def test_a_published_alert_arrives_with_its_subject_document_and_attributes(
        topic: Topic) -> None:
    alert = Alert(subject="[dev] online_retail: run cost $2.50 over its ceiling",
                  title="Run r-1 of online_retail cost $2.5000, over the per-run ceiling.",
                  fields={"run_id": "r-1", "total_usd": 2.5, "rules": ["a", "b"], "empty": ""},
                  attributes={"dataset": "online_retail", "kind": "budget"})

    message_id = topic.port.publish(alert)

    assert message_id
    [delivered] = topic.delivered()
    assert delivered.subject == "[dev] online_retail: run cost $2.50 over its ceiling"
    assert delivered.document == {"title": alert.title, "run_id": "r-1", "total_usd": 2.5,
                                  "rules": ["a", "b"], "empty": ""}
    assert delivered.attributes == {"dataset": "online_retail", "kind": "budget"}


def test_a_subject_sns_would_refuse_is_made_safe(topic: Topic) -> None:
    topic.port.publish(Alert(subject="line one\nline two é " + "x" * 200, title="t", fields={}))
    [delivered] = topic.delivered()
    assert delivered.subject.startswith("line one line two ")
    assert len(delivered.subject) <= 99 and "\n" not in delivered.subject


def test_publishing_to_a_missing_topic_is_a_configuration_error(moto: None) -> None:
    publisher = AlertPublisher(client("sns"), TOPIC_ARN)
    with pytest.raises(ConfigurationError, match="NotFound"):
        publisher.publish(Alert(subject="s", title="t", fields={}))
