"""The derived job framework (spark_jobs.common.derived_job) in-process on tiny curated
folders: sales_trends from an inputs.json to its outputs, metrics.json and quality.json; and a
job with a model: trained, saved under its run, promoted or kept by the catalog's rule (the
scores come from the model kept), or only scoring."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline_core.catalog import load_catalog
from pipeline_core.derived import UpstreamRun, inputs_bytes, inputs_document
from spark_jobs.common.derived_args import DerivedArgs
from spark_jobs.common.derived_job import DerivedJob, ModelHooks
from spark_jobs.sales_trends import main as sales_trends_main

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[2]
LINES = ("invoice_no string, stock_code string, description string, quantity int, "
         "unit_price decimal(12,3), invoice_ts timestamp, order_date date, customer_id string, "
         "country string, is_cancellation boolean, line_revenue decimal(18,3), run_id string")


def _day(spark, folder: Path, day: dt.date, revenue: str, country: str = "France") -> str:
    row = ("1" + day.strftime("%m%d"), "A1", "thing", 1, Decimal(revenue),
           dt.datetime.combine(day, dt.time(9)), day, "c1", country, False, Decimal(revenue),
           f"run-{day}")
    uri = str(folder / f"partition={day}" / "run_id=r" / "")
    spark.createDataFrame([row], LINES).write.mode("overwrite").parquet(uri)
    return uri


def _inputs(tmp_path: Path, spark, days: dict[dt.date, str], as_of: str,
            from_day: str | None = None) -> Path:
    dataset = load_catalog().get("sales_trends")
    folder = tmp_path / "online_retail" / "sales_line_items"
    runs = [UpstreamRun("online_retail", d.isoformat(), f"run-{d}",
                        (("sales_line_items", _day(spark, folder, d, r)),))
            for d, r in days.items()]
    path = tmp_path / "inputs.json"
    path.write_bytes(inputs_bytes(inputs_document(dataset, as_of, runs, from_day)))
    return path


def _args(tmp_path: Path, inputs: Path, as_of: str, name: str, rules: Path) -> list[str]:
    out = tmp_path / name
    return ["--input", str(inputs), "--output-root", f"{out}/{{table}}/",
            "--metrics", f"{out}/metrics.json", "--quality", f"{out}/quality.json",
            "--rules", str(rules), "--run-id", f"{name}-{as_of}", "--partition", as_of]


def test_sales_trends_writes_the_as_of_day_with_its_windows(spark, tmp_path):
    days = {dt.date(2011, 1, 1): "10.00", dt.date(2011, 1, 9): "5.50"}  # a 7-day gap
    inputs = _inputs(tmp_path, spark, days, "2011-01-09")
    code = sales_trends_main.main(_args(tmp_path, inputs, "2011-01-09", "run1",
                                        REPO / "datasets" / "sales_trends.dqdl"))
    assert code == 0
    rows = {r["country"]: r for r in spark.read.parquet(
        str(tmp_path / "run1" / "sales_trends")).collect()}
    assert set(rows) == {"France", "ALL"}
    assert rows["ALL"]["order_date"] == dt.date(2011, 1, 9)
    assert (rows["ALL"]["revenue_7d"], rows["ALL"]["revenue_30d"]) == (
        Decimal("5.50"), Decimal("15.50"))
    metrics = json.loads((tmp_path / "run1" / "metrics.json").read_text())
    assert metrics["lines_read"] == 2 and metrics["lines_written"] == 2
    assert metrics["tables"]["sales_trends"]["rows"] == 2
    assert metrics["inputs"] == {"online_retail.sales_line_items": {
        "partitions": 2, "first": "2011-01-01", "last": "2011-01-09"}}
    quality = json.loads((tmp_path / "run1" / "quality.json").read_text())
    assert {r["outcome"] for r in quality["rules"]} == {"pass"}, quality["rules"]


def test_sales_trends_after_an_upstream_batch_writes_each_day_from_its_first(spark, tmp_path):
    """One run for a batch's days (--from-day): every day from it to as_of, each with its
    windows, and the rules hold per day."""
    days = {dt.date(2011, 1, 1): "10.00", dt.date(2011, 1, 3): "2.00",
            dt.date(2011, 1, 9): "5.50"}
    inputs = _inputs(tmp_path, spark, days, "2011-01-09", "2011-01-02")
    args = _args(tmp_path, inputs, "2011-01-09", "run3", REPO / "datasets" / "sales_trends.dqdl")
    assert sales_trends_main.main([*args, "--from-day", "2011-01-02"]) == 0
    rows = {(r["order_date"].isoformat(), r["country"]): r for r in spark.read.parquet(
        str(tmp_path / "run3" / "sales_trends")).collect()}
    assert sorted({d for d, _ in rows}) == [f"2011-01-0{i}" for i in range(2, 10)]
    assert len(rows) == 16  # 'ALL' and France on each of the 8 days
    assert (rows[("2011-01-02", "ALL")]["revenue"], rows[("2011-01-02", "ALL")]["revenue_7d"]) \
        == (Decimal("0.00"), Decimal("10.00"))
    assert (rows[("2011-01-09", "ALL")]["revenue_7d"], rows[("2011-01-09", "ALL")]["revenue_30d"]) \
        == (Decimal("7.50"), Decimal("17.50"))
    quality = json.loads((tmp_path / "run3" / "quality.json").read_text())
    assert {r["outcome"] for r in quality["rules"]} == {"pass"}, quality["rules"]


def test_a_failing_rule_is_reported_not_hidden(spark, tmp_path):
    inputs = _inputs(tmp_path, spark, {dt.date(2011, 2, 1): "3.00"}, "2011-02-01")
    rules = tmp_path / "strict.dqdl"
    rules.write_text('Rules = [ RowCount > 5 ]\n')
    assert sales_trends_main.main(_args(tmp_path, inputs, "2011-02-01", "run2", rules)) == 0
    quality = json.loads((tmp_path / "run2" / "quality.json").read_text())
    assert [r["outcome"] for r in quality["rules"]] == ["fail"]


# -- a job with a model -------------------------------------------------------------------


class MeanModel:
    """A tiny model for the framework's tests: predicts the mean line revenue it was trained
    on; its `error` metric is how far that is from `target` (lower is better)."""

    def __init__(self, mean: float, target: float):
        self.mean, self.target = mean, target

    @property
    def metrics(self) -> dict[str, float]:
        return {"error": abs(self.mean - self.target)}

    @property
    def params(self) -> dict[str, str | int | float]:
        return {"target": self.target}

    def save(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.json").write_text(json.dumps([self.mean, self.target]))

    @classmethod
    def load(cls, path: str) -> MeanModel:
        return cls(*json.loads((Path(path) / "model.json").read_text()))


def _hooks(target: float) -> ModelHooks:
    def train(inputs: Any, args: DerivedArgs) -> MeanModel:
        lines = inputs["online_retail.sales_line_items"]
        mean = lines.agg(F.avg(F.col("line_revenue").cast("double"))).first()[0]
        return MeanModel(float(mean), target)

    def score(inputs: Any, args: DerivedArgs, model: Any) -> dict[str, DataFrame]:
        lines = inputs["online_retail.sales_line_items"]
        return {"customer_value": lines.select(
            F.lit(args.as_of).alias("as_of_date"), "customer_id",
            F.lit(Decimal("1.00")).cast("decimal(18,2)").alias("historical_revenue"),
            F.lit(1).cast("bigint").alias("orders"),
            F.lit(round(model.mean, 2)).cast("decimal(18,2)").alias("predicted_90d_revenue"),
        ).limit(1)}

    def compare(new: Any, current: Any, inputs: Any, args: DerivedArgs) -> dict[str, float]:
        return {"error": abs(current.mean - new.target)}

    return ModelHooks(train=train, load=MeanModel.load, score=score, compare=compare)


def _model_job(target: float) -> DerivedJob:
    return DerivedJob(dataset="customer_value", outputs=("customer_value",), rules_on="model",
                      model=_hooks(target))


def _model_args(tmp_path: Path, inputs: Path, name: str, *extra: str) -> list[str]:
    rules = tmp_path / "model.dqdl"
    rules.write_text('Rules = [ ColumnValues "error" < 100 ]\n')
    return [*_args(tmp_path, inputs, "2011-03-01", name, rules),
            "--model-root", f"{tmp_path}/models/", "--promotion-metric", "error",
            "--promotion-direction", "lower_is_better", "--promotion-tolerance", "0.1", *extra]


def _predicted(spark, tmp_path: Path, name: str) -> Decimal:
    return spark.read.parquet(str(tmp_path / name / "customer_value")).first()[
        "predicted_90d_revenue"]


def test_a_model_is_saved_promoted_or_kept_and_scores_come_from_the_kept_one(spark, tmp_path):
    inputs = _inputs(tmp_path, spark, {dt.date(2011, 3, 1): "10.00"}, "2011-03-01")
    assert _model_job(10.0).main(_model_args(tmp_path, inputs, "first")) == 0
    first = json.loads((tmp_path / "first" / "metrics.json").read_text())["model"]
    assert first["promoted"] and first["reason"].startswith("first model")
    assert first["path"] == f"{tmp_path}/models/first-2011-03-01/"
    assert (Path(first["path"]) / "model.json").is_file()
    # The same data again: the new model is as good as the current one, so it is promoted.
    again = _model_args(tmp_path, inputs, "second", "--current-model", first["path"])
    assert _model_job(10.0).main(again) == 0
    second = json.loads((tmp_path / "second" / "metrics.json").read_text())["model"]
    assert second["promoted"], second["reason"]
    # A model trained on other data (mean 30) is far worse than the current one (mean 10).
    other = _inputs(tmp_path / "o", spark, {dt.date(2011, 3, 1): "30.00"}, "2011-03-01")
    third_args = _model_args(tmp_path, other, "third", "--current-model", first["path"])
    assert _model_job(10.0).main(third_args) == 0
    third = json.loads((tmp_path / "third" / "metrics.json").read_text())["model"]
    assert not third["promoted"]
    assert "new error 20 vs current 0" in third["reason"], third["reason"]
    assert third["scored_with"] == first["path"]
    assert _predicted(spark, tmp_path, "third") == Decimal("10.00")  # the current model's


def test_a_scoring_only_run_trains_nothing(spark, tmp_path):
    inputs = _inputs(tmp_path, spark, {dt.date(2011, 3, 1): "10.00"}, "2011-03-01")
    assert _model_job(10.0).main(_model_args(tmp_path, inputs, "m1")) == 0
    path = f"{tmp_path}/models/m1-2011-03-01/"
    args = _model_args(tmp_path, inputs, "m2", "--current-model", path, "--train", "false")
    assert _model_job(10.0).main(args) == 0
    record = json.loads((tmp_path / "m2" / "metrics.json").read_text())["model"]
    assert record["trained"] is False and record["scored_with"] == path
    assert not (tmp_path / "models" / "m2-2011-03-01").exists()
    # Without a current model there is nothing to score with: refused (exit 2).
    alone = _model_args(tmp_path, inputs, "m3", "--train", "false")
    assert _model_job(10.0).main(alone) == 2
