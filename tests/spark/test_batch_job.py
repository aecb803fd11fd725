"""A batch: several raw files in one job (the framework's `RawJob.run_batch`: one pass over
every file): each partition's outputs, metrics and rules (CustomSql ones included: each
partition's view `primary` is its own) equal its single-file run, a line is a duplicate only
within its own file, results come in the partitions' order, a refused file (its header, its
gzip bytes) fails alone, and a crash fails the whole job with no Spark job left running."""

from __future__ import annotations

import gzip
import importlib
import json
import threading
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
_DAY_GZ = gzip.compress((SAMPLES / "2010-12-02.csv").read_bytes())
TRUNCATED = _DAY_GZ[:len(_DAY_GZ) * 3 // 4]
# The dataset's rules plus CustomSql ones, whose figures differ by day: a partition reading
# another's view `primary` would report that day's.
CUSTOM_SQL = ('    CustomSql "select count(distinct invoice_no) from primary" > 0,\n'
              '    CustomSql "select sum(quantity) from primary" > 0,\n')


def partition_args(out: Path, path: Path, day: str) -> list[str]:
    return ["--input", str(path), "--output-root", f"{out}/{{table}}/",
            "--quarantine", f"{out}/quarantine/", "--metrics", f"{out}/metrics.json",
            "--quality", f"{out}/quality.json", "--run-id", f"r-{day}", "--partition", day]


def run_main(capsys, argv: list[str]) -> tuple[int, str]:
    main = importlib.import_module("spark_jobs.online_retail.main")
    capsys.readouterr()
    code = main.main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def rules_with_custom_sql(root: Path) -> Path:
    text = (REPO / "datasets" / "online_retail.dqdl").read_text()
    head, marker, tail = text.partition("Rules = [\n")
    assert marker, "the rules file has no `Rules = [` line"
    path = root / "online_retail_custom_sql.dqdl"
    path.write_text(head + marker + CUSTOM_SQL + tail)
    return path


def batch_argv(root: Path, files: dict[str, Path], name: str, rules: Path | None = None
               ) -> list[str]:
    argv: list[str] = []
    for i, (day, path) in enumerate(files.items()):
        argv += partition_args(root / name / day, path, day)
        if i == 0:
            argv += ["--rules", str(rules or REPO / "datasets" / "online_retail.dqdl")]
    return argv


def no_partition_left_running(spark) -> None:
    left = [t.name for t in threading.enumerate() if t.name.startswith("concurrent-")]
    assert not left, f"partition threads still running after the job returned: {left}"
    assert not spark.sparkContext.statusTracker().getActiveJobsIds()


def table(directory: Path) -> list[tuple[Any, ...]]:
    data = pa.concat_tables([pq.read_table(f) for f in sorted(directory.glob("part-*"))])
    rows = data.drop_columns(["run_id"]).to_pylist()
    return sorted((tuple(sorted(r.items())) for r in rows), key=repr)


def test_a_batch_equals_its_single_file_runs(spark, tmp_path: Path, capsys) -> None:
    files = {day: SAMPLES / f"{day}.csv" for day in DAYS}
    rules = rules_with_custom_sql(tmp_path)
    code, err = run_main(capsys, batch_argv(tmp_path, files, "batch", rules))
    assert code == 0, err
    no_partition_left_running(spark)
    for day, path in files.items():
        code, err = run_main(capsys, [*partition_args(tmp_path / "single" / day, path, day),
                                      "--rules", str(rules)])
        assert code == 0, err
        batch, single = tmp_path / "batch" / day, tmp_path / "single" / day
        got, want = (json.loads((d / "metrics.json").read_text()) for d in (batch, single))
        assert got["partition"] == day and got["run_id"] == f"r-{day}"
        assert {k: got[k] for k in SAME} == {k: want[k] for k in SAME}
        # Spark meters the pass: the batch's bytes, not each partition's.
        assert got["bytes_read"] is None and want["bytes_read"] is not None
        batch_bytes = sum(p.stat().st_size for p in files.values())
        assert got["batch"]["partitions"] == len(DAYS)
        assert got["batch"]["input_bytes"] == batch_bytes
        assert batch_bytes <= got["batch"]["bytes_read"] <= 1.05 * batch_bytes
        assert got["tables"].keys() == want["tables"].keys()
        for name in want["tables"]:
            assert got["tables"][name]["rows"] == want["tables"][name]["rows"]
            assert table(batch / name) == table(single / name)
        quality = [json.loads((d / "quality.json").read_text()) for d in (batch, single)]
        custom = [r["metric"] for r in quality[0]["rules"] if r["rule"] in CUSTOM_SQL]
        assert len(custom) == 2 and all(custom)
        assert quality[0]["rules"] == quality[1]["rules"]
        assert quality[0]["metrics"] == quality[1]["metrics"]


@pytest.mark.parametrize(("content", "error"), [
    (b"not gzip at all\n", "is not gzip data"),  # refused before the read
    # its header reads, but the file ends short: the pass's read fails, and the file alone
    (TRUNCATED, "cannot be read"),
], ids=["not-gzip", "truncated-gzip"])
def test_a_refused_file_inside_a_batch_fails_alone(spark, tmp_path: Path, capsys,
                                                   content: bytes, error: str) -> None:
    bad = tmp_path / "2010-12-02.csv.gz"
    bad.write_bytes(content)
    files = {DAYS[0]: SAMPLES / f"{DAYS[0]}.csv", DAYS[1]: bad,
             DAYS[2]: SAMPLES / f"{DAYS[2]}.csv"}
    code, out = run_main(capsys, batch_argv(tmp_path, files, "batch"))
    assert code == 0, out
    reported = [line.split(":")[0] for line in out.splitlines()
                if line.startswith("online_retail r-")]
    assert reported == [f"online_retail r-{day}" for day in DAYS]  # the partitions' order
    refused = json.loads((tmp_path / "batch" / DAYS[1] / "metrics.json").read_text())
    assert refused["partition"] == DAYS[1] and error in refused["error"], refused
    assert str(bad) in refused["error"] and str(files[DAYS[0]]) not in refused["error"]
    assert not (tmp_path / "batch" / DAYS[1] / "quality.json").exists()
    for day in (DAYS[0], DAYS[2]):
        metrics = json.loads((tmp_path / "batch" / day / "metrics.json").read_text())
        assert metrics["lines_written"] > 0 and "error" not in metrics
        assert metrics["batch"]["partitions"] == 2


def test_a_line_is_a_duplicate_only_within_its_own_file(spark, tmp_path: Path, capsys) -> None:
    """Two partitions holding the same line each load it: a batch dedupes per partition."""
    text = (SAMPLES / f"{DAYS[0]}.csv").read_text(encoding="utf-8")
    files = {}
    for day in ("2010-12-01", "2010-12-02"):  # one content, run as two partitions' files
        files[day] = tmp_path / f"{day}.csv"
        files[day].write_text(text, encoding="utf-8")
    code, out = run_main(capsys, batch_argv(tmp_path, files, "batch"))
    assert code == 0, out
    first, second = (json.loads((tmp_path / "batch" / day / "metrics.json").read_text())
                     for day in files)
    assert first["lines_written"] > 0 and first["duplicates"] == second["duplicates"]
    # the second day's lines are all of another day than its partition: quarantined there
    assert second["lines_written"] == 0
    assert second["lines_quarantined"] == first["lines_written"] + first["lines_quarantined"]


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


def test_a_crash_in_one_partition_fails_the_job_once_the_others_stopped(
        spark, tmp_path: Path, capsys) -> None:
    """Not a refused input (exit 2, alone) but a failure of the job (exit 1): its output
    folder cannot be made, a regular file stands in its way."""
    files = {day: SAMPLES / f"{day}.csv" for day in DAYS}
    argv = batch_argv(tmp_path, files, "batch")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    crashing = argv.index(f"{tmp_path}/batch/{DAYS[1]}/{{table}}/")
    argv[crashing] = f"{blocker}/{{table}}/"
    code, err = run_main(capsys, argv)
    assert code == 1, err
    [line] = [x for x in err.splitlines() if x.startswith("JOB ERROR:")]
    assert "every partition" not in line
    no_partition_left_running(spark)


def test_a_failed_read_no_file_is_to_blame_for_fails_the_job(spark, tmp_path: Path, capsys,
                                                             monkeypatch) -> None:
    """When the pass's read fails on undecodable bytes but each file reads alone (here: the
    check pretends so), no partition is refused: the job fails (exit 1), to be run again."""
    from spark_jobs.common import raw_job

    monkeypatch.setattr(raw_job, "unreadable", lambda spark, info: None)
    bad = tmp_path / "2010-12-02.csv.gz"
    bad.write_bytes(TRUNCATED)
    files = {DAYS[0]: SAMPLES / f"{DAYS[0]}.csv", DAYS[1]: bad}
    code, err = run_main(capsys, batch_argv(tmp_path, files, "batch"))
    assert code == 1, err
    [line] = [x for x in err.splitlines() if x.startswith("JOB ERROR:")]
    assert "2010-12-02.csv.gz" in line and "every partition" not in line
    assert not any((tmp_path / "batch" / day / "metrics.json").exists() for day in files)
