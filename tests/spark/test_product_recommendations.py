"""product_recommendations: interactions, exclusions, rankings and precision on hand-made
lines, and the ALS model on the real sample days."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from retail_history import line, lines, sample_lines

from spark_jobs.common import warehouse
from spark_jobs.product_recommendations.transforms import (
    RECOMMENDATION_COLUMNS,
    RecommenderModel,
    interactions,
    popular,
    precision,
    recent_items,
    score_recommendations,
    top_n,
    train_recommender,
)

pytestmark = pytest.mark.spark

SAMPLE_AS_OF = date(2010, 12, 3)
# Every stock code of the real year (2010-12-01..2011-12-09) that does not start with five
# digits: charges, fees, vouchers, manual entries and one-off web-shop codes.
REAL_NON_PRODUCTS = (
    "POST", "DOT", "M", "m", "C2", "D", "S", "BANK CHARGES", "AMAZONFEE", "CRUK", "B", "PADS",
    "DCGSSGIRL", "DCGSSBOY", "DCGS0003", "DCGS0004", "DCGS0055", "DCGS0057", "DCGS0066P",
    "DCGS0067", "DCGS0068", "DCGS0069", "DCGS0070", "DCGS0071", "DCGS0072", "DCGS0073",
    "DCGS0074", "DCGS0076", "gift_0001_10", "gift_0001_20", "gift_0001_30", "gift_0001_40",
    "gift_0001_50")
REAL_PRODUCTS = ("85123A", "22423", "15056BL", "84406B", "90214Y", "47566", "79323W")


def test_only_five_digit_codes_are_products(spark):
    codes = [*REAL_NON_PRODUCTS, *REAL_PRODUCTS]
    frame = lines(spark, [line(f"5360{i:02d}", "A", date(2010, 12, 1), stock=code)
                          for i, code in enumerate(codes)])
    kept = {r.stock_code for r in interactions(frame, date(2010, 12, 1)).collect()}
    assert kept == set(REAL_PRODUCTS)


def test_interactions_by_hand(spark):
    frame = lines(spark, [
        line("536001", "A", date(2010, 12, 1), stock="22423", quantity=3),
        line("536002", "A", date(2010, 12, 2), stock="22423", quantity=4),
        line("C536003", "A", date(2010, 12, 2), stock="22423", quantity=-2),  # cancellation
        line("536004", "A", date(2010, 12, 2), stock="POST", quantity=1),  # not a product
        line("536005", None, date(2010, 12, 2), stock="22423", quantity=9),  # guest
        line("536006", "B", date(2010, 12, 3), stock="85123A", quantity=0),  # no units
        line("536007", "B", date(2010, 12, 9), stock="85123A", quantity=5),  # after until
        line("536008", "B", date(2010, 12, 3), stock="85123A", quantity=1),
    ])
    got = interactions(frame, date(2010, 12, 5)).select("customer_id", "stock_code", "units")
    expected = spark.createDataFrame([("A", "22423", 7), ("B", "85123A", 1)],
                                     "customer_id string, stock_code string, units bigint")
    assertDataFrameEqual(got, expected)


def test_recent_items_are_the_30_days_up_to_the_day(spark):
    frame = lines(spark, [
        line("536001", "A", date(2010, 11, 5), stock="10001"),  # 30 days before: out
        line("536002", "A", date(2010, 11, 6), stock="10002"),
        line("536003", "A", date(2010, 12, 5), stock="10003"),
        line("536004", "A", date(2010, 12, 6), stock="10004"),  # after: out
    ])
    got = {r.stock_code for r in recent_items(frame, date(2010, 12, 5)).collect()}
    assert got == {"10002", "10003"}


def test_top_n_excludes_then_ranks_by_score_then_code(spark):
    candidates = spark.createDataFrame([
        ("A", "30000", 0.9), ("A", "20000", 0.5), ("A", "10000", 0.5), ("A", "40000", 0.95),
        ("A", "50000", 0.1), ("B", "10000", 0.2)],
        "customer_id string, stock_code string, score double")
    excluded = spark.createDataFrame([("A", "40000")], "customer_id string, stock_code string")
    got = top_n(candidates, excluded, 3).select("customer_id", "rank", "stock_code")
    expected = spark.createDataFrame(
        [("A", 1, "30000"), ("A", 2, "10000"), ("A", 3, "20000"), ("B", 1, "10000")],
        "customer_id string, rank int, stock_code string")
    assertDataFrameEqual(got, expected)


def test_precision_counts_hits_over_n_and_missing_users_as_zero(spark):
    recommended = spark.createDataFrame(
        [("A", "1"), ("A", "2"), ("A", "3"), ("B", "1")], "customer_id string, stock_code string")
    truth = spark.createDataFrame(
        [("A", "2"), ("A", "3"), ("A", "9"), ("B", "7"), ("C", "1")],
        "customer_id string, stock_code string")
    users = spark.createDataFrame([("A",), ("B",), ("C",)], "customer_id string")
    # A: 2 hits of 10, B: 0, C: no recommendation -> 0
    assert precision(recommended, truth, users, 10) == pytest.approx((0.2 + 0 + 0) / 3)
    with pytest.raises(ValueError, match="no customer"):
        precision(recommended, truth, users.limit(0), 10)


def test_popularity_counts_customers_not_units(spark):
    frame = lines(spark, [
        line("536001", "A", date(2010, 11, 1), stock="10001", quantity=1000),
        line("536002", "A", date(2010, 11, 1), stock="10002"),
        line("536003", "B", date(2010, 11, 1), stock="10002"),
        line("536004", "B", date(2010, 11, 1), stock="10003"),
        line("536005", "C", date(2010, 11, 1), stock="10003"),
    ])
    users = spark.createDataFrame([("A",), ("D",)], "customer_id string")
    excluded = spark.createDataFrame([("A", "10002")], "customer_id string, stock_code string")
    got = popular(frame, users, date(2010, 11, 30), excluded, 2).select(
        "customer_id", "rank", "stock_code")
    expected = spark.createDataFrame(
        [("A", 1, "10003"), ("A", 2, "10001"), ("D", 1, "10002"), ("D", 2, "10003")],
        "customer_id string, rank int, stock_code string")
    assertDataFrameEqual(got, expected)


def test_bad_arguments_and_no_history_are_errors(spark):
    frame = lines(spark, [line("536001", "A", date(2010, 12, 10), stock="10001")])
    with pytest.raises(ValueError, match="holdout_days 0"):
        train_recommender(frame, date(2010, 12, 10), holdout_days=0, seed=1)
    with pytest.raises(ValueError, match="nothing to train the recommender on"):
        train_recommender(frame, date(2010, 12, 10), holdout_days=5, seed=1)


@pytest.fixture(scope="module")
def sample(spark):
    frame = sample_lines(spark).cache()
    yield frame
    frame.unpersist()


@pytest.fixture(scope="module")
def model(sample):
    return train_recommender(sample, SAMPLE_AS_OF, holdout_days=1, seed=5, max_iter=4)


def test_model_on_the_sample_days(sample, model):
    m = model.metrics
    assert 0 <= m["precision_at_10"] <= 1
    assert 0 <= m["popularity_precision_at_10"] <= 1
    # only 4 sample customers bought on a training day (12-01, 12-02) and on 12-03
    assert m["eval_customers"] == 4
    assert model.params["training_end"] == "2010-12-02"
    scored = score_recommendations(sample, SAMPLE_AS_OF, model)
    assert tuple(scored.columns) == RECOMMENDATION_COLUMNS
    warehouse.check_schema(
        scored.schema, warehouse.shipped_tables().table("analytics", "product_recommendations"))
    assert scored.schema.simpleString() == (
        "struct<as_of_date:date,customer_id:string,rank:int,stock_code:string,score:double>")
    rows = scored.collect()
    trained = sample.where(F.col("order_date") <= date(2010, 12, 2))
    known = {r.customer_id for r in interactions(trained, date(2010, 12, 2)).collect()}
    by_customer: dict[str, list] = {}
    for r in rows:
        by_customer.setdefault(r.customer_id, []).append(r)
    assert set(by_customer) == known
    bought = {(r.customer_id, r.stock_code) for r in sample.collect()}  # all within 30 days
    for customer, recs in by_customer.items():
        recs.sort(key=lambda r: r.rank)
        assert [r.rank for r in recs] == list(range(1, 11))
        assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
        assert not {(customer, r.stock_code) for r in recs} & bought
        assert all(r.stock_code[:5].isdigit() for r in recs)


def test_same_inputs_and_seed_same_model_and_rows(sample, model):
    again = train_recommender(sample, SAMPLE_AS_OF, holdout_days=1, seed=5, max_iter=4)
    assert again.metrics == model.metrics
    assertDataFrameEqual(score_recommendations(sample, SAMPLE_AS_OF, again),
                         score_recommendations(sample, SAMPLE_AS_OF, model))


def test_saved_model_scores_the_same(sample, model, tmp_path):
    model.save(str(tmp_path / "model"))
    loaded = RecommenderModel.load(str(tmp_path / "model"))
    assert (loaded.metrics, loaded.params, loaded.holdout_days, loaded.top_n) == (
        model.metrics, model.params, model.holdout_days, model.top_n)
    assertDataFrameEqual(score_recommendations(sample, SAMPLE_AS_OF, loaded),
                         score_recommendations(sample, SAMPLE_AS_OF, model))


def test_compare_to_measures_the_current_model_on_this_run(sample, model):
    assert model.compare_to(model, sample, SAMPLE_AS_OF) == model.metrics
    # a model trained on day 1 only, measured on this run's hold-out (day 3)
    older = train_recommender(sample, date(2010, 12, 2), holdout_days=1, seed=5, max_iter=4)
    figures = model.compare_to(older, sample, SAMPLE_AS_OF)
    assert 0 <= figures["precision_at_10"] <= 1
    assert figures["eval_customers"] <= model.metrics["eval_customers"]
