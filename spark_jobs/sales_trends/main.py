"""The sales_trends job: online_retail's curated sales_line_items of the catalog's 30 days up
to the run's as_of day in (30 days before --from-day when given); the analytics.sales_trends
rows of the as_of day (each day from --from-day to it), metrics.json and
quality.json out.

    spark-submit spark_jobs/sales_trends/main.py --input <inputs.json> --output-root URI
        --metrics URI --quality URI --rules URI --run-id ID --partition YYYY-MM-DD
        [--reference-time ISO-8601] [--input-etag ETAG] [--input-source s3://...]
        [--from-day YYYY-MM-DD]

Everything but the transform (reading the inputs, the rules, the writes, metrics, exit codes)
is the derived job framework's: spark_jobs.common.derived_job.
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
from spark_jobs.common.derived_job import DerivedJob
from spark_jobs.sales_trends import transforms

SOURCE = "online_retail.sales_line_items"
TABLE = "sales_trends"


def compute(inputs: Mapping[str, DataFrame], args: DerivedArgs) -> dict[str, DataFrame]:
    """The rows of the days from --from-day (the first day an upstream batch loaded; default
    the as_of day) to as_of: the load replaces each of those days."""
    return {TABLE: transforms.sales_trends(inputs[SOURCE], args.first_day, args.as_of)}


JOB = DerivedJob(dataset="sales_trends", outputs=(TABLE,), rules_on=TABLE, compute=compute)


def main(argv: list[str] | None = None) -> int:
    return JOB.main(argv)


if __name__ == "__main__":
    sys.exit(main())
