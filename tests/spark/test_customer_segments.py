"""customer_segments: RFM features on hand-made lines, and the model on the real sample days."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pyspark.testing import assertDataFrameEqual
from retail_history import line, lines, sample_lines

from spark_jobs.common import warehouse
from spark_jobs.customer_segments.features import rfm
from spark_jobs.customer_segments.transforms import (
    PROFILE_COLUMNS,
    SEGMENT_COLUMNS,
    SegmentModel,
    score_segments,
    segment_features,
    train_segments,
)

pytestmark = pytest.mark.spark

AS_OF = date(2010, 12, 10)
SAMPLE_AS_OF = date(2010, 12, 3)
K_VALUES = (2, 3, 4)


def test_rfm_by_hand(spark):
    frame = lines(spark, [
        line("536001", "A", date(2010, 12, 1), quantity=2, price="1.50"),
        line("536001", "A", date(2010, 12, 1), stock="22423", quantity=1, price="3.00"),
        line("536002", "A", date(2010, 12, 5), quantity=1, price="10.00"),
        line("C536003", "A", date(2010, 12, 6), quantity=-1, price="3.00"),
        line("536004", "A", date(2010, 12, 20), quantity=5, price="9.00"),  # after as_of
        line("C536005", "B", date(2010, 12, 2), quantity=-2, price="1.00"),  # no purchase
        line("536006", None, date(2010, 12, 3), quantity=9, price="1.00"),  # guest
        line("536007", "C", date(2010, 12, 10), quantity=1, price="5.00"),
        line("C536008", "C", date(2010, 12, 10), quantity=-10, price="5.00"),
    ])
    got = rfm(frame, AS_OF)
    expected = spark.createDataFrame(
        [("A", 5, 2, Decimal("13.00"), 9), ("C", 0, 1, Decimal("-45.00"), 0)],
        "customer_id string, recency_days int, frequency bigint, monetary decimal(18,2), "
        "tenure_days int")
    assertDataFrameEqual(got, expected)


def test_negative_monetary_counts_as_zero_in_the_features(spark):
    frame = lines(spark, [
        line("536007", "C", date(2010, 12, 10), quantity=1, price="5.00"),
        line("C536008", "C", date(2010, 12, 10), quantity=-10, price="5.00"),
    ])
    row = segment_features(frame, AS_OF).first()
    assert row.monetary == Decimal("-45.00")
    assert row.log_monetary == 0.0
    assert row.log_frequency == pytest.approx(0.6931471805599453)


@pytest.mark.parametrize(("k_values", "message"), [
    ((), "k_values is empty"), ((1, 2), "at least 2"), ((2, 3), "too few for k up to 3")])
def test_bad_k_values_are_refused(spark, k_values, message):
    frame = lines(spark, [line("536001", "A", AS_OF), line("536002", "B", AS_OF),
                          line("536003", "C", AS_OF)])
    with pytest.raises(ValueError, match=message):
        train_segments(frame, AS_OF, k_values=k_values, seed=1)


@pytest.fixture(scope="module")
def sample(spark):
    frame = sample_lines(spark).cache()
    yield frame
    frame.unpersist()


@pytest.fixture(scope="module")
def model(sample):
    return train_segments(sample, SAMPLE_AS_OF, k_values=K_VALUES, seed=7, max_iter=10)


def test_model_on_the_sample_days(spark, sample, model):
    assert model.k in K_VALUES
    silhouettes = {k: model.params[f"silhouette_k{k}"] for k in K_VALUES}
    assert model.k == max(K_VALUES, key=lambda k: (silhouettes[k], -k))
    assert 0 < model.silhouette <= 1
    assert model.metrics == {"k": float(model.k), "silhouette": model.silhouette}
    assert model.params["training_start"] == "2010-12-01"
    segments, profiles = score_segments(sample, SAMPLE_AS_OF, model)
    assert tuple(segments.columns) == SEGMENT_COLUMNS
    assert tuple(profiles.columns) == PROFILE_COLUMNS
    tables = warehouse.shipped_tables()
    warehouse.check_schema(segments.schema, tables.table("analytics", "customer_segments"))
    warehouse.check_schema(profiles.schema, tables.table("analytics", "segment_profiles"))
    assert segments.schema.simpleString() == (
        "struct<as_of_date:date,customer_id:string,segment_id:int,segment_name:string,"
        "recency_days:int,frequency:bigint,monetary:decimal(18,2)>")
    assert profiles.schema.simpleString() == (
        "struct<as_of_date:date,segment_id:int,segment_name:string,customers:bigint,"
        "avg_recency_days:double,avg_frequency:double,avg_monetary:decimal(18,2),"
        "silhouette:double>")
    buyers = sample.where("customer_id IS NOT NULL AND NOT is_cancellation")
    assert segments.count() == buyers.select("customer_id").distinct().count()
    rows = profiles.orderBy("segment_id").collect()
    assert [r.segment_id for r in rows] == list(range(model.k))
    assert [r.segment_name for r in rows] == [model.names[c] for c in _by_segment(model)]
    assert sum(r.customers for r in rows) == segments.count()
    # scoring the training day: the profiles carry the training silhouette
    assert [r.silhouette for r in rows] == [pytest.approx(model.silhouette)] * model.k
    # segment 0 is the best: more recent, more frequent than the last one
    assert rows[0].avg_recency_days < rows[-1].avg_recency_days
    assert rows[0].avg_frequency > rows[-1].avg_frequency


def _by_segment(model: SegmentModel) -> list[int]:
    from spark_jobs.customer_segments.naming import segment_ids

    ids = segment_ids(model.centroids)
    return sorted(range(model.k), key=lambda c: ids[c])


def test_same_inputs_and_seed_same_model_and_rows(sample, model):
    again = train_segments(sample, SAMPLE_AS_OF, k_values=K_VALUES, seed=7, max_iter=10)
    assert again.centroids == model.centroids
    assert again.silhouette == model.silhouette
    assertDataFrameEqual(score_segments(sample, SAMPLE_AS_OF, again)[0],
                         score_segments(sample, SAMPLE_AS_OF, model)[0])


def test_saved_model_scores_the_same(sample, model, tmp_path):
    model.save(str(tmp_path / "model"))
    loaded = SegmentModel.load(str(tmp_path / "model"))
    assert loaded.metrics == model.metrics
    assert loaded.params == model.params
    for got, expected in zip(score_segments(sample, SAMPLE_AS_OF, loaded),
                             score_segments(sample, SAMPLE_AS_OF, model), strict=True):
        assertDataFrameEqual(got, expected)


def test_compare_to_measures_the_current_model_on_this_run(sample, model):
    # the same model on the same day: its own training figures
    same = model.compare_to(model, sample, SAMPLE_AS_OF)
    assert same["k"] == model.metrics["k"]
    assert same["silhouette"] == pytest.approx(model.silhouette)
    # a model trained on the first day, measured on the third day's customers
    older = train_segments(sample, date(2010, 12, 1), k_values=(2,), seed=7, max_iter=10)
    figures = model.compare_to(older, sample, SAMPLE_AS_OF)
    assert figures["k"] == 2.0
    assert -1 <= figures["silhouette"] <= 1
    assert figures["silhouette"] != pytest.approx(older.silhouette)
