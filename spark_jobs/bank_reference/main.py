"""The bank_reference job: one snapshot of one Berka reference file (account.asc, client.asc,
disp.asc or district.asc; `;`-separated) in; its table, quarantine, metrics.json and
quality.json out. Four catalog datasets (bank_accounts, bank_clients, bank_dispositions,
bank_districts) share this job; each names its file with `job.arguments: {table: <source>}`,
which ResolveRun passes as `--table <source>`.

    spark-submit spark_jobs/bank_reference/main.py --table account|client|disp|district
        --input URI --output-root URI --quarantine URI --metrics URI --quality URI
        --rules URI --run-id ID --partition YYYY-MM-DD [the other contract arguments]

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

from spark_jobs.bank_reference import transforms
from spark_jobs.common.entry import EXIT_REFUSED, report_job_error
from spark_jobs.common.raw_job import RawJob

TABLE_OPTION = "--table"

# One RawJob per reference file, keyed by the catalog's job.arguments.table.
JOBS = {
    source: RawJob(
        dataset=table.dataset,
        input_format="csv",
        header=table.header,
        delimiter=transforms.DELIMITER,
        parse=table.parse,
        typed_columns=table.typed_columns,
        partition_reason=table.partition_reason,
        outputs=table.outputs,
        null_count_columns=table.null_count_columns,
        range_columns=table.range_columns,
        partition_column=transforms.SNAPSHOT,
    )
    for source, table in transforms.TABLES.items()
}


def split_table(argv: list[str]) -> tuple[str | None, list[str]]:
    """The value of `--table` (None when absent or given twice) and the other arguments."""
    rest: list[str] = []
    found: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == TABLE_OPTION:
            found.append(next(args, ""))
        elif arg.startswith(TABLE_OPTION + "="):
            found.append(arg.partition("=")[2])
        else:
            rest.append(arg)
    return (found[0] if len(found) == 1 else None), rest


def main(argv: list[str] | None = None) -> int:
    table, rest = split_table(sys.argv[1:] if argv is None else argv)
    if table not in JOBS:
        report_job_error(f"bad job arguments: {TABLE_OPTION} must be given once, as one of "
                         f"{', '.join(JOBS)} (got {table!r})")
        return EXIT_REFUSED
    return JOBS[table].main(rest)


if __name__ == "__main__":
    sys.exit(main())
