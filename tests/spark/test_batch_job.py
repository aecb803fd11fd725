"""A batch: several raw files in one job (one Spark application, the framework's
`RawJob.run_batch`): each partition's outputs, metrics and rules equal its single-file run,
and a refused file fails alone."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from spark_helpers import REPO, SAMPLES

pytestmark = pytest.mark.spark

DAYS = ("2010-12-01", "2010-12-02", "2010-12-03")
SAME = ("lines_read", "lines_written", "lines_quarantined", "duplicates", "blank_lines",
        "quarantine_reasons", "quarantine_samples", "null_counts", "min", "max", "input_bytes",
        "quality")


def partition_args(out: Path, path: Path, day: str) -> list[str]:
    return ["--input", str(path), "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/quarantine/", "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json", "--run-id", f"r-{day}", "--partition", day]


def run_main(capsys, argv: list[str]) -> tuple[int, str]:
    main = importlib.import_module("spark_jobs.online_retail.main")
    capsys.readouterr()
    code = main.main(argv)
    return code, capsys.readouterr().err


def batch_argv(root: Path, files: dict[str, Path], name: str) -> list[str]:
    argv: list[str] = []
    for i, (day, path) in enumerate(files.items()):
        argv += partition_args(root / name / day, path, day)
        if i == 0:
            argv += ["--rules", str(REPO / "datasets" / "online_retail.dqdl")]
    return argv


def table(directory: Path) -> list[tuple[Any, ...]]:
    data = pa.concat_tables([pq.read_table(f) for f in sorted(directory.glob("part-*"))])
    rows = data.drop_columns(["run_id"]).to_pylist()
    return sorted((tuple(sorted(r.items())) for r in rows), key=repr)


def test_a_batch_equals_its_single_file_runs(spark, tmp_path: Path, capsys) -> None:
    files = {day: SAMPLES / f"{day}.csv" for day in DAYS}
    code, err = run_main(capsys, batch_argv(tmp_path, files, "batch"))
    assert code == 0, err
    for day, path in files.items():
        code, err = run_main(capsys, [*partition_args(tmp_path / "single" / day, path, day),
                                      "--rules", str(REPO / "datasets" / "online_retail.dqdl")])
        assert code == 0, err
        batch, single = tmp_path / "batch" / day, tmp_path / "single" / day
        got, want = (json.loads((d / "metrics.json").read_text()) for d in (batch, single))
        assert got["partition"] == day and got["run_id"] == f"r-{day}"
        assert {k: got[k] for k in SAME} == {k: want[k] for k in SAME}
        assert got["tables"].keys() == want["tables"].keys()
        for name in want["tables"]:
            assert got["tables"][name]["rows"] == want["tables"][name]["rows"]
            assert table(batch / name) == table(single / name)
        quality = [json.loads((d / "quality.json").read_text()) for d in (batch, single)]
        assert quality[0]["rules"] == quality[1]["rules"]
        assert quality[0]["metrics"] == quality[1]["metrics"]


def test_a_refused_file_inside_a_batch_fails_alone(spark, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "2010-12-02.csv.gz"
    bad.write_bytes(b"not gzip at all\n")
    files = {DAYS[0]: SAMPLES / f"{DAYS[0]}.csv", DAYS[1]: bad,
             DAYS[2]: SAMPLES / f"{DAYS[2]}.csv"}
    code, err = run_main(capsys, batch_argv(tmp_path, files, "batch"))
    assert code == 0, err
    refused = json.loads((tmp_path / "batch" / DAYS[1] / "metrics.json").read_text())
    assert refused["partition"] == DAYS[1] and "is not gzip data" in refused["error"]
    assert not (tmp_path / "batch" / DAYS[1] / "quality.json").exists()
    for day in (DAYS[0], DAYS[2]):
        metrics = json.loads((tmp_path / "batch" / day / "metrics.json").read_text())
        assert metrics["lines_written"] > 0 and "error" not in metrics


def test_a_batch_whose_every_file_is_refused_exits_2(spark, tmp_path: Path, capsys) -> None:
    files = {}
    for day in DAYS[:2]:
        files[day] = tmp_path / f"{day}.csv"
        files[day].write_bytes(b"")
    code, err = run_main(capsys, batch_argv(tmp_path, files, "batch"))
    assert code == 2
    [line] = [x for x in err.splitlines() if x.startswith("JOB ERROR:")]
    assert "every partition of the batch was refused" in line
    assert all(f"{day}.csv is empty" in line for day in DAYS[:2])
