"""TriggerDerived: when a pipeline execution succeeds, start the run of each derived dataset
that declares `after_upstream_loads` on that dataset, for each partition the execution loaded.

Why an EventBridge rule on the execution's "Step Functions Execution Status Change" event
(SUCCEEDED) and not a last state of the pipeline: the upstream load is done and recorded
whatever happens next, so starting its downstream can neither fail nor slow the upstream run,
and the pipeline's definition and role stay as they are. EventBridge delivers these events on
a best-effort basis ("AWS Step Functions events", EventBridge events reference): a derived
dataset's schedule is the backstop, and a late or repeated start changes nothing, because
the execution name is deterministic (pipeline_core.derived.upstream_execution_name: the same
load delivered twice starts one execution; StartExecution refuses a second execution of a
name) and the derived run id is its inputs' digest (the same inputs are a duplicate run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import domain_error, error_code
from pipeline_aws.contracts import ExecutionSucceeded, PartitionRun, RunManifest, parse
from pipeline_aws.lazy import Lazy
from pipeline_core.catalog import Catalog
from pipeline_core.derived import upstream_execution_name
from pipeline_core.errors import InvalidInput

LOADED_VERDICTS = ("pass", "warn")


class ExecutionsPort(Protocol):
    """What TriggerDerived needs from Step Functions."""

    def output(self, execution_arn: str) -> str | None:
        """The execution's output (DescribeExecution), as JSON text."""
        ...

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
        """StartExecution; "started", or "exists" when an execution of that name exists."""
        ...


class StepFunctionsExecutions:
    def __init__(self, client: Any):
        self._sfn = client

    def output(self, execution_arn: str) -> str | None:
        try:
            found = self._sfn.describe_execution(executionArn=execution_arn)
        except (ClientError, BotoCoreError) as e:
            raise domain_error(e, f"describing {execution_arn}") from e
        output = found.get("output")
        return str(output) if output is not None else None

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
        try:
            self._sfn.start_execution(stateMachineArn=state_machine_arn, name=name,
                                      input=json.dumps(payload))
        except ClientError as e:
            if error_code(e) == "ExecutionAlreadyExists":
                return "exists"
            raise domain_error(e, f"starting execution {name}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"starting execution {name}") from e
        return "started"


def loaded_partitions(output: dict[str, Any]) -> tuple[RunManifest, list[PartitionRun]]:
    """The execution's run and the partitions its gate passed (pass or warn): the ones
    loaded (the execution succeeded). A duplicate delivery loaded nothing."""
    run = parse(RunManifest, output.get("run"), "the execution's run", prefix="run")
    if run.duplicate:
        return run, []
    decided = (output.get("quality") or {}).get("partitions") or {}
    parts = [p for p in run.loadable
             if (decided.get(p.partition) or {}).get("verdict") in LOADED_VERDICTS]
    return run, parts


class DerivedTrigger:
    def __init__(self, catalog: Catalog | Callable[[], Catalog], executions: ExecutionsPort,
                 state_machine_arn: str, logger: Any = None):
        self._catalog = Lazy(catalog)
        self._executions = executions
        self._machine = state_machine_arn
        self._logger = logger

    def handle(self, event: ExecutionSucceeded) -> dict[str, Any]:
        """{"execution", "started": [{name, dataset, as_of, result}]}."""
        detail = event.detail
        text = detail.output if detail.output is not None else \
            self._executions.output(detail.executionArn)
        try:
            output = json.loads(text or "{}")
        except ValueError as e:
            raise InvalidInput(f"{detail.executionArn}: its output is not JSON: {e}") from e
        if not isinstance(output, dict) or "run" not in output or output.get("run", {}).get(
                "ignored"):
            return {"execution": detail.executionArn, "started": []}
        run, parts = loaded_partitions(output)
        started = []
        for dataset in self._catalog.get().downstream_of(run.dataset):
            for part in parts:
                name = upstream_execution_name(dataset.name, part.partition, part.run_id)
                payload = {"source": "pipeline.upstream", "dataset": dataset.name,
                           "as_of": part.partition,
                           "upstream": {"dataset": run.dataset, "partition": part.partition,
                                        "run_id": part.run_id}}
                result = self._executions.start(self._machine, name, payload)
                started.append({"name": name, "dataset": dataset.name,
                                "as_of": part.partition, "result": result})
        if self._logger:
            self._logger.info("derived runs started", extra={
                "execution": detail.executionArn, "started": started})
        return {"execution": detail.executionArn, "started": started}
