"""Spark-only helpers: run a dataset's job in-process on a file and read what it wrote."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from spark_helpers import REPO, JobRun

# PySpark turns naive Python datetimes into instants with the process's local zone; the job
# and the tests mean UTC wall-clock, so make the local zone UTC for the whole run.
os.environ["TZ"] = "UTC"
time.tzset()


@pytest.fixture
def run_dataset(spark, tmp_path: Path, capsys) -> Callable[..., JobRun]:
    """Runs `spark_jobs.<dataset>.main.main()` on an input file in the shared session (rules:
    datasets/<dataset>.dqdl unless given); outputs go under tmp_path/run<N>/."""
    counter = iter(range(1000))

    def run(dataset: str, input_path: Path | str, partition: str,
            rules: Path | str | None = None, extra: list[str] | None = None) -> JobRun:
        main = importlib.import_module(f"spark_jobs.{dataset}.main")
        out = tmp_path / f"run{next(counter)}"
        out.mkdir()
        capsys.readouterr()
        code = main.main([
            "--input", str(input_path),
            "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/quarantine/",
            "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json",
            "--rules", str(rules or REPO / "datasets" / f"{dataset}.dqdl"),
            "--run-id", f"test-{partition}-{out.name}",
            "--partition", partition,
            *(extra or []),
        ])
        return JobRun(code, capsys.readouterr().err, out)

    return run


@pytest.fixture
def run_job(run_dataset) -> Callable[..., JobRun]:
    """run_dataset for online_retail: run_job(input_path, partition, rules=..., extra=...)."""
    def run(input_path: Path | str, partition: str, rules: Path | str | None = None,
            extra: list[str] | None = None) -> JobRun:
        return run_dataset("online_retail", input_path, partition, rules, extra)

    return run
