"""The warm local Spark: one long-lived Python + driver JVM that runs many jobs, as EMR
Serverless's pre-initialised capacity does (the server side; local_runtime.warm_spark starts it,
talks to it and stops it).

Run as a script (`python spark_server.py --dir DIR --code-hash H`) with the job code (the jobs'
--py-files, copied under DIR) on PYTHONPATH. It starts one SparkContext, then listens on a
localhost port written with a random token to DIR/server.json (mode 0600). Each request is one
JSON line; `run` answers `accepted`, then the job's outcome on the same connection.

Each job gets:
- its own SparkSession (`newSession()`: own SQL conf, temporary views and functions), handed to
  the job through spark_jobs.common.session.provided_session (created=False: the job never
  stops the shared context);
- its entry file loaded fresh from the staged path and `main(argv)` called; the exit code is
  what `sys.exit(main())` would have given (SystemExit included);
- its own stdout/stderr files (what the job's Python writes; the shared JVM's own log lines go
  to DIR/server.log) and its own temporary folder (tempfile's default dir), both kept in context
  variables: its thread's, and those of the threads it starts with a copy of its context (a
  batch's partition writes: spark_jobs.common.session.run_concurrently); its own job group and tag,
  which threads started as pyspark.InheritableThread keep (cancel cancels only its Spark jobs,
  its sub-threads' included, then raises in its thread);
- the environment it was sent, where it differs from the server's (jobs whose differences
  conflict wait for each other; the code is not part of it: the server is keyed by the hash of
  the job code and retired when that changes).
Cached data is unpersisted when no job is running (a running job's cache is never dropped).
After each job the server checks the context: stopped, a JVM that does not answer or ran out of
memory retire it (it exits once its jobs end, at once if the context is gone); so does idleness
(LOCAL_RUNTIME_SPARK_IDLE_MINUTES, default 10) and a vanished state file.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import ctypes
import importlib.util
import json
import os
import secrets
import signal
import socketserver
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

if __name__ == "__main__" and sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent:
    del sys.path[0]  # local_runtime/ itself: its modules must not shadow the job's imports

STATE_FILE = "server.json"
LOG_FILE = "server.log"
# variables that describe the code or the submitter, not the job's environment
_NOT_ENVIRONMENT = frozenset({"PYTHONPATH", "LOCAL_RUNTIME_SPARK_CONF", "PYSPARK_GATEWAY_PORT",
                              "PYSPARK_GATEWAY_SECRET", "_", "PWD", "OLDPWD", "SHLVL"})
SIGTERM_EXIT = -int(signal.SIGTERM)  # what a cancelled job's process shows on the cold path


class JobCancelled(BaseException):
    """Raised in a job's thread when it is cancelled (like the SIGTERM of the cold path)."""


@dataclass
class Job:
    job_id: str
    entry: str
    args: list[str]
    work: Path
    env: dict[str, str]
    thread: int = 0
    cancelled: bool = False
    in_main: bool = False
    tag: str = field(init=False)

    def __post_init__(self) -> None:
        self.tag = f"local-job-{self.job_id}"


class _Streams:
    """sys.stdout / sys.stderr: a job (its thread, and threads started in a copy of its context)
    writes to its own file, anything else to the log."""

    def __init__(self, fallback: TextIO, name: str):
        self._fallback = fallback
        self.current: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar(
            f"job_{name}", default=None)

    def _target(self) -> TextIO:
        return self.current.get() or self._fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


class EnvGate:
    """Applies a job's environment (where it differs from the server's) for as long as it runs;
    a job whose differences are not those in force waits until no job runs."""

    def __init__(self, base: dict[str, str]):
        self._base = dict(base)
        self._cond = threading.Condition()
        self._current: tuple[tuple[str, str], ...] | None = None
        self._users = 0

    def differences(self, env: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, v) for k, v in env.items()
                            if k not in _NOT_ENVIRONMENT and self._base.get(k) != v))

    @contextlib.contextmanager
    def applied(self, env: dict[str, str]) -> Iterator[None]:
        wanted = self.differences(env)
        with self._cond:
            self._cond.wait_for(lambda: self._users == 0 or self._current == wanted)
            if self._users == 0 and self._current != wanted:
                self._reset(wanted)
            self._users += 1
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    def _reset(self, wanted: tuple[tuple[str, str], ...]) -> None:
        os.environ.clear()
        os.environ.update(self._base)
        os.environ.update(dict(wanted))
        self._current = wanted
        boto3 = sys.modules.get("boto3")
        if boto3 is not None:  # its default session caches what it read from the environment
            setattr(boto3, "DEFAULT_SESSION", None)  # noqa: B010


def exit_code_of(value: object, stderr: TextIO) -> int:
    """The exit status `sys.exit(value)` gives a process (None 0, an int mod 256, else 1)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value & 0xFF
    print(value, file=stderr)
    return 1


def load_entry(job: Job) -> Any:
    """The job's entry file as a fresh module (never a cached import of an earlier job)."""
    name = f"_local_job_{job.job_id.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, job.entry)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the entry point {job.entry}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    if not callable(getattr(module, "main", None)):
        sys.modules.pop(name, None)
        raise ImportError(f"the entry point {job.entry} defines no main(argv): the warm local "
                          "Spark calls it (or run with LOCAL_RUNTIME_SPARK=cold)")
    return module


class Server:
    """One SparkContext, many jobs (see the module docstring)."""

    def __init__(self, directory: Path, code_hash: str, idle_seconds: float):
        self.directory = directory
        self.code_hash = code_hash
        self.idle_seconds = idle_seconds
        self.token = secrets.token_hex(16)
        self.started_at = time.time()
        self.last_active = time.monotonic()
        self.jobs: dict[str, Job] = {}
        self.jobs_run = 0
        self.retired = ""  # why it takes no more jobs
        self._lock = threading.Lock()
        self._job_tmp: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            "job_tmp", default=None)
        self.stdout = _Streams(sys.stdout, "stdout")
        self.stderr = _Streams(sys.stderr, "stderr")
        self.base: Any = None
        self.env_gate: EnvGate | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None

    # -- start ----------------------------------------------------------------------------------
    def start_spark(self) -> None:
        from pyspark.sql import SparkSession

        from spark_jobs.common.session import RUNTIME_CONF, STARTUP_CONF

        # no console progress bars: the shared JVM's output is the server log, not a job's
        builder = SparkSession.builder.appName("local-runtime-warm-spark").config(
            "spark.ui.showConsoleProgress", "false")
        for key, value in {**STARTUP_CONF, **RUNTIME_CONF}.items():
            builder = builder.config(key, value)
        self.base = builder.getOrCreate()
        self.env_gate = EnvGate(dict(os.environ))
        sys.stdout, sys.stderr = self.stdout, self.stderr
        original = tempfile.gettempdir
        tempfile.gettempdir = lambda: self._job_tmp.get() or original()

    def serve(self) -> None:
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server.handle(self.rfile, self.wfile)

        socketserver.ThreadingTCPServer.daemon_threads = True
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._write_state(self._tcp.server_address[1])
        threading.Thread(target=self._watch, daemon=True, name="idle-watch").start()
        self._tcp.serve_forever(poll_interval=0.5)

    def _write_state(self, port: int) -> None:
        state = {"pid": os.getpid(), "port": port, "token": self.token,
                 "code_hash": self.code_hash, "python": sys.executable,
                 "started_at": self.started_at, "idle_seconds": self.idle_seconds}
        tmp = self.directory / f".{STATE_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.directory / STATE_FILE)

    # -- requests -------------------------------------------------------------------------------
    def handle(self, rfile: Any, wfile: Any) -> None:
        try:
            request = json.loads(rfile.readline() or b"{}")
        except ValueError:
            return
        if not secrets.compare_digest(str(request.get("token", "")), self.token):
            _send(wfile, {"error": "bad token"})
            return
        op = request.get("op")
        if op == "status":
            _send(wfile, self.status())
        elif op == "run":
            self._run_request(request, wfile)
        elif op == "cancel":
            _send(wfile, {"cancelled": self.cancel(str(request.get("job_id")))})
        elif op in ("stop", "drain"):
            _send(wfile, {"stopping": True, "running": sorted(self.jobs)})
            self.retire(f"asked to {op}", now=op == "stop")
        else:
            _send(wfile, {"error": f"unknown op {op!r}"})

    def status(self) -> dict[str, Any]:
        with self._lock:
            running = sorted(self.jobs)
        return {"pid": os.getpid(), "code_hash": self.code_hash, "python": sys.executable,
                "started_at": self.started_at, "running": running, "jobs_run": self.jobs_run,
                "idle_for": 0 if running else round(time.monotonic() - self.last_active, 1),
                "idle_seconds": self.idle_seconds, "retired": self.retired}

    def _run_request(self, request: dict[str, Any], wfile: Any) -> None:
        if request.get("code_hash") != self.code_hash:
            _send(wfile, {"error": "code-changed", "code_hash": self.code_hash})
            return
        job = Job(str(request["job_id"]), str(request["entry"]), list(request["args"]),
                  Path(request["work"]), dict(request.get("env") or {}))
        with self._lock:
            if self.retired:
                refused = self.retired
            else:
                refused = ""
                self.jobs[job.job_id] = job
        if refused:
            _send(wfile, {"error": "retired", "reason": refused})
            return
        _send(wfile, {"accepted": True, "pid": os.getpid()})
        outcome = self.execute(job)
        idle = self._job_done(job)  # before the outcome: a caller then sees the job counted
        _send(wfile, outcome)
        if self.retired and (idle or self._context_gone()):
            self.exit()

    # -- one job --------------------------------------------------------------------------------
    def execute(self, job: Job) -> dict[str, Any]:
        """Run one job in this thread; its exit code and what it used."""
        job.thread = threading.get_ident()
        tmp = job.work / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        assert self.env_gate is not None
        with open(job.work / "stdout.log", "a", encoding="utf-8", errors="backslashreplace",
                  buffering=1) as out, \
                open(job.work / "stderr.log", "a", encoding="utf-8",
                     errors="backslashreplace", buffering=1) as err:
            tokens = (self.stdout.current.set(out), self.stderr.current.set(err),
                      self._job_tmp.set(str(tmp)))
            cpu0 = time.thread_time()
            try:
                with self.env_gate.applied(job.env):
                    t0, started_at = time.monotonic(), time.time()
                    code = self._call_main(job, err)
                    main_seconds = time.monotonic() - t0
            finally:
                thread_cpu = time.thread_time() - cpu0
                self.stdout.current.reset(tokens[0])
                self.stderr.current.reset(tokens[1])
                self._job_tmp.reset(tokens[2])
        executor_cpu = self._executor_cpu_seconds(job)
        unhealthy = self.health(job)
        if unhealthy:
            with contextlib.suppress(OSError), open(job.work / "stderr.log", "a") as f:
                print(f"(local warm Spark: {unhealthy}; the server retires, the next run starts "
                      "a fresh one)", file=f)
            self.retire(unhealthy, now=False)  # the outcome is sent first, then it exits
        return {"exit_code": SIGTERM_EXIT if job.cancelled else code,
                "thread_cpu_seconds": thread_cpu, "executor_cpu_seconds": executor_cpu,
                "main_seconds": main_seconds, "main_started_at": started_at,
                "retired": self.retired}

    def _call_main(self, job: Job, err: TextIO) -> int:
        sc = self.base.sparkContext
        sc.setJobGroup(job.tag, f"local job {job.job_id}", interruptOnCancel=True)
        sc.addJobTag(job.tag)
        module_name = ""
        try:
            from spark_jobs.common.session import provided_session

            session = self.base.newSession()
            module = load_entry(job)
            module_name = module.__name__
            with provided_session(session):
                if job.cancelled:  # before it started
                    raise JobCancelled
                job.in_main = True
                try:
                    value = module.main(list(job.args))
                finally:
                    job.in_main = False
            return exit_code_of(value, err)
        except SystemExit as e:
            return exit_code_of(e.code, err)
        except JobCancelled:
            print("the job was cancelled", file=err)
            return SIGTERM_EXIT
        except Exception:
            traceback.print_exc(file=err)
            return 1
        finally:
            sys.modules.pop(module_name, None)
            with contextlib.suppress(Exception):
                sc.clearJobTags()
                sc._jsc.clearJobGroup()

    def _executor_cpu_seconds(self, job: Job) -> float:
        """CPU time of the tasks of the job's Spark jobs (by its tag), from the status store."""
        try:
            jsc = self.base.sparkContext._jsc.sc()
            jsc.listenerBus().waitUntilEmpty(5000)
            tracker = jsc.statusTracker()
            stages: set[int] = set()
            for job_id in tracker.getJobIdsForTag(job.tag):
                info = tracker.getJobInfo(job_id)
                if info.isDefined():
                    stages.update(int(s) for s in info.get().stageIds())
            return sum(_stage_cpu_ns(self.base, stage) for stage in stages) / 1e9
        except Exception:  # the context is gone: nothing to measure
            return 0.0

    def health(self, job: Job) -> str:
        """Why the shared Spark cannot take another job, or ''."""
        if self._context_gone():
            return "a job stopped the SparkContext or the driver JVM is gone"
        try:
            text = (job.work / "stderr.log").read_text(errors="replace")
        except OSError:
            text = ""
        if "java.lang.OutOfMemoryError" in text:
            return "the driver JVM ran out of memory"
        return ""

    def _context_gone(self) -> bool:
        try:
            sc = self.base.sparkContext
            if sc._jsc is None or sc._jsc.sc().isStopped():
                return True
            sc._jvm.java.lang.System.currentTimeMillis()
        except Exception:
            return True
        return False

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            return False
        job.cancelled = True
        with contextlib.suppress(Exception):
            self.base.sparkContext.cancelJobsWithTag(job.tag)
            self.base.sparkContext.cancelJobGroup(job.tag)
        if job.in_main and job.thread:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(job.thread),
                                                       ctypes.py_object(JobCancelled))
        return True

    def _job_done(self, job: Job) -> bool:
        """Count the job and free the cache if it was the last one; whether the server is idle."""
        with self._lock:
            self.jobs.pop(job.job_id, None)
            self.jobs_run += 1
            self.last_active = time.monotonic()
            idle = not self.jobs
        if idle and not self._context_gone():
            self._unpersist_all()
        return idle

    def _unpersist_all(self) -> None:
        with contextlib.suppress(Exception):
            self.base.catalog.clearCache()
            for rdd in list(self.base.sparkContext._jsc.getPersistentRDDs().values()):
                rdd.unpersist(False)

    # -- the end --------------------------------------------------------------------------------
    def retire(self, reason: str, *, now: bool) -> None:
        """Take no more jobs (the state file goes); exit now, or when the running jobs end."""
        with self._lock:
            self.retired = self.retired or reason
            idle = not self.jobs
        print(f"{time.strftime('%H:%M:%S')} retiring: {reason}", file=sys.__stderr__,
              flush=True)
        with contextlib.suppress(OSError):
            state = json.loads((self.directory / STATE_FILE).read_text())
            if state.get("pid") == os.getpid():
                (self.directory / STATE_FILE).unlink()
        if now or idle:
            self.exit()

    def exit(self) -> None:
        def stop() -> None:
            with contextlib.suppress(Exception):
                self.base.stop()

        stopper = threading.Thread(target=stop, daemon=True)
        stopper.start()
        stopper.join(timeout=10)
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(0), signal.SIGKILL)  # the JVM too, if stop() did not end it
        os._exit(0)

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            with self._lock:
                idle_for = 0.0 if self.jobs else time.monotonic() - self.last_active
            if idle_for > self.idle_seconds:
                self.retire(f"idle for {idle_for:.0f} s", now=True)
            if not self.retired and not _state_is_mine(self.directory):
                self.retire("its state file is gone", now=False)


def _state_is_mine(directory: Path) -> bool:
    try:
        return bool(json.loads((directory / STATE_FILE).read_text()).get("pid") == os.getpid())
    except (OSError, ValueError):
        return False


def _stage_cpu_ns(spark: Any, stage_id: int) -> int:
    sc = spark.sparkContext
    jvm = sc._jvm
    attempts = sc._jsc.sc().statusStore().stageData(
        stage_id, False, jvm.java.util.ArrayList(), False, sc._gateway.new_array(jvm.double, 0))
    total = 0
    it = attempts.iterator()
    while it.hasNext():
        data = it.next()
        total += int(data.executorCpuTime()) + int(data.executorDeserializeCpuTime())
    return total


def _send(wfile: Any, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        wfile.write(json.dumps(message).encode() + b"\n")
        wfile.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--code-hash", required=True)
    parser.add_argument("--idle-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    if os.getpgid(0) != os.getpid():
        parser.error("start it in its own process group (it kills that group when it ends)")
    server = Server(args.dir.resolve(), args.code_hash, args.idle_seconds)
    print(f"{time.strftime('%H:%M:%S')} pid {os.getpid()}: starting Spark", flush=True)
    server.start_spark()
    print(f"{time.strftime('%H:%M:%S')} Spark is up", file=sys.__stdout__, flush=True)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
