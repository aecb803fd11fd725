"""TriggerDerived: when a pipeline execution succeeds, start ONE run of each derived dataset
that declares `after_upstream_loads` on that dataset, covering the partitions the execution
loaded (pipeline_core.derived.upstream_starts): a 31-day backfill or burst batch starts one
sales_trends run writing its 31 days (rows_per_day), not 31 runs each re-reading 30 days; a
dataset whose rows are a snapshot as of a day runs for the newest loaded day.

Why an EventBridge rule on the execution's "Step Functions Execution Status Change" event
(SUCCEEDED) and not a last state of the pipeline: the upstream load is done and recorded
whatever happens next, so starting its downstream can neither fail nor slow the upstream run,
and the pipeline's definition and role stay as they are. EventBridge delivers these events on
a best-effort basis ("AWS Step Functions events", EventBridge events reference): a derived
dataset's schedule is the backstop, and a late or repeated start changes nothing, because
the execution name is deterministic (pipeline_core.derived.upstream_execution_name of the
loaded partitions' run ids: the same loads delivered twice start one execution;
StartExecution refuses a second execution of a name) and the derived run id is its inputs'
digest (the same inputs are a duplicate run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from pipeline_aws.contracts import ExecutionSucceeded, PartitionRun, RunManifest, parse
from pipeline_aws.lazy import Lazy
from pipeline_core.catalog import Catalog
from pipeline_core.derived import UpstreamStart, upstream_execution_name, upstream_starts
from pipeline_core.errors import InvalidInput

LOADED_VERDICTS = ("pass", "warn")


class ExecutionsPort(Protocol):
    """What TriggerDerived needs of the pipeline state machine's executions
    (pipeline_aws.step_functions.SfnStarter, AdmitObjects' too)."""

    def output(self, execution_arn: str) -> str | None:
        """The execution's output (DescribeExecution), as JSON text."""
        ...

    def start(self, name: str, payload: dict[str, Any]) -> str:
        """StartExecution; "started", or "exists" when an execution of that name exists."""
        ...


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


def upstream_payload(dataset: str, run: RunManifest, start: UpstreamStart) -> dict[str, Any]:
    """The derived execution's input (contracts.UpstreamLoaded). Its upstream is the loaded
    partition and its run, or for several the execution's run and `<first>..<last>`."""
    if len(start.run_ids) == 1:
        upstream = {"dataset": run.dataset, "partition": start.partitions[0],
                    "run_id": start.run_ids[0]}
    else:
        upstream = {"dataset": run.dataset, "run_id": run.run_id,
                    "partition": f"{start.partitions[0]}..{start.partitions[-1]}"}
    payload = {"source": "pipeline.upstream", "dataset": dataset, "as_of": start.as_of,
               "upstream": upstream}
    return payload | ({"from_day": start.from_day} if start.from_day else {})


class DerivedTrigger:
    def __init__(self, catalog: Catalog | Callable[[], Catalog], executions: ExecutionsPort,
                 logger: Any = None):
        self._catalog = Lazy(catalog)
        self._executions = executions
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
            for start in upstream_starts(dataset, [(p.partition, p.run_id) for p in parts]):
                name = upstream_execution_name(dataset.name, start.as_of, start.run_ids)
                result = self._executions.start(name, upstream_payload(dataset.name, run, start))
                started.append({"name": name, "dataset": dataset.name, "as_of": start.as_of,
                                **({"from_day": start.from_day} if start.from_day else {}),
                                "result": result})
        if self._logger:
            self._logger.info("derived runs started", extra={
                "execution": detail.executionArn, "started": started})
        return {"execution": detail.executionArn, "started": started}
