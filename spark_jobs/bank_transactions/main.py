"""The bank_transactions job: one booking day of Berka bank transactions (JSON Lines) in;
bank_transactions, account_daily_summary, quarantine, metrics.json and quality.json out.

    spark-submit spark_jobs/bank_transactions/main.py --input URI --output-root URI
        --quarantine URI --metrics URI --quality URI --rules URI --run-id ID
        --partition YYYY-MM-DD [--reference-time ISO-8601] [--encoding utf-8]
        [--input-etag ETAG [--input-version-id ID]] [--input-source s3://...]

Arguments, exit codes and what the framework does with every line: spark_jobs.common.raw_job.
What a line means, why one is refused and how the tables are built: transforms.
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

from spark_jobs.bank_transactions import transforms
from spark_jobs.common.raw_job import RawJob

JOB = RawJob(
    dataset="bank_transactions",
    input_format="jsonl",
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
