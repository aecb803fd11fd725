"""The `sam` command line behind a small interface, so tests can stand in for it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class SamRunner(Protocol):
    def run(self, args: Sequence[str]) -> None:
        """Run `sam <args>`; raise when it exits non-zero."""
        ...


class SamFailed(Exception):
    """`sam` exited non-zero (its own output, already shown, says why)."""


class SubprocessSam:
    """Runs the SAM CLI of .venv-tools. `sam build` needs python3.13 (the Lambda runtime) on
    PATH, which that virtualenv's bin holds: it goes first on PATH, as `make build` does."""

    def __init__(self, sam: Path, cwd: Path):
        self._sam = sam
        self._cwd = cwd

    def run(self, args: Sequence[str]) -> None:
        env = dict(os.environ)
        env["PATH"] = f"{self._sam.resolve().parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("SAM_CLI_TELEMETRY", "0")
        command = [str(self._sam), *args]
        completed = subprocess.run(command, cwd=self._cwd, env=env, check=False)
        if completed.returncode != 0:
            raise SamFailed(f"sam {args[0]} exited {completed.returncode}")
