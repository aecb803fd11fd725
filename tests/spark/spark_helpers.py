"""Paths and file helpers of the Spark tests (imported by conftest and the tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_data" / "online_retail"
RULES = REPO / "datasets" / "online_retail.dqdl"


def data_lines(path: Path) -> tuple[str, list[str]]:
    """(header, data lines) of a sample file, line endings removed."""
    header, *lines = path.read_text().splitlines()
    return header, lines


def write_lines(path: Path, header: str, lines: list[str], final_newline: bool = True) -> Path:
    path.write_text("\n".join([header, *lines]) + ("\n" if final_newline else ""))
    return path


@dataclass
class JobRun:
    """A job run by the `run_dataset` / `run_job` fixtures: exit code, stderr, output folder
    (`<out>/<table>/`, `<out>/quarantine/`, `<out>/metrics.json`, `<out>/quality.json`)."""

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
