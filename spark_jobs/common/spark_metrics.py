"""Input bytes as Spark itself measured them, from the driver's status REST API.

Every Spark job of a run is tagged with a job group; the bytes read are the sum of
`inputBytes` over every attempt of every stage of those jobs. When the UI (and with it the REST
API) is disabled or does not answer, the figure is None: it is never estimated.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import SparkSession

from spark_jobs.common.spark_internals import clear_job_group

log = logging.getLogger(__name__)
_TERMINAL_JOB = {"SUCCEEDED", "FAILED"}


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

    def _get(self, path: str, timeout: float) -> Any:
        url = f"{self._sc.uiWebUrl}/api/v1/applications/{self._sc.applicationId}/{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (driver URL)
            return json.load(response)

    def _finished_jobs(self, deadline: float) -> list[dict[str, Any]] | None:
        """This run's jobs, once the status store records every one as finished; None if that
        does not happen before `deadline`."""
        while True:
            try:
                jobs = [j for j in self._get("jobs", 5) if j.get("jobGroup") == self.group]
            except OSError as e:
                if not _timed_out(e):
                    raise
                # The UI starts its REST stack on the first request (seconds on a busy
                # driver): a slow answer is not settled yet, not unavailable.
                jobs = []
            # Events reach the status store asynchronously: wait until every job of the
            # run is recorded as finished, so its stages carry their final metrics.
            if jobs and all(j.get("status") in _TERMINAL_JOB for j in jobs):
                return jobs
            if time.monotonic() > deadline:
                log.warning("Spark status API did not settle; bytes_read unknown")
                return None
            time.sleep(0.2)

    def bytes_read(self, wait_seconds: float = 15.0) -> int | None:
        """Input bytes of this run's stages, once the status store has caught up; None if the
        REST API is unavailable or does not settle in time."""
        if not self._sc.uiWebUrl:
            return None
        try:
            jobs = self._finished_jobs(time.monotonic() + wait_seconds)
            if jobs is None:
                return None
            stage_ids = {s for j in jobs for s in j.get("stageIds", [])}
            total = 0
            for stage in self._get("stages", 10):
                if stage.get("stageId") in stage_ids:
                    total += int(stage.get("inputBytes", 0))
            return total
        except (OSError, ValueError) as e:
            log.warning("Spark status API unavailable (%s); bytes_read unknown", e)
            return None


def _timed_out(error: OSError) -> bool:
    """A request that timed out (while reading, or as urllib's URLError while connecting)."""
    return isinstance(error, TimeoutError) or isinstance(
        getattr(error, "reason", None), TimeoutError)
