"""`python -m local_runtime run --dir DIR --dataset NAME`, checked before anything starts: the
dataset must exist, DIR must hold at least one file named like the dataset's keys (others are
named and left out), and --dir goes with --dataset alone. Each mistake is one `error:` line and
exit code 2 (local_runtime.cli), before moto, Spark or the warehouse start."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_runtime import burst, cli
from local_runtime.stack import LocalRuntimeError
from pipeline_core.catalog import load_catalog


def test_files_named_like_keys_run_and_the_others_are_left_out(tmp_path: Path):
    for name in ("2011-01-02.csv", "2011-01-01.csv.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    request = burst.plan_dir(tmp_path, "online_retail", load_catalog())
    assert [k for _, k in request.files] == ["online_retail/2011-01-01.csv.gz",
                                            "online_retail/2011-01-02.csv"]
    assert request.left_out == ["notes.txt"]


@pytest.mark.parametrize("name, setup, message", [
    ("nope", lambda d: None, "unknown dataset 'nope'"),
    ("online_retail", lambda d: (d / "a.txt").write_bytes(b"x"), "has no file whose name"),
])
def test_bad_requests_are_refused(tmp_path: Path, name, setup, message):
    setup(tmp_path)
    with pytest.raises(LocalRuntimeError, match=message):
        burst.plan_dir(tmp_path, name, load_catalog())


def test_a_missing_directory_is_refused(tmp_path: Path):
    with pytest.raises(LocalRuntimeError, match="is not a directory"):
        burst.plan_dir(tmp_path / "missing", "online_retail", load_catalog())


@pytest.mark.parametrize("extra, message", [
    ([], "goes with --dataset"),
    (["--dataset", "online_retail", "--key", "online_retail/2011-01-01.csv"], "takes no --key"),
    (["--dataset", "online_retail", "--rerun"], "takes no --rerun"),
])
def test_the_command_line_is_checked_first(tmp_path: Path, capsys, extra, message):
    (tmp_path / "2011-01-01.csv").write_bytes(b"x")
    args = ["run", "--work-dir", str(tmp_path / "work")]
    args += ["--dir", str(tmp_path)] if "--dataset" in extra or not extra else []
    code = cli.main(args + extra)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "work").exists(), "nothing started"
