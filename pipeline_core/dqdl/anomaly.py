"""DetectAnomalies: is today's value of a metric far outside its recent values?

A robust band (median and MAD) so that one odd earlier run does not widen it much, on a log scale
for positive metrics so that a collapse to a small fraction stands out however noisy the history
is. The constants are calibrated on the 305 real Online Retail days (see the package docstring).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pipeline_core.dqdl.model import (
    INSUFFICIENT_HISTORY,
    NOT_MEASURED,
    Outcome,
    format_number,
    measured,
)

MIN_ANOMALY_HISTORY = 3
ANOMALY_MAD_FACTOR = 6.0
ANOMALY_MIN_FACTOR = 2.5
ANOMALY_METRICS = ("RowCount", "ColumnCount", "Completeness", "Uniqueness", "DistinctValuesCount",
                   "Mean", "Sum", "StandardDeviation")


def anomaly_band(history: Sequence[float]) -> tuple[float, float, float]:
    """(median, low, high): the band of ordinary values around earlier values.

    Robust (median and MAD, so one odd earlier run does not widen it much) and, when every
    earlier value is positive (counts, sums, ratios), computed on a log scale: a metric that
    varies by a factor day to day gets a band of factors, and a collapse to a small fraction is
    outside it however noisy the history is. The band is never narrower than a factor of
    ANOMALY_MIN_FACTOR around the median (linear fallback: ANOMALY_MIN_FACTOR - 1 times |median|).
    """
    center = statistics.median(history)
    if all(x > 0 for x in history):
        logs = [math.log(x) for x in history]
        log_center = statistics.median(logs)
        mad = statistics.median(abs(x - log_center) for x in logs)
        half = max(ANOMALY_MAD_FACTOR * 1.4826 * mad, math.log(ANOMALY_MIN_FACTOR))
        return center, math.exp(log_center - half), math.exp(log_center + half)
    mad = statistics.median(abs(x - center) for x in history)
    half = max(ANOMALY_MAD_FACTOR * 1.4826 * mad, (ANOMALY_MIN_FACTOR - 1) * abs(center))
    return center, center - half, center + half


def detect_anomaly(value: float | None, history: Sequence[float]) -> Outcome:
    """A new dataset has no band yet: it passes (with the reason) until it has the history."""
    if len(history) < MIN_ANOMALY_HISTORY:
        return Outcome(True, f"no anomaly band (insufficient history: {len(history)} earlier "
                             f"run(s), needs {MIN_ANOMALY_HISTORY})", INSUFFICIENT_HISTORY)
    center, low, high = anomaly_band(history)
    text = (f"between {format_number(round(low, 6))} and {format_number(round(high, 6))} "
            f"(median {format_number(round(center, 6))} of {len(history)} earlier runs, "
            f"robust band)")
    if value is None or not measured(value):
        return Outcome(False, text, NOT_MEASURED)
    return Outcome(low <= float(value) <= high, text)
