"""The web_logs job: one server-local day of an Apache/Nginx access log (common or combined
format) in; web_requests, web_traffic_hourly, web_error_paths, quarantine, metrics.json and
quality.json out.

    spark-submit spark_jobs/web_logs/main.py --input URI --output-root URI --quarantine URI
        --metrics URI --quality URI --rules URI --run-id ID --partition YYYY-MM-DD
        [--reference-time ISO-8601] [--encoding utf-8|latin-1|cp1252]
        [--input-etag ETAG [--input-version-id ID]] [--input-source s3://...]

Everything but the dataset's own parsing and outputs (input checks, the one scan, the rules,
quarantine, writes, metrics, exit codes) is the raw job framework's; exact duplicate lines are
kept, each a request:
spark_jobs.common.raw_job. Quarantined lines keep their text (the framework's default rows).
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
from spark_jobs.web_logs import transforms

JOB = RawJob(
    dataset="web_logs",
    input_format="text",
    parse=transforms.parse,
    typed_columns=transforms.TYPED_COLUMNS,
    partition_reason=transforms.partition_reason,
    outputs=transforms.OUTPUTS,
    null_count_columns=transforms.NULL_COUNT_COLUMNS,
    range_columns=transforms.RANGE_COLUMNS,
    # Two identical lines are two requests (same second, client, path, size): both load.
    keep_duplicates=True,
)


def main(argv: list[str] | None = None) -> int:
    return JOB.main(argv)


if __name__ == "__main__":
    sys.exit(main())
