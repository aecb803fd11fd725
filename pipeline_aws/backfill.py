"""The backfill state machine's function (PlanBackfill): `plan`, `batch` and `summarize`.

- plan: list the latest version of every raw object under the dataset's prefix (one paginated
  ListObjectVersions, see S3RawLister), ask the ledger which partitions are already loaded from
  which version, plan (pipeline_core.backfill_plan), write the whole plan to
  `s3://<curated>/_backfills/<dataset>/<execution name>/plan.json` and return the batches
  inline, or only their references when the inline plan would pass INLINE_PLAN_BYTES (Step
  Functions passes at most 256 KiB between states: the Map then fetches each batch with `batch`).
- batch: one batch of a stored plan, by index.
- summarize: what became of each batch (the pipeline execution named after it) and of each
  partition (loaded from its planned version, per the ledger), job runs and cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal, Protocol

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from pipeline_aws.contracts import ExecutionRef, _Payload, validation_message
from pipeline_aws.settings import _CatalogEnv, _LedgerEnv
from pipeline_core.backfill_plan import RawObject, parse_day, plan_backfill
from pipeline_core.catalog import Catalog, Dataset
from pipeline_core.errors import InvalidInput

# Step Functions' limit is 256 KiB (262,144 bytes) for a state's input or output; the inline
# plan leaves room for the execution input and the Map's results beside it.
STEP_FUNCTIONS_PAYLOAD_BYTES = 262_144
INLINE_PLAN_BYTES = 160_000
# How many partitions and refusals the summary names (all of them are in the stored plan).
SUMMARY_LIST_LIMIT = 500
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class PlanBackfillSettings(_LedgerEnv, _CatalogEnv):
    raw_bucket: str = Field(alias="RAW_BUCKET", pattern=_BUCKET)
    curated_bucket: str = Field(alias="CURATED_BUCKET", pattern=_BUCKET)
    pipeline_state_machine_arn: str = Field(alias="PIPELINE_STATE_MACHINE_ARN",
                                            pattern=r"^arn:aws[\w-]*:states:.+:stateMachine:.+")


# -- the function's events ----------------------------------------------------------------------

class BackfillInput(_Payload):
    """The backfill execution's input: `{dataset, start?, end?, prefix?, force?}`."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=63)
    start: str | None = None
    end: str | None = None
    prefix: str | None = Field(default=None, min_length=1, max_length=1024)
    force: bool = False


class PlanRequest(_Payload):
    operation: Literal["plan"]
    input: BackfillInput
    execution: ExecutionRef


class BatchRequest(_Payload):
    operation: Literal["batch"]
    plan_uri: str = Field(pattern=r"^s3://")
    index: int = Field(ge=0)


class BatchResult(_Payload):
    """One Map iteration's result: the batch and how its execution ended."""

    batch_id: str
    status: Literal["SUCCEEDED", "FAILED", "ALREADY_RAN"]
    error: str | None = None


class PlanRef(_Payload):
    plan_uri: str = Field(pattern=r"^s3://")


class SummarizeRequest(_Payload):
    operation: Literal["summarize"]
    plan: PlanRef
    results: list[BatchResult]
    execution: ExecutionRef


Request = Annotated[PlanRequest | BatchRequest | SummarizeRequest,
                    Field(discriminator="operation")]
_REQUEST: TypeAdapter[PlanRequest | BatchRequest | SummarizeRequest] = TypeAdapter(Request)


def parse_request(event: Any) -> PlanRequest | BatchRequest | SummarizeRequest:
    """The event as one of the three operations, or InvalidInput naming each bad field."""
    try:
        return _REQUEST.validate_python(event)
    except ValidationError as e:
        raise InvalidInput(f"plan_backfill event: {validation_message(e)}") from e


# -- ports -----------------------------------------------------------------------------------------

class RawLister(Protocol):
    def list_latest(self, bucket: str, prefix: str) -> Iterator[RawObject]: ...


class JsonStore(Protocol):
    def put_json(self, uri: str, data: Any) -> None: ...

    def get_json(self, uri: str) -> Any: ...


class LoadedVersions(Protocol):
    """The ledger's answer: partition -> the object version it was loaded from."""

    def loaded_versions(self, dataset: str, partitions: list[str]
                        ) -> Mapping[str, str | None]: ...


class Executions(Protocol):
    """DescribeExecution of a pipeline execution by ARN; None when it does not exist."""

    def describe(self, execution_arn: str) -> dict[str, Any] | None: ...


# -- logic -----------------------------------------------------------------------------------------

class Backfill:
    def __init__(self, *, catalog: Callable[[], Catalog], lister: RawLister, store: JsonStore,
                 ledger: LoadedVersions, executions: Executions, raw_bucket: str,
                 curated_bucket: str, pipeline_arn: str,
                 inline_limit: int = INLINE_PLAN_BYTES):
        self.catalog, self.lister, self.store = catalog, lister, store
        self.ledger, self.executions = ledger, executions
        self.raw_bucket, self.curated_bucket = raw_bucket, curated_bucket
        self.pipeline_arn, self.inline_limit = pipeline_arn, inline_limit

    def handle(self, request: PlanRequest | BatchRequest | SummarizeRequest) -> dict[str, Any]:
        if isinstance(request, PlanRequest):
            return self.plan(request)
        if isinstance(request, BatchRequest):
            return self.batch(request)
        return self.summarize(request)

    # plan ------------------------------------------------------------------------------------
    def plan(self, request: PlanRequest) -> dict[str, Any]:
        spec = request.input
        dataset = self.catalog().get(spec.dataset)
        prefix = listing_prefix(dataset, spec.prefix)
        parse_day(spec.start, "start")
        parse_day(spec.end, "end")
        objects = self.lister.list_latest(self.raw_bucket, prefix)
        plan = plan_backfill(
            dataset, objects, lambda parts: self.ledger.loaded_versions(dataset.name, parts),
            start=spec.start, end=spec.end, force=spec.force)
        data = plan.to_dict()
        uri = self.run_uri(dataset.name, request.execution.Name, "plan.json")
        self.store.put_json(uri, data)
        counts = {"batches": len(plan.batches), "partitions": len(plan.partitions),
                  "skipped": len(plan.skipped), "refused": len(plan.refused),
                  "outside_range": plan.outside_range}
        inline = {"plan_uri": uri, "dataset": dataset.name, "force": spec.force,
                  "prefix": prefix, "max_concurrency": plan.max_concurrency, "counts": counts,
                  "batches_inline": True, "batches": data["batches"]}
        if payload_bytes(inline) > self.inline_limit:
            inline["batches_inline"] = False
            inline["batches"] = [{"batch_id": b["batch_id"]} for b in data["batches"]]
        return inline

    def run_uri(self, dataset: str, execution_name: str, name: str) -> str:
        return f"s3://{self.curated_bucket}/_backfills/{dataset}/{execution_name}/{name}"

    # batch -----------------------------------------------------------------------------------
    def batch(self, request: BatchRequest) -> dict[str, Any]:
        batches = self.store.get_json(request.plan_uri)["batches"]
        if request.index >= len(batches):
            raise InvalidInput(f"{request.plan_uri} has {len(batches)} batches, no index "
                               f"{request.index}")
        return dict(batches[request.index])

    # summarize -------------------------------------------------------------------------------
    def summarize(self, request: SummarizeRequest) -> dict[str, Any]:
        plan = self.store.get_json(request.plan.plan_uri)
        results = {r.batch_id: r for r in request.results}
        batches = [self._batch_outcome(b, results.get(b["batch_id"])) for b in plan["batches"]]
        planned = {o["key"]: o for b in plan["batches"] for o in b["objects"]}
        versions = {p: o["version_id"] for b in plan["batches"]
                    for p, o in zip(b["partitions"], b["objects"], strict=True)}
        loaded_now = self.ledger.loaded_versions(plan["dataset"], sorted(versions)) \
            if versions else {}
        loaded = sorted(p for p, v in versions.items()
                        if p in loaded_now and loaded_now[p] == v)
        failed = sorted(set(versions) - set(loaded))
        summary = _summary(plan, batches, loaded, failed, len(planned))
        summary["plan_uri"] = request.plan.plan_uri
        uri = self.run_uri(plan["dataset"], request.execution.Name, "summary.json")
        summary["summary_uri"] = uri
        self.store.put_json(uri, summary)
        return _clip_lists(summary)

    def _batch_outcome(self, batch: dict[str, Any], result: BatchResult | None
                       ) -> dict[str, Any]:
        arn = execution_arn(self.pipeline_arn, batch["batch_id"])
        described = self.executions.describe(arn)
        status = (described or {}).get("status") or (result.status if result else "NOT_RUN")
        output = _json((described or {}).get("output"))
        cost = (output.get("cost") or {}).get("total_usd") if status == "SUCCEEDED" else None
        ran_job = bool(output.get("job_run") or output.get("cluster")) \
            if status == "SUCCEEDED" else status == "FAILED"
        return {"batch_id": batch["batch_id"], "partitions": len(batch["partitions"]),
                "first": batch["partitions"][0], "last": batch["partitions"][-1],
                "status": status, "execution_arn": arn if described else None,
                "error": (described or {}).get("error") or (result.error if result else None),
                "already_ran": bool(result and result.status == "ALREADY_RAN"),
                "job_run": ran_job, "cost_usd": cost}


def _summary(plan: dict[str, Any], batches: list[dict[str, Any]], loaded: list[str],
             failed: list[str], planned: int) -> dict[str, Any]:
    costs = [b["cost_usd"] for b in batches if b["cost_usd"] is not None]
    priced_all = all(b["cost_usd"] is not None for b in batches if b["job_run"])
    return {
        "dataset": plan["dataset"], "start": plan.get("start"), "end": plan.get("end"),
        "force": plan.get("force", False),
        "status": "succeeded" if not failed else ("failed" if not loaded else "partial"),
        "counts": {"planned": planned, "loaded": len(loaded), "failed": len(failed),
                   "skipped": len(plan["skipped"]), "refused": len(plan["refused"]),
                   "outside_range": plan.get("outside_range", 0),
                   "batches": len(batches),
                   "batches_failed": sum(b["status"] != "SUCCEEDED" for b in batches),
                   "job_runs": sum(bool(b["job_run"]) for b in batches)},
        "cost_usd": round(sum(float(c) for c in costs), 6),
        "cost_complete": priced_all,
        "loaded": loaded, "failed": failed,
        "skipped": [s["partition"] for s in plan["skipped"]],
        "refused": plan["refused"], "batches": batches,
    }


def _clip_lists(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary the state machine returns: each list cut at SUMMARY_LIST_LIMIT (the stored
    summary has them whole)."""
    out = dict(summary)
    for key in ("loaded", "failed", "skipped", "refused", "batches"):
        if len(out[key]) > SUMMARY_LIST_LIMIT:
            out[f"{key}_clipped"] = len(out[key])
            out[key] = out[key][:SUMMARY_LIST_LIMIT]
    return out


def _json(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def payload_bytes(data: Any) -> int:
    """The size Step Functions counts: the JSON text in UTF-8."""
    return len(json.dumps(data, separators=(",", ":")).encode("utf-8"))


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution `name` of a state machine."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def listing_prefix(dataset: Dataset, prefix: str | None) -> str:
    """Where to list: the dataset's prefix, or a narrower prefix inside it."""
    base = dataset.source.prefix
    if prefix is None:
        return base
    if not prefix.startswith(base):
        raise InvalidInput(f"prefix {prefix!r} is not under dataset {dataset.name}'s prefix "
                           f"{base!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in prefix):
        raise InvalidInput(f"prefix {prefix!r} holds a control character")
    return prefix
