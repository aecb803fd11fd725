"""TrackCost: what one run cost, written to its ledger item, emitted as metrics, checked
against the dataset's budgets. Runs at the end of every run, succeeded or failed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from pipeline_aws.alerts import Alert, AlertPort
from pipeline_aws.contracts import TrackCostRequest
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
from pipeline_aws.emr import ClustersPort
from pipeline_aws.lazy import lazy_catalog
from pipeline_aws.ledger import LedgerPort, iso_utc
from pipeline_aws.settings import TrackCostSettings
from pipeline_core.errors import PipelineError, TransientError

# ---------------------------------------------------------------------------------------------
# Ports (besides the ledger, the clusters and the alerts)


class ServerlessPort(Protocol):
    def job_run(self, application_id: str, job_run_id: str) -> dict[str, Any]: ...

    def architecture(self, application_id: str) -> str: ...


class HistoryPort(Protocol):
    def events(self, execution_arn: str) -> list[dict[str, Any]]: ...


class RateCardOverridePort(Protocol):
    name: str

    def load(self) -> dict[str, Any]: ...


class CostMetricsPort(Protocol):
    def publish(self, *, dataset: str, compute: str, run_id: str, total_usd: float,
                vcpu_hours: float, memory_gb_hours: float) -> None: ...


# ---------------------------------------------------------------------------------------------
# Logic


def catalog_cost_limits(catalog_dir: str | None = None
                        ) -> Callable[[str], tuple[float | None, float | None]]:
    """dataset -> (max_run_usd, monthly_budget_usd), reading the catalog once, on first use."""
    catalog = lazy_catalog(catalog_dir)

    def limits(dataset: str) -> tuple[float | None, float | None]:
        cost = catalog.get().get(dataset).cost
        return cost.max_run_usd, cost.monthly_budget_usd

    return limits


def _compute(request: TrackCostRequest) -> str:
    run = request.state.run
    if run and run.compute:
        return run.compute
    if request.cluster_id():
        return "cluster"
    return "serverless" if request.job_run_ids() else "none"


def _usage(components: list[Component]) -> dict[str, float]:
    usage: dict[str, float] = {}
    for component in components:
        for key, value in component.usage.items():
            usage[key] = round(usage.get(key, 0.0) + value, 9)
    return usage


class CostTracker:
    def __init__(self, *, settings: TrackCostSettings, serverless: ServerlessPort,
                 clusters: ClustersPort, history: HistoryPort, ledger: LedgerPort,
                 alerts: AlertPort, metrics: CostMetricsPort,
                 cost_limits: Callable[[str], tuple[float | None, float | None]],
                 override: RateCardOverridePort | None = None,
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

    def track(self, request: TrackCostRequest) -> dict[str, Any]:
        now = self._clock()
        errors: list[dict[str, str]] = []
        card = self._rate_card(errors)
        durations: dict[str, float] = {}
        components = self._components(request, card, now, durations)
        for component in components:
            errors.extend(component.errors)
        total = sum(c.usd for c in components if c.usd is not None)
        budget = self._budget(request, total, now, errors)
        usage = _usage(components)
        cost: dict[str, Any] = {
            "total_usd": round(total, 10),
            "currency": "USD",
            "complete": all(c.priced for c in components),
            "rate_card_version": card.version,
            "region": self._settings.region,
            "compute": _compute(request),
            "components": {c.name: c.as_record() for c in components},
            "usage": usage,
            "waste": {f"{c.name}_{k}": round(v, 10)
                      for c in components for k, v in c.waste.items()},
            "errors": errors,
            "tracked_by": request.state_name,
            "tracked_at": iso_utc(now),
        }
        if budget is not None:
            cost["budget"] = budget.as_record()
        self._ledger.record_cost(request.run_id, cost, durations, ended_at=iso_utc(now),
                                 execution_arn=request.execution.Id)
        run = request.state.run
        if budget is not None and run is not None:
            self._alert(request, run.dataset, total, budget)
        self._metrics.publish(
            dataset=run.dataset if run else "unknown", compute=cost["compute"],
            run_id=request.run_id, total_usd=total, vcpu_hours=usage.get("vcpu_hours", 0.0),
            memory_gb_hours=usage.get("memory_gb_hours", 0.0))
        return {"total_usd": cost["total_usd"],
                "components": {c.name: c.as_record()["usd"] for c in components},
                "errors": errors}

    # -- pieces ---------------------------------------------------------------------------

    def _components(self, request: TrackCostRequest, card: RateCard, now: datetime,
                    durations: dict[str, float]) -> list[Component]:
        """The priced components: the job run, the cluster (each when the run had one) and
        the orchestration; `durations` receives the time spent in each state."""
        region = self._settings.region
        components: list[Component] = []
        job = request.job_run_ids()
        if job:
            components.append(self._guard("serverless", lambda: self._price_serverless(
                card, region, *job)))
        cluster_id = request.cluster_id()
        if cluster_id:
            components.append(self._guard("cluster", lambda: self._price_cluster(
                card, region, cluster_id, now)))

        def orchestration() -> Component:
            facts = analyse_history(self._history.events(request.execution.Id))
            durations.update(facts.state_durations)
            return price_orchestration(facts, card, region, self._settings.lambda_architecture,
                                       self._settings.memory_mb)

        components.append(self._guard("orchestration", orchestration))
        return components

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

    def _budget(self, request: TrackCostRequest, total: float, now: datetime,
                errors: list[dict[str, str]]) -> BudgetStatus | None:
        run = request.state.run
        if run is None:
            return None
        try:
            max_run, monthly = self._cost_limits(run.dataset)
            since = month_start(run.started_at, now)
            before = (self._ledger.month_cost(run.dataset, since, request.run_id)
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

    def _alert(self, request: TrackCostRequest, dataset: str, total: float,
               budget: BudgetStatus) -> None:
        environment = self._settings.environment
        attributes = {"dataset": dataset, "run_id": request.run_id, "kind": "budget",
                      "environment": environment}
        fields = {"run_id": request.run_id, "dataset": dataset, "cost_usd": round(total, 4),
                  "execution": request.execution.Id}
        if budget.over_run_ceiling:
            self._alerts.publish(Alert(
                subject=f"[{environment}] {dataset}: run cost ${total:.2f} over its ceiling",
                title=f"Run {request.run_id} of {dataset} cost ${total:.4f}, over the per-run "
                      f"ceiling max_run_usd ${budget.max_run_usd:.2f} (catalog cost section).",
                fields={**fields, "max_run_usd": budget.max_run_usd},
                attributes={**attributes, "budget": "run"}))
        if budget.crossed_monthly_budget:
            self._alerts.publish(Alert(
                subject=f"[{environment}] {dataset}: monthly budget exceeded",
                title=f"Run {request.run_id} took {dataset}'s cost for {budget.month} to "
                      f"${budget.month_total_usd:.2f}, over the monthly budget "
                      f"${budget.monthly_budget_usd:.2f}. Later runs this month do not alert "
                      "again.",
                fields={**fields, "month": budget.month,
                        "month_total_usd": budget.month_total_usd,
                        "monthly_budget_usd": budget.monthly_budget_usd},
                attributes={**attributes, "budget": "monthly"}))
