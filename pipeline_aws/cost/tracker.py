"""TrackCost: what one run cost, written to its ledger item, emitted as metrics, checked
against the dataset's budgets. Runs at the end of every run, succeeded or failed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from pipeline_aws.cost.budget import (
    BudgetStatus,
    crossed_monthly_budget,
    month_start,
    over_run_ceiling,
)
from pipeline_aws.cost.pricing import (
    Component,
    analyse_history,
    ebs_by_instance_source,
    price_cluster,
    price_orchestration,
    price_serverless,
    unpriced,
)
from pipeline_aws.cost.rate_card import RateCard, load_rate_card
from pipeline_core.errors import ConfigurationError, InvalidInput, PipelineError, TransientError


def _validation_message(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in item['loc']) or '(top)'}: {item['msg']}"
                     for item in error.errors())


# ---------------------------------------------------------------------------------------------
# Environment


class Settings(BaseModel):
    """track_cost's environment, validated at cold start.

    LAMBDA_MEMORY_MB is the memory of the pipeline's functions (the template's Globals
    MemorySize); LAMBDA_MEMORY_MAP ({"function name": MB}) overrides it per function.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    environment: StrictStr = Field(alias="ENVIRONMENT", min_length=1)
    region: StrictStr = Field(alias="AWS_REGION", min_length=1)
    ledger_table: StrictStr = Field(alias="LEDGER_TABLE", min_length=3)
    alert_topic_arn: StrictStr = Field(alias="ALERT_TOPIC_ARN", pattern=r"^arn:aws[\w-]*:sns:")
    metrics_namespace: StrictStr = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
    serverless_architecture: Literal["ARM64", "X86_64"] | None = Field(
        alias="EMR_SERVERLESS_ARCHITECTURE", default=None)
    rate_card_parameter: StrictStr | None = Field(alias="RATE_CARD_PARAMETER", default=None)
    lambda_memory_mb: int | None = Field(alias="LAMBDA_MEMORY_MB", default=None, ge=128, le=10240)
    lambda_memory_map: dict[str, int] = Field(alias="LAMBDA_MEMORY_MAP", default_factory=dict)
    lambda_architecture: Literal["arm64", "x86_64"] = Field(alias="LAMBDA_ARCHITECTURE",
                                                            default="arm64")
    catalog_dir: StrictStr | None = Field(alias="CATALOG_DIR", default=None)

    @field_validator("serverless_architecture", "rate_card_parameter", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("lambda_memory_map", mode="before")
    @classmethod
    def _json_map(cls, value: Any) -> Any:
        if value in (None, ""):
            return {}
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"not valid JSON: {e}") from e
        return value

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as e:
            raise ConfigurationError(
                f"track_cost environment is invalid: {_validation_message(e)}") from e

    def memory_mb(self, function: str) -> int | None:
        return self.lambda_memory_map.get(function, self.lambda_memory_mb)


# ---------------------------------------------------------------------------------------------
# Input


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Run(_Loose):
    run_id: StrictStr = Field(min_length=1)
    dataset: StrictStr = Field(min_length=1)
    compute: Literal["serverless", "cluster"] | None = None
    started_at: StrictStr | None = None


class _JobRun(_Loose):
    application_id: StrictStr = Field(min_length=1)
    job_run_id: StrictStr = Field(min_length=1)


class _Cluster(_Loose):
    cluster_id: StrictStr = Field(pattern=r"^j-[A-Z0-9]+$")


class _State(_Loose):
    run: _Run | None = None
    job_run: _JobRun | None = None
    cluster: _Cluster | None = None
    failure: dict[str, Any] = Field(default_factory=dict)


class _Execution(_Loose):
    Id: StrictStr = Field(pattern=r"^arn:aws[\w-]*:states:")
    Name: StrictStr = Field(min_length=1)


class CostRequest(_Loose):
    """`{"state": <whole state>, "execution": $$.Execution, "state_name": ...}`."""

    state: _State
    execution: _Execution
    state_name: StrictStr = "TrackCost"

    @property
    def run_id(self) -> str:
        return self.state.run.run_id if self.state.run else self.execution.Name

    def job_run_ids(self) -> tuple[str, str] | None:
        """From $.job_run, or from a failed startJobRun.sync's Cause (the job still cost money)."""
        if self.state.job_run:
            return self.state.job_run.application_id, self.state.job_run.job_run_id
        cause = _cause(self.state.failure.get("RunServerlessJob"))
        cause = cause.get("jobRun") or cause.get("JobRun") or cause
        app, job = cause.get("applicationId") or cause.get("ApplicationId"), (
            cause.get("jobRunId") or cause.get("JobRunId"))
        return (app, job) if isinstance(app, str) and isinstance(job, str) else None

    def cluster_id(self) -> str | None:
        """From $.cluster, or from a failed createCluster.sync's Cause (its instances ran)."""
        if self.state.cluster:
            return self.state.cluster.cluster_id
        cause = _cause(self.state.failure.get("CreateCluster"))
        found = cause.get("ClusterId") or (cause.get("Cluster") or {}).get("Id")
        return found if isinstance(found, str) and found.startswith("j-") else None


def _cause(failure: Any) -> dict[str, Any]:
    if not isinstance(failure, Mapping) or not isinstance(failure.get("Cause"), str):
        return {}
    try:
        data = json.loads(failure["Cause"])
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_request(event: Any) -> CostRequest:
    try:
        return CostRequest.model_validate(event)
    except ValidationError as e:
        raise InvalidInput(f"track_cost input is invalid: {_validation_message(e)}") from e


# ---------------------------------------------------------------------------------------------
# Ports


class _Serverless(Protocol):
    def job_run(self, application_id: str, job_run_id: str) -> dict[str, Any]: ...
    def architecture(self, application_id: str) -> str: ...


class _Clusters(Protocol):
    def collection_type(self, cluster_id: str) -> str: ...
    def instance_groups(self, cluster_id: str) -> list[dict[str, Any]]: ...
    def instance_fleets(self, cluster_id: str) -> list[dict[str, Any]]: ...
    def instances(self, cluster_id: str) -> list[dict[str, Any]]: ...


class _History(Protocol):
    def events(self, execution_arn: str) -> list[dict[str, Any]]: ...


class _Override(Protocol):
    name: str

    def load(self) -> dict[str, Any]: ...


class _Ledger(Protocol):
    def record(self, run_id: str, cost: Mapping[str, Any], state_durations: Mapping[str, float],
               ended_at: str, execution_arn: str, updated_at: str) -> None: ...
    def month_total(self, dataset: str, since: str, exclude_run_id: str) -> float: ...


class _Alerts(Protocol):
    def publish(self, subject: str, message: str, attributes: Mapping[str, str]) -> None: ...


class _Metrics(Protocol):
    def publish(self, *, dataset: str, compute: str, environment: str, run_id: str,
                total_usd: float, vcpu_hours: float, memory_gb_hours: float) -> None: ...


# ---------------------------------------------------------------------------------------------
# Logic


def catalog_cost_limits(catalog_dir: str | None = None
                        ) -> Callable[[str], tuple[float | None, float | None]]:
    """dataset -> (max_run_usd, monthly_budget_usd), reading the catalog once, on first use."""
    from pipeline_core.catalog import load_catalog

    loaded: list[Any] = []

    def limits(dataset: str) -> tuple[float | None, float | None]:
        if not loaded:
            loaded.append(load_catalog(catalog_dir))
        cost = loaded[0].get(dataset).cost
        return cost.max_run_usd, cost.monthly_budget_usd

    return limits


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CostTracker:
    def __init__(self, *, settings: Settings, serverless: _Serverless, clusters: _Clusters,
                 history: _History, ledger: _Ledger, alerts: _Alerts, metrics: _Metrics,
                 cost_limits: Callable[[str], tuple[float | None, float | None]],
                 override: _Override | None = None,
                 clock: Callable[[], datetime] | None = None,
                 rate_card_loader: Callable[[Mapping[str, Any] | None], RateCard] = load_rate_card):
        self._settings = settings
        self._serverless = serverless
        self._clusters = clusters
        self._history = history
        self._ledger = ledger
        self._alerts = alerts
        self._metrics = metrics
        self._cost_limits = cost_limits
        self._override = override
        self._clock = clock or (lambda: datetime.now(UTC))
        self._load_card = rate_card_loader
        self._card: RateCard | None = None

    def track(self, request: CostRequest) -> dict[str, Any]:
        now = self._clock()
        region = self._settings.region
        errors: list[dict[str, str]] = []
        card = self._rate_card(errors)
        components: list[Component] = []

        job = request.job_run_ids()
        if job:
            components.append(self._guard("serverless", lambda: self._price_serverless(
                card, region, *job)))
        cluster_id = request.cluster_id()
        if cluster_id:
            components.append(self._guard("cluster", lambda: self._price_cluster(
                card, region, cluster_id, now)))
        durations: dict[str, float] = {}

        def orchestration() -> Component:
            facts = analyse_history(self._history.events(request.execution.Id))
            durations.update(facts.state_durations)
            return price_orchestration(facts, card, region, self._settings.lambda_architecture,
                                       self._settings.memory_mb)

        components.append(self._guard("orchestration", orchestration))

        for component in components:
            errors.extend(component.errors)
        total = sum(c.usd for c in components if c.usd is not None)
        run = request.state.run
        compute = (run.compute if run and run.compute else
                   "cluster" if cluster_id else "serverless" if job else "none")
        budget = self._budget(request, total, now, errors)
        cost = {
            "total_usd": round(total, 10),
            "currency": "USD",
            "complete": all(c.priced for c in components),
            "rate_card_version": card.version,
            "region": region,
            "compute": compute,
            "components": {c.name: c.as_record() for c in components},
            "usage": self._usage(components),
            "waste": {f"{c.name}_{k}": round(v, 10)
                      for c in components for k, v in c.waste.items()},
            "errors": errors,
            "tracked_by": request.state_name,
            "tracked_at": _iso(now),
        }
        if budget is not None:
            cost["budget"] = budget.as_record()
        self._ledger.record(request.run_id, cost, durations, ended_at=_iso(now),
                            execution_arn=request.execution.Id, updated_at=_iso(now))
        if budget is not None and run is not None:
            self._alert(request, run.dataset, total, budget)
        self._metrics.publish(
            dataset=run.dataset if run else "unknown", compute=compute,
            environment=self._settings.environment, run_id=request.run_id, total_usd=total,
            vcpu_hours=cost["usage"].get("vcpu_hours", 0.0),
            memory_gb_hours=cost["usage"].get("memory_gb_hours", 0.0))
        return {"total_usd": cost["total_usd"],
                "components": {c.name: c.as_record()["usd"] for c in components},
                "errors": errors}

    # -- pieces ---------------------------------------------------------------------------

    def _rate_card(self, errors: list[dict[str, str]]) -> RateCard:
        """Packaged card + SSM override, once per container. A missing or broken override is an
        error in the record (list prices are used); a throttled read is retried by the state."""
        if self._card is not None:
            return self._card
        override = None
        if self._override is not None:
            try:
                override = self._override.load()
            except TransientError:
                raise
            except PipelineError as e:
                errors.append({"component": "rate_card", "code": "RateCardOverrideUnavailable",
                               "message": f"{e}; list prices from the packaged rate card are used"})
                return self._load_card(None)  # not cached: the next run tries the override again
        self._card = self._load_card(override)
        return self._card

    @staticmethod
    def _guard(name: str, price: Callable[[], Component]) -> Component:
        """A source that cannot be read leaves its component unpriced, not the run unrecorded."""
        try:
            return price()
        except TransientError:
            raise
        except PipelineError as e:
            return unpriced(name, type(e).__name__, str(e))

    def _price_serverless(self, card: RateCard, region: str, application_id: str,
                          job_run_id: str) -> Component:
        job_run = self._serverless.job_run(application_id, job_run_id)
        architecture = (self._settings.serverless_architecture
                        or self._serverless.architecture(application_id))
        return price_serverless(job_run, card, region, architecture)

    def _price_cluster(self, card: RateCard, region: str, cluster_id: str,
                       now: datetime) -> Component:
        if self._clusters.collection_type(cluster_id) == "INSTANCE_FLEET":
            ebs = ebs_by_instance_source(fleets=self._clusters.instance_fleets(cluster_id))
        else:
            ebs = ebs_by_instance_source(groups=self._clusters.instance_groups(cluster_id))
        return price_cluster(cluster_id, self._clusters.instances(cluster_id), ebs, card, region,
                             now)

    @staticmethod
    def _usage(components: list[Component]) -> dict[str, float]:
        usage: dict[str, float] = {}
        for component in components:
            for key, value in component.usage.items():
                usage[key] = round(usage.get(key, 0.0) + value, 9)
        return usage

    def _budget(self, request: CostRequest, total: float, now: datetime,
                errors: list[dict[str, str]]) -> BudgetStatus | None:
        run = request.state.run
        if run is None:
            return None
        try:
            max_run, monthly = self._cost_limits(run.dataset)
            since = month_start(run.started_at, now)
            before = (self._ledger.month_total(run.dataset, since, request.run_id)
                      if monthly is not None else None)
        except TransientError:
            raise
        except PipelineError as e:
            errors.append({"component": "budget", "code": type(e).__name__, "message": str(e)})
            return None
        return BudgetStatus(
            max_run_usd=max_run,
            over_run_ceiling=over_run_ceiling(total, max_run),
            month=since[:7],
            month_total_usd=None if before is None else round(before + total, 6),
            monthly_budget_usd=monthly,
            crossed_monthly_budget=(before is not None
                                    and crossed_monthly_budget(before, total, monthly)),
        )

    def _alert(self, request: CostRequest, dataset: str, total: float,
               budget: BudgetStatus) -> None:
        attributes = {"dataset": dataset, "run_id": request.run_id, "kind": "budget",
                      "environment": self._settings.environment}
        if budget.over_run_ceiling:
            self._alerts.publish(
                f"[{self._settings.environment}] {dataset}: run cost ${total:.2f} over its ceiling",
                f"Run {request.run_id} of {dataset} cost ${total:.4f}, over the per-run ceiling "
                f"max_run_usd ${budget.max_run_usd:.2f} (catalog cost section).\n"
                f"Execution: {request.execution.Id}",
                {**attributes, "budget": "run"})
        if budget.crossed_monthly_budget:
            self._alerts.publish(
                f"[{self._settings.environment}] {dataset}: monthly budget exceeded",
                f"Run {request.run_id} took {dataset}'s cost for {budget.month} to "
                f"${budget.month_total_usd:.2f}, over the monthly budget "
                f"${budget.monthly_budget_usd:.2f}. Later runs this month do not alert again.\n"
                f"Execution: {request.execution.Id}",
                {**attributes, "budget": "monthly"})
