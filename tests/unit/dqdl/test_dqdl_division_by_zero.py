"""Division by zero in a threshold is refused when the rules are parsed, wherever it hides.

It used to be folded to infinity, and a division by infinity is 0: ``RowCount = 0 / (1 / 0)`` was
accepted as ``RowCount = 0``, and a dynamic threshold such as ``avg(last(3)) / 0`` was not checked
at all. AWS's DQDL refuses both; so does this parser, naming the division, the rule and its line.
A divisor that depends on earlier runs cannot be known when parsing: it is decided by the gate
(the threshold is then undefined and the rule fails), as before.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline_core.dqdl import (
    BinOp,
    Condition,
    History,
    Num,
    evaluate_threshold,
    parse_rule,
    parse_ruleset,
)
from pipeline_core.errors import ConfigurationError


def _file(rule: str) -> str:
    return f"Rules = [\n    RowCount > 0,\n    {rule}\n]\n"


@pytest.mark.parametrize(("rule", "division"), [
    ("RowCount = 0 / (1 / 0)", "1 / 0"),
    ("RowCount = 0 / (2 / (1 - 1))", "2 / (1 - 1)"),
    ("RowCount > 1 / 0 * 0", "1 / 0"),
    ("RowCount > 0 * (1 / 0)", "1 / 0"),
    ("RowCount > 1 / (0.5 - 0.5) - 1 / (0.5 - 0.5)", "1 / (0.5 - 0.5)"),
    ("RowCount > 1 / -0", "1 / 0"),
    ("Mean \"x\" > -(1 / 0)", "1 / 0"),
    ("RowCount > 0 / 0", "0 / 0"),
    ("RowCount between 0 / (1 / 0) and 5", "1 / 0"),
    ("RowCount not between 1 and 2 / (3 - 3)", "2 / (3 - 3)"),
    ('ColumnValues "q" in [1, 0 / (1 / 0)]', "1 / 0"),
    ('ColumnLength "c" <= 4 / (2 * 0)', "4 / (2 * 0)"),
    ('IsComplete "c" with threshold > 0 / (1 / 0)', "1 / 0"),
    # Dynamic thresholds: the divisor is a constant, so the answer is known now.
    ("RowCount > avg(last(3)) / 0", "avg(last(3)) / 0"),
    ("RowCount > median(last(5)) / (1 - 1) + 1", "median(last(5)) / (1 - 1)"),
    ("RowCount < max(last(2)) * (1 / 0)", "1 / 0"),
    ('Completeness "c" between min(last(3)) / 0 and 1', "min(last(3)) / 0"),
    ("(RowCount > 0) and (RowCount < 0 / (1 / 0))", "1 / 0"),
])
def test_a_zero_divisor_is_refused_naming_the_rule_and_line(rule: str, division: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        parse_ruleset(_file(rule), source="bad.dqdl")
    assert str(error.value) == (
        f"bad.dqdl line 3: the expression divides by zero: {division}; rule: {rule}")


def test_the_nested_form_is_no_longer_read_as_zero() -> None:
    with pytest.raises(ConfigurationError, match=r"^rules line 2: the expression divides by zero: "
                                                 r"1 / 0; rule: RowCount = 0 / \(1 / 0\)$"):
        parse_ruleset("Rules = [\n  RowCount = 0 / (1 / 0)\n]")


def test_the_gate_refuses_it_too() -> None:
    """quality.json carries the rule's text; the gate parses it with parse_rule."""
    with pytest.raises(ConfigurationError) as error:
        parse_rule("RowCount = 0 / (1 / 0)", line=7, severity="warn", source="quality.json")
    assert str(error.value) == ("quality.json line 7: the expression divides by zero: 1 / 0; "
                                "rule: RowCount = 0 / (1 / 0)")


def test_a_rule_over_several_lines_is_named_by_its_first_line() -> None:
    text = ("Rules = [\n  RowCount > 0,\n  RowCount between 1\n    and 2 / (1 - 1),\n"
            "  RowCount > 1\n]")
    with pytest.raises(ConfigurationError, match=r"^r\.dqdl line 3: the expression divides by "
                                                 r"zero: 2 / \(1 - 1\); rule: RowCount between 1 "
                                                 r"and 2 / \(1 - 1\)$"):
        parse_ruleset(text, source="r.dqdl")


@pytest.mark.parametrize(("rule", "threshold"), [
    ("RowCount > 0 / 2", "> 0"),
    ("RowCount > 1 / (1 - 0.5)", "> 2"),
    ("RowCount > 1 / 0.001", "> 1000"),
    ("RowCount > (1 - 1) / 4", "> 0"),
    ("RowCount > 0 * 5 + 1 / 4", "> 0.25"),
])
def test_nonzero_constant_divisors_still_fold(rule: str, threshold: str) -> None:
    assert parse_rule(rule).condition.text == threshold


def test_a_divisor_from_history_is_decided_when_the_history_is_known() -> None:
    rule = parse_rule("RowCount > 0 / (max(last(2)) - min(last(2)))")
    undefined = evaluate_threshold(rule, 5, [3.0, 3.0])
    assert (undefined.passed, undefined.reason) == (False, "threshold undefined")
    assert evaluate_threshold(rule, 5, [3.0, 1.0]).passed
    spread = parse_rule("RowCount > avg(last(2)) / 2")
    assert evaluate_threshold(spread, 51, [100.0, 100.0]).passed
    assert not evaluate_threshold(spread, 50, [100.0, 100.0]).passed


# ---------------------------------------------------------------------------------------------
# Property: a zero divisor anywhere in any expression is refused

_numbers = st.one_of(st.integers(-1000, 1000).map(float),
                     st.decimals(-100, 100, places=2, allow_nan=False).map(float))
_atoms = st.one_of(_numbers.map(Num),
                   st.builds(History, st.sampled_from(["avg", "median", "min", "max", "std"]),
                             st.integers(1, 20)))
_exprs = st.recursive(_atoms, lambda inner: st.builds(
    BinOp, st.sampled_from(["+", "-", "*"]), inner, inner), max_leaves=4)
_zeros = st.sampled_from([Num(0.0), BinOp("-", Num(1.0), Num(1.0)), BinOp("*", Num(0.0), Num(7.0)),
                          BinOp("/", Num(0.0), Num(3.0))])


def _with_zero_division(expr, numerator, zero, path):
    """``expr`` with the leaf that ``path`` leads to replaced by ``numerator / zero``."""
    if isinstance(expr, BinOp) and path:
        if path[0]:
            return BinOp(expr.op, expr.left, _with_zero_division(expr.right, numerator, zero,
                                                                 path[1:]))
        return BinOp(expr.op, _with_zero_division(expr.left, numerator, zero, path[1:]),
                     expr.right)
    return BinOp("/", numerator, zero)


@example(expr=Num(1.0), numerator=Num(0.0), zero=Num(0.0), path=[])
@example(expr=BinOp("/", Num(0.0), Num(1.0)), numerator=Num(1.0), zero=Num(0.0), path=[True])
@example(expr=BinOp("+", History("avg", 3), Num(1.0)), numerator=History("avg", 3),
         zero=BinOp("-", Num(1.0), Num(1.0)), path=[False])
@settings(max_examples=200, deadline=None)
@given(expr=_exprs, numerator=st.one_of(_exprs, st.just(Num(0.0))), zero=_zeros,
       path=st.lists(st.booleans(), max_size=4))
def test_a_zero_divisor_anywhere_is_refused(expr, numerator, zero, path):
    poisoned = _with_zero_division(expr, numerator, zero, path)
    text = f"RowCount {Condition('>', (poisoned,)).text}"
    with pytest.raises(ConfigurationError, match="divides by zero"):
        parse_rule(text)
