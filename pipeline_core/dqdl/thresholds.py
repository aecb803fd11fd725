"""Deciding a dataset-level metric against its rule's threshold, with or without history.

The Spark job decides static thresholds as soon as it has measured; the quality gate decides the
rest (dynamic thresholds, DetectAnomalies) with the metric's values in earlier runs. Both call
:func:`evaluate_threshold`, so a rule means the same wherever it is decided.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from pipeline_core.dqdl.anomaly import detect_anomaly
from pipeline_core.dqdl.model import (
    INSUFFICIENT_HISTORY,
    NOT_MEASURED,
    BinOp,
    Call,
    Condition,
    Expr,
    History,
    Last,
    Num,
    Outcome,
    Rule,
    measured,
)


class _InsufficientHistory(Exception):
    pass


_HISTORY_FUNCTIONS: dict[str, Callable[[list[float]], float]] = {
    "avg": statistics.fmean, "median": statistics.median, "min": min, "max": max,
    "std": statistics.stdev, "sum": math.fsum,
}


def evaluate_expr(expr: Expr, history: Sequence[float]) -> float:
    """The value of a threshold expression; a constant one needs no history.

    A zero divisor gives ±inf (nan for 0/0) rather than an exception: the parser refuses every
    division by a constant zero, so one here comes from the history (say, max - min of equal
    values) and the caller reports the threshold as undefined.
    """
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, History):
        return _history_value(expr, history)
    if isinstance(expr, Call):
        return _call_value(expr, history)
    left, right = evaluate_expr(expr.left, history), evaluate_expr(expr.right, history)
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    if expr.op == "*":
        return left * right
    return left / right if right != 0 else math.copysign(math.inf, left) if left else math.nan


def _history_value(expr: History, history: Sequence[float]) -> float:
    points = list(history[:expr.window])
    need = 2 if expr.func == "std" else 1
    if len(points) < need:
        raise _InsufficientHistory(f"{expr.func}(last({expr.window})) needs {need} earlier "
                                   f"value(s), found {len(points)}")
    return _HISTORY_FUNCTIONS[expr.func](points)


def _last(arg: Last, history: Sequence[float], func: str) -> list[float]:
    points = list(history[:arg.window])
    if not points:
        raise _InsufficientHistory(f"{func}(last({arg.window})) needs 1 earlier value, found 0")
    return points


def _call_value(expr: Call, history: Sequence[float]) -> float:
    """A general dynamic function. Aggregates take numbers and last(k) lists alike
    (``max(avg(last(10)), 5)``); ``index(last(k), i)`` is the i-th newest earlier value,
    counting from 0; ``abs`` takes one number. The parser has checked the arity."""
    if expr.func == "index":
        window, position = expr.args
        assert isinstance(window, Last) and isinstance(position, Num)
        points = _last(window, history, "index")
        if len(points) <= int(position.value):
            raise _InsufficientHistory(f"index(last({window.window}), {int(position.value)}) "
                                       f"needs {int(position.value) + 1} earlier values, "
                                       f"found {len(points)}")
        return points[int(position.value)]
    values: list[float] = []
    for arg in expr.args:
        if isinstance(arg, Last):
            values.extend(_last(arg, history, expr.func))
        else:
            values.append(evaluate_expr(arg, history))
    if expr.func == "abs":
        return abs(values[0])
    if expr.func == "std" and len(values) < 2:
        raise _InsufficientHistory(f"std needs 2 values, found {len(values)}")
    return _HISTORY_FUNCTIONS[expr.func](values)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def compare(operator: str, value: float, operands: Sequence[float]) -> bool:
    """The numeric comparison of a condition whose operands are already numbers."""
    if operator == "=":
        return _close(value, operands[0])
    if operator == "!=":
        return not _close(value, operands[0])
    if operator == ">":
        return value > operands[0] and not _close(value, operands[0])
    if operator == ">=":
        return value >= operands[0] or _close(value, operands[0])
    if operator == "<":
        return value < operands[0] and not _close(value, operands[0])
    if operator == "<=":
        return value <= operands[0] or _close(value, operands[0])
    if operator in ("between", "not between"):
        # Exclusive, as in AWS Glue: between a and b is > a and < b; not between is its
        # complement (<= a or >= b).
        low, high = operands
        inside = (value > low and not _close(value, low)) and (
            value < high and not _close(value, high))
        return inside if operator == "between" else not inside
    if operator in ("in", "not in"):
        found = any(_close(value, o) for o in operands)
        return found if operator == "in" else not found
    raise ValueError(f"operator {operator!r} does not compare numbers")


def _clean_history(history: Sequence[float | None] | None) -> list[float]:
    """Earlier runs that did not measure the metric (None, NaN) say nothing about it."""
    out = []
    for v in history or ():
        if v is None or isinstance(v, bool):
            continue
        number = float(v)
        if math.isfinite(number):
            out.append(number)
    return out


def _numeric_operands(rule: Rule, condition: Condition) -> list[Expr]:
    exprs = [o for o in condition.operands if isinstance(o, Num | BinOp | History | Call)]
    if len(exprs) != len(condition.operands):
        raise ValueError(f"{rule.rule_type}: the condition {condition.text!r} is checked per row, "
                         "not against a metric")
    return exprs


def evaluate_threshold(rule: Rule, value: float | None,
                       history: Sequence[float | None] | None = None) -> Outcome:
    """Check a rule's metric value against its threshold.

    ``history`` holds the same metric's values in earlier successful runs, newest first; only
    dynamic thresholds and DetectAnomalies read it. Returns whether the rule passed and a
    human description of the threshold it was held to (resolved for dynamic thresholds).
    """
    if rule.is_composite:
        raise ValueError("a composite rule is decided from its children's outcomes")
    points = _clean_history(history)
    if rule.rule_type == "DetectAnomalies":
        return detect_anomaly(value, points)
    condition = rule.effective_threshold
    assert condition is not None
    text = condition.text
    if value is None or not measured(value):
        return Outcome(False, text, NOT_MEASURED)
    exprs = _numeric_operands(rule, condition)
    try:
        resolved = [evaluate_expr(e, points) for e in exprs]
    except _InsufficientHistory as e:
        return Outcome(True, f"{text} (insufficient history: {e})", INSUFFICIENT_HISTORY)
    if any(math.isnan(r) for r in resolved):
        return Outcome(False, f"{text} (threshold undefined: division by zero)",
                       "threshold undefined")
    passed = compare(condition.operator, float(value), resolved)
    if condition.dynamic:
        shown = Condition(condition.operator, tuple(Num(round(r, 6)) for r in resolved)).text
        used = min(len(points), condition.history_window or 0)
        text = f"{shown} ({text} over {used} earlier run{'s' if used != 1 else ''})"
    return Outcome(passed, text)
