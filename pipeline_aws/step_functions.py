"""The pipeline state machine's executions, as the functions that start them see them
(AdmitObjects, TriggerDerived): one adapter, so that both start an execution the same way.

StartExecution is idempotent on the name only while the input is byte for byte the same
("StartExecution", Step Functions API Reference: a second call with the same name and input
returns the execution, a different input is ExecutionAlreadyExists); both callers name their
executions deterministically, so an execution of that name, whatever its input, means the
work was already started: "exists", not an error."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import domain_error, error_code


class SfnStarter:
    """StartExecution, ListExecutions and DescribeExecution of one state machine."""

    def __init__(self, sfn: Any, state_machine_arn: str):
        self.sfn, self.arn = sfn, state_machine_arn

    def start(self, name: str, payload: dict[str, Any]) -> str:
        """"started", or "exists" when an execution of that name exists."""
        # The same payload always serializes the same way (module docstring).
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        try:
            self.sfn.start_execution(stateMachineArn=self.arn, name=name, input=text)
        except ClientError as e:
            if error_code(e) == "ExecutionAlreadyExists":
                return "exists"
            raise domain_error(e, f"StartExecution {name}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"StartExecution {name}") from e
        return "started"

    def running_names(self) -> list[str]:
        names: list[str] = []
        try:
            pages = self.sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self.arn, statusFilter="RUNNING")
            for page in pages:
                names += [str(e["name"]) for e in page.get("executions") or []]
        except (ClientError, BotoCoreError) as e:
            raise domain_error(e, f"ListExecutions {self.arn}") from e
        return names

    def output(self, execution_arn: str) -> str | None:
        """An execution's output (DescribeExecution), as JSON text; None while it has none."""
        try:
            found = self.sfn.describe_execution(executionArn=execution_arn)
        except (ClientError, BotoCoreError) as e:
            raise domain_error(e, f"DescribeExecution {execution_arn}") from e
        output = found.get("output")
        return str(output) if output is not None else None
