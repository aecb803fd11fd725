"""Spark-only helpers: run the online_retail job in-process on a file and read what it wrote."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from spark_helpers import RULES

# PySpark turns naive Python datetimes into instants with the process's local zone; the job
# and the tests mean UTC wall-clock, so make the local zone UTC for the whole run.
os.environ["TZ"] = "UTC"
time.tzset()


@dataclass
class JobRun:
    code: int
    stderr: str
    out: Path

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.out / "metrics.json").read_text())

    @property
    def quality(self) -> dict[str, Any]:
        return json.loads((self.out / "quality.json").read_text())

    def rule(self, text_start: str) -> dict[str, Any]:
        matches = [r for r in self.quality["rules"] if r["rule"].startswith(text_start)]
        assert len(matches) == 1, f"{len(matches)} rules start with {text_start!r}"
        return matches[0]

    @property
    def failed_errors(self) -> list[str]:
        return [r["rule"] for r in self.quality["rules"]
                if r["severity"] == "error" and r["outcome"] == "fail"]

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("JOB ERROR:")]


@pytest.fixture
def run_job(spark, tmp_path: Path, capsys) -> Callable[..., JobRun]:
    """Runs main.main() on an input file in the shared session; outputs go under tmp_path."""
    from spark_jobs.online_retail import main

    counter = iter(range(1000))

    def run(input_path: Path | str, partition: str, rules: Path | str = RULES,
            extra: list[str] | None = None) -> JobRun:
        out = tmp_path / f"run{next(counter)}"
        out.mkdir()
        capsys.readouterr()
        code = main.main([
            "--input", str(input_path),
            "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/quarantine/",
            "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json",
            "--rules", str(rules),
            "--run-id", f"test-{partition}-{out.name}",
            "--partition", partition,
            *(extra or []),
        ])
        return JobRun(code, capsys.readouterr().err, out)

    return run
