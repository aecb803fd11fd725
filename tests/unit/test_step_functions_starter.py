"""The one adapter AdmitObjects and TriggerDerived start pipeline executions with
(pipeline_aws.step_functions.SfnStarter). Held against "StartExecution" (Step Functions API
Reference, https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html):
a name already used is ExecutionAlreadyExists, which both callers count as started (their names
are deterministic), and the call is idempotent only for the same input byte for byte, so a
payload always serializes the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeline_aws.step_functions import SfnStarter
from pipeline_core.errors import PipelineError, TransientError

PIPELINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:app-pipeline"


class _Client:
    def __init__(self, error: str | None = None, output: str | None = None):
        self.error, self.kwargs, self._output = error, None, output

    def _fail(self, operation: str) -> None:
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, operation)

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.kwargs = kwargs
        self._fail("StartExecution")
        return {"executionArn": "arn"}

    def describe_execution(self, **kwargs: Any) -> dict[str, Any]:
        self._fail("DescribeExecution")
        return {"status": "SUCCEEDED", **({"output": self._output} if self._output else {})}


def test_execution_already_exists_is_started_and_the_input_is_canonical() -> None:
    assert SfnStarter(_Client(), PIPELINE).start("n", {"b": 1, "a": 2}) == "started"
    assert SfnStarter(_Client("ExecutionAlreadyExists"), PIPELINE).start("n", {}) == "exists"
    with pytest.raises(TransientError):
        SfnStarter(_Client("ThrottlingException"), PIPELINE).start("n", {})
    client = _Client()
    SfnStarter(client, PIPELINE).start("n", {"b": 1, "a": 2})
    assert client.kwargs == {"stateMachineArn": PIPELINE, "name": "n",
                             "input": '{"a":2,"b":1}'}, "one serialization: idempotent input"


def test_an_executions_output() -> None:
    assert SfnStarter(_Client(output='{"run": {}}'), PIPELINE).output("arn:e") == '{"run": {}}'
    assert SfnStarter(_Client(), PIPELINE).output("arn:e") is None
    with pytest.raises(PipelineError, match="DescribeExecution arn:e"):
        SfnStarter(_Client("ExecutionDoesNotExist"), PIPELINE).output("arn:e")


def test_both_starters_are_this_one() -> None:
    """AdmitObjects and TriggerDerived build their starter from this class (no copy)."""
    root = Path(__file__).resolve().parents[2]
    for function in ("admit_objects", "trigger_derived"):
        text = (root / "functions" / function / "app.py").read_text()
        assert "from pipeline_aws.step_functions import SfnStarter" in text
        assert "SfnStarter(clients.client(\"stepfunctions\")" in text
    assert "start_execution" not in (root / "pipeline_aws" / "derived_trigger.py").read_text()
    assert "start_execution" not in (root / "pipeline_aws" / "admission.py").read_text()
