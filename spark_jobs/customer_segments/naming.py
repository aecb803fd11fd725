"""Names of the segments from their centroids (pure Python: no Spark, tested in tests/unit).

A centroid is (recency, frequency, monetary) in the model's scaled space: log1p of each value,
then standardized over the training customers, so 0 is the average customer and the order of
centroids on each axis is the order of their typical raw values.

The rule, deterministic for any k:
1. score = frequency + monetary - recency (higher: better customers); segment_id is the rank
   of the score, 0 for the best (ties: lower KMeans cluster index first).
2. Each centroid falls in a quadrant: recent when its recency is below average (< 0), valuable
   when frequency + monetary is above average (> 0).
3. Within a quadrant the centroids take the quadrant's names by score: recent and valuable
   "champions" then "loyal"; recent, not valuable "promising" then "new"; lapsed and valuable
   "at risk" then "needs attention"; lapsed and not valuable from the worst up "lost" then
   "hibernating" (so the worst lapsed segment is always "lost"). A quadrant holding more
   centroids than names repeats its last name with a number ("loyal 2", "loyal 3").
"""

from __future__ import annotations

from collections.abc import Sequence

Centroid = tuple[float, float, float]

# (recent, valuable) -> (names, best first?)
QUADRANTS: dict[tuple[bool, bool], tuple[tuple[str, ...], bool]] = {
    (True, True): (("champions", "loyal"), True),
    (True, False): (("promising", "new"), True),
    (False, True): (("at risk", "needs attention"), True),
    (False, False): (("lost", "hibernating"), False),
}


def score(centroid: Centroid) -> float:
    recency, frequency, monetary = centroid
    return frequency + monetary - recency


def segment_ids(centroids: Sequence[Centroid]) -> list[int]:
    """segment_id of each cluster index: its rank by score, best first."""
    order = sorted(range(len(centroids)), key=lambda i: (-score(centroids[i]), i))
    ids = [0] * len(centroids)
    for rank, cluster in enumerate(order):
        ids[cluster] = rank
    return ids


def _quadrant(centroid: Centroid) -> tuple[bool, bool]:
    recency, frequency, monetary = centroid
    return recency < 0, frequency + monetary > 0


def segment_names(centroids: Sequence[Centroid]) -> list[str]:
    """The name of each cluster index (module docstring)."""
    if not centroids:
        raise ValueError("no centroids to name")
    ids = segment_ids(centroids)
    names = [""] * len(centroids)
    for quadrant, (ladder, best_first) in QUADRANTS.items():
        members = sorted((i for i, c in enumerate(centroids) if _quadrant(c) == quadrant),
                         key=lambda i: ids[i], reverse=not best_first)
        for position, cluster in enumerate(members):
            extra = position - len(ladder) + 2
            names[cluster] = ladder[position] if position < len(ladder) else (
                f"{ladder[-1]} {extra}")
    return names
