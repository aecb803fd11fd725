"""A batch written in the product's layout (`.../<table>/batch=<id>/partition=<day>/`): each
table is one partitioned write for every partition, and what lands in each partition's folder
equals its single-file run's output (every raw dataset's); a rerun replaces, never adds; a row
of no partition of the batch fails the job; outside that layout each partition writes alone."""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from spark_helpers import REPO, SAMPLES
from test_batch_job import partition_args, rules_with_custom_sql, run_main, table

from pipeline_core.errors import ConfigurationError
from spark_jobs.common import batch_writes, outputs
from spark_jobs.common.batch_writes import BatchPart
from spark_jobs.common.outputs import GroupedOutput, LineOutput

pytestmark = pytest.mark.spark

DAYS = ("2010-12-01", "2010-12-02", "2010-12-03")
TABLES = ("sales_line_items", "customer_daily_sales")


def layout_argv(root: Path, files: dict[str, Path], rules: Path, batch: str = "b1"
                ) -> list[str]:
    """The job's arguments as the product's batch gives them (pipeline_aws.resolve.RunPaths)."""
    argv: list[str] = []
    for i, (day, path) in enumerate(files.items()):
        runs = root / "_runs" / day
        argv += ["--input", str(path),
                 "--output-root", f"{root}/{{table}}/batch={batch}/partition={day}/",
                 "--quarantine", f"{root}/quarantine/batch={batch}/partition={day}/",
                 "--metrics", f"{runs}/metrics.json", "--quality", f"{runs}/quality.json",
                 "--run-id", f"r-{day}", "--partition", day]
        if i == 0:
            argv += ["--rules", str(rules)]
    return argv


def guests_only(path: Path, out: Path) -> Path:
    """The day's lines with no customer id: customer_daily_sales has no row for it."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    column = rows[0].index("CustomerID")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(
        [rows[0], *[[*r[:column], "", *r[column + 1:]] for r in rows[1:]]])
    out.write_text(buffer.getvalue(), encoding="utf-8")
    return out


def run_ids(folder: Path) -> set[str]:
    return {r for f in folder.glob("part-*")
            for r in pq.read_table(f, columns=["run_id"]).column("run_id").to_pylist()}


def test_each_table_is_one_write_and_each_folder_equals_its_single_run(
        spark, tmp_path: Path, capsys, monkeypatch) -> None:
    files = {DAYS[0]: SAMPLES / f"{DAYS[0]}.csv", DAYS[1]: SAMPLES / f"{DAYS[1]}.csv",
             DAYS[2]: guests_only(SAMPLES / f"{DAYS[2]}.csv", tmp_path / f"{DAYS[2]}.csv")}
    rules = rules_with_custom_sql(tmp_path)
    per_partition: list[str] = []
    real_write = outputs.write_parquet
    monkeypatch.setattr(outputs, "write_parquet", lambda frame, uri, name: (
        per_partition.append(uri), real_write(frame, uri, name))[1])
    for _attempt in (1, 2):  # a rerun of the batch replaces its folders, never adds to them
        code, err = run_main(capsys, layout_argv(tmp_path / "batch", files, rules))
        assert code == 0, err
    # each partition wrote alone only the table it has no row of (an empty file, as alone)
    assert per_partition == [f"{tmp_path}/batch/customer_daily_sales/batch=b1/"
                             f"partition={DAYS[2]}/"] * 2
    monkeypatch.setattr(outputs, "write_parquet", real_write)
    for day, path in files.items():
        single = tmp_path / "single" / day
        code, err = run_main(capsys, [*partition_args(single, path, day), "--rules", str(rules)])
        assert code == 0, err
        got = json.loads((tmp_path / "batch" / "_runs" / day / "metrics.json").read_text())
        want = json.loads((single / "metrics.json").read_text())
        for name in TABLES:
            folder = tmp_path / "batch" / name / "batch=b1" / f"partition={day}"
            assert got["tables"][name] == {"rows": want["tables"][name]["rows"],
                                           "uri": f"{folder}/"}
            assert table(folder) == table(single / name)
            assert run_ids(folder) == ({f"r-{day}"} if want["tables"][name]["rows"] else set())
    assert got["tables"]["customer_daily_sales"]["rows"] == 0
    assert [p.name for p in (tmp_path / "batch" / "customer_daily_sales" / "batch=b1").iterdir()
            ] and all(p.name.startswith("partition=") for p in
                      (tmp_path / "batch" / "sales_line_items" / "batch=b1").iterdir())


def _part(index: int, day: str, **uris: str) -> BatchPart:
    return BatchPart(index, day, f"r-{day}", {t: uris.get(t, f"s3://c/d/{t}/batch=b/partition="
                                                            f"{day}/") for t in ("a", "b")})


LINES = {"a": LineOutput(lambda v, r: v), "b": GroupedOutput(lambda v, r: v, ("d",), day="d")}


@pytest.mark.parametrize(("parts", "tables"), [
    ([_part(0, DAYS[0])], LINES),  # one partition: its own write
    ([_part(0, DAYS[0]), _part(1, DAYS[0])], LINES),  # one partition twice
    ([_part(0, "2010-12-01T00:00"), _part(1, DAYS[1])], LINES),  # ':' Spark would escape
    ([_part(0, DAYS[0], a="s3://c/d/a/partition=2010-12-01/run_id=r/"), _part(1, DAYS[1])],
     LINES),  # not the batch layout
    ([_part(0, DAYS[0], a="s3://c/x/a/batch=b/partition=2010-12-01/"), _part(1, DAYS[1])],
     LINES),  # two bases for one table
    ([_part(0, DAYS[0]), _part(1, DAYS[1])],
     {**LINES, "b": GroupedOutput(lambda v, r: v, ("d",))}),  # no day to route groups by
], ids=["alone", "same-partition", "escaped", "other-layout", "two-bases", "no-day"])
def test_outside_the_layout_each_partition_writes_alone(parts, tables) -> None:
    assert batch_writes.layout(parts, tables) is None
    assert batch_writes.layout([_part(0, DAYS[0]), _part(1, DAYS[1])], LINES) is not None


def test_a_row_of_no_partition_of_the_batch_fails_the_job(spark, tmp_path: Path) -> None:
    """The day key routes a group; a day of no partition would be a day the batch does not
    own: the job fails instead of writing it anywhere."""
    parts = [BatchPart(i, day, f"r-{day}", {"t": f"{tmp_path}/t/batch=b/partition={day}/"})
             for i, day in enumerate(DAYS[:2])]
    grouped = {"t": GroupedOutput(lambda v, run_id: v.groupBy("d").agg(F.lit(run_id)
                                                                       .alias("run_id")),
                                  ("d",), day="d")}
    batch = batch_writes.layout(parts, grouped)
    assert batch is not None
    valid = spark.createDataFrame([(0, DAYS[0]), (1, DAYS[2])], "_part int, d string") \
        .withColumn("d", F.col("d").cast("date"))
    with pytest.raises(RuntimeError, match="1 rows of t belong to no partition of the batch"):
        batch_writes.write_tables(valid, "_part", grouped, batch)


def _shop_events_days(tmp_path: Path) -> dict[str, Path]:
    """The sample day, and a copy of it moved to the next day (every date in it)."""
    text = gzip.decompress((REPO / "sample_data" / "shop_events" / "2019-10-01.csv.gz")
                           .read_bytes()).decode("utf-8")
    second = tmp_path / "2019-10-02.csv"
    second.write_text(text.replace("2019-10-01", "2019-10-02"), encoding="utf-8")
    return {"2019-10-01": REPO / "sample_data" / "shop_events" / "2019-10-01.csv.gz",
            "2019-10-02": second}


@pytest.mark.parametrize("dataset", ["bank_transactions", "web_logs", "shop_events"])
def test_each_dataset_s_batch_folders_equal_its_single_runs(spark, tmp_path: Path, capsys,
                                                           monkeypatch, dataset: str) -> None:
    """Every dataset's GroupedOutputs route their groups by their `day` key: a batch in the
    product's layout writes each table at once (a partition alone only a table it has no row
    of) what each partition's own run writes, table by table."""
    if dataset == "shop_events":
        files = _shop_events_days(tmp_path)
    else:
        files = {p.name.split(".")[0]: p for p in sorted(
            (REPO / "sample_data" / dataset).iterdir()) if p.name[0].isdigit()}
    rules = REPO / "datasets" / f"{dataset}.dqdl"
    main = importlib.import_module(f"spark_jobs.{dataset}.main")
    capsys.readouterr()
    alone: list[str] = []
    real_write = outputs.write_parquet
    monkeypatch.setattr(outputs, "write_parquet", lambda frame, uri, name: (
        alone.append(uri), real_write(frame, uri, name))[1])
    assert main.main(layout_argv(tmp_path / "batch", files, rules)) == 0, capsys.readouterr()
    monkeypatch.setattr(outputs, "write_parquet", real_write)
    for day, path in files.items():
        single = tmp_path / "single" / day
        assert main.main([*partition_args(single, path, day), "--rules", str(rules)]) == 0
        got = json.loads((tmp_path / "batch" / "_runs" / day / "metrics.json").read_text())
        want = json.loads((single / "metrics.json").read_text())
        assert got["tables"].keys() == want["tables"].keys()
        for name, figures in want["tables"].items():
            folder = tmp_path / "batch" / name / "batch=b1" / f"partition={day}"
            assert got["tables"][name]["rows"] == figures["rows"], (day, name)
            assert table(folder) == table(single / name), (day, name)
            assert (f"{folder}/" in alone) == (figures["rows"] == 0), (day, name)


def test_a_grouped_output_s_day_must_be_one_of_its_keys() -> None:
    with pytest.raises(ConfigurationError, match="the day 'when' of a GroupedOutput must be one"):
        GroupedOutput(lambda v, r: v, ("d", "k"), day="when")
