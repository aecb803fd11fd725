"""FakeAlerts: the alert topic in memory (implements pipeline_aws.alerts.AlertPort)."""

from __future__ import annotations

from pipeline_aws.alerts import Alert, AlertPort, safe_subject


class FakeAlerts:
    """Records every published Alert in `published`; `fail = exception` makes publish raise."""

    def __init__(self) -> None:
        self.published: list[Alert] = []
        self.fail: Exception | None = None

    def publish(self, alert: Alert) -> str:
        if self.fail is not None:
            raise self.fail
        self.published.append(alert)
        return f"fake-message-{len(self.published)}"

    def subjects(self) -> list[str]:
        """The subjects as SNS would show them (one line, ASCII, clipped)."""
        return [safe_subject(alert.subject) for alert in self.published]


def _conforms(alerts: FakeAlerts) -> AlertPort:
    return alerts  # mypy: FakeAlerts implements AlertPort
