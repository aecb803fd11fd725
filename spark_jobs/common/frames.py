"""Materialize a DataFrame once and let every later action reuse it.

Why not `DataFrame.cache()`: Spark counts every read of a cached block as *input* bytes, so a
job that scans its file once and then runs five actions over the cache reports five times the
file size, and a real re-read of the input can no longer be told apart from cache hits. It is
not faster either: on 5M online_retail lines (2 cores), building the in-memory cache
(MEMORY_AND_DISK) of the parsed lines took 51 task-seconds and the judged lines' 33, against
20 and 15 for these shuffles; the reads it saves are 1-2 s each.

Here the frame is shuffled once (hash on a key column) and the resulting RDD is wrapped back
into a DataFrame. All later actions share that RDD and therefore its shuffle dependency: Spark
skips the map stage (the only one that reads the input) and reads the shuffle files instead.
So the input is read exactly once, and the input bytes Spark reports are the bytes read from
storage; if Spark ever has to recompute (a lost executor), the re-read shows up in the same
metric instead of hiding behind the cache.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from spark_jobs.common.spark_internals import reuse_shuffle_output


def materialize(df: DataFrame, partitions: int | None = None, key: str | None = None
                ) -> DataFrame:
    """`df`, computed once for all later actions.

    With `partitions`, `df` is first hash-shuffled on `key` into that many partitions; without,
    `df` must already end in a shuffle (an aggregation), whose output is what gets reused.
    """
    if partitions is not None:
        if key is None:
            raise ValueError("materialize needs the key column to shuffle on")
        df = df.repartition(max(1, partitions), key)
    return reuse_shuffle_output(df)
