"""The three ML jobs' main.py (DerivedJob + ModelHooks over D2's transforms) in-process on the
three real sample days, written as online_retail's curated folders and named by an
inputs.json as ResolveRun writes it: each job trains, saves its model under its run, scores,
writes its tables in their warehouse types and passes its own datasets/<name>.dqdl Rules;
the same inputs and seed give the same rows (deterministic); a scoring-only run with the
saved model gives the same rows as the run that trained it. Small k range, horizon and
hold-out (the catalog's job.arguments) fit three days of history."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F
from retail_history import sample_lines

from pipeline_core.catalog import load_catalog
from pipeline_core.derived import UpstreamRun, inputs_bytes, inputs_document

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[2]
AS_OF = "2010-12-03"
DAYS = ("2010-12-01", "2010-12-02", "2010-12-03")

# Per job: its output tables, the catalog arguments small enough for three days, and the
# metric its promotion compares.
JOBS: dict[str, tuple[tuple[str, ...], list[str], str]] = {
    "customer_segments": (("customer_segments", "segment_profiles"),
                          ["--k-values", "2,3", "--seed", "7", "--max-iter", "10"],
                          "silhouette"),
    "customer_value": (("customer_value",),
                       ["--horizon-days", "1", "--seed", "11", "--max-iter", "5"],
                       "model_mae"),
    "product_recommendations": (("product_recommendations",),
                                ["--holdout-days", "1", "--seed", "5", "--max-iter", "4"],
                                "precision_at_10"),
}


@pytest.fixture(scope="module")
def curated(spark, tmp_path_factory) -> dict[str, Path]:
    """online_retail's curated sales_line_items of the sample days, one folder per day (as
    the raw job writes them), and an inputs.json naming them for each ML dataset."""
    root = tmp_path_factory.mktemp("curated")
    lines = sample_lines(spark)
    runs = []
    for day in DAYS:
        uri = str(root / "online_retail" / "sales_line_items" / f"partition={day}"
                  / f"run_id=run-{day}") + "/"
        lines.where(F.col("order_date") == F.lit(day).cast("date")) \
            .write.mode("overwrite").parquet(uri)
        runs.append(UpstreamRun("online_retail", day, f"run-{day}",
                                (("sales_line_items", uri),)))
    catalog = load_catalog()
    paths = {}
    for name in JOBS:
        path = root / f"{name}-inputs.json"
        path.write_bytes(inputs_bytes(inputs_document(catalog.get(name), AS_OF, runs)))
        paths[name] = path
    return paths


def _run(dataset: str, inputs: Path, out: Path, name: str, *extra: str) -> dict[str, Any]:
    """main.main() of the job; metrics.json and quality.json as it wrote them."""
    _, arguments, metric = JOBS[dataset]
    policy = load_catalog().get(dataset).derived.model
    assert policy.metric == metric  # the catalog promotes on a metric the model reports
    main = importlib.import_module(f"spark_jobs.{dataset}.main")
    code = main.main([
        "--input", str(inputs), "--output-root", f"{out / name}/{{table}}/",
        "--metrics", f"{out / name}/metrics.json", "--quality", f"{out / name}/quality.json",
        "--rules", str(REPO / "datasets" / f"{dataset}.dqdl"), "--run-id", f"{name}-{AS_OF}",
        "--partition", AS_OF, "--model-root", f"{out}/models/",
        "--promotion-metric", policy.metric, "--promotion-direction", policy.direction,
        "--promotion-tolerance", str(policy.tolerance), *arguments, *extra])
    assert code == 0, (dataset, name)
    return {"metrics": json.loads((out / name / "metrics.json").read_text()),
            "quality": json.loads((out / name / "quality.json").read_text())}


def _rows(spark, out: Path, name: str, table: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.parquet(str(out / name / table)).collect())


@pytest.mark.parametrize("dataset", sorted(JOBS))
def test_job_trains_scores_passes_its_rules_and_is_deterministic(spark, curated, tmp_path,
                                                                  dataset):
    tables, _, metric = JOBS[dataset]
    first = _run(dataset, curated[dataset], tmp_path, "first")
    again = _run(dataset, curated[dataset], tmp_path, "again")
    errors = [r for r in first["quality"]["rules"]
              if r["severity"] == "error" and r["outcome"] != "pass"]
    assert not errors, errors
    model = first["metrics"]["model"]
    assert model["trained"] and model["promoted"], model
    assert model["trained_as_of"] == AS_OF and metric in model["metrics"]
    assert model["path"] == f"{tmp_path}/models/first-{AS_OF}/"
    assert Path(model["path"]).is_dir()
    assert model["params"]["seed"] == int(JOBS[dataset][1][3])
    assert first["metrics"]["inputs"] == {"online_retail.sales_line_items": {
        "partitions": 3, "first": DAYS[0], "last": DAYS[-1]}}
    # Same inputs, same seed: the same model figures and the same rows.
    assert again["metrics"]["model"]["metrics"] == model["metrics"]
    for table in tables:
        rows = _rows(spark, tmp_path, "first", table)
        assert rows, table
        assert _rows(spark, tmp_path, "again", table) == rows, table
        assert first["metrics"]["tables"][table]["rows"] == len(rows)


@pytest.mark.parametrize("dataset", sorted(JOBS))
def test_a_scoring_only_run_scores_like_the_run_that_trained(spark, curated, tmp_path,
                                                             dataset):
    tables = JOBS[dataset][0]
    trained = _run(dataset, curated[dataset], tmp_path, "trained")["metrics"]["model"]
    scored = _run(dataset, curated[dataset], tmp_path, "scored", "--train", "false",
                  "--current-model", trained["path"])
    record = scored["metrics"]["model"]
    assert record["trained"] is False and record["scored_with"] == trained["path"]
    assert not (tmp_path / "models" / f"scored-{AS_OF}").exists()
    for table in tables:
        assert _rows(spark, tmp_path, "scored", table) == \
            _rows(spark, tmp_path, "trained", table), table


def test_segments_rules_gate_on_the_silhouette(spark, curated, tmp_path):
    """The profiles carry the silhouette the rules gate on: one value, every segment."""
    _run("customer_segments", curated["customer_segments"], tmp_path, "seg")
    profiles = spark.read.parquet(str(tmp_path / "seg" / "segment_profiles")).collect()
    quality = json.loads((tmp_path / "seg" / "quality.json").read_text())
    [rule] = [r for r in quality["rules"] if r["rule"].startswith('ColumnValues "silhouette"')]
    assert rule["outcome"] == "pass"
    assert len({p.silhouette for p in profiles}) == 1 and profiles[0].silhouette > 0.25
    assert sum(p.customers for p in profiles) == spark.read.parquet(
        str(tmp_path / "seg" / "customer_segments")).count()


def test_a_bad_catalog_argument_is_refused_by_name(curated, tmp_path, capsys):
    main = importlib.import_module("spark_jobs.customer_value.main")
    code = main.main([
        "--input", str(curated["customer_value"]), "--output-root", f"{tmp_path}/{{table}}/",
        "--metrics", f"{tmp_path}/m.json", "--quality", f"{tmp_path}/q.json",
        "--rules", str(REPO / "datasets" / "customer_value.dqdl"), "--run-id", "bad",
        "--partition", AS_OF, "--model-root", f"{tmp_path}/models/",
        "--promotion-metric", "model_mae", "--horizon-days", "ninety"])
    assert code != 0
    assert "--horizon-days 'ninety' is not an integer" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
