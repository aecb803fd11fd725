"""The warm local Spark's pure parts (no Spark, no sockets): the settings it reads, the identity
of the job code, sys.exit's exit-code rule, the per-job environment gate and the entry loader.
The server with real Spark is tested in tests/e2e/test_warm_spark.py."""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from local_runtime.spark import SparkRunner, spark_mode
from local_runtime.spark_server import EnvGate, Job, exit_code_of, load_entry
from local_runtime.warm_spark import code_hash, idle_seconds


def test_the_mode_is_warm_by_default_cold_on_request_and_anything_else_is_refused():
    assert spark_mode({}) == "warm"
    assert spark_mode({"LOCAL_RUNTIME_SPARK": "cold"}) == "cold"
    assert spark_mode({"LOCAL_RUNTIME_SPARK": " Warm "}) == "warm"
    with pytest.raises(ValueError, match=r"LOCAL_RUNTIME_SPARK='lukewarm': give one of warm, cold"):
        spark_mode({"LOCAL_RUNTIME_SPARK": "lukewarm"})
    with pytest.raises(ValueError, match="mode 'hot'"):
        SparkRunner(None, Path("/nonexistent"), mode="hot")


def test_the_idle_limit_is_ten_minutes_unless_set_and_must_be_a_positive_number():
    assert idle_seconds({}) == 600
    assert idle_seconds({"LOCAL_RUNTIME_SPARK_IDLE_MINUTES": "0.5"}) == 30
    for bad in ("0", "-1", "soon", "inf", "nan"):
        with pytest.raises(ValueError, match="LOCAL_RUNTIME_SPARK_IDLE_MINUTES"):
            idle_seconds({"LOCAL_RUNTIME_SPARK_IDLE_MINUTES": bad})


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            zf.writestr(info, text)
    return path


def test_the_code_hash_follows_the_bytes_of_the_job_code(tmp_path):
    a = _zip(tmp_path / "a.zip", {"spark_jobs/x.py": "VALUE = 1\n"})
    (tmp_path / "elsewhere").mkdir()
    same = _zip(tmp_path / "elsewhere" / "a.zip", {"spark_jobs/x.py": "VALUE = 1\n"})
    edited = _zip(tmp_path / "b.zip", {"spark_jobs/x.py": "VALUE = 2\n"})
    assert code_hash([a]) == code_hash([same])
    assert code_hash([a]) != code_hash([edited])
    tree = tmp_path / "tree" / "spark_jobs"
    tree.mkdir(parents=True)
    (tree / "x.py").write_text("VALUE = 1\n")
    before = code_hash([tree])
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert code_hash([tree]) == before  # compiled caches are not code
    (tree / "x.py").write_text("VALUE = 3\n")
    assert code_hash([tree]) != before


@pytest.mark.parametrize(("value", "code"), [(None, 0), (0, 0), (3, 3), (256, 0), (-1, 255),
                                             (True, 1), ("bad input", 1)])
def test_exit_codes_are_those_sys_exit_gives_a_process(value, code):
    """`sys.exit(arg)`: None is 0, an integer is the status (the OS keeps its low 8 bits),
    anything else is printed to stderr and the status is 1 (Python docs, "sys.exit",
    https://docs.python.org/3/library/sys.html#sys.exit)."""
    err = io.StringIO()
    assert exit_code_of(value, err) == code
    if isinstance(value, str):
        assert err.getvalue() == "bad input\n"


def test_jobs_with_the_same_environment_run_together_and_a_different_one_waits(monkeypatch):
    monkeypatch.setenv("WARM_GATE_PROBE", "server")
    gate = EnvGate(dict(os.environ))
    first_in, release_first = threading.Event(), threading.Event()
    seen: list[tuple[str, str | None]] = []

    def job(name: str, value: str, hold: threading.Event | None = None) -> None:
        with gate.applied({**os.environ, "WARM_GATE_PROBE": value, "PYTHONPATH": name}):
            seen.append((name, os.environ.get("WARM_GATE_PROBE")))
            if hold is not None:
                first_in.set()
                hold.wait(10)

    a = threading.Thread(target=job, args=("a", "one", release_first))
    a.start()
    assert first_in.wait(10)
    same = threading.Thread(target=job, args=("same", "one"))
    same.start()
    same.join(5)
    assert not same.is_alive()  # the same differences: no wait
    other = threading.Thread(target=job, args=("other", "two"))
    other.start()
    time.sleep(0.3)
    assert [n for n, _ in seen] == ["a", "same"]  # a conflicting environment waits
    release_first.set()
    other.join(5)
    a.join(5)
    assert seen == [("a", "one"), ("same", "one"), ("other", "two")]
    assert gate.differences({**os.environ, "PYTHONPATH": "x"}) == (("WARM_GATE_PROBE", "two"),)


def test_an_entry_point_without_main_is_refused_by_name(tmp_path):
    entry = tmp_path / "script.py"
    entry.write_text("print('a script, no main')\n")
    with pytest.raises(ImportError, match=r"defines no main\(argv\).*LOCAL_RUNTIME_SPARK=cold"):
        load_entry(Job("j1", str(entry), [], tmp_path, {}))
    entry.write_text("def main(argv):\n    return len(argv)\n")
    assert load_entry(Job("j2", str(entry), [], tmp_path, {})).main(["a", "b"]) == 2
