"""Paths and file helpers of the Spark tests (imported by conftest and the tests)."""

from __future__ import annotations

from pathlib import Path

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
