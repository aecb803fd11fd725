"""Input bytes as Spark itself measured them, read inside the driver JVM.

Every Spark job of a run is tagged with a job group; the bytes read are the sum of
`inputBytes` over every attempt of every stage of those jobs, from the driver's status store
(the one the UI and its REST API serve, present with the UI off too). The listener bus is
drained first, so the store holds final metrics. When that does not happen in time, the
figure is None: it is never estimated.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from spark_jobs.common.spark_internals import (
    clear_job_group,
    stage_input_bytes,
    wait_for_listeners,
)

log = logging.getLogger(__name__)


class RunMeter:
    """Tags the Spark jobs started inside `tracking()` and reads their input bytes afterwards."""

    def __init__(self, spark: SparkSession, description: str):
        self._spark = spark
        self._sc = spark.sparkContext
        self.group = f"run-{uuid.uuid4().hex[:12]}"
        self._description = description

    @contextmanager
    def tracking(self) -> Iterator[RunMeter]:
        previous = self._sc.getLocalProperty("spark.jobGroup.id")
        self._sc.setJobGroup(self.group, self._description)
        try:
            yield self
        finally:
            if previous is None:
                clear_job_group(self._spark)
            else:
                self._sc.setJobGroup(previous, "")

    def stage_ids(self) -> set[int]:
        tracker = self._sc.statusTracker()
        ids: set[int] = set()
        for job_id in tracker.getJobIdsForGroup(self.group):
            info = tracker.getJobInfo(job_id)
            if info is not None:
                ids.update(int(s) for s in info.stageIds)
        return ids

    def bytes_read(self, wait_seconds: float = 15.0) -> int | None:
        """Input bytes of this run's stages; None if Spark's events do not settle in time."""
        try:
            if not wait_for_listeners(self._spark, wait_seconds):
                log.warning("Spark listener bus did not drain in %.0f s; bytes_read unknown",
                            wait_seconds)
                return None
            return stage_input_bytes(self._spark, sorted(self.stage_ids()))
        except Py4JError as e:
            log.warning("Spark status store unavailable (%s); bytes_read unknown", e)
            return None
