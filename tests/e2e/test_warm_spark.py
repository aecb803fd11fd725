"""The warm local Spark (local_runtime.warm_spark, spark_server) with real Spark: jobs reuse one
server and cannot see each other's session state, a job that breaks its Spark (or whose server
dies) never poisons the next run, jobs run at once and one can be cancelled alone, a code change
is picked up, `spark stop` and idleness end the server, and the cold path gives the same exit
codes.

The jobs are small probe entry points on the product's job code archive (spark_jobs +
pipeline_core, as the local deployment publishes it), run through SparkRunner as the EMR
stand-ins run them. Each group of tests has its own work directory and so its own server,
stopped at the end.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from local_cli import REPO, run_cli

from local_runtime.spark import JobResult, SparkRunner
from local_runtime.warm_spark import process_alive, server_status, stop_server

pytestmark = pytest.mark.e2e

PROBE = '''
import os, sys, tempfile, time
from pathlib import Path
from spark_jobs.common.session import get_session

def _wait_for(path, seconds=120):
    deadline = time.monotonic() + seconds
    while not Path(path).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

def main(argv):
    spark, created = get_session("probe")
    print(f"pid={os.getpid()} created={created}", flush=True)
    cmd = argv[0]
    if cmd == "leak":
        spark.conf.set("spark.sql.shuffle.partitions", "7")
        spark.range(3).createOrReplaceTempView("leaky_view")
        spark.udf.register("leaky_udf", lambda x: x)
        spark.range(10).cache().count()
        return 0
    if cmd == "check":
        leaks = []
        if spark.conf.get("spark.sql.shuffle.partitions") == "7":
            leaks.append("sql conf")
        if spark.catalog.tableExists("leaky_view"):
            leaks.append("temp view")
        if any(f.name == "leaky_udf" for f in spark.catalog.listFunctions()):
            leaks.append("function")
        if spark.sparkContext._jsc.getPersistentRDDs().size():
            leaks.append("cached data")
        print("tmp=" + tempfile.gettempdir())
        print("env=" + os.environ.get("WARM_PROBE", ""))
        print("count=%d" % spark.range(1000).count())
        if leaks:
            print("JOB ERROR: leaked " + ", ".join(leaks), file=sys.stderr)
            return 5
        return 0
    if cmd == "return":
        return int(argv[1])
    if cmd == "exit":
        raise SystemExit(int(argv[1]))
    if cmd == "raise":
        raise RuntimeError("the probe failed on purpose")
    if cmd == "stop-context":
        spark.sparkContext.stop()
        return 0
    if cmd == "kill-jvm":
        os.kill(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid(), 9)
        time.sleep(1)
        return spark.range(5).count() and 0
    if cmd == "meet":  # arrive at argv[1], then wait for the other job at argv[2]
        Path(argv[1]).touch()
        if not _wait_for(argv[2]):
            print("JOB ERROR: the other job never came", file=sys.stderr)
            return 6
        return 0 if spark.range(100).count() == 100 else 7
    if cmd == "long":
        Path(argv[1]).touch()
        spark.sql("select count(*) from range(0, 1000000000000, 1, 2)").collect()
        return 0
    if cmd == "sleep":
        Path(argv[1]).touch()
        time.sleep(float(argv[2]))
        return 0
    if cmd in ("threads", "long-threads"):  # a batch's way: tasks on threads of the job
        from spark_jobs.common.session import run_concurrently

        def task(n):
            def run(session):
                print(f"task {n} tmp={tempfile.gettempdir()}", flush=True)
                print(f"task {n} on stderr", file=sys.stderr, flush=True)
                if cmd == "long-threads":
                    Path(f"{argv[1]}-{n}").touch()
                    session.sql("select count(*) from range(0, 1000000000000, 1, 2)").collect()
                return n
            return run

        print(f"results={run_concurrently(spark, [task(0), task(1)], 2)}", flush=True)
        return 0
    if cmd == "probe-module":
        from spark_jobs import _warm_probe
        print(f"probe={_warm_probe.VALUE}")
        return 0
    return 9

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def _archive(path: Path, probe_value: int | None = None) -> Path:
    """The job code archive as the local deployment builds it (stack._job_archive), plus
    spark_jobs/_warm_probe.py when `probe_value` is given."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in ("spark_jobs", "pipeline_core"):
            for file in sorted((REPO / package).rglob("*.py")):
                if "__pycache__" not in file.parts:
                    zf.write(file, file.relative_to(REPO).as_posix())
        if probe_value is not None:
            zf.writestr("spark_jobs/_warm_probe.py", f"VALUE = {probe_value}\n")
    return path


class Probe:
    """A SparkRunner of its own work directory running the probe entry point."""

    def __init__(self, root: Path, mode: str = "warm", env: dict[str, str] | None = None):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.entry = root / "probe.py"
        self.entry.write_text(PROBE)
        self.code = _archive(root / "spark_jobs.zip")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        self.runner = SparkRunner(None, root / "work" / "jobs", base_env={**base_env,
                                                                          **(env or {})},
                                  mode=mode)

    def run(self, *args: str, job_id: str | None = None, code: Path | None = None,
            result: JobResult | None = None, timeout_s: float | None = None) -> JobResult:
        result = result or JobResult()
        self.runner.run(job_id or f"job-{uuid.uuid4().hex[:8]}", str(self.entry), list(args),
                        py_files=[str(code or self.code)], conf={}, result=result,
                        timeout_s=timeout_s)
        return result

    @staticmethod
    def out(result: JobResult) -> str:
        assert result.work_dir is not None
        return (result.work_dir / "stdout.log").read_text()

    @staticmethod
    def err(result: JobResult) -> str:
        assert result.work_dir is not None
        return (result.work_dir / "stderr.log").read_text()

    def pid(self, result: JobResult) -> int:
        found = re.search(r"pid=(\d+)", self.out(result))
        assert found, (self.out(result), self.err(result))
        return int(found.group(1))

    def stop(self) -> None:
        stop_server(self.runner.warm_dir)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    started = Probe(tmp_path_factory.mktemp("warm"), env={"WARM_PROBE": "probe-env"})
    yield started
    started.stop()


@pytest.fixture
def own_probe(tmp_path):
    """A probe with a server of its own (for tests that break or replace their server)."""
    started = Probe(tmp_path / "own")
    yield started
    started.stop()


# -- reuse and isolation ---------------------------------------------------------------------------


def test_later_jobs_reuse_one_server_and_see_none_of_an_earlier_jobs_session_state(probe):
    first = probe.run("leak")
    assert first.state == "SUCCESS", (first.details, probe.err(first))
    second = probe.run("check")
    assert second.state == "SUCCESS", (second.details, probe.err(second))
    assert probe.pid(second) == probe.pid(first)
    assert "created=False" in probe.out(second)  # the job never owns (or stops) the context
    out = probe.out(second)
    assert f"tmp={second.work_dir / 'tmp'}" in out  # its own temporary folder
    assert "env=probe-env" in out  # its own environment
    assert second.cpu_seconds > 0 and second.peak_rss_bytes > 0
    status = server_status(probe.runner.warm_dir)
    assert status is not None and status["pid"] == probe.pid(first)
    assert status["jobs_run"] >= 2


@pytest.mark.parametrize(("args", "code"), [(("return", "0"), 0), (("return", "3"), 3),
                                            (("exit", "2"), 2), (("raise",), 1)])
def test_the_exit_code_is_what_sys_exit_of_main_gives(probe, args, code):
    res = probe.run(*args)
    assert res.exit_code == code, (res.details, probe.err(res))
    assert res.state == ("SUCCESS" if code == 0 else "FAILED")
    if args[0] == "raise":
        assert "RuntimeError: the probe failed on purpose" in probe.err(res)
        assert "ExitCode: 1" in res.details


def test_two_jobs_run_at_once(probe, tmp_path):
    a, b = tmp_path / "a-arrived", tmp_path / "b-arrived"
    results: dict[str, JobResult] = {}
    threads = [threading.Thread(target=lambda n=n, mine=mine, other=other: results.__setitem__(
        n, probe.run("meet", str(mine), str(other)))) for n, mine, other in
        (("a", a, b), ("b", b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert {n: r.state for n, r in results.items()} == {"a": "SUCCESS", "b": "SUCCESS"}, \
        {n: probe.err(r) for n, r in results.items()}
    assert probe.pid(results["a"]) == probe.pid(results["b"])


def test_cancelling_one_job_leaves_the_other_running(probe, tmp_path):
    long_started, other_arrived = tmp_path / "long", tmp_path / "other"
    go = tmp_path / "go"
    long_result, other_result = JobResult(), JobResult()
    long_id = f"long-{uuid.uuid4().hex[:6]}"
    threads = [
        threading.Thread(target=probe.run, args=("long", str(long_started)),
                         kwargs={"job_id": long_id, "result": long_result}),
        threading.Thread(target=probe.run, args=("meet", str(other_arrived), str(go)),
                         kwargs={"result": other_result})]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while not (long_started.exists() and other_arrived.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # the long query's tasks are running
    long_result.state = "CANCELLING"  # as moto's cancel_job_run stand-in sets it
    t0 = time.monotonic()
    assert probe.runner.cancel(long_id)
    threads[0].join(timeout=60)
    assert not threads[0].is_alive()
    assert time.monotonic() - t0 < 25  # its Spark job was cancelled, not its server killed
    assert long_result.state == "CANCELLED" and long_result.exit_code == -15
    go.touch()
    threads[1].join(timeout=120)
    assert other_result.state == "SUCCESS", (other_result.details, probe.err(other_result))
    assert probe.pid(other_result) == probe.pid(long_result)


def test_threads_a_job_starts_write_to_its_files_and_are_cancelled_with_it(probe, tmp_path):
    """A batch's partitions run on threads of the job (run_concurrently): their output and
    temporary files are the job's, and a cancel reaches their Spark jobs (the job's tag)."""
    res = probe.run("threads")
    assert res.state == "SUCCESS", (res.details, probe.err(res))
    out, err = probe.out(res), probe.err(res)
    assert "results=[0, 1]" in out
    for n in (0, 1):
        assert f"task {n} tmp={res.work_dir / 'tmp'}" in out and f"task {n} on stderr" in err
    started, job_id, result = tmp_path / "started", f"threads-{uuid.uuid4().hex[:6]}", JobResult()
    thread = threading.Thread(target=probe.run, args=("long-threads", str(started)),
                              kwargs={"job_id": job_id, "result": result})
    thread.start()
    deadline = time.monotonic() + 120
    while not all(Path(f"{started}-{n}").exists() for n in (0, 1)):
        assert time.monotonic() < deadline, "the job's threads never started"
        time.sleep(0.1)
    time.sleep(1)  # both long queries are running
    result.state = "CANCELLING"
    assert probe.runner.cancel(job_id)
    thread.join(timeout=60)
    assert not thread.is_alive(), "the cancel did not reach the threads' Spark jobs"
    assert (result.state, result.exit_code) == ("CANCELLED", -15), probe.err(result)
    after = probe.run("check")  # the server stays, nothing of the job left running
    assert after.state == "SUCCESS" and probe.pid(after) == probe.pid(result)


def test_a_job_past_its_timeout_is_cancelled_and_fails_and_the_server_stays(probe, tmp_path):
    res = probe.run("long", str(tmp_path / "long"), timeout_s=3)
    assert (res.state, res.exit_code) == ("FAILED", -15), (res.details, probe.err(res))
    assert "killed by signal SIGTERM" in res.details
    assert res.main_seconds is not None and res.main_seconds < 25  # cancelled, not left to run
    after = probe.run("check")
    assert after.state == "SUCCESS" and probe.pid(after) == probe.pid(res)


# -- a broken Spark never poisons the next run -----------------------------------------------------


def test_a_job_that_stops_the_spark_context_does_not_poison_the_next_run(own_probe):
    broken = own_probe.run("stop-context")
    assert "the server retires" in own_probe.err(broken)
    after = own_probe.run("check")
    assert after.state == "SUCCESS", (after.details, own_probe.err(after))
    assert own_probe.pid(after) != own_probe.pid(broken)


def test_a_job_that_kills_its_jvm_fails_and_the_next_run_gets_a_fresh_server(own_probe):
    broken = own_probe.run("kill-jvm")
    assert broken.state == "FAILED" and broken.exit_code == 1
    after = own_probe.run("check")
    assert after.state == "SUCCESS", (after.details, own_probe.err(after))
    assert own_probe.pid(after) != own_probe.pid(broken)


def test_a_job_whose_server_is_killed_fails_with_the_cause_and_is_not_rerun(own_probe, tmp_path):
    started = tmp_path / "sleeping"
    result = JobResult()
    thread = threading.Thread(target=own_probe.run, args=("sleep", str(started), "60"),
                              kwargs={"result": result})
    thread.start()
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    status = server_status(own_probe.runner.warm_dir)
    assert status is not None
    os.killpg(status["pid"], 9)
    thread.join(timeout=60)
    assert result.state == "FAILED" and result.exit_code == 1
    line = next(x for x in own_probe.err(result).splitlines() if x.startswith("JOB ERROR:"))
    assert f"server (pid {status['pid']}) ended while the job ran" in line, line
    assert "killed by signal SIGKILL" in line and "not re-run" in line, line
    assert f"JOB ERROR: the local warm Spark server (pid {status['pid']})" in result.details
    assert own_probe.out(result).count("pid=") == 1  # it ran once
    after = own_probe.run("check")
    assert after.state == "SUCCESS", (after.details, own_probe.err(after))


# -- code changes, stop, idleness, the cold path ---------------------------------------------------


def test_a_code_change_is_picked_up(own_probe):
    v1 = _archive(own_probe.root / "v1.zip", probe_value=1)
    v2 = _archive(own_probe.root / "v2.zip", probe_value=2)
    first = own_probe.run("probe-module", code=v1)
    assert "probe=1" in own_probe.out(first), own_probe.err(first)
    second = own_probe.run("probe-module", code=v2)  # an edited job package: a new server
    assert "probe=2" in own_probe.out(second), own_probe.err(second)
    assert own_probe.pid(second) != own_probe.pid(first)
    own_probe.entry.write_text(PROBE.replace('print(f"probe={', 'print(f"edited probe={'))
    third = own_probe.run("probe-module", code=v2)  # an edited entry file: the same server
    assert "edited probe=2" in own_probe.out(third), own_probe.err(third)
    assert own_probe.pid(third) == own_probe.pid(second)


def test_spark_stop_stops_the_server_and_the_next_run_starts_one(own_probe):
    work_dir = own_probe.runner.warm_dir.parent
    first = own_probe.run("return", "0")
    status = run_cli("spark", "status", "--work-dir", work_dir, timeout=60)
    assert status.returncode == 0 and f"pid {own_probe.pid(first)}" in status.stdout, status
    stop = run_cli("spark", "stop", "--work-dir", work_dir, timeout=60)
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop
    assert not process_alive(own_probe.pid(first))
    after = run_cli("spark", "status", "--work-dir", work_dir, timeout=60)
    assert after.returncode == 1 and "not running" in after.stdout, after
    again = own_probe.run("return", "0")
    assert again.state == "SUCCESS" and own_probe.pid(again) != own_probe.pid(first)


def test_an_idle_server_exits_by_itself(tmp_path):
    idle = Probe(tmp_path / "idle", env={"LOCAL_RUNTIME_SPARK_IDLE_MINUTES": "0.05"})
    try:
        res = idle.run("return", "0")
        assert res.state == "SUCCESS", idle.err(res)
        pid = idle.pid(res)
        deadline = time.monotonic() + 90
        while (server_status(idle.runner.warm_dir) is not None or process_alive(pid)) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert server_status(idle.runner.warm_dir) is None  # it retired (state file gone)
        assert not process_alive(pid)  # and ended
    finally:
        idle.stop()


def test_the_cold_path_runs_the_same_entry_point_in_a_process_of_its_own(tmp_path):
    cold = Probe(tmp_path / "cold", mode="cold", env={"WARM_PROBE": "cold-env"})
    res = cold.run("exit", "2")
    assert (res.state, res.exit_code) == ("FAILED", 2)
    assert "created=True" in cold.out(res)
    assert server_status(cold.runner.warm_dir) is None  # no server was started
