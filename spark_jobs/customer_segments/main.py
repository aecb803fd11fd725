"""The customer_segments job: online_retail's curated sales_line_items up to the run's as_of
day in; that day's analytics.customer_segments and analytics.segment_profiles rows, the KMeans
model (trained unless the run only scores), metrics.json and quality.json out.

    spark-submit spark_jobs/customer_segments/main.py --input <inputs.json> --output-root URI
        --metrics URI --quality URI --rules URI --run-id ID --partition YYYY-MM-DD
        --model-root URI [--current-model URI] [--train true|false] --promotion-metric M
        [--promotion-direction D] [--promotion-tolerance T]
        [--k-values 2,3,...] [--seed N] [--max-iter N]

The last three are the catalog's job.arguments. The rules are measured on segment_profiles,
which carries the segmentation's silhouette on this run's customers: one table holds both the
outputs' rules and the model's. Everything else is the derived job framework's
(spark_jobs.common.derived_job).
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
from spark_jobs.common.derived_job import DerivedJob, Model, ModelHooks
from spark_jobs.customer_segments.transforms import (
    MAX_ITER,
    SegmentModel,
    score_segments,
    train_segments,
)

SOURCE = "online_retail.sales_line_items"
SEGMENTS, PROFILES = "customer_segments", "segment_profiles"
K_VALUES = (2, 3, 4, 5, 6, 7, 8)
SEED = 42


def _segment_model(model: Model) -> SegmentModel:
    if not isinstance(model, SegmentModel):
        raise TypeError(f"customer_segments scores with a SegmentModel, not {type(model)}")
    return model


def train(inputs: Mapping[str, DataFrame], args: DerivedArgs) -> SegmentModel:
    return train_segments(inputs[SOURCE], args.as_of,
                          k_values=args.ints_option("k-values", K_VALUES),
                          seed=args.int_option("seed", SEED, minimum=0),
                          max_iter=args.int_option("max-iter", MAX_ITER))


def score(inputs: Mapping[str, DataFrame], args: DerivedArgs, model: Model
          ) -> dict[str, DataFrame]:
    segments, profiles = score_segments(inputs[SOURCE], args.as_of, _segment_model(model))
    return {SEGMENTS: segments, PROFILES: profiles}


def compare(new: Model, current: Model, inputs: Mapping[str, DataFrame], args: DerivedArgs
            ) -> dict[str, float]:
    """The current model's silhouette on this run's customers."""
    return _segment_model(new).compare_to(_segment_model(current), inputs[SOURCE], args.as_of)


JOB = DerivedJob(dataset="customer_segments", outputs=(SEGMENTS, PROFILES), rules_on=PROFILES,
                 model=ModelHooks(train=train, load=SegmentModel.load, score=score,
                                  compare=compare))


def main(argv: list[str] | None = None) -> int:
    return JOB.main(argv)


if __name__ == "__main__":
    sys.exit(main())
