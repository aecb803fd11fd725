"""Running `python -m local_runtime` as a new process, as a person would (helpers for e2e tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REAL_RETAIL_DAYS = Path("/work/shared/data/online-retail/by-day")
# a password that must never be shown (in any output or file) by the local runtime
SECRET = "pw-Zq81-never-shown"


def cli_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "local_runtime", *map(str, args)]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_cli(*args: object, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`python -m local_runtime <args>` in a new process; its exit code, stdout and stderr."""
    return subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


def with_password(url: str, password: str = SECRET) -> str:
    """`url` (postgresql://user@host...) with `password` added to its user."""
    scheme, _, rest = url.partition("://")
    user, at, host = rest.partition("@")
    assert at and ":" not in user, url
    return f"{scheme}://{user}:{password}@{host}"


def wait_for_text(path: Path, text: str, timeout: float) -> bool:
    """Whether `text` shows up in the file within `timeout` seconds (polls every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under `root` whose bytes contain `needle`."""
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def real_retail_days(folder: Path, days: list[str]) -> Path:
    """`folder` holding copies of the real online_retail files of `days` (skips the test when
    the real data is not on this machine)."""
    import pytest

    if not REAL_RETAIL_DAYS.is_dir():
        pytest.skip(f"{REAL_RETAIL_DAYS} (the real online_retail days) is not on this machine")
    folder.mkdir()
    for day in days:
        shutil.copy(REAL_RETAIL_DAYS / f"{day}.csv", folder / f"{day}.csv")
    return folder


def run_backfill(work: Path, *args: object, timeout: float = 900) -> tuple[dict, str]:
    """`python -m local_runtime backfill --dataset online_retail <args>` in `work`, which
    must succeed: its --summary-json (one file per call, next to `work`) and its stdout."""
    summary = work.parent / f"summary-{len(list(work.parent.glob('summary-*')))}.json"
    proc = run_cli("backfill", "--dataset", "online_retail", *args, "--work-dir", work,
                   "--summary-json", summary, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(summary.read_text()), proc.stdout
