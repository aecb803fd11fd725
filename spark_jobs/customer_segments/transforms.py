"""Customer segments: RFM per customer, KMeans with k chosen by silhouette, named segments.

Features (spark_jobs.customer_segments.features.rfm, up to as_of): recency in days, frequency
(distinct purchase invoices), monetary (net revenue). All three are skewed (a few wholesalers
buy hundreds of times), so each is log1p-transformed, then standardized (StandardScaler with
mean and std): KMeans's Euclidean distance then weighs the three alike. A negative monetary
(returns above purchases) counts as 0 in the features and is reported as it is in the output.

k is the value of `k_values` with the highest silhouette (ClusteringEvaluator: squared
Euclidean, over the training customers); equal silhouettes: the smaller k. Names and
segment_ids come from the centroids (spark_jobs.customer_segments.naming).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.customer_segments.features import (
    history_start,
    money,
    per_customer,
    read_json,
    rfm,
    write_json,
)
from spark_jobs.customer_segments.naming import segment_ids, segment_names

SEGMENT_COLUMNS = ("as_of_date", "customer_id", "segment_id", "segment_name", "recency_days",
                   "frequency", "monetary")
PROFILE_COLUMNS = ("as_of_date", "segment_id", "segment_name", "customers", "avg_recency_days",
                   "avg_frequency", "avg_monetary", "silhouette")
FEATURES = ("log_recency", "log_frequency", "log_monetary")
MAX_ITER = 20


def segment_features(lines: DataFrame, as_of: date) -> DataFrame:
    """rfm() plus the log1p features the pipeline assembles (per_customer partitions)."""
    customers = per_customer(rfm(lines, as_of))
    return customers.select(
        "*",
        F.log1p(F.col("recency_days").cast("double")).alias("log_recency"),
        F.log1p(F.col("frequency").cast("double")).alias("log_frequency"),
        F.log1p(F.greatest(F.col("monetary").cast("double"), F.lit(0.0))).alias("log_monetary"),
    )


def _silhouette(scored: DataFrame) -> float:
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="cluster")
    return float(evaluator.evaluate(scored))


@dataclass
class SegmentModel:
    """A fitted assembler + scaler + KMeans pipeline, with its training figures."""

    pipeline: PipelineModel
    silhouette: float
    params: dict[str, str | int | float] = field(default_factory=dict)

    @property
    def kmeans(self) -> KMeansModel:
        stage = self.pipeline.stages[-1]
        assert isinstance(stage, KMeansModel)
        return stage

    @property
    def k(self) -> int:
        return int(self.kmeans.getK())

    @property
    def centroids(self) -> list[tuple[float, float, float]]:
        return [(float(c[0]), float(c[1]), float(c[2])) for c in self.kmeans.clusterCenters()]

    @property
    def names(self) -> list[str]:
        return segment_names(self.centroids)

    @property
    def metrics(self) -> dict[str, float]:
        return {"k": float(self.k), "silhouette": self.silhouette}

    def save(self, path: str) -> None:
        self.pipeline.write().overwrite().save(f"{path.rstrip('/')}/pipeline")
        write_json(f"{path.rstrip('/')}/meta", {"metrics": self.metrics, "params": self.params})

    @classmethod
    def load(cls, path: str) -> SegmentModel:
        meta = read_json(f"{path.rstrip('/')}/meta")
        pipeline = PipelineModel.load(f"{path.rstrip('/')}/pipeline")
        return cls(pipeline, float(meta["metrics"]["silhouette"]), dict(meta["params"]))

    def assign(self, lines: DataFrame, as_of: date) -> DataFrame:
        """The features of every customer up to as_of with its KMeans `cluster`."""
        return self.pipeline.transform(segment_features(lines, as_of))

    def compare_to(self, current: SegmentModel, lines: DataFrame, as_of: date
                   ) -> dict[str, float]:
        """The current model's figures on this run's customers (what `metrics` holds for the
        new model, measured alike)."""
        return {"k": float(current.k), "silhouette": _silhouette(current.assign(lines, as_of))}


def _fit_k(scaled: DataFrame, k: int, seed: int, max_iter: int
           ) -> tuple[KMeansModel, float]:
    kmeans = KMeans(k=k, seed=seed, maxIter=max_iter, featuresCol="features",
                    predictionCol="cluster")
    model = kmeans.fit(scaled)
    return model, _silhouette(model.transform(scaled))


def _check_k_values(k_values: Sequence[int], customers: int) -> None:
    if not k_values:
        raise ValueError("k_values is empty: give the range of k to choose from")
    if min(k_values) < 2:
        raise ValueError(f"k_values {list(k_values)}: every k must be at least 2 "
                         "(silhouette needs two clusters)")
    if customers <= max(k_values):
        raise ValueError(f"{customers} customers with purchases: too few for k up to "
                         f"{max(k_values)}")


def train_segments(lines: DataFrame, as_of: date, *, k_values: Sequence[int], seed: int,
                   max_iter: int = MAX_ITER) -> SegmentModel:
    """Fits the scaler on every customer up to as_of and KMeans for each k; keeps the k with
    the best silhouette (ties: smaller k)."""
    features = segment_features(lines, as_of).cache()
    try:
        _check_k_values(k_values, features.count())
        assembler = VectorAssembler(inputCols=list(FEATURES), outputCol="rfm")
        assembled = assembler.transform(features)
        scaler = StandardScaler(inputCol="rfm", outputCol="features", withMean=True,
                                withStd=True).fit(assembled)
        scaled = scaler.transform(assembled).cache()
        fits = {k: _fit_k(scaled, k, seed, max_iter) for k in sorted(set(k_values))}
        best = max(fits, key=lambda k: (fits[k][1], -k))
        scaled.unpersist()
        params: dict[str, str | int | float] = {
            "seed": seed, "k_values": ",".join(str(k) for k in sorted(set(k_values))),
            "max_iter": max_iter, "training_start": history_start(lines, as_of).isoformat(),
            "training_end": as_of.isoformat(),
            **{f"silhouette_k{k}": round(s, 6) for k, (_, s) in fits.items()},
        }
        pipeline = PipelineModel(stages=[assembler, scaler, fits[best][0]])
        return SegmentModel(pipeline, fits[best][1], params)
    finally:
        features.unpersist()


def _lookup(values: Sequence[Any], index: Column) -> Column:
    pairs = [item for i, v in enumerate(values) for item in (F.lit(i), F.lit(v))]
    return F.create_map(*pairs)[index]


def score_segments(lines: DataFrame, as_of: date, model: SegmentModel
                   ) -> tuple[DataFrame, DataFrame]:
    """(analytics.customer_segments rows, analytics.segment_profiles rows) at as_of.

    The profiles' silhouette is the segmentation's on these customers (equal to the model's
    training silhouette when scoring the day it was trained on).
    """
    assigned = model.assign(lines, as_of).cache()
    silhouette = _silhouette(assigned)
    segments = assigned.select(
        F.lit(as_of).alias("as_of_date"),
        F.col("customer_id").cast("string").alias("customer_id"),
        _lookup(segment_ids(model.centroids), F.col("cluster")).cast("int").alias("segment_id"),
        _lookup(model.names, F.col("cluster")).alias("segment_name"),
        F.col("recency_days").cast("int").alias("recency_days"),
        F.col("frequency").cast("bigint").alias("frequency"),
        F.col("monetary").cast("decimal(18,2)").alias("monetary"),
    )
    profiles = segments.groupBy("as_of_date", "segment_id", "segment_name").agg(
        F.count(F.lit(1)).cast("bigint").alias("customers"),
        F.avg(F.col("recency_days").cast("double")).alias("avg_recency_days"),
        F.avg(F.col("frequency").cast("double")).alias("avg_frequency"),
        money(F.avg("monetary")).alias("avg_monetary"),
        F.lit(silhouette).cast("double").alias("silhouette"),
    ).select(*PROFILE_COLUMNS)
    return segments.select(*SEGMENT_COLUMNS), profiles
