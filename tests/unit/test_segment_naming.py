"""The segment naming rule (spark_jobs.customer_segments.naming): pure, no Spark."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spark_jobs.customer_segments.naming import score, segment_ids, segment_names

# (recency, frequency, monetary) in the scaled space: 0 is the average customer.
CHAMPIONS = (-1.0, 1.5, 1.4)  # recent, frequent, big spenders
LOYAL = (-0.2, 0.6, 0.5)
AT_RISK = (0.8, 0.7, 0.9)  # used to buy a lot, not lately
LOST = (1.2, -0.9, -1.0)
PROMISING = (-0.8, -0.5, -0.4)  # recent, small
HIBERNATING = (0.3, -0.2, -0.1)


def test_four_classic_segments():
    centroids = [LOST, CHAMPIONS, AT_RISK, LOYAL]
    assert segment_names(centroids) == ["lost", "champions", "at risk", "loyal"]
    # segment_id: rank by frequency + monetary - recency, best first
    assert segment_ids(centroids) == [3, 0, 2, 1]


def test_each_quadrant_has_its_ladder():
    centroids = [HIBERNATING, PROMISING, LOST, CHAMPIONS, AT_RISK, LOYAL]
    assert segment_names(centroids) == [
        "hibernating", "promising", "lost", "champions", "at risk", "loyal"]


def test_worst_lapsed_segment_is_always_lost():
    assert segment_names([HIBERNATING, CHAMPIONS]) == ["lost", "champions"]


def test_more_centroids_than_names_are_numbered():
    centroids = [(-1.0, 3.0, 3.0), (-1.0, 2.0, 2.0), (-1.0, 1.0, 1.0), (-1.0, 0.5, 0.6)]
    assert segment_names(centroids) == ["champions", "loyal", "loyal 2", "loyal 3"]
    lapsed = [(1.0, -1.0, -1.0), (1.0, -2.0, -2.0), (1.0, -3.0, -3.0)]
    assert segment_names(lapsed) == ["hibernating 2", "hibernating", "lost"]


def test_equal_scores_break_on_cluster_index():
    assert segment_ids([LOYAL, LOYAL]) == [0, 1]
    assert segment_names([LOYAL, LOYAL]) == ["champions", "loyal"]


def test_no_centroid_is_an_error():
    with pytest.raises(ValueError, match="no centroids"):
        segment_names([])


coordinate = st.floats(min_value=-5, max_value=5, allow_nan=False)


@given(st.lists(st.tuples(coordinate, coordinate, coordinate), min_size=1, max_size=9))
def test_names_unique_and_ids_a_ranking(centroids):
    names = segment_names(centroids)
    ids = segment_ids(centroids)
    assert len(set(names)) == len(names)
    assert sorted(ids) == list(range(len(centroids)))
    by_rank = sorted(range(len(centroids)), key=lambda i: ids[i])
    scores = [score(centroids[i]) for i in by_rank]
    assert scores == sorted(scores, reverse=True)
