"""Runs a Spark job locally (pyspark, local[*]), staging s3:// arguments.

Inputs (--input, --rules, the entry point and --py-files) are downloaded from moto S3 into the
job's work directory before it starts; outputs (--output-root with its {table} placeholder,
--quarantine, --metrics, --quality) are written to local paths and every file written there is
uploaded after a successful exit (Spark's .crc side files excepted). An output folder the job
writes replaces its S3 prefix, as Spark's overwrite does on EMR (no earlier attempt's part file
stays beside the new ones): each table's folder, the quarantine folder, and each folder the job
wrote under another output root (a model root's `<run_id>/`). The quarantine folder's objects
are staged first when it has any, so the job sees the earlier attempt's quarantine as it would
in S3 (it then replaces it with an empty one rather than leave it). The staged `--input` is
the object's current version, what EMRFS would read; the job also gets `--input-source` (the
s3:// object it is a copy of) and, in `extra_env`, the S3 stand-in's endpoint, so its check of
the run's object version (--input-etag, --input-version-id) heads S3 as it does on EMR.

Two ways to run it (LOCAL_RUNTIME_SPARK):
- `warm` (the default): on the warm local Spark of the work directory (local_runtime.warm_spark
  and spark_server), started by the first job and reused by later jobs of this and later
  processes, as EMR Serverless's pre-initialised capacity is. Each job has its own session,
  temporary folder, log files, job group and environment; `main(argv)` of the entry file is
  called (the exit code is what `sys.exit(main())` gives).
- `cold`: a new Python + JVM per job (`python entry.py args`, its own process group), as before.
  Failure tests that need a job's own process to die (SIGKILL, a sitecustomize fault) use it.

What the job used on this machine (local facts, not AWS's):
- cold: from its process tree (JobResult.cpu_seconds: the larger of os.wait4's rusage and
  psutil's sampled tree totals; peak_rss_bytes: the largest sampled sum of the tree's RSS,
  every 0.25 s);
- warm: cpu_seconds is the CPU time of the job's thread in the server (its Python work and
  py4j calls) plus the executorCpuTime and executorDeserializeCpuTime of the tasks of its Spark
  jobs (by its job tag, from Spark's status store). What the shared driver JVM spends planning
  and scheduling is not attributed to any job (on the cold path it was counted), nor is the JVM
  start-up; peak_rss_bytes is the server's tree (shared by every job running then) during the
  job, an upper bound rather than the job's own;
- both: storage_bytes is what it wrote; wall-clock time is per job (what the cost stand-in
  bills: GetJobRun's total and billed utilization come from the workers EMR Serverless would
  allocate for the job's Spark settings over its wall-clock time: moto_patches,
  pipeline_aws.cost.workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_runtime.warm_spark import JOB_ERROR, Outcome, WarmSpark
from pipeline_core.derived import INPUTS_FILE

INPUT_ARGS = {"--input", "--rules"}
# Input folders (a derived job's current model: a Spark ML writer's directory): downloaded whole.
INPUT_DIR_ARGS = {"--current-model"}
OUTPUT_DIR_ARGS = {"--output-root", "--quarantine"}
OUTPUT_FILE_ARGS = {"--metrics", "--quality"}
# spark-submit options that take a value and mean nothing for a local run
_SUBMIT_OPTS_WITH_VALUE = {"--deploy-mode", "--master", "--conf", "--py-files", "--jars",
                           "--files", "--archives", "--num-executors", "--executor-memory",
                           "--executor-cores", "--driver-memory", "--driver-cores", "--name",
                           "--class", "--packages", "--queue", "--properties-file"}
SPARK_MODE_ENV = "LOCAL_RUNTIME_SPARK"
SPARK_MODES = ("warm", "cold")


def spark_mode(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """LOCAL_RUNTIME_SPARK: `warm` (default) or `cold`; anything else is refused by name."""
    value = (os.environ if environ is None else environ).get(SPARK_MODE_ENV, "").strip()
    mode = value.lower() or "warm"
    if mode not in SPARK_MODES:
        raise ValueError(f"{SPARK_MODE_ENV}={value!r}: give one of {', '.join(SPARK_MODES)}")
    return mode


@dataclass
class JobResult:
    exit_code: int | None = None
    state: str = "SUBMITTED"
    details: str = ""
    log_tail: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    storage_bytes: int = 0
    work_dir: Path | None = None
    main_seconds: float | None = None  # warm: the time in the job's main() (its own work)
    main_started_at: float | None = None  # warm: when main() was called (epoch seconds)
    stage_seconds: float = 0.0  # downloading its inputs and code (before started_at)
    upload_seconds: float = 0.0  # uploading its outputs (after ended_at)
    # set once the job's run is over (its state final, its outputs uploaded): what a .sync task
    # waiting for it wakes on, instead of asking GetJobRun 20 times a second
    finished: threading.Event = field(default_factory=threading.Event, repr=False,
                                      compare=False)

    @property
    def wall_seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.time()) - self.started_at


def parse_spark_submit(args: list[str]) -> tuple[str, list[str], dict[str, str], list[str]]:
    """spark-submit argv -> (entry point, job args, --conf pairs, --py-files); others dropped."""
    args = list(args)
    if args and args[0].endswith("spark-submit"):
        args = args[1:]
    conf: dict[str, str] = {}
    py_files: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("--"):
        opt = args[i]
        if opt in _SUBMIT_OPTS_WITH_VALUE and i + 1 < len(args):
            value = args[i + 1]
            if opt == "--conf" and "=" in value:
                k, v = value.split("=", 1)
                conf[k] = v
            elif opt == "--py-files":
                py_files.extend(p for p in value.split(",") if p)
            i += 2
        else:
            i += 1
    if i >= len(args):
        raise ValueError(f"no entry point in spark-submit arguments {args}")
    return args[i], args[i + 1:], conf, py_files


def parse_submit_parameters(params: str | None) -> tuple[dict[str, str], list[str]]:
    if not params:
        return {}, []
    _, _, conf, py_files = parse_spark_submit([*shlex.split(params), "x.py"])
    return conf, py_files


@dataclass
class StagedJob:
    """A job ready to start: its arguments point at local files under `work`."""

    work: Path
    entry: Path
    args: list[str]
    uploads: list[tuple[Path, str]]  # (local output, s3:// URI), uploaded after success
    py_paths: list[Path]  # the --py-files, on the job's PYTHONPATH
    # (local folder, s3:// folder) of the staged folder arguments: what the job reports of
    # them in metrics.json is put back in S3 terms (`report_in_s3_terms`).
    folders: list[tuple[str, str]] = field(default_factory=list)
    # the s3:// output folders the job overwrites whole (OUTPUT_DIR_ARGS); under any other
    # output folder, each folder it writes is what it overwrites
    whole: set[str] = field(default_factory=set)


@dataclass
class SparkRunner:
    """Stages, runs and measures one job at a time per call; safe to use from many threads."""

    s3: Any  # a boto3 S3 client (moto)
    work_root: Path
    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    mode: str = field(default_factory=spark_mode)  # "warm" or "cold" (module docstring)
    server_dir: Path | None = None  # the warm server's; default <work_root's parent>/spark-server
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _warm: WarmSpark | None = None
    _warm_jobs: set[str] = field(default_factory=set)
    job_seconds_total: float = 0.0
    main_seconds_total: float = 0.0  # warm jobs' time in main(): the jobs' own work
    # every job run by this runner, in the order they started (what each phase took)
    results: dict[str, JobResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in SPARK_MODES:
            raise ValueError(f"SparkRunner mode {self.mode!r}: give one of "
                             f"{', '.join(SPARK_MODES)}")

    @property
    def warm_dir(self) -> Path:
        return self.server_dir or Path(self.work_root).parent / "spark-server"

    def warm_spark(self) -> WarmSpark:
        """The client of this work directory's warm Spark server (made on first use)."""
        with self._lock:
            if self._warm is None:
                self._warm = WarmSpark(self.warm_dir, self.python,
                                       {**self.base_env, **self.extra_env})
            return self._warm

    def _download(self, uri: str, dest: Path) -> Path:
        bucket, _, key = uri[len("s3://"):].partition("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(bucket, key, str(dest))
        return dest

    def _local_code(self, uri_or_path: str, code: Path) -> Path:
        if uri_or_path.startswith("s3://"):
            return self._download(uri_or_path, code / Path(uri_or_path).name)
        return Path(uri_or_path)

    def _upload_tree(self, local: Path, uri: str) -> int:
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if local.is_file():
            self.s3.upload_file(str(local), bucket, prefix)
            return 1
        n = 0
        if not local.exists():
            return 0
        for path in sorted(local.rglob("*")):
            if path.is_dir() or path.name.endswith(".crc"):
                continue
            rel = path.relative_to(local).as_posix()
            key = prefix.rstrip("/") + "/" + rel if prefix else rel
            self.s3.upload_file(str(path), bucket, key)
            n += 1
        return n

    def stage(self, job_id: str, entry_point: str, args: list[str], py_files: list[str]
              ) -> StagedJob:
        work = self.work_root / job_id
        (work / "in").mkdir(parents=True, exist_ok=True)
        (work / "out").mkdir(parents=True, exist_ok=True)
        code = work / "code"
        staged = StagedJob(work, self._local_code(entry_point, code), [], [],
                           [self._local_code(p, code) for p in py_files])
        i = 0
        seen: dict[str, int] = {}
        while i < len(args):
            if i + 1 < len(args) and args[i + 1].startswith("s3://"):
                # A batch repeats the per-partition options: each copy gets its own folder.
                seen[args[i]] = seen.get(args[i], 0) + 1
                staged.args += self._stage_argument(staged, args[i], args[i + 1],
                                                    seen[args[i]])
                i += 2
            else:
                staged.args.append(args[i])
                i += 1
        return staged

    def _stage_argument(self, staged: StagedJob, option: str, uri: str, copy: int = 1
                        ) -> list[str]:
        """`option uri` -> `option local-path`: inputs downloaded, outputs to upload noted."""
        name = option.lstrip("-") + ("" if copy == 1 else f"-{copy}")
        if option in INPUT_DIR_ARGS:
            local = staged.work / "in" / name
            self._download_prefix(uri, local)
            staged.folders.append((str(local) + "/", uri))
            return [option, str(local) + "/"]
        if option in OUTPUT_DIR_ARGS or (option not in INPUT_ARGS
                                         and option not in OUTPUT_FILE_ARGS
                                         and (uri.endswith("/") or "{table}" in uri)):
            local = staged.work / "out" / name
            if "{table}" in uri:
                # Mirrored from the bucket: a batch's partitions share their tables' folders
                # above the `{table}` placeholder, as they do in S3 (one write a table).
                head, _, tail = uri.partition("{table}")
                local = staged.work / "out" / "s3" / head[len("s3://"):]
            staged.uploads.append((local, uri))
            if option in OUTPUT_DIR_ARGS:
                staged.whole.add(uri)
                if "{table}" not in uri:
                    self._download_prefix(uri, local, create=False)
            local_dir = f"{local}/{{table}}{tail}" if "{table}" in uri else f"{local}/"
            staged.folders.append((local_dir, uri))
            return [option, local_dir]
        if option in OUTPUT_FILE_ARGS:
            local = staged.work / "out" / name / Path(uri).name
            local.parent.mkdir(parents=True, exist_ok=True)
            staged.uploads.append((local, uri))
            return [option, str(local)]
        local_input = str(self._download(uri, staged.work / "in" / name / Path(uri).name))
        if option == "--input" and Path(uri).name == INPUTS_FILE:
            self._stage_inputs_folders(staged, Path(local_input))
        if option == "--input":
            # The copy is of the object as it is now, as EMRFS would read it; the job checks
            # the object version against --input-source in S3 itself (AWS_ENDPOINT_URL_S3).
            return [option, local_input, "--input-source", uri]
        return [option, local_input]

    def _stage_inputs_folders(self, staged: StagedJob, inputs: Path) -> None:
        """A derived run's inputs.json names s3:// folders of curated parquet: download each
        and point the staged copy at the local folders (the S3 object, its ETag checked by
        the job against --input-source, is unchanged)."""
        document = json.loads(inputs.read_text())
        for n, folders in enumerate((document.get("tables") or {}).values()):
            for i, folder in enumerate(folders):
                uri = str(folder["uri"])
                if not uri.startswith("s3://"):
                    continue
                local = staged.work / "in" / "upstream" / f"{n}-{i}"
                self._download_prefix(uri, local)
                folder["uri"] = str(local) + "/"
        inputs.write_text(json.dumps(document))

    def _keys(self, uri: str) -> tuple[str, str, list[str]]:
        """The bucket, the folder's prefix (ending in "/") and the keys of every object under
        the s3:// folder `uri`."""
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix else ""  # run_id=x/ is not run_id=x-r2/
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return bucket, prefix, [o["Key"] for page in pages for o in page.get("Contents", [])]

    def _download_prefix(self, uri: str, local: Path, *, create: bool = True) -> None:
        """Every object under the s3:// folder `uri`, into `local` (keys relative to it); with
        `create` False, `local` is made only when there is one (an empty prefix is no folder)."""
        bucket, prefix, keys = self._keys(uri)
        if create:
            local.mkdir(parents=True, exist_ok=True)
        for key in keys:
            self._download(f"s3://{bucket}/{key}", local / key[len(prefix):])

    def _replace_tree(self, local: Path, uri: str) -> None:
        """The S3 folder `uri` becomes the local folder: what Spark's overwrite leaves."""
        bucket, _, keys = self._keys(uri)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            self.s3.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
        self._upload_tree(local, uri)

    def _upload_outputs(self, staged: StagedJob) -> None:
        for local, uri in staged.uploads:
            if not local.exists():
                continue  # nothing written: nothing overwritten
            if local.is_file():
                self._upload_tree(local, uri)
            elif "{table}" in uri:
                below = uri.partition("{table}")[2].strip("/")  # this run's folder of a table
                for table_dir in sorted(p for p in local.iterdir() if p.is_dir()):
                    if (written := table_dir / below if below else table_dir).is_dir():
                        self._replace_tree(written, uri.replace("{table}", table_dir.name))
            elif uri in staged.whole:
                self._replace_tree(local, uri)
            else:
                for written in sorted(local.iterdir()):
                    if written.is_dir():
                        self._replace_tree(written, uri.rstrip("/") + f"/{written.name}/")
                    else:
                        self._upload_tree(written, uri.rstrip("/") + f"/{written.name}")

    def run(self, job_id: str, entry_point: str, args: list[str], *, py_files: list[str],
            conf: dict[str, str], result: JobResult, timeout_s: float | None = None) -> JobResult:
        """Stage, run and upload; fills `result` in place (state RUNNING then SUCCESS/FAILED)."""
        with self._lock:
            self.results[job_id] = result
        t0 = time.monotonic()
        try:
            staged = self.stage(job_id, entry_point, args, py_files)
        except Exception as e:
            return _failed(result, f"staging failed: {e}")
        finally:
            result.stage_seconds = time.monotonic() - t0
        result.work_dir = staged.work
        result.started_at = time.time()
        if self.mode == "warm":
            self._run_warm(job_id, staged, conf, result, timeout_s)
            return self._conclude(result, staged)
        try:
            proc = self._launch(staged, conf)
        except OSError as e:
            return _failed(result, f"could not start the job: {e}")
        self._wait(job_id, proc, result, timeout_s)
        return self._conclude(result, staged)

    def _job_env(self, staged: StagedJob, conf: dict[str, str]) -> dict[str, str]:
        env = {**self.base_env, **self.extra_env}
        pypath = [str(p) for p in staged.py_paths] + [env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in pypath if p)
        env["PYSPARK_PYTHON"] = self.python
        env["PYSPARK_DRIVER_PYTHON"] = self.python
        env["LOCAL_RUNTIME_SPARK_CONF"] = " ".join(f"{k}={v}" for k, v in conf.items())
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        return env

    def _run_warm(self, job_id: str, staged: StagedJob, conf: dict[str, str],
                  result: JobResult, timeout_s: float | None) -> None:
        """Run the job on the warm server; its outcome and what it used into `result`."""
        for name in ("stdout.log", "stderr.log"):
            (staged.work / name).write_bytes(b"")
        (staged.work / "command.txt").write_text(
            f"warm local Spark ({self.warm_dir}): main({staged.args!r}) of {staged.entry}")
        result.state = "RUNNING"
        sampler: _ServerSampler | None = None
        try:
            warm = self.warm_spark()
        except ValueError as e:  # LOCAL_RUNTIME_SPARK_IDLE_MINUTES refused
            outcome = Outcome(1, lost=str(e))
        else:
            with self._lock:
                self._warm_jobs.add(job_id)
            try:
                sampler = _ServerSampler(warm, job_id)
                sampler.start()
                outcome = warm.run(job_id, staged.entry, staged.args, staged.work,
                                   self._job_env(staged, conf), staged.py_paths, timeout_s)
            finally:
                with self._lock:
                    self._warm_jobs.discard(job_id)
                if sampler is not None:
                    sampler.stop()
        if outcome.lost:
            with open(staged.work / "stderr.log", "a") as err:
                print(f"{JOB_ERROR} {outcome.lost}", file=err)
        result.ended_at = time.time()
        result.exit_code = outcome.exit_code
        result.cpu_seconds = outcome.thread_cpu_seconds + outcome.executor_cpu_seconds
        result.peak_rss_bytes = sampler.peak_rss if sampler is not None else 0
        result.main_seconds = outcome.main_seconds
        result.main_started_at = outcome.main_started_at
        with self._lock:
            self.job_seconds_total += result.wall_seconds
            self.main_seconds_total += outcome.main_seconds or 0.0

    def _launch(self, staged: StagedJob, conf: dict[str, str]) -> subprocess.Popen:
        """Start the job in its own session, stdout and stderr to files in its work dir."""
        cmd = [self.python, str(staged.entry), *staged.args]
        (staged.work / "command.txt").write_text(shlex.join(cmd))
        with open(staged.work / "stdout.log", "wb") as stdout, \
                open(staged.work / "stderr.log", "wb") as stderr:
            return subprocess.Popen(cmd, cwd=staged.work, env=self._job_env(staged, conf),
                                    stdout=stdout, stderr=stderr, start_new_session=True)

    def _wait(self, job_id: str, proc: subprocess.Popen, result: JobResult,
              timeout_s: float | None) -> None:
        """Wait for the job (cancel() may kill it meanwhile) and record what it used."""
        with self._lock:
            self._procs[job_id] = proc
        result.state = "RUNNING"
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        try:
            _, status, rusage = _wait4(proc, timeout_s)
            exit_code = os.waitstatus_to_exitcode(status) if status is not None else -9
        finally:
            sampler.stop()
            with self._lock:
                self._procs.pop(job_id, None)
        proc.returncode = exit_code
        result.ended_at = time.time()
        result.exit_code = exit_code
        cpu_rusage = (rusage.ru_utime + rusage.ru_stime) if rusage else 0.0
        result.cpu_seconds = max(cpu_rusage, sampler.cpu_seconds)
        result.peak_rss_bytes = max(sampler.peak_rss, (rusage.ru_maxrss * 1024) if rusage else 0)
        with self._lock:
            self.job_seconds_total += result.wall_seconds

    def _conclude(self, result: JobResult, staged: StagedJob) -> JobResult:
        """The job's outcome from its exit code; the outputs uploaded when it succeeded."""
        work = staged.work
        result.storage_bytes = sum(p.stat().st_size for p in (work / "out").rglob("*")
                                   if p.is_file())
        result.log_tail = _tail(work / "stderr.log") or _tail(work / "stdout.log")
        # Details before the final state, always: get_job_run reads `result` from another
        # thread, and a FAILED run seen before its details would lose its cause (seen once
        # under load: the ledger said "Job run FAILED" instead of the job's error).
        if result.state in ("CANCELLING", "CANCELLED"):
            result.details = "Job run was cancelled."
            result.state = "CANCELLED"
            return result
        if result.exit_code != 0:
            result.details = failure_details(result.exit_code, work / "stderr.log")
            result.state = "FAILED"
            return result
        t0 = time.monotonic()
        try:
            report_in_s3_terms(staged)
            self._upload_outputs(staged)
        except Exception as e:
            result.details, result.state = f"uploading outputs failed: {e}", "FAILED"
            return result
        finally:
            result.upload_seconds = time.monotonic() - t0
        result.details = ""
        result.state = "SUCCESS"
        return result

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            proc = self._procs.get(job_id)
            warm = self._warm if job_id in self._warm_jobs else None
        if warm is not None:
            return warm.cancel(job_id)
        if proc is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        return True

    def job_seconds(self) -> float:
        with self._lock:
            return self.job_seconds_total


def report_in_s3_terms(staged: StagedJob) -> None:
    """The job's metrics.json names the folders it was given (its outputs, a model it saved
    under --model-root, the --current-model it read): on EMR those are the s3:// URIs, and the
    pipeline keeps them (the ledger's model path is the next run's --current-model). Here the
    job saw local copies, so each staged folder's path is put back as its S3 URI (a
    `{table}` folder per table)."""
    for report, uri in staged.uploads:
        if not uri.endswith("/metrics.json") or not report.is_file():
            continue
        text = report.read_text()
        for local, s3_uri in staged.folders:
            if "{table}" in local:
                head, _, tail = local.partition("{table}")
                text = re.sub(re.escape(json.dumps(head)[1:-1]) + r"([A-Za-z0-9_]+)"
                              + re.escape(json.dumps(tail)[1:-1]), _table_uri(s3_uri), text)
            else:
                text = text.replace(json.dumps(local)[1:-1], json.dumps(s3_uri)[1:-1])
        report.write_text(text)


def _table_uri(uri: str) -> Callable[[re.Match[str]], str]:
    """A `{table}` folder's S3 URI for the table a match names."""
    return lambda match: uri.replace("{table}", match.group(1))


def _failed(result: JobResult, details: str) -> JobResult:
    result.details, result.state = details, "FAILED"
    result.ended_at = time.time()
    return result


def _wait4(proc: subprocess.Popen, timeout_s: float | None) -> tuple[int, int | None, Any]:
    deadline = time.monotonic() + timeout_s if timeout_s else None
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return pid, status, rusage
        if deadline and time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)


class _TreeSampler(threading.Thread):
    """Samples the CPU time and RSS of a process tree with psutil (if installed)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self._stop_evt = threading.Event()
        self.cpu_seconds = 0.0
        self.peak_rss = 0
        self._cpu_by_pid: dict[int, float] = {}

    def run(self) -> None:
        self.run_until(self._stop_evt)

    def run_until(self, stop: threading.Event) -> None:
        try:
            import psutil
        except ImportError:
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            rss = 0
            for p in procs:
                try:
                    t = p.cpu_times()
                    self._cpu_by_pid[p.pid] = t.user + t.system
                    rss += p.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self.cpu_seconds = sum(self._cpu_by_pid.values())
            stop.wait(0.25)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=2)


class _ServerSampler(threading.Thread):
    """The peak RSS of the warm server's process tree while one job runs on it."""

    def __init__(self, warm: WarmSpark, job_id: str):
        super().__init__(daemon=True)
        self._warm = warm
        self._job_id = job_id
        self._stop_evt = threading.Event()
        self._tree: _TreeSampler | None = None
        self.peak_rss = 0

    def run(self) -> None:
        while not self._stop_evt.wait(0.1):
            pid = self._warm.server_pid(self._job_id)
            if pid is not None:
                self._tree = _TreeSampler(pid)
                self._tree.run_until(self._stop_evt)
                self.peak_rss = self._tree.peak_rss
                return

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=2)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


_EXCEPTION_LINE = re.compile(r"^(?:Caused by: |Exception in thread \"[^\"]*\" |: )?"
                             r"(?:[a-z_][\w$]*\.)*[A-Z][\w$]*(?:Exception|Error)(?::|$)")
_LAST_EXCEPTIONS = 3


def last_exceptions(text: str) -> list[str]:
    """What EMR Serverless quotes as a failed job's "last few exceptions": the job's own
    `JOB ERROR:` line when it wrote one (it names the cause), else the last exception lines of
    its stderr (Python's and the JVM's, `Caused by:` included), oldest first."""
    lines = [line.rstrip() for line in text.splitlines()]
    job_errors = [line for line in lines if line.startswith("JOB ERROR:")]
    if job_errors:
        return job_errors[-1:]
    return [line for line in lines if _EXCEPTION_LINE.match(line)][-_LAST_EXCEPTIONS:]


def failure_details(exit_code: int | None, stderr_log: Path) -> str:
    """GetJobRun's stateDetails for a failed job, in EMR Serverless's wording, naming the local
    log file where AWS says "configured logging destination". A job killed by a signal shows a
    negative exit code and the signal's name (the job wrote nothing about it)."""
    try:
        text = stderr_log.read_text(errors="replace")
    except OSError:
        text = ""
    exceptions = last_exceptions(text)
    if exit_code is not None and exit_code < 0:
        with contextlib.suppress(ValueError):
            exceptions.append(f"killed by signal {signal.Signals(-exit_code).name}")
    return (f"Job execution failed, please check complete logs in {stderr_log}. "
            f"ExitCode: {exit_code}. Last few exceptions: " + "\n".join(exceptions))
