"""Fixtures for cluster cleanup and the auto-terminator.

The domain tests build their logic on the in-memory fakes (tests/support/fakes); the handler
wiring tests run each events/ file through its handler on moto: EMR, EMR Serverless, Step
Functions (executing real ASL) and the ledger table shaped like template.yaml.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from moto import mock_aws

from tests.support.aws import (
    ACCOUNT,
    APP,
    BASE_ENV,
    STATE_MACHINE,
    LambdaContext,
    create_ledger_table,
)
from tests.unit.contracts.conftest import client, resource
from tests.unit.contracts.moto_emr import MotoEmr

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TERMINATOR_ENV = {"IDLE_THRESHOLD_MINUTES": "30", "GRACE_PERIOD_MINUTES": "60",
                  "DRY_RUN": "false", "ALLOW_PROTECTED_CLUSTER_IDS": ""}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {**BASE_ENV, **TERMINATOR_ENV, "POWERTOOLS_SERVICE_NAME": "cluster_tests"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("EMR_SERVERLESS_APPLICATION_ID", raising=False)
    return values


@dataclass
class Aws(MotoEmr):
    sfn: Any = None
    table: Any = None
    state_machine_arn: str = ""

    def start_execution(self, name: str, resolve_output: dict[str, Any] | None) -> str:
        """Start an execution whose ResolveRun exits with `run` = resolve_output."""
        arn: str = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name,
            input=json.dumps({"resolve": resolve_output}),
        )["executionArn"]
        return arn

    def item(self, run_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(
            Key={"run_id": run_id}, ConsistentRead=True).get("Item")
        return item


# ResolveRun stands in as a Pass state: it exits with the test's run, or with `run` null the way
# a caught ResolveRun failure exits without a run; then the execution waits, as a job would.
_DEFINITION = {
    "StartAt": "ResolveRun",
    "States": {
        "ResolveRun": {"Type": "Pass", "InputPath": "$.resolve", "ResultPath": "$.run",
                       "Next": "RunJob"},
        "RunJob": {"Type": "Wait", "Seconds": 3600, "End": True},
    },
}


@pytest.fixture
def aws(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        table = create_ledger_table(resource("dynamodb"))
        emr = MotoEmr.create(client("emr"), client("emr-serverless"))
        monkeypatch.setenv("EMR_SERVERLESS_APPLICATION_ID", emr.application_id)
        sfn = client("stepfunctions")
        state_machine_arn = sfn.create_state_machine(
            name=STATE_MACHINE, definition=json.dumps(_DEFINITION),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/{APP}-states")["stateMachineArn"]
        yield Aws(emr.emr, emr.serverless, emr.application_id, emr.idle_timeouts, sfn=sfn,
                  table=table, state_machine_arn=state_machine_arn)


def fresh_import(module: str) -> Any:
    """Handlers build settings and clients at import: import them inside the mocks."""
    sys.modules.pop(module, None)
    return importlib.import_module(module)


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()
