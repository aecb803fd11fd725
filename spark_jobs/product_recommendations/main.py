"""The product_recommendations job: online_retail's curated sales_line_items up to the run's
as_of day in; that day's analytics.product_recommendations rows (the top 10 per customer), the
ALS model (trained unless the run only scores), metrics.json and quality.json out.

    spark-submit spark_jobs/product_recommendations/main.py --input <inputs.json>
        --output-root URI --metrics URI --quality URI --rules URI --run-id ID
        --partition YYYY-MM-DD --model-root URI [--current-model URI] [--train true|false]
        --promotion-metric M [--promotion-direction D] [--promotion-tolerance T]
        [--holdout-days N] [--seed N] [--max-iter N]

The last three are the catalog's job.arguments (holdout-days: 30 in the catalog, 1 on the
three sample days). The top 10 is fixed: the table and the gated metric (precision_at_10)
are named after it. The rules are measured on the model's metrics (rules_on "model").
Everything else is the derived job framework's (spark_jobs.common.derived_job).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    # spark-submit runs this file as a plain script (see spark_jobs/online_retail/main.py).
    _root = Path(__file__).resolve().parents[2]
    try:
        import spark_jobs  # noqa: F401
    except ImportError:
        if (_root / "spark_jobs" / "__init__.py").is_file():
            sys.path.insert(0, str(_root))

from pyspark.sql import DataFrame

from spark_jobs.common.derived_args import DerivedArgs
from spark_jobs.common.derived_job import MODEL_TABLE, DerivedJob, Model, ModelHooks
from spark_jobs.product_recommendations.transforms import (
    ALS_ITERATIONS,
    RecommenderModel,
    score_recommendations,
    train_recommender,
)

SOURCE = "online_retail.sales_line_items"
TABLE = "product_recommendations"
TOP_N = 10
HOLDOUT_DAYS = 30
SEED = 42


def _recommender(model: Model) -> RecommenderModel:
    if not isinstance(model, RecommenderModel):
        raise TypeError(f"product_recommendations scores with a RecommenderModel, not "
                        f"{type(model)}")
    return model


def train(inputs: Mapping[str, DataFrame], args: DerivedArgs) -> RecommenderModel:
    return train_recommender(inputs[SOURCE], args.as_of, top_n=TOP_N,
                             holdout_days=args.int_option("holdout-days", HOLDOUT_DAYS),
                             seed=args.int_option("seed", SEED, minimum=0),
                             max_iter=args.int_option("max-iter", ALS_ITERATIONS))


def score(inputs: Mapping[str, DataFrame], args: DerivedArgs, model: Model
          ) -> dict[str, DataFrame]:
    return {TABLE: score_recommendations(inputs[SOURCE], args.as_of, _recommender(model),
                                         top_n=TOP_N)}


def compare(new: Model, current: Model, inputs: Mapping[str, DataFrame], args: DerivedArgs
            ) -> dict[str, float]:
    """The current model's precision on this run's hold-out."""
    return _recommender(new).compare_to(_recommender(current), inputs[SOURCE], args.as_of)


JOB = DerivedJob(dataset="product_recommendations", outputs=(TABLE,), rules_on=MODEL_TABLE,
                 model=ModelHooks(train=train, load=RecommenderModel.load, score=score,
                                  compare=compare))


def main(argv: list[str] | None = None) -> int:
    return JOB.main(argv)


if __name__ == "__main__":
    sys.exit(main())
