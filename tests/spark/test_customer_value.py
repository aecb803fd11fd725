"""customer_value: windows on hand-made lines, and the model on the real sample days."""

from __future__ import annotations

import datetime as dt
import math
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from retail_history import line, lines, sample_lines

from pipeline_core.dqdl import load_ruleset
from spark_jobs.common import warehouse
from spark_jobs.common.quality import QualityEngine
from spark_jobs.customer_segments.features import read_json, write_json
from spark_jobs.customer_value.transforms import (
    OLD_TARGET,
    TARGET,
    VALUE_COLUMNS,
    ValueModel,
    labelled,
    score_value,
    train_value,
    value_features,
)

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
SAMPLE_AS_OF = date(2010, 12, 3)
HORIZON = 1  # three sample days: train on day 1 -> 2, hold back day 2 -> 3


def test_windows_by_hand(spark):
    """horizon 10, cutoff 12-20: recent (12-10, 12-20], target (12-20, 12-30]; the 30, 180
    and 365-day windows end at the cutoff too."""
    frame = lines(spark, [
        line("536001", "A", date(2010, 12, 10), price="1.00"),  # history only
        line("536002", "A", date(2010, 12, 11), price="2.00"),  # recent
        line("536003", "A", date(2010, 12, 20), price="4.00"),  # recent (cutoff day)
        line("C536004", "A", date(2010, 12, 20), quantity=-1, price="1.00"),  # recent return
        line("536005", "A", date(2010, 12, 21), price="8.00"),  # target
        line("536006", "A", date(2010, 12, 30), price="16.00"),  # target (last day)
        line("536007", "A", date(2010, 12, 31), price="32.00"),  # after the horizon
        line("536008", "B", date(2010, 12, 25), price="5.00"),  # no history: not a row
        line("536009", None, date(2010, 12, 15), price="5.00"),  # guest
        line("536010", "D", date(2010, 12, 1), price="3.00"),  # history, nothing since
        line("536011", "E", date(2009, 12, 19), price="100.00"),  # 366 days before: history
        line("536012", "E", date(2010, 11, 10), price="7.00"),  # 40 days: 180/365d, not 30d
    ])
    got = labelled(frame, date(2010, 12, 20), 10).select(
        "customer_id", "recency_days", "frequency", "monetary", "tenure_days",
        "recent_revenue", "recent_orders", "revenue_30d", "revenue_180d", "revenue_365d",
        "average_revenue", "order_value", "label")
    expected = spark.createDataFrame([
        ("A", 0, 3, Decimal("6.00"), 10, 5.0, 2.0, 6.0, 6.0, 6.0, 6.0, 2.0, 24.0),
        ("D", 19, 1, Decimal("3.00"), 19, 0.0, 0.0, 3.0, 3.0, 3.0, 3.0 * 10 / 19, 3.0, 0.0),
        ("E", 40, 2, Decimal("107.00"), 366, 0.0, 0.0, 0.0, 7.0, 7.0, 107.0 * 10 / 366, 53.5,
         0.0),
    ], "customer_id string, recency_days int, frequency bigint, monetary decimal(18,2), "
       "tenure_days int, recent_revenue double, recent_orders double, revenue_30d double, "
       "revenue_180d double, revenue_365d double, average_revenue double, order_value double, "
       "label double")
    assertDataFrameEqual(got, expected)


def test_bad_horizon_and_no_history_are_errors(spark):
    frame = lines(spark, [line("536001", "A", date(2010, 12, 10))])
    with pytest.raises(ValueError, match="horizon_days 0"):
        train_value(frame, date(2010, 12, 10), horizon_days=0, seed=1)
    with pytest.raises(ValueError, match="no customer with a purchase up to 2010-11-20"):
        train_value(frame, date(2010, 12, 10), horizon_days=10, seed=1)


@pytest.fixture(scope="module")
def sample(spark):
    frame = sample_lines(spark).cache()
    yield frame
    frame.unpersist()


@pytest.fixture(scope="module")
def model(sample):
    return train_value(sample, SAMPLE_AS_OF, horizon_days=HORIZON, seed=11, max_iter=5)


def _naive_errors(sample) -> tuple[float, float]:
    """MAE and RMSE of "day 2's net revenue" as the forecast of day 3's, over customers who
    bought by day 2, computed in Python from the lines."""
    rows = sample.where("customer_id IS NOT NULL").collect()
    buyers = {r.customer_id for r in rows
              if not r.is_cancellation and r.order_date <= date(2010, 12, 2)}

    def revenue(day: date) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for r in rows:
            if r.order_date == day:
                totals[r.customer_id] = totals.get(r.customer_id, Decimal(0)) + r.line_revenue
        return totals

    before, after = revenue(date(2010, 12, 2)), revenue(date(2010, 12, 3))
    errors = [float(before.get(c, 0) - after.get(c, 0)) for c in buyers]
    return (sum(abs(e) for e in errors) / len(errors),
            math.sqrt(sum(e * e for e in errors) / len(errors)))


def test_model_on_the_sample_days(sample, model):
    m = model.metrics
    mae, rmse = _naive_errors(sample)
    assert m["baseline_mae"] == pytest.approx(mae)
    assert m["baseline_rmse"] == pytest.approx(rmse)
    assert 0 <= m["model_mae"] <= m["model_rmse"]
    assert m["model_mae"] < m["baseline_mae"]  # the Rules' "better than naive"
    assert model.target == TARGET and model.params["lossType"] == "absolute"
    assert m["eval_customers"] > 100
    assert m["train_customers"] > 50
    assert model.params["training_cutoff"] == "2010-12-01"
    assert model.params["held_back_end"] == "2010-12-03"
    scored = score_value(sample, SAMPLE_AS_OF, model)
    assert tuple(scored.columns) == VALUE_COLUMNS
    warehouse.check_schema(scored.schema,
                           warehouse.shipped_tables().table("analytics", "customer_value"))
    assert scored.schema.simpleString() == (
        "struct<as_of_date:date,customer_id:string,historical_revenue:decimal(18,2),"
        "orders:bigint,predicted_90d_revenue:decimal(18,2)>")
    rows = scored.collect()
    assert all(r.predicted_90d_revenue >= 0 for r in rows)
    assert all(r.as_of_date == SAMPLE_AS_OF for r in rows)
    buyers = sample.where("customer_id IS NOT NULL AND NOT is_cancellation")
    assert len(rows) == buyers.select("customer_id").distinct().count()
    assert len({r.predicted_90d_revenue for r in rows}) > 1  # not one constant


def test_same_inputs_and_seed_same_model_and_rows(sample, model):
    again = train_value(sample, SAMPLE_AS_OF, horizon_days=HORIZON, seed=11, max_iter=5)
    assert again.metrics == model.metrics
    assertDataFrameEqual(score_value(sample, SAMPLE_AS_OF, again),
                         score_value(sample, SAMPLE_AS_OF, model))


def test_saved_model_scores_the_same(sample, model, tmp_path):
    model.save(str(tmp_path / "model"))
    loaded = ValueModel.load(str(tmp_path / "model"))
    assert (loaded.metrics, loaded.params, loaded.horizon_days) == (
        model.metrics, model.params, model.horizon_days)
    assertDataFrameEqual(score_value(sample, SAMPLE_AS_OF, loaded),
                         score_value(sample, SAMPLE_AS_OF, model))


def test_compare_to_measures_the_current_model_on_this_run(sample, model):
    same = model.compare_to(model, sample, SAMPLE_AS_OF)
    assert same == {k: v for k, v in model.metrics.items() if k != "train_customers"}
    other = ValueModel(model.pipeline, 2, {}, {})
    with pytest.raises(ValueError, match="forecasts 2 days, this one 1"):
        model.compare_to(other, sample, SAMPLE_AS_OF)


def test_a_model_saved_before_the_naive_anchor_scores_as_it_was_trained(sample, model,
                                                                       tmp_path):
    """A current model saved by the earlier job (its meta has no `target`: it fitted
    log1p(revenue) alone) still predicts expm1 of its output, not an offset to the naive
    forecast; an unknown target is refused by name."""
    path = tmp_path / "old"
    model.save(str(path))
    content = read_json(str(path / "meta"))
    del content["target"]
    write_json(str(path / "meta"), content)
    old = ValueModel.load(str(path))
    assert old.target == OLD_TARGET
    features = value_features(sample, SAMPLE_AS_OF, HORIZON)
    rows = old.predict(features).select(
        "predicted", F.greatest(F.expm1("log_predicted"), F.lit(0.0)).alias("own")).collect()
    assert rows and all(r.predicted == r.own for r in rows)
    anchored = model.predict(features).where("recent_revenue > 0").select(
        "predicted", F.greatest(F.expm1("log_predicted"), F.lit(0.0)).alias("own")).collect()
    assert any(r.predicted != r.own for r in anchored)
    with pytest.raises(ValueError, match="target 'log2'"):
        ValueModel(model.pipeline, HORIZON, {}, {}, "log2")


def _failed_rules(spark, **metrics: float) -> set[str]:
    """The Rules of datasets/customer_value.dqdl that fail on one row of model metrics."""
    names = sorted(metrics)
    frame = spark.createDataFrame([tuple(metrics[n] for n in names)],
                                  ", ".join(f"`{n}` double" for n in names))
    rules = load_ruleset(REPO / "datasets" / "customer_value.dqdl")
    report, _ = QualityEngine(rules, dt.datetime(2011, 12, 10, tzinfo=dt.UTC)).measure(frame)
    return {r.rule.text for r in report.results
            if r.rule.severity == "error" and r.outcome == "fail"}


def test_rules_refuse_a_model_no_better_than_the_naive_forecast(spark):
    """Better than naive is a Rule: a model that loses (or ties) fails the run."""
    base = {"model_rmse": 3000.0, "baseline_rmse": 2700.0, "eval_customers": 3370.0,
            "train_customers": 2821.0, "baseline_mae": 593.76}
    assert _failed_rules(spark, model_mae=575.72, **base) == set()
    naive = 'CustomSql "select count(*) from primary where not (model_mae < baseline_mae)" = 0'
    assert _failed_rules(spark, model_mae=651.19, **base) == {naive}
    assert _failed_rules(spark, model_mae=593.76, **base) == {naive}
    assert naive in _failed_rules(spark, model_mae=float("nan"), **base)
