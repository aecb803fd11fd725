"""Budget rules: a per-run ceiling and a monthly budget per dataset (catalog `cost:` section)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline_aws.ledger import parse_iso_utc


def month_start(started_at: str | None, now: datetime) -> str:
    """First instant of the run's month (UTC, ISO like the ledger's started_at)."""
    when = now
    if started_at:
        try:
            when = parse_iso_utc(started_at).astimezone(UTC)
        except ValueError:
            when = now
    return when.strftime("%Y-%m-01T00:00:00Z")


def over_run_ceiling(total_usd: float, max_run_usd: float | None) -> bool:
    return max_run_usd is not None and total_usd > max_run_usd


def crossed_monthly_budget(before_usd: float, this_run_usd: float,
                           budget_usd: float | None) -> bool:
    """True only for the run that moved the month's total over the budget (one alert a crossing)."""
    if budget_usd is None:
        return False
    return before_usd <= budget_usd < before_usd + this_run_usd


@dataclass(frozen=True)
class BudgetStatus:
    max_run_usd: float | None
    over_run_ceiling: bool
    month: str
    month_total_usd: float | None
    monthly_budget_usd: float | None
    crossed_monthly_budget: bool

    def as_record(self) -> dict[str, object]:
        return {
            "max_run_usd": self.max_run_usd, "over_run_ceiling": self.over_run_ceiling,
            "month": self.month, "month_total_usd": self.month_total_usd,
            "monthly_budget_usd": self.monthly_budget_usd,
            "crossed_monthly_budget": self.crossed_monthly_budget,
        }
