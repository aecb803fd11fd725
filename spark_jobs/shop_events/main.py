"""The shop_events job: one UTC day of REES46 clickstream CSV in; shop_events, session_funnel,
cart_abandonment, quarantine, metrics.json and quality.json out.

    spark-submit spark_jobs/shop_events/main.py --input URI --output-root URI --quarantine URI
        --metrics URI --quality URI --rules URI --run-id ID --partition YYYY-MM-DD
        [--reference-time ISO-8601] [--encoding utf-8|latin-1|cp1252]
        [--input-etag ETAG [--input-version-id ID]] [--input-source s3://...]

Everything but the dataset's own parsing and outputs (input checks, the one scan, the rules,
dedupe, quarantine, writes, metrics, exit codes) is the raw job framework's:
spark_jobs.common.raw_job.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    # spark-submit runs this file as a plain script. On EMR the packages come from
    # --py-files spark_jobs.zip; from a checkout they are in the repository root, which is
    # not on sys.path (only this file's folder is). Add it in that case only.
    _root = Path(__file__).resolve().parents[2]
    try:
        import spark_jobs  # noqa: F401
    except ImportError:
        if (_root / "spark_jobs" / "__init__.py").is_file():
            sys.path.insert(0, str(_root))

from spark_jobs.common.raw_job import RawJob
from spark_jobs.shop_events import transforms

JOB = RawJob(
    dataset="shop_events",
    input_format="csv",
    header=transforms.HEADER,
    parse=transforms.parse,
    typed_columns=transforms.TYPED_COLUMNS,
    partition_reason=transforms.partition_reason,
    outputs=transforms.OUTPUTS,
    null_count_columns=transforms.NULL_COUNT_COLUMNS,
    range_columns=transforms.RANGE_COLUMNS,
)


def main(argv: list[str] | None = None) -> int:
    return JOB.main(argv)


if __name__ == "__main__":
    sys.exit(main())
