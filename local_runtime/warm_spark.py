"""The client of the warm local Spark (local_runtime.spark_server): finds the server of a work
directory, starts it on first use, runs a job on it, cancels and stops it.

One server per directory (`<work dir>/spark-server`), started under a file lock there, so two
processes (or threads) never start two; later runs of this process and of later processes (the
CLI, `make demo`, an e2e session) reuse it. A server serves one Python and one job code: the
hash of the job's --py-files (the job packages; the entry file itself is loaded afresh for every
job). A job with other code or another Python makes the old server drain and exit, and starts a
new one: an edited job package costs one Spark start-up, never a stale import. Servers end on
`python -m local_runtime spark stop`, after LOCAL_RUNTIME_SPARK_IDLE_MINUTES (default 10)
without a job, or when their state file goes.

A job whose server ends under it (killed, stopped) fails with exit code 1 and a `JOB ERROR:`
line naming what happened; it is never re-run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_runtime.spark_server import LOG_FILE, STATE_FILE

SERVER_SCRIPT = Path(__file__).with_name("spark_server.py")
IDLE_MINUTES_ENV = "LOCAL_RUNTIME_SPARK_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 10.0
START_TIMEOUT_S = 300.0
RETIRE_TIMEOUT_S = 300.0
CANCEL_GRACE_S = 30.0  # a cancelled job still running after this takes its server down
JOB_ERROR = "JOB ERROR:"


class WarmSparkError(Exception):
    """The warm Spark server could not be reached or started."""


def idle_seconds(environ: Mapping[str, str]) -> float:
    """How long a server waits without a job before it exits (LOCAL_RUNTIME_SPARK_IDLE_MINUTES)."""
    text = environ.get(IDLE_MINUTES_ENV, "").strip()
    if not text:
        return DEFAULT_IDLE_MINUTES * 60
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0 or minutes == float("inf"):
        raise ValueError(f"{IDLE_MINUTES_ENV}={text!r}: give a number of minutes above 0")
    return minutes * 60


def code_hash(paths: list[Path]) -> str:
    """The job code's identity: the bytes of the --py-files (files, or trees of files)."""
    digest = hashlib.sha256()
    for path in paths:
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for file in files:
            digest.update(file.relative_to(path.parent).as_posix().encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass
class Outcome:
    exit_code: int
    thread_cpu_seconds: float = 0.0
    executor_cpu_seconds: float = 0.0
    server_pid: int = 0
    main_seconds: float | None = None  # wall-clock time in the job's main()
    main_started_at: float | None = None  # when the server called main() (epoch seconds)
    lost: str = ""  # why the job has no outcome from the server (written as its JOB ERROR)


def read_state(directory: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def request(state: dict[str, Any], message: dict[str, Any], timeout: float = 10.0
            ) -> dict[str, Any]:
    """One request to the server and its one-line answer."""
    with socket.create_connection(("127.0.0.1", int(state["port"])), timeout=timeout) as sock:
        sock.sendall(json.dumps({**message, "token": state["token"]}).encode() + b"\n")
        reader = _Lines(sock)
        line = reader.next(timeout)
    if line is None:
        raise WarmSparkError("the warm Spark server closed the connection without an answer")
    answer: dict[str, Any] = json.loads(line)
    return answer


def server_status(directory: Path) -> dict[str, Any] | None:
    """The running server's status, or None (a stale state file is removed)."""
    state = read_state(directory)
    if state is None:
        return None
    try:
        return {**request(state, {"op": "status"}), "port": state["port"]}
    except (OSError, ValueError, WarmSparkError):
        if not process_alive(int(state.get("pid", 0))):
            with contextlib.suppress(OSError):
                (directory / STATE_FILE).unlink()
        return None


def stop_server(directory: Path, timeout: float = 30.0) -> bool:
    """Stop the directory's server (its running jobs fail); False if none was running."""
    state = read_state(directory)
    if state is None:
        return False
    pid = int(state.get("pid", 0))
    with contextlib.suppress(OSError, ValueError, WarmSparkError):
        request(state, {"op": "stop"})
    if not _wait_gone(pid, timeout):
        _kill_group(pid)
        _wait_gone(pid, 5)
    with contextlib.suppress(OSError):
        if (read_state(directory) or {}).get("pid") == pid:
            (directory / STATE_FILE).unlink()
    return True


class _Lines:
    """Newline-separated messages from a socket, read with a timeout per call."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = b""
        self.closed = False

    def next(self, timeout: float | None) -> bytes | None:
        """The next line; None on timeout, or when the peer closed (then `closed`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._sock], [], [], wait)
            if not ready:
                return None
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


_CHILDREN: dict[int, subprocess.Popen] = {}  # servers this process started, to reap them


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a server this process started and that exited is reaped here)."""
    if pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_group(pid: int) -> None:
    """SIGKILL the server and its JVM (the server leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _how_it_ended(pid: int) -> str:
    """Why the server's connection closed; waits briefly for our own child to be reapable.

    The kernel closes a dying process's sockets before its exit status exists, so the job's
    client can see the connection end while `poll()` still says the server runs.
    """
    child = _CHILDREN.get(pid)
    code = None
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = child.wait(timeout=5)
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by signal {signal.Signals(-code).name}"
    if code is not None:
        return f"exit code {code}"
    return "connection lost" if process_alive(pid) else "it is gone"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class WarmSpark:
    """The warm server of one directory, for one Python; thread-safe."""

    def __init__(self, directory: Path, python: str, environ: Mapping[str, str] | None = None):
        self.directory = Path(directory)
        self.python = os.path.abspath(python)
        self.idle_seconds = idle_seconds(os.environ if environ is None else environ)
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}  # job id -> its server's state
        self._cancelled: dict[str, float] = {}  # job id -> when cancel was asked

    # -- the server -----------------------------------------------------------------------------
    def server_for(self, code: str, env: dict[str, str], py_paths: list[Path]
                   ) -> dict[str, Any]:
        """The state of a running server for this code and Python, started if need be."""
        with self._lock, _file_lock(self.directory / "start.lock"):
            state = read_state(self.directory)
            status = server_status(self.directory) if state else None
            if state and status and not status.get("retired"):
                same_python = os.path.abspath(str(status.get("python"))) == self.python
                if status.get("code_hash") == code and same_python:
                    return state
            if state and status:
                self._retire(state)
            return self._start(code, env, py_paths)

    def _retire(self, state: dict[str, Any]) -> None:
        """Ask the old server to exit once its jobs end, and wait for it."""
        pid = int(state["pid"])
        with contextlib.suppress(OSError, ValueError, WarmSparkError):
            request(state, {"op": "drain"})
        if not _wait_gone(pid, RETIRE_TIMEOUT_S):
            raise WarmSparkError(f"the warm Spark server (pid {pid}) of other job code still "
                                 f"runs jobs after {RETIRE_TIMEOUT_S:.0f} s")
        shutil.rmtree(self.directory / "code" / str(state.get("code_hash")), ignore_errors=True)

    def _copy_code(self, code: str, py_paths: list[Path]) -> list[Path]:
        """The job code copied under the server's directory (the staged copies may go)."""
        target = self.directory / "code" / code
        copies = [target / str(i) / p.name for i, p in enumerate(py_paths)]
        if target.exists():
            return copies
        tmp = self.directory / "code" / f".{code}.{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for i, path in enumerate(py_paths):
            (tmp / str(i)).mkdir(parents=True)
            if path.is_dir():
                shutil.copytree(path, tmp / str(i) / path.name,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, tmp / str(i) / path.name)
        tmp.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        return copies

    def _start(self, code: str, env: dict[str, str], py_paths: list[Path]) -> dict[str, Any]:
        copies = self._copy_code(code, py_paths)
        staged = {str(p) for p in py_paths}
        rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in staged]
        server_env = {**env, "PYTHONPATH": os.pathsep.join([*map(str, copies), *rest])}
        with open(self.directory / LOG_FILE, "ab") as log:
            proc = subprocess.Popen(
                [self.python, str(SERVER_SCRIPT), "--dir", str(self.directory), "--code-hash",
                 code, "--idle-seconds", str(self.idle_seconds)],
                env=server_env, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        _CHILDREN[proc.pid] = proc
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            state = read_state(self.directory)
            if state and state.get("pid") == proc.pid:
                return state
            if proc.poll() is not None:
                raise WarmSparkError(f"it exited ({_how_it_ended(proc.pid)}) while starting; "
                                     f"{self._log_tail()}")
            time.sleep(0.1)
        _kill_group(proc.pid)
        raise WarmSparkError(f"it did not start in {START_TIMEOUT_S:.0f} s; {self._log_tail()}")

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = (self.directory / LOG_FILE).read_text(errors="replace")
        except OSError:
            return "no server log"
        tail = " | ".join(text.strip().splitlines()[-lines:])
        return f"{self.directory / LOG_FILE}: {tail}"

    # -- jobs -----------------------------------------------------------------------------------
    def run(self, job_id: str, entry: Path, args: list[str], work: Path, env: dict[str, str],
            py_paths: list[Path], timeout_s: float | None = None) -> Outcome:
        """Run one job on the warm server and wait for its outcome."""
        message = {"op": "run", "job_id": job_id, "entry": str(entry), "args": args,
                   "work": str(work), "env": env, "code_hash": code_hash(py_paths)}
        try:
            sock, reader, state = self._submit(message, env, py_paths)
        except (OSError, ValueError, WarmSparkError) as e:
            with self._lock:
                self._cancelled.pop(job_id, None)
            return Outcome(1, lost=f"the local warm Spark server could not take the job: {e}")
        with self._lock:
            self._jobs[job_id] = state
            cancelled_before = job_id in self._cancelled
        if cancelled_before:  # while the server started: cancel it now
            with contextlib.suppress(OSError, ValueError, WarmSparkError):
                request(state, {"op": "cancel", "job_id": job_id})
        try:
            return self._await(job_id, sock, reader, state, timeout_s)
        finally:
            sock.close()
            with self._lock:
                self._jobs.pop(job_id, None)
                self._cancelled.pop(job_id, None)

    def _submit(self, message: dict[str, Any], env: dict[str, str], py_paths: list[Path]
                ) -> tuple[socket.socket, _Lines, dict[str, Any]]:
        """Hand the job to a server (a new one if the one found retires meanwhile)."""
        for _ in range(3):
            state = self.server_for(str(message["code_hash"]), env, py_paths)
            sock = socket.create_connection(("127.0.0.1", int(state["port"])), timeout=10)
            sock.sendall(json.dumps({**message, "token": state["token"]}).encode() + b"\n")
            reader = _Lines(sock)
            line = reader.next(30)
            answer = json.loads(line) if line else {"error": "no answer"}
            if answer.get("accepted"):
                return sock, reader, state
            sock.close()
            if answer.get("error") not in ("retired", "code-changed"):
                raise WarmSparkError(str(answer.get("error")))
        raise WarmSparkError("every server found was retiring")

    def _await(self, job_id: str, sock: socket.socket, reader: _Lines, state: dict[str, Any],
               timeout_s: float | None) -> Outcome:
        pid = int(state["pid"])
        deadline = time.monotonic() + timeout_s if timeout_s else None
        while True:
            line = reader.next(0.5)
            if line is not None:
                done = json.loads(line)
                return Outcome(int(done["exit_code"]), float(done["thread_cpu_seconds"]),
                               float(done["executor_cpu_seconds"]), pid,
                               float(done["main_seconds"]),
                               main_started_at=done.get("main_started_at"))
            if reader.closed:
                return Outcome(1, server_pid=pid, lost=(
                    f"the local warm Spark server (pid {pid}) ended while the job ran "
                    f"({_how_it_ended(pid)}); the job was not re-run; server log: "
                    f"{self.directory / LOG_FILE}"))
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(job_id)
                deadline = None
            with self._lock:
                asked = self._cancelled.get(job_id)
            if asked is not None and time.monotonic() - asked > CANCEL_GRACE_S:
                _kill_group(pid)  # a job that ignores its cancel takes its server down

    def cancel(self, job_id: str) -> bool:
        """Cancel a job of this client (one still waiting for its server is cancelled as soon as
        the server takes it)."""
        with self._lock:
            state = self._jobs.get(job_id)
            self._cancelled.setdefault(job_id, time.monotonic())
        if state is None:
            return True
        with contextlib.suppress(OSError, ValueError, WarmSparkError):
            request(state, {"op": "cancel", "job_id": job_id})
        return True

    def server_pid(self, job_id: str) -> int | None:
        with self._lock:
            state = self._jobs.get(job_id)
        return int(state["pid"]) if state else None
