"""The DQDL seam: pipeline_core.dqdl parses the rules the job reported and decides the
thresholds that depend on earlier runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline_core.errors import InvalidInput


@dataclass(frozen=True)
class RuleDecision:
    passed: bool
    threshold: str
    reason: str | None = None


class RuleEngine(Protocol):
    """What the gate needs from the DQDL implementation."""

    def rule_type(self, text: str) -> str: ...

    def history_window(self, text: str) -> int | None:
        """Earlier values the rule looks at (`last(k)`: k); None: the catalog decides
        (DetectAnomalies)."""

    def minimum_history(self, text: str) -> int:
        """Earlier values the rule needs before it can fail."""

    def decide(self, text: str, value: float | None, history: Sequence[float]
               ) -> RuleDecision:
        """Decide a history rule; `history` holds earlier values, newest first."""


class DqdlRuleEngine:
    """pipeline_core.dqdl behind the gate's seam.

    Rules are re-parsed from the text the job reported, so the gate decides exactly the rule
    that was measured even if the catalog changed while the run was going.
    """

    def __init__(self) -> None:
        from pipeline_core import dqdl

        self._dqdl = dqdl
        self._parsed: dict[str, Any] = {}

    def _rule(self, text: str) -> Any:
        if text not in self._parsed:
            self._parsed[text] = self._dqdl.parse_rule(text, source="quality.json")
        return self._parsed[text]

    def rule_type(self, text: str) -> str:
        return str(self._rule(text).rule_type)

    def history_window(self, text: str) -> int | None:
        window = self._rule(text).history_window
        return None if window is None else int(window)

    def minimum_history(self, text: str) -> int:
        # The whole window for last(k): a median of 2 runs is not what "median(last(10))" says.
        return self.history_window(text) or int(self._dqdl.MIN_ANOMALY_HISTORY)

    def decide(self, text: str, value: float | None, history: Sequence[float]
               ) -> RuleDecision:
        rule = self._rule(text)
        if not rule.needs_history:
            raise InvalidInput(f"quality.json marks {text!r} deferred, but it does not depend on "
                               "earlier runs: the job should have decided it")
        outcome = self._dqdl.evaluate_threshold(rule, value, list(history))
        return RuleDecision(bool(outcome.passed), str(outcome.threshold), outcome.reason)
