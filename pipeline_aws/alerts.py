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
FIELD_MAX = 4000  # one field of an alert, in characters
# SNS Publish: "the maximum size is 256 KB" for the message with its attributes
# (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html); the rest is left to them.
MESSAGE_MAX_BYTES = 240 * 1024
_FIELD_MIN = 64
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

    def text(self, field_max: int = FIELD_MAX, max_fields: int | None = None) -> str:
        lines = [self.title, ""]
        shown, omitted = self._fields(max_fields)
        for label, value in shown.items():
            if value is None or value == "" or value == []:
                continue
            if isinstance(value, Mapping | list):
                value = json.dumps(value, default=str, sort_keys=True)
            lines.append(f"{label}: {clip(str(value), field_max)}")
        if omitted:
            lines.append(f"({omitted} more fields left out to keep the alert within SNS's size "
                         "limit)")
        return "\n".join(lines)

    def document(self, field_max: int = FIELD_MAX, max_fields: int | None = None
                 ) -> dict[str, Any]:
        """The JSON form; a list longer than `field_max` characters keeps its first items and
        says how many it had, anything else too long becomes clipped text."""
        body: dict[str, Any] = {"title": self.title}
        shown, omitted = self._fields(max_fields)
        for key, value in shown.items():
            if isinstance(value, str):
                body[key] = clip(value, field_max)
            elif isinstance(value, list) and _json_size(value) > field_max:
                body[key] = _first_items(value, field_max)
                body[f"{key}_total"] = len(value)
            elif isinstance(value, Mapping) and _json_size(value) > field_max:
                body[key] = clip(json.dumps(value, default=str, sort_keys=True), field_max)
            else:
                body[key] = value
        if omitted:
            body["omitted_fields"] = omitted
        return body

    def _fields(self, max_fields: int | None) -> tuple[dict[str, Any], int]:
        items = list(self.fields.items())
        if max_fields is None or len(items) <= max_fields:
            return dict(items), 0
        return dict(items[:max_fields]), len(items) - max_fields


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str, sort_keys=True))


def _first_items(items: list[Any], budget: int) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        budget -= _json_size(item) + 2
        if budget < 0:
            break
        kept.append(item)
    return kept


def sns_message(alert: Alert) -> str:
    """The per-protocol SNS message, within SNS's size limit as a whole: fields are clipped
    harder, then the last fields left out, until the text and every JSON copy fit together."""
    field_max, max_fields = FIELD_MAX, len(alert.fields)
    while True:
        text = alert.text(field_max, max_fields)
        document = json.dumps(alert.document(field_max, max_fields), default=str,
                              sort_keys=True)
        message = {"default": text, "email": text, "sms": clip(text, 1400)}
        message.update({protocol: document for protocol in _JSON_PROTOCOLS})
        encoded = json.dumps(message)
        if len(encoded.encode()) <= MESSAGE_MAX_BYTES or max_fields == 0:
            return encoded
        if field_max > _FIELD_MIN:
            field_max //= 2
        else:
            max_fields //= 2


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
        response = aws_call(
            f"publishing an alert to {self._topic_arn}", self._sns.publish,
            TopicArn=self._topic_arn,
            Subject=safe_subject(alert.subject),
            Message=sns_message(alert),
            MessageStructure="json",
            MessageAttributes={
                k: {"DataType": "String", "StringValue": str(v) or "-"}
                for k, v in alert.attributes.items()
            },
        )
        return str(response.get("MessageId", ""))
