"""The Spark job contract's arguments (docs/architecture.md, "Spark job contract").

Every job takes the same arguments; a bad argument is InvalidInput (the caller built a wrong
run manifest), reported as a one-line `JOB ERROR` before Spark starts any work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import dataclass
from typing import NoReturn

from pipeline_core.catalog import DEFAULT_ENCODING, canonical_encoding, validate_partition
from pipeline_core.errors import ConfigurationError, InvalidInput

TABLE_PLACEHOLDER = "{table}"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_GLOB = re.compile(r"[*?\[\]{}]")


@dataclass(frozen=True)
class JobArgs:
    input: str
    output_root: str
    quarantine: str
    metrics: str
    quality: str
    rules: str
    run_id: str
    partition: str
    reference_time: dt.datetime
    encoding: str = DEFAULT_ENCODING  # canonical (pipeline_core.catalog.INPUT_ENCODINGS)
    # The object version the run is for (spark_jobs.common.storage.verify_input_version).
    input_etag: str | None = None
    input_version_id: str | None = None
    input_source: str | None = None  # the S3 object a staged local --input is a copy of

    @property
    def input_object(self) -> str:
        """The object the run is for: --input-source when the input was staged, else --input."""
        return self.input_source or self.input

    def output_uri(self, table: str) -> str:
        """`--output-root` with `{table}` replaced by a table name."""
        return self.output_root.replace(TABLE_PLACEHOLDER, table)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"bad job arguments: {message}")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Spark job: one raw object in, curated tables out.")
    p.add_argument("--input", required=True, help="the raw object (s3:// URI or local path)")
    p.add_argument("--output-root", required=True,
                   help="output prefix with a {table} placeholder")
    p.add_argument("--quarantine", required=True, help="prefix for rejected lines (parquet)")
    p.add_argument("--metrics", required=True, help="where to write metrics.json")
    p.add_argument("--quality", required=True, help="where to write quality.json")
    p.add_argument("--rules", required=True, help="the dataset's .dqdl rules file")
    p.add_argument("--run-id", required=True)
    p.add_argument("--partition", required=True, help="the trading day, YYYY-MM-DD")
    p.add_argument("--reference-time", default=None,
                   help="ISO-8601 UTC instant DataFreshness measures against (default: the end "
                        "of the partition day, so re-runs and backfills measure the same)")
    p.add_argument("--encoding", default=DEFAULT_ENCODING,
                   help="the input's text encoding, the catalog's source.encoding "
                        f"(default {DEFAULT_ENCODING})")
    p.add_argument("--input-etag", default=None,
                   help="the ETag of the object version the run is for: the job refuses the "
                        "input when the object holds another one")
    p.add_argument("--input-version-id", default=None,
                   help="the S3 version id of that object (a versioned bucket)")
    p.add_argument("--input-source", default=None,
                   help="the s3:// object a local --input is a staged copy of (the local "
                        "runtime); the version check heads it. Default: --input")
    return p


def _reference_time(text: str | None, day: dt.date) -> dt.datetime:
    """--reference-time as a UTC instant; by default the end of the partition's day."""
    if text is None:
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    try:
        reference = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInput(f"--reference-time {text!r} is not ISO-8601") from e
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=dt.UTC)
    return reference.astimezone(dt.UTC)


def parse_args(argv: list[str], prog: str = "job") -> JobArgs:
    ns = _parser(prog).parse_args(argv)
    if TABLE_PLACEHOLDER not in ns.output_root:
        raise InvalidInput(f"--output-root must contain {TABLE_PLACEHOLDER}: {ns.output_root!r}")
    if _GLOB.search(ns.input):
        # Spark would expand a pattern into many objects; a run reads exactly one object.
        raise InvalidInput(f"--input must name one object, not a pattern: {ns.input!r}")
    if not _RUN_ID.match(ns.run_id):
        raise InvalidInput(f"--run-id {ns.run_id!r} must be 1-128 letters, digits, '.', '_', '-'")
    partition = validate_partition(ns.partition)
    reference = _reference_time(ns.reference_time, dt.date.fromisoformat(partition))
    for name in ("input", "output_root", "quarantine", "metrics", "quality", "rules"):
        if not getattr(ns, name).strip():
            raise InvalidInput(f"--{name.replace('_', '-')} is empty")
    try:
        encoding = canonical_encoding(ns.encoding, "--encoding")
    except ConfigurationError as e:
        raise InvalidInput(str(e)) from None
    if ns.input_version_id is not None and not ns.input_etag:
        raise InvalidInput("--input-version-id needs --input-etag")
    return JobArgs(ns.input, ns.output_root, ns.quarantine, ns.metrics, ns.quality, ns.rules,
                   ns.run_id, partition, reference, encoding, ns.input_etag or None,
                   ns.input_version_id or None, ns.input_source or None)


# Options that belong to one partition of a batch, never shared with the others
# (pipeline_aws.resolve.PARTITION_OPTIONS, plus the local runtime's --input-source).
PARTITION_OPTIONS = frozenset({
    "--input", "--input-source", "--output-root", "--quarantine", "--metrics", "--quality",
    "--run-id", "--partition", "--reference-time", "--input-etag", "--input-version-id"})


def split_partitions(argv: list[str]) -> list[list[str]]:
    """A batch's arguments, one list per partition: the options before the second `--input`
    are the first partition's and hold what every partition shares (rules, encoding, the
    catalog's extra options); each later `--input` starts a partition's own options, which
    replace the first's. One `--input`: the list as it is (a run of one partition)."""
    starts = [i for i, a in enumerate(argv) if a == "--input"]
    if len(starts) <= 1:
        return [list(argv)]
    first = argv[:starts[1]]
    groups = [first]
    for begin, end in zip(starts[1:], [*starts[2:], len(argv)], strict=True):
        own = argv[begin:end]
        if len(own) % 2:
            raise InvalidInput(f"bad job arguments: partition options {own} are not "
                               "`--name value` pairs")
        shared = [x for name, value in zip(first[::2], first[1::2], strict=False)
                  if name not in PARTITION_OPTIONS for x in (name, value)]
        groups.append(shared + own)
    return groups
