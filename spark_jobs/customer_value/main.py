"""The customer_value job: online_retail's curated sales_line_items up to the run's as_of day
in; that day's analytics.customer_value rows, the value model (trained unless the run only
scores), metrics.json and quality.json out.

    spark-submit spark_jobs/customer_value/main.py --input <inputs.json> --output-root URI
        --metrics URI --quality URI --rules URI --run-id ID --partition YYYY-MM-DD
        --model-root URI [--current-model URI] [--train true|false] --promotion-metric M
        [--promotion-direction D] [--promotion-tolerance T]
        [--horizon-days N] [--seed N] [--max-iter N]

The last three are the catalog's job.arguments (horizon-days: 90 in the catalog, smaller on the
three sample days). The rules are measured on the model's metrics (rules_on "model"):
its error and the naive forecast's on the held-back period. Everything else is the derived
job framework's (spark_jobs.common.derived_job).
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
from spark_jobs.customer_value.transforms import (
    GBT_ITERATIONS,
    ValueModel,
    score_value,
    train_value,
)

SOURCE = "online_retail.sales_line_items"
TABLE = "customer_value"
HORIZON_DAYS = 90
SEED = 42


def _value_model(model: Model) -> ValueModel:
    if not isinstance(model, ValueModel):
        raise TypeError(f"customer_value scores with a ValueModel, not {type(model)}")
    return model


def train(inputs: Mapping[str, DataFrame], args: DerivedArgs) -> ValueModel:
    return train_value(inputs[SOURCE], args.as_of,
                       horizon_days=args.int_option("horizon-days", HORIZON_DAYS),
                       seed=args.int_option("seed", SEED, minimum=0),
                       max_iter=args.int_option("max-iter", GBT_ITERATIONS))


def score(inputs: Mapping[str, DataFrame], args: DerivedArgs, model: Model
          ) -> dict[str, DataFrame]:
    return {TABLE: score_value(inputs[SOURCE], args.as_of, _value_model(model))}


def compare(new: Model, current: Model, inputs: Mapping[str, DataFrame], args: DerivedArgs
            ) -> dict[str, float]:
    """The current model's errors on this run's held-back period."""
    return _value_model(new).compare_to(_value_model(current), inputs[SOURCE], args.as_of)


JOB = DerivedJob(dataset="customer_value", outputs=(TABLE,), rules_on=MODEL_TABLE,
                 model=ModelHooks(train=train, load=ValueModel.load, score=score,
                                  compare=compare))


def main(argv: list[str] | None = None) -> int:
    return JOB.main(argv)


if __name__ == "__main__":
    sys.exit(main())
