"""Running `python -m local_runtime` as a new process, as a person would (helpers for e2e tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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
