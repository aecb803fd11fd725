"""Product recommendations: implicit-feedback ALS on customer x product quantities.

Interactions: per known customer and product, the units bought on purchase lines (not
cancellations, quantity > 0) up to a cutoff; the rating ALS sees is log1p(units), so a
wholesaler's 10,000 units weigh more than one unit but do not swamp everything else.

Products are stock codes that start with five digits (85123A, 22423, 15056BL). In the real
year every other code is a charge, fee, voucher or manual entry, or a one-off web-shop code:
POST, DOT, C2 (postage and carriage), M/m (manual), D (discount), S (samples), B (bad debt),
BANK CHARGES, AMAZONFEE, CRUK (commission), PADS, gift_0001_10..50 (vouchers), DCGSSBOY,
DCGSSGIRL and DCGS00xx (dotcom gift-shop codes, several described only as "ebay"); they are
never recommended nor counted.

A customer's recommendations leave out what they bought in the RECENT_DAYS days up to the
cutoff (re-suggesting yesterday's basket is noise); ranks are by score, then stock code.

Hold-out: the model trains on lines up to as_of - holdout_days; precision@N is measured on the
purchases of (as_of - holdout_days, as_of] of customers the model knows who bought a product
there: hits in the top N / N, averaged. The popularity baseline recommends the products bought
by the most customers in the training range (ties: stock code), with the same exclusions. The
model that scores is the evaluated one, so its figures describe what is served and a current
model (trained on an earlier as_of) is compared on data it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.ml import PipelineModel
from pyspark.ml.feature import StringIndexer, StringIndexerModel
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs.customer_segments.features import (
    history_start,
    is_purchase,
    known_lines,
    read_json,
    write_json,
)

RECOMMENDATION_COLUMNS = ("as_of_date", "customer_id", "rank", "stock_code", "score")
PRODUCT_CODE = r"^[0-9]{5}"
RECENT_DAYS = 30
ALS_RANK, ALS_ITERATIONS, ALS_REG, ALS_ALPHA = 16, 10, 0.1, 10.0
ALS_PARAMS = {"rank": ALS_RANK, "maxIter": ALS_ITERATIONS, "regParam": ALS_REG, "alpha": ALS_ALPHA}


def is_product() -> Column:
    return F.col("stock_code").rlike(PRODUCT_CODE)


def product_purchases(lines: DataFrame, after: date | None, until: date) -> DataFrame:
    """Purchase lines of known customers and products in (after, until]."""
    return known_lines(lines, after, until).where(
        is_purchase() & (F.col("quantity") > 0) & is_product())


def interactions(lines: DataFrame, until: date) -> DataFrame:
    """customer_id, stock_code, units and rating (log1p units) up to `until`."""
    return (
        product_purchases(lines, None, until)
        .groupBy("customer_id", "stock_code")
        .agg(F.sum(F.col("quantity").cast("bigint")).alias("units"))
        .withColumn("rating", F.log1p(F.col("units").cast("double")))
    )


def recent_items(lines: DataFrame, until: date) -> DataFrame:
    """(customer_id, stock_code) bought in the RECENT_DAYS days up to `until`: not suggested."""
    since = until - timedelta(days=RECENT_DAYS)
    return product_purchases(lines, since, until).select("customer_id", "stock_code").distinct()


def top_n(candidates: DataFrame, excluded: DataFrame, n: int) -> DataFrame:
    """Per customer, the n best (customer_id, stock_code, score) not in `excluded`: rank 1..n
    by score, then stock code."""
    order = Window.partitionBy("customer_id").orderBy(F.col("score").desc(), "stock_code")
    return (
        candidates.join(excluded, ["customer_id", "stock_code"], "left_anti")
        .withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= n)
    )


def _widest_exclusion(excluded: DataFrame) -> int:
    row = excluded.groupBy("customer_id").count().agg(F.max("count")).first()
    return int(row[0]) if row is not None and row[0] is not None else 0


def precision(recommended: DataFrame, truth: DataFrame, users: DataFrame, n: int) -> float:
    """Mean over `users` of |top n ∩ truth| / n (a user with no recommendation scores 0)."""
    hits = recommended.join(truth, ["customer_id", "stock_code"]).groupBy("customer_id").count()
    row = users.join(hits, "customer_id", "left").agg(
        F.avg(F.coalesce(F.col("count"), F.lit(0)) / F.lit(n)), F.count(F.lit(1))).first()
    if row is None or row[1] == 0:
        raise ValueError("no customer known to the model bought a product in the hold-out")
    return float(row[0])


def popular(lines: DataFrame, users: DataFrame, until: date, excluded: DataFrame, n: int
            ) -> DataFrame:
    """The popularity baseline's top n for `users`: products by distinct customers up to
    `until`, the same exclusions."""
    wanted = n + _widest_exclusion(excluded)
    counts = (interactions(lines, until).groupBy("stock_code")
              .agg(F.count(F.lit(1)).cast("double").alias("score")))
    best = counts.orderBy(F.col("score").desc(), "stock_code").limit(wanted)
    return top_n(users.crossJoin(F.broadcast(best)), excluded, n)


@dataclass
class RecommenderModel:
    """Customer and product indexers and the ALS model, with the hold-out figures."""

    pipeline: PipelineModel
    holdout_days: int
    top_n: int
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str | int | float] = field(default_factory=dict)

    @property
    def als(self) -> ALSModel:
        stage = self.pipeline.stages[2]
        assert isinstance(stage, ALSModel)
        return stage

    def _indexer(self, position: int) -> StringIndexerModel:
        stage = self.pipeline.stages[position]
        assert isinstance(stage, StringIndexerModel)
        return stage

    def known(self, customers: DataFrame) -> DataFrame:
        """The customer_id rows of `customers` the model has factors for, with `user`."""
        users = self._indexer(0).copy().setHandleInvalid("skip")
        return users.transform(customers.select("customer_id").distinct())

    def recommend(self, customers: DataFrame, excluded: DataFrame, n: int) -> DataFrame:
        """Top n (customer_id, stock_code, score, rank) for the known `customers`."""
        users = self.known(customers)
        wanted = n + _widest_exclusion(excluded)
        items = users.sparkSession.createDataFrame(
            list(enumerate(self._indexer(1).labels)), "item int, stock_code string")
        raw = self.als.recommendForUserSubset(users, wanted)
        candidates = (
            raw.join(users, "user")
            .select("customer_id", F.explode("recommendations").alias("r"))
            .select("customer_id", F.col("r.item").alias("item"),
                    F.col("r.rating").cast("double").alias("score"))
            .join(F.broadcast(items), "item")
            .drop("item")
        )
        return top_n(candidates, excluded, n)

    def evaluate(self, lines: DataFrame, as_of: date, holdout_days: int, n: int
                 ) -> dict[str, float]:
        """precision@n of the model and of popularity on (as_of - holdout_days, as_of]."""
        cutoff = as_of - timedelta(days=holdout_days)
        held = product_purchases(lines, cutoff, as_of).select("customer_id", "stock_code")
        truth = held.distinct().cache()
        users = self.known(truth).select("customer_id").cache()
        excluded = recent_items(lines, cutoff).cache()
        try:
            model = precision(self.recommend(users, excluded, n), truth, users, n)
            baseline = precision(popular(lines, users, cutoff, excluded, n), truth, users, n)
            count = float(users.count())
        finally:
            for frame in (truth, users, excluded):
                frame.unpersist()
        return {f"precision_at_{n}": model, f"popularity_precision_at_{n}": baseline,
                "eval_customers": count}

    def compare_to(self, current: RecommenderModel, lines: DataFrame, as_of: date
                   ) -> dict[str, float]:
        """The current model's figures on this run's hold-out (customers it knows)."""
        return current.evaluate(lines, as_of, self.holdout_days, self.top_n)

    def save(self, path: str) -> None:
        self.pipeline.write().overwrite().save(f"{path.rstrip('/')}/pipeline")
        write_json(f"{path.rstrip('/')}/meta", {
            "metrics": self.metrics, "params": self.params, "holdout_days": self.holdout_days,
            "top_n": self.top_n})

    @classmethod
    def load(cls, path: str) -> RecommenderModel:
        meta = read_json(f"{path.rstrip('/')}/meta")
        pipeline = PipelineModel.load(f"{path.rstrip('/')}/pipeline")
        return cls(pipeline, int(meta["holdout_days"]), int(meta["top_n"]),
                   dict(meta["metrics"]), dict(meta["params"]))


def _fit(ratings: DataFrame, seed: int, max_iter: int) -> PipelineModel:
    users = StringIndexer(inputCol="customer_id", outputCol="user",
                          stringOrderType="alphabetAsc").fit(ratings)
    items = StringIndexer(inputCol="stock_code", outputCol="item",
                          stringOrderType="alphabetAsc").fit(ratings)
    indexed = items.transform(users.transform(ratings))
    als = ALS(userCol="user", itemCol="item", ratingCol="rating", implicitPrefs=True,
              coldStartStrategy="drop", seed=seed, rank=ALS_RANK, maxIter=max_iter,
              regParam=ALS_REG, alpha=ALS_ALPHA)
    return PipelineModel(stages=[users, items, als.fit(indexed)])


def train_recommender(lines: DataFrame, as_of: date, *, top_n: int = 10, holdout_days: int,
                      seed: int, max_iter: int = ALS_ITERATIONS) -> RecommenderModel:
    """Fits ALS on the purchases up to as_of - holdout_days and measures it (module
    docstring)."""
    if holdout_days < 1 or top_n < 1:
        raise ValueError(f"holdout_days {holdout_days} and top_n {top_n}: both must be >= 1")
    cutoff = as_of - timedelta(days=holdout_days)
    ratings = interactions(lines, cutoff).cache()
    try:
        if ratings.isEmpty():
            raise ValueError(f"no product purchase of a known customer up to {cutoff} (as_of - "
                             f"{holdout_days} days): nothing to train the recommender on")
        pipeline = _fit(ratings, seed, max_iter)
    finally:
        ratings.unpersist()
    params: dict[str, str | int | float] = {
        "seed": seed, "holdout_days": holdout_days, "top_n": top_n, "recent_days": RECENT_DAYS,
        "rating": "log1p(units)", "product_code": PRODUCT_CODE, **ALS_PARAMS,
        "maxIter": max_iter,
        "training_start": history_start(lines, cutoff).isoformat(),
        "training_end": cutoff.isoformat(), "holdout_end": as_of.isoformat(),
    }
    model = RecommenderModel(pipeline, holdout_days, top_n, {}, params)
    model.metrics = model.evaluate(lines, as_of, holdout_days, top_n)
    return model


def score_recommendations(lines: DataFrame, as_of: date, model: RecommenderModel, *,
                          top_n: int = 10) -> DataFrame:
    """analytics.product_recommendations rows: the top_n of every customer the model knows,
    leaving out what they bought in the RECENT_DAYS days up to as_of."""
    customers = known_lines(lines, None, as_of).select("customer_id")
    chosen = model.recommend(customers, recent_items(lines, as_of), top_n)
    return chosen.select(
        F.lit(as_of).alias("as_of_date"),
        F.col("customer_id").cast("string").alias("customer_id"),
        F.col("rank").cast("int").alias("rank"),
        F.col("stock_code").cast("string").alias("stock_code"),
        F.col("score").cast("double").alias("score"),
    )
