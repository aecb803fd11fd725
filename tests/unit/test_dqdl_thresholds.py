"""evaluate_threshold: the check the quality gate applies, with and without history."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_core.dqdl import (
    ANOMALY_MAD_FACTOR,
    ANOMALY_MIN_FACTOR,
    anomaly_band,
    evaluate_threshold,
    load_ruleset,
    parse_rule,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("rule", "value", "passed"), [
    ("RowCount > 10", 11, True),
    ("RowCount > 10", 10, False),
    ("RowCount >= 10", 10, True),
    ("RowCount < 10", 10, False),
    ("RowCount <= 10", 10, True),
    ("RowCount = 10", 10, True),
    ("RowCount != 10", 10, False),
    # Exclusive, as in AWS Glue (awslabs/dqdl NumberBasedCondition: > low and < high).
    ("RowCount between 5 and 10", 5, False),
    ("RowCount between 5 and 10", 10, False),
    ("RowCount between 5 and 10", 5.5, True),
    ("RowCount not between 5 and 10", 5, True),
    ("RowCount not between 5 and 10", 10, True),
    ("RowCount between 5 and 10", 10.5, False),
    ("RowCount not between 5 and 10", 4, True),
    ("RowCount not between 5 and 10", 7, False),
    ("RowCount in [1, 2, 3]", 2, True),
    ("RowCount not in [1, 2, 3]", 2, False),
    ('Completeness "c" > -0.5', 0, True),
    # Ratios computed in floating point still meet round thresholds.
    ('Completeness "c" = 0.3', 0.1 + 0.2, True),
    ('Completeness "c" >= 0.3', 0.1 + 0.2, True),
    ('Completeness "c" > 0.3', 0.1 + 0.2, False),
    ('IsComplete "c"', 1.0, True),
    ('IsComplete "c"', 0.999, False),
    ('ColumnValues "c" > 0 with threshold >= 0.9', 0.9, True),
    ('ColumnValues "c" > 0 with threshold >= 0.9', 0.89, False),
    ('IsPrimaryKey "a" "b"', 1.0, True),
    ('ColumnExists "a"', 0, False),
])
def test_static_thresholds(rule, value, passed):
    outcome = evaluate_threshold(parse_rule(rule), value)
    assert outcome.passed is passed
    assert outcome.reason is None


def test_threshold_description():
    assert evaluate_threshold(parse_rule("RowCount between 5 and 10"), 7).threshold == (
        "between 5 and 10")
    assert evaluate_threshold(parse_rule('IsComplete "c"'), 1.0).threshold == "= 1"


def test_unmeasured_value_fails():
    for value in (None, float("nan"), float("inf")):
        outcome = evaluate_threshold(parse_rule("RowCount > 0"), value)
        assert (outcome.passed, outcome.reason) == (False, "metric not measured")


def test_dynamic_thresholds_use_the_newest_values():
    history = [100.0, 200.0, 300.0, 1000.0, 5000.0]  # newest first
    rule = parse_rule("RowCount > avg(last(3)) * 0.5")
    assert evaluate_threshold(rule, 101, history).passed  # avg(100,200,300)=200 -> 100
    outcome = evaluate_threshold(rule, 100, history)
    assert not outcome.passed
    assert outcome.threshold == "> 100 (> avg(last(3)) * 0.5 over 3 earlier runs)"
    assert evaluate_threshold(parse_rule("RowCount >= median(last(5))"), 300, history).passed
    assert not evaluate_threshold(parse_rule("RowCount >= median(last(5))"), 299, history).passed
    assert evaluate_threshold(parse_rule("RowCount = min(last(4))"), 100, history).passed
    assert evaluate_threshold(parse_rule("RowCount = max(last(4))"), 1000, history).passed
    rule = parse_rule("RowCount <= avg(last(2)) + 2 * std(last(2))")
    limit = 150 + 2 * statistics.stdev([100, 200])
    assert evaluate_threshold(rule, limit, history).passed
    assert not evaluate_threshold(rule, limit + 0.01, history).passed
    between = parse_rule('Mean "x" between min(last(5)) - 1 and max(last(5)) + 1')
    assert evaluate_threshold(between, 5000.5, history).passed
    assert not evaluate_threshold(between, 5001, history).passed  # exclusive, as in AWS
    assert not evaluate_threshold(between, 98, history).passed


def test_dynamic_thresholds_use_what_history_there_is():
    rule = parse_rule("RowCount > median(last(10)) * 0.5")
    assert not evaluate_threshold(rule, 10, [100.0, 30.0]).passed  # median 65 -> 32.5
    outcome = evaluate_threshold(rule, 33, [100.0, 30.0])
    assert outcome.passed and "over 2 earlier runs" in outcome.threshold


@pytest.mark.parametrize(("rule", "history"), [
    ("RowCount > avg(last(10))", []),
    ("RowCount > avg(last(10))", None),
    ("RowCount > std(last(10))", [5.0]),
    ("RowCount > avg(last(3)) - std(last(3))", [5.0]),
])
def test_insufficient_history_passes_with_a_reason(rule, history):
    outcome = evaluate_threshold(parse_rule(rule), 0, history)
    assert outcome.passed
    assert outcome.reason == "insufficient history"
    assert "insufficient history" in outcome.threshold


def test_history_ignores_missing_values():
    rule = parse_rule("RowCount > avg(last(3))")
    assert evaluate_threshold(rule, 11, [None, float("nan"), 10.0, True]).passed
    assert not evaluate_threshold(rule, 9, [None, float("nan"), 10.0]).passed


def test_division_by_zero_in_a_threshold_fails_plainly():
    outcome = evaluate_threshold(parse_rule("RowCount > 0 / (max(last(2)) - min(last(2)))"), 5,
                                 [3.0, 3.0])
    assert outcome.passed is False and outcome.reason == "threshold undefined"


def test_detect_anomalies():
    rule = parse_rule('DetectAnomalies "RowCount"')
    history = [1000.0, 1100.0, 900.0, 1050.0, 950.0]
    center, low, high = anomaly_band(history)
    # A steady history: the band is the minimum factor around the median.
    assert center == 1000
    assert (low, high) == pytest.approx((1000 / ANOMALY_MIN_FACTOR, 1000 * ANOMALY_MIN_FACTOR))
    assert evaluate_threshold(rule, 1000, history).passed
    assert evaluate_threshold(rule, high, history).passed
    collapsed = evaluate_threshold(rule, 50, history)
    assert not collapsed.passed
    assert collapsed.threshold == ("between 400 and 2500 (median 1000 of 5 earlier runs, "
                                   "robust band)")
    assert not evaluate_threshold(rule, 5000, history).passed
    assert not evaluate_threshold(rule, 0, history).passed


def test_detect_anomalies_band_is_a_band_of_factors_for_positive_metrics():
    history = [100.0, 1000.0, 2000.0, 3000.0, 1500.0]
    center, low, high = anomaly_band(history)
    logs = [math.log(x) for x in history]
    mad = statistics.median(abs(x - math.log(1500)) for x in logs)
    assert center == 1500
    assert math.log(high / 1500) == pytest.approx(ANOMALY_MAD_FACTOR * 1.4826 * mad)
    assert high / 1500 == pytest.approx(1500 / low)
    assert 0 < low < 100


def test_detect_anomalies_band_is_linear_when_history_has_zero_or_negatives():
    history = [0.0, -10.0, 10.0, 5.0]
    center, low, high = anomaly_band(history)
    mad = statistics.median(abs(x - center) for x in history)
    assert center == 2.5
    assert high - center == pytest.approx(
        max(ANOMALY_MAD_FACTOR * 1.4826 * mad, (ANOMALY_MIN_FACTOR - 1) * 2.5))
    assert high - center == pytest.approx(center - low)


def test_detect_anomalies_needs_three_earlier_values():
    rule = parse_rule('DetectAnomalies "Completeness" "c"')
    outcome = evaluate_threshold(rule, 0.0, [0.9, 0.95])
    assert outcome.passed and outcome.reason == "insufficient history"
    assert not evaluate_threshold(rule, 0.0, [0.9, 0.95, 0.92]).passed
    assert not evaluate_threshold(rule, None, [0.9, 0.95, 0.92]).passed


def test_composites_are_decided_from_their_children():
    with pytest.raises(ValueError, match="composite"):
        evaluate_threshold(parse_rule("(RowCount > 0) and (RowCount < 9)"), 1)


@settings(max_examples=200, deadline=None)
@given(history=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=12),
       factor=st.floats(0.05, 2, allow_nan=False))
def test_dynamic_threshold_matches_plain_python(history, factor):
    rule = parse_rule(f"RowCount >= median(last(10)) * {factor!r}")
    limit = statistics.median(history[:10]) * float(rule.condition.operands[0].right.value)
    assert evaluate_threshold(rule, limit * 1.001 + 1e-9, history).passed
    if limit > 1e-6:
        assert not evaluate_threshold(rule, limit * 0.999, history).passed


# ---------------------------------------------------------------------------------------------
# The dataset's own history rules, as the gate applies them

REAL_ROW_COUNTS = [1760, 1427, 1186, 2963, 1595, 1882, 2725, 2018, 1563, 3108]  # newest first


def _online_retail_rule(text_start: str):
    ruleset = load_ruleset(REPO / "datasets" / "online_retail.dqdl")
    return next(r for r in ruleset.rules if r.text.startswith(text_start))


def test_row_count_collapse_fails_the_dataset_rule():
    rule = _online_retail_rule("RowCount > median(last(10))")
    assert rule.severity == "error" and rule.needs_history
    assert evaluate_threshold(rule, 1500, REAL_ROW_COUNTS).passed
    # The smallest real day was 0.16 of its preceding median: still a pass.
    assert evaluate_threshold(rule, 0.16 * statistics.median(REAL_ROW_COUNTS),
                              REAL_ROW_COUNTS).passed
    collapsed = evaluate_threshold(rule, 80, REAL_ROW_COUNTS)
    assert not collapsed.passed
    assert collapsed.threshold.startswith("> 182.1 (> median(last(10)) * 0.1 over 10 earlier runs)")


def test_row_count_collapse_is_also_an_anomaly():
    rule = _online_retail_rule('DetectAnomalies "RowCount"')
    assert rule.severity == "warn"
    assert evaluate_threshold(rule, 1500, REAL_ROW_COUNTS).passed
    assert not evaluate_threshold(rule, 80, REAL_ROW_COUNTS).passed
