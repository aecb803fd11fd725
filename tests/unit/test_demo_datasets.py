"""`make demo` runs every sample day of every dataset and asks each dataset's demo.sql: the bundled
samples are all there and keyed as the catalog's key patterns take them, and a sample folder
without its question is an error that says what to add."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_runtime import cli
from local_runtime.stack import LocalRuntimeError
from pipeline_core.catalog import load_catalog

REPO = Path(__file__).resolve().parents[2]


def test_every_dataset_with_samples_has_its_days_and_its_question():
    demos = {d.name: d for d in cli.demo_datasets()}
    catalog = load_catalog(REPO / "datasets")
    # A dataset's samples lie under its raw key prefix (bank_reference/account/...).
    with_samples = {n for n, ds in catalog.raw_datasets.items()
                    if (REPO / "sample_data" / ds.source.prefix).is_dir()}
    assert {"bank_accounts", "bank_clients", "bank_dispositions", "bank_districts"} <= set(demos)
    assert set(demos) == with_samples and "online_retail" in demos
    for demo in demos.values():
        ds = catalog.get(demo.name)
        assert demo.files, demo.name
        for file, key in demo.files:
            assert ds.partition_for_key(key) == file.name[:10], key
        assert demo.question and demo.question != demo.name, "demo.sql starts with a -- question"
        assert demo.sql.lower().count("select") >= 1 and ";" not in demo.sql
    # online_retail's three sample days, in date order
    assert [k for _, k in demos["online_retail"].files] == [
        "online_retail/2010-12-01.csv", "online_retail/2010-12-02.csv",
        "online_retail/2010-12-03.csv"]


def test_files_the_key_pattern_does_not_take_are_not_runs(tmp_path):
    folder = tmp_path / "online_retail"
    folder.mkdir()
    (folder / "2010-12-01.csv").write_text("x")
    (folder / "notes.txt").write_text("not a day")
    (folder / "2010-12-1.csv").write_text("not a day either")
    (folder / "demo.sql").write_text("-- Rows\nselect 1")
    [demo] = cli.demo_datasets(tmp_path)
    assert [k for _, k in demo.files] == ["online_retail/2010-12-01.csv"]
    assert demo.question == "Rows"


def test_a_sample_folder_without_its_question_names_what_to_add(tmp_path):
    folder = tmp_path / "online_retail"
    folder.mkdir()
    (folder / "2010-12-01.csv").write_text("x")
    with pytest.raises(LocalRuntimeError, match=r"online_retail.*demo\.sql"):
        cli.demo_datasets(tmp_path)
