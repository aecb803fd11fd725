"""The raw input of a job: checked before Spark reads it, then scanned once with line numbers.

Formats (the catalog's `source.format`): `csv` has a header line, checked against the catalog's
header by the rule ResolveRun applies too (pipeline_core.csv_header) and never a data line;
`jsonl` and `text` have none, every line is a data line. Blank lines (only spaces) are skipped
and counted in every format. Gzip is read through Hadoop's codec for a `.gz` name; the job
refuses a `.gz` that is not gzip data and gzip data under another name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline_core import csv_header
from pipeline_core.errors import ConfigurationError, InvalidInput
from spark_jobs.common.frames import materialize
from spark_jobs.common.storage import ObjectInfo, Storage, is_decoding_error, java_error_message

FORMATS = ("csv", "jsonl", "text")  # pipeline_core.catalog.INPUT_FORMATS (a test holds it)
HEAD_BYTES = 64 * 1024
PARTITION_TARGET_BYTES = 128 * 1024 * 1024
GZIP_RATIO = 6  # rough expansion of gzip'd text, only to size the partitions


def header_lines(input_format: str) -> int:
    """How many lines at the top of a file are not data: 1 for csv (its header), else 0."""
    if input_format not in FORMATS:
        raise ConfigurationError(f"input format {input_format!r} is not one of {FORMATS}")
    return 1 if input_format == "csv" else 0


def check_input(storage: Storage, uri: str, input_format: str, header: tuple[str, ...] = (),
                encoding: str = "utf-8", delimiter: str = csv_header.DELIMITER) -> ObjectInfo:
    """Refuse an empty file, a .gz that is not gzip (or gzip under another name), and for csv
    a missing or wrong header (InvalidInput; its names separated by `delimiter`)."""
    info = storage.stat(uri)
    if info.size == 0:
        raise InvalidInput(f"input {uri} is empty (0 bytes)")
    gzip_name = uri.lower().endswith(".gz")
    magic = storage.read_head(uri, 2)
    if gzip_name and magic != b"\x1f\x8b":
        raise InvalidInput(f"input {uri} ends in .gz but is not gzip data "
                           f"(starts with {magic!r})")
    if not gzip_name and magic == b"\x1f\x8b":
        raise InvalidInput(f"input {uri} is gzip data but its name does not end in .gz")
    if header_lines(input_format):
        head = storage.read_head(uri, HEAD_BYTES, decompress=True)
        if not head.strip():
            raise InvalidInput(f"input {uri} is empty (no header line)")
        csv_header.check_header(head, header, encoding=encoding,
                                complete=len(head) < HEAD_BYTES, where=f"input {uri}",
                                delimiter=delimiter)
    return info


def partitions(spark: SparkSession, infos: Sequence[ObjectInfo]) -> int:
    """Shuffle partitions for the inputs: about PARTITION_TARGET_BYTES of text each."""
    estimate = sum(_text_bytes(info) for info in infos)
    return max(spark.sparkContext.defaultParallelism,
               min(1000, math.ceil(estimate / PARTITION_TARGET_BYTES)))


def fits_one_partition(info: ObjectInfo) -> bool:
    """Whether an input's text is at most PARTITION_TARGET_BYTES: what one task reads."""
    return _text_bytes(info) <= PARTITION_TARGET_BYTES


def _text_bytes(info: ObjectInfo) -> int:
    return info.size * (GZIP_RATIO if info.uri.lower().endswith(".gz") else 1)


@dataclass(frozen=True)
class LineCounts:
    """An input's data lines and blank lines (a csv header is neither)."""

    data: int
    blank: int


def _line_numbers(blocks: list[dict[str, int]]) -> tuple[Column | None, dict[int, int]]:
    """The 1-based line number of each row in its input (lines before its split of the file
    plus its position in the split: monotonically_increasing_id counts rows within a split's
    partition) and each input's number of lines."""
    line = None
    before: dict[int, int] = {}
    for block in blocks:
        part = block["_part"]
        number = F.col("_idx") - F.lit(block["first"]) + F.lit(before.get(part, 0) + 1)
        here = (F.col("_part") == part) & (F.col("_block") == block["_block"])
        line = number if line is None else F.when(here, number).otherwise(line)
        before[part] = before.get(part, 0) + block["n"]
    return line, before


def _scan(spark: SparkSession, infos: Sequence[ObjectInfo]) -> DataFrame:
    """Every input's lines, `_part` its index in `infos`. Each file is its own scan, so the
    row ids (`_idx`) are numbered within one file's splits."""
    scans = [spark.read.text(info.uri).select(
        F.col("value").cast("binary").alias("value"),
        F.lit(part).alias("_part"),
        F.input_file_block_start().alias("_block"),
        F.monotonically_increasing_id().alias("_idx"),
    ) for part, info in enumerate(infos)]
    return reduce(DataFrame.unionAll, scans).withColumn(
        "_blank", F.trim(F.col("value").cast("string")) == "")


def read_lines(spark: SparkSession, infos: Sequence[ObjectInfo], skip: int = 0,
               prepare: Callable[[DataFrame], DataFrame] | None = None
               ) -> tuple[DataFrame, list[LineCounts]]:
    """The data lines of the inputs, read once in one pass (`value`: the line's bytes, not
    decoded unless `prepare` does; `_part`: the input's index in `infos`; `_line`: 1-based
    line number in its file), and each input's line counts. The first `skip` lines of each
    file (a csv header) are dropped and never counted as blank.

    `prepare` (decoding and parsing, say) runs on every line, header and blank ones too, before
    the lines are kept: what every later query reads is its result, computed once. It must
    keep its input's columns and never fail on a line. InvalidInput when a file's bytes cannot
    be decoded (gzip, say): with several inputs, `unreadable` tells which."""
    if skip not in (0, 1):
        raise ValueError("only a one-line header can be skipped")
    scan = _scan(spark, infos)
    try:
        staged = materialize(prepare(scan) if prepare else scan, partitions(spark, infos),
                             "_idx")
        counted = staged.groupBy("_part", "_block").agg(
            F.count(F.lit(1)).alias("n"), F.min("_idx").alias("first"),
            # The first split's ids start at 0: _idx 0 is line 1, the header when skip is 1.
            F.count_if(F.col("_blank") & (F.col("_idx") >= skip)).alias("blank"),
        ).collect()
    except (Py4JJavaError, PySparkException) as e:
        if is_decoding_error(e):
            names = ", ".join(info.uri for info in infos)
            raise InvalidInput(f"input {names} cannot be read: {java_error_message(e)}") from e
        raise  # storage or `prepare` failed: the run fails (and may be retried), not the input
    blocks = sorted((row.asDict() for row in counted), key=lambda b: (b["_part"], b["_block"]))
    line, totals = _line_numbers(blocks)
    blanks = {part: 0 for part in totals}
    for block in blocks:
        blanks[block["_part"]] += block["blank"]
    counts = [LineCounts(max(0, totals.get(part, 0) - skip - blanks.get(part, 0)),
                         blanks.get(part, 0)) for part in range(len(infos))]
    lines = (staged.withColumn("_line", line if line is not None else F.lit(None))
             .where((F.col("_line") > skip) & ~F.col("_blank"))
             .drop("_block", "_idx", "_blank"))
    return lines, counts


def no_data_reason(info: ObjectInfo, counts: LineCounts, skip: int) -> str | None:
    """Why an input read has no data line to load (None when it has some)."""
    if counts.data > 0:
        return None
    if counts.blank == 0 and not skip:
        return f"input {info.uri} is empty"
    what = "a header but no data lines" if skip else "no data lines, only blank ones"
    return f"input {info.uri} has {what}"


def unreadable(spark: SparkSession, info: ObjectInfo) -> InvalidInput | None:
    """Whether one input's bytes cannot be decoded, read alone: the culprit of a batch's read
    that failed so (read_lines)."""
    try:
        spark.read.text(info.uri).select(F.count(F.lit(1))).collect()
    except (Py4JJavaError, PySparkException) as e:
        if is_decoding_error(e):
            return InvalidInput(f"input {info.uri} cannot be read: {java_error_message(e)}")
        raise
    return None
