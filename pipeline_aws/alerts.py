"""SNS alerts: a short subject, a readable text body for e-mail, and JSON for machines.

Messages use SNS's per-protocol structure: e-mail and SMS subscribers get the text, SQS,
Lambda and HTTP subscribers get the JSON document, so both can act on the same alert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline_aws import aws_call

SUBJECT_MAX = 99  # SNS: "less than 100 characters", ASCII, no line breaks
FIELD_MAX = 4000  # keeps one alert far below SNS's 256 KiB message limit
_JSON_PROTOCOLS = ("sqs", "lambda", "http", "https", "email-json", "firehose")


def clip(text: str, limit: int) -> str:
    """Shorten text to at most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    kept = limit
    for _ in range(3):  # the marker's length depends on the count it reports
        marker = f" ... [{len(text) - kept} more characters]"
        kept = max(0, limit - len(marker))
    return text[:kept] + f" ... [{len(text) - kept} more characters]"


def safe_subject(text: str) -> str:
    """An SNS-acceptable subject: printable ASCII on one line, at most 99 characters."""
    ascii_only = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    one_line = re.sub(r"\s+", " ", ascii_only).strip() or "pipeline alert"
    if len(one_line) > SUBJECT_MAX:
        one_line = one_line[: SUBJECT_MAX - 3].rstrip() + "..."
    return one_line


@dataclass(frozen=True)
class Alert:
    subject: str
    title: str
    fields: Mapping[str, Any]  # ordered: label -> value (str, number, list or mapping)
    attributes: Mapping[str, str] = field(default_factory=dict)  # SNS message attributes

    def text(self) -> str:
        lines = [self.title, ""]
        for label, value in self.fields.items():
            if value is None or value == "" or value == []:
                continue
            if isinstance(value, Mapping | list):
                value = json.dumps(value, default=str, sort_keys=True)
            lines.append(f"{label}: {clip(str(value), FIELD_MAX)}")
        return "\n".join(lines)

    def document(self) -> dict[str, Any]:
        body = {k: (clip(v, FIELD_MAX) if isinstance(v, str) else v)
                for k, v in self.fields.items()}
        return {"title": self.title, **body}


class AlertPort(Protocol):
    """What the logic needs to alert (AlertPublisher; FakeAlerts in the tests)."""

    def publish(self, alert: Alert) -> str:
        """Send the alert; returns its message id."""
        ...


class AlertPublisher:
    """Publishes alerts to the alert topic (an SNS client and the topic ARN); an AlertPort."""

    def __init__(self, sns_client: Any, topic_arn: str):
        self._sns = sns_client
        self._topic_arn = topic_arn

    def publish(self, alert: Alert) -> str:
        """Send the alert; returns the SNS message id."""
        text = alert.text()
        document = json.dumps(alert.document(), default=str, sort_keys=True)
        message = {"default": text, "email": text, "sms": clip(text, 1400)}
        message.update({protocol: document for protocol in _JSON_PROTOCOLS})
        response = aws_call(
            f"publishing an alert to {self._topic_arn}", self._sns.publish,
            TopicArn=self._topic_arn,
            Subject=safe_subject(alert.subject),
            Message=json.dumps(message),
            MessageStructure="json",
            MessageAttributes={
                k: {"DataType": "String", "StringValue": str(v) or "-"}
                for k, v in alert.attributes.items()
            },
        )
        return str(response.get("MessageId", ""))
