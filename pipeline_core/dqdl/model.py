"""What a parsed rules file is: rules, conditions, threshold expressions, and their canonical text.

The canonical text matters beyond display: quality.json carries each rule's text, the gate parses
it again, and metric names (the key of a metric's history) are derived from it, so rendering must
be stable and must parse back to the same condition.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

SEVERITIES = {"Rules": "error", "Warnings": "warn"}
HISTORY_FUNCTIONS = ("avg", "median", "min", "max", "std")
# The functions of AWS's dynamic rules: aggregates of numbers or of last(k) lists, index, abs.
AGGREGATE_FUNCTIONS = ("avg", "median", "min", "max", "sum", "std")
DYNAMIC_FUNCTIONS = (*AGGREGATE_FUNCTIONS, "index", "abs")
MAX_HISTORY_WINDOW = 100
DURATION_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400}
KEYWORDS = ("NULL", "EMPTY", "WHITESPACES_ONLY")
NOT_MEASURED = "metric not measured"
INSUFFICIENT_HISTORY = "insufficient history"

# ---------------------------------------------------------------------------------------------
# Threshold expressions and condition operands


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class History:
    """``func(last(window))`` over the metric's values in earlier runs, newest first."""

    func: str
    window: int


@dataclass(frozen=True)
class Last:
    """``last(k)``: the metric's k newest earlier values, a list (only a function's argument)."""

    window: int


@dataclass(frozen=True)
class Call:
    """Any other dynamic function: ``max(avg(last(10)), 5)``, ``index(last(10), 2)``,
    ``abs(...)``. The plain ``func(last(k))`` stays a :class:`History` (its canonical text and
    metric name predate the general form)."""

    func: str
    args: tuple[Expr | Last, ...]


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr


Expr = Num | History | Call | BinOp


@dataclass(frozen=True)
class Str:
    value: str


@dataclass(frozen=True)
class Keyword:
    name: str  # NULL | EMPTY | WHITESPACES_ONLY


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # minutes | hours | days

    @property
    def seconds(self) -> int:
        return self.amount * DURATION_SECONDS[self.unit]


@dataclass(frozen=True)
class Now:
    """``now()`` or ``(now() - 3 days)``: the evaluation time, shifted by a duration. The
    evaluation time is the run's start, or the end of the partition day when the catalog says
    ``quality.freshness_reference: partition_end`` (the same instant DataFreshness uses)."""

    shift: Duration | None = None
    sign: str = "-"

    @property
    def offset_seconds(self) -> int:
        if self.shift is None:
            return 0
        return self.shift.seconds if self.sign == "+" else -self.shift.seconds


Operand = Expr | Str | Keyword | Duration | Now


def history_windows(operand: Operand | Last) -> list[int]:
    """The ``last(k)`` windows an operand reads; empty for a constant."""
    if isinstance(operand, History | Last):
        return [operand.window]
    if isinstance(operand, Call):
        return [w for arg in operand.args for w in history_windows(arg)]
    if isinstance(operand, BinOp):
        return history_windows(operand.left) + history_windows(operand.right)
    return []


def has_history(operand: Operand) -> bool:
    return bool(history_windows(operand))


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Condition:
    """``operator`` is one of = != > >= < <= between, not between, in, not in, matches,
    not matches; ``operands`` holds one value (two for between, the members for in)."""

    operator: str
    operands: tuple[Operand, ...]

    @property
    def dynamic(self) -> bool:
        return any(has_history(o) for o in self.operands)

    @property
    def history_window(self) -> int | None:
        windows = [w for o in self.operands for w in history_windows(o)]
        return max(windows) if windows else None

    @property
    def text(self) -> str:
        return render_condition(self)


ALL_ROWS = Condition("=", (Num(1.0),))


@dataclass(frozen=True)
class Rule:
    """One rule (or composite) of a rules file.

    ``condition`` is the rule's own expression (the metric's threshold for dataset-level rules,
    the per-row check for row-level ones); ``threshold`` is the ``with threshold`` clause of a
    row-level rule. ``metric_name`` is stable across runs (the gate keys history on it).
    """

    text: str
    line: int
    severity: str
    rule_type: str
    columns: tuple[str, ...] = ()
    condition: Condition | None = None
    where: str | None = None
    threshold: Condition | None = None
    operator: str | None = None
    children: tuple[Rule, ...] = ()
    sql: str | None = None
    anomaly_metric: str | None = None
    row_level: bool = False
    needs_history: bool = False
    metric_name: str | None = None
    history_window: int | None = None

    @property
    def is_composite(self) -> bool:
        return bool(self.children)

    @property
    def effective_threshold(self) -> Condition | None:
        """What the metric is compared with (None for composites and DetectAnomalies)."""
        if self.is_composite or self.rule_type == "DetectAnomalies":
            return None
        if self.row_level:
            return self.threshold or ALL_ROWS
        if self.rule_type in BOOLEAN_TYPES:
            return ALL_ROWS
        return self.condition


@dataclass(frozen=True)
class Ruleset:
    source: str
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.severity == "error")

    @property
    def warnings(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.severity == "warn")


@dataclass(frozen=True)
class Outcome:
    passed: bool
    threshold: str
    reason: str | None = None


def measured(value: float) -> bool:
    """A metric the job could not compute (NaN, infinite) fails its rule, never passes."""
    return math.isfinite(float(value))


# ---------------------------------------------------------------------------------------------
# Rule types


@dataclass(frozen=True)
class RuleSpec:
    min_params: int
    max_params: int | None  # None: any number (at least min_params)
    condition: str | None  # number | value | length | duration | None (no condition)
    where: bool = True
    row_level: bool = False
    dynamic: bool = False

    def arity(self) -> str:
        if self.max_params is None:
            return f"at least {self.min_params} quoted column name(s)"
        if self.max_params == 0:
            return "no parameter"
        return f"{self.min_params} quoted column name" + ("s" if self.min_params > 1 else "")

    def accepts(self, count: int) -> bool:
        return count >= self.min_params and (self.max_params is None or count <= self.max_params)


SPECS: dict[str, RuleSpec] = {
    "RowCount": RuleSpec(0, 0, "number", dynamic=True),
    "ColumnCount": RuleSpec(0, 0, "number", where=False, dynamic=True),
    "ColumnExists": RuleSpec(1, 1, None, where=False),
    "IsComplete": RuleSpec(1, 1, None, row_level=True),
    "Completeness": RuleSpec(1, 1, "number", dynamic=True),
    "IsUnique": RuleSpec(1, None, None),
    "Uniqueness": RuleSpec(1, None, "number", dynamic=True),
    "IsPrimaryKey": RuleSpec(1, None, None),
    "DistinctValuesCount": RuleSpec(1, 1, "number", dynamic=True),
    "ColumnValues": RuleSpec(1, 1, "value", row_level=True),
    "ColumnLength": RuleSpec(1, 1, "length", row_level=True),
    "Mean": RuleSpec(1, 1, "number", dynamic=True),
    "Sum": RuleSpec(1, 1, "number", dynamic=True),
    "StandardDeviation": RuleSpec(1, 1, "number", dynamic=True),
    "DataFreshness": RuleSpec(1, 1, "duration", row_level=True),
    "CustomSql": RuleSpec(1, 1, "number", where=False, dynamic=True),
    "DetectAnomalies": RuleSpec(1, None, None),
}
BOOLEAN_TYPES = frozenset({"ColumnExists", "IsComplete", "IsUnique", "IsPrimaryKey"})
GROUPED_TYPES = frozenset({"IsUnique", "Uniqueness", "IsPrimaryKey"})
_METRIC_SUFFIX = {
    "RowCount": "RowCount", "ColumnCount": "ColumnCount", "ColumnExists": "Exists",
    "IsComplete": "Completeness", "Completeness": "Completeness", "IsUnique": "Uniqueness",
    "Uniqueness": "Uniqueness", "IsPrimaryKey": "IsPrimaryKey",
    "DistinctValuesCount": "DistinctValuesCount", "Mean": "Mean", "Sum": "Sum",
    "StandardDeviation": "StandardDeviation", "ColumnValues": "ColumnValues.Compliance",
    "ColumnLength": "ColumnLength.Compliance", "DataFreshness": "DataFreshness.Compliance",
}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8]


def metric_name_for(rule_type: str, columns: Sequence[str], where: str | None = None,
                    condition: Condition | None = None, sql: str | None = None) -> str:
    """The AWS-style metric name of a measurement (``Dataset.*.RowCount``,
    ``Column.a,b.Uniqueness``). Anything that changes the measured value but is not in the
    AWS name (a where clause, a row-level condition, a SQL text) adds a short digest, so two
    different measurements never share a name and the same rule keeps its name across runs."""
    if rule_type == "CustomSql":
        return f"Dataset.*.CustomSQL.{_digest(sql or '')}"
    variant: list[str] = []
    if SPECS[rule_type].row_level and condition is not None:
        variant.append(condition.text)
    if where:
        variant.append("where:" + where)
    base = (f"Dataset.*.{_METRIC_SUFFIX[rule_type]}" if rule_type in ("RowCount", "ColumnCount")
            else f"Column.{','.join(columns)}.{_METRIC_SUFFIX[rule_type]}")
    return f"{base}.{_digest(*variant)}" if variant else base


# ---------------------------------------------------------------------------------------------
# Canonical text


def format_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def render_expr(expr: Expr, parent: int = 0, right: bool = False) -> str:
    if isinstance(expr, Num):
        return format_number(expr.value)
    if isinstance(expr, History):
        return f"{expr.func}(last({expr.window}))"
    if isinstance(expr, Call):
        args = (f"last({a.window})" if isinstance(a, Last) else render_expr(a)
                for a in expr.args)
        return f"{expr.func}({', '.join(args)})"
    prec = _PRECEDENCE[expr.op]
    text = f"{render_expr(expr.left, prec)} {expr.op} {render_expr(expr.right, prec, True)}"
    needs_parens = prec < parent or (right and prec == parent)
    return f"({text})" if needs_parens else text


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_operand(operand: Operand) -> str:
    if isinstance(operand, Str):
        return _quote(operand.value)
    if isinstance(operand, Keyword):
        return operand.name
    if isinstance(operand, Duration):
        return f"{operand.amount} {operand.unit}"
    if isinstance(operand, Now):
        if operand.shift is None:
            return "now()"
        return f"(now() {operand.sign} {render_operand(operand.shift)})"
    return render_expr(operand)


def render_condition(condition: Condition) -> str:
    op, ops = condition.operator, condition.operands
    if op.endswith("between"):
        return f"{op} {render_operand(ops[0])} and {render_operand(ops[1])}"
    if op.endswith("in"):
        return f"{op} [{', '.join(render_operand(o) for o in ops)}]"
    return f"{op} {render_operand(ops[0])}"
