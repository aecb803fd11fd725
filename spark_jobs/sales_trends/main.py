"""The sales_trends job: online_retail's curated sales_line_items of the catalog's 30 days up
to the run's as_of day in; that day's analytics.sales_trends rows, metrics.json and
quality.json out.

    spark-submit spark_jobs/sales_trends/main.py --input <inputs.json> --output-root URI
        --metrics URI --quality URI --rules URI --run-id ID --partition YYYY-MM-DD
        [--reference-time ISO-8601] [--input-etag ETAG] [--input-source s3://...]

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
    """The as_of day's rows (the load replaces that day)."""
    return {TABLE: transforms.sales_trends(inputs[SOURCE], args.as_of, args.as_of)}


JOB = DerivedJob(dataset="sales_trends", outputs=(TABLE,), rules_on=TABLE, compute=compute)


def main(argv: list[str] | None = None) -> int:
    return JOB.main(argv)


if __name__ == "__main__":
    sys.exit(main())
