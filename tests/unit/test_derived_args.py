"""A derived job's arguments (spark_jobs.common.derived_args): `--from-day`, the first day a
rows_per_day job writes after an upstream batch, is a day no later than the partition."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline_core.errors import InvalidInput
from spark_jobs.common.derived_args import parse_derived_args

BASE = ["--input", "s3://c/_runs/x/inputs.json", "--output-root", "s3://c/x/{table}/",
        "--metrics", "s3://c/m.json", "--quality", "s3://c/q.json", "--rules", "s3://a/r.dqdl",
        "--run-id", "sales_trends-2011-01-31-abc", "--partition", "2011-01-31"]


def test_without_from_day_the_run_writes_its_as_of_day() -> None:
    args = parse_derived_args(BASE)
    assert args.from_day is None and args.first_day == args.as_of == dt.date(2011, 1, 31)


def test_from_day_is_the_first_day_written() -> None:
    args = parse_derived_args([*BASE, "--from-day", "2011-01-01", "--k-values", "2,3"])
    assert args.first_day == dt.date(2011, 1, 1) and args.extra == {"k-values": "2,3"}


@pytest.mark.parametrize(("day", "error"), [("2011-02-01", "is after --partition"),
                                            ("2011-13-01", "2011-13-01")])
def test_a_bad_from_day_is_refused(day: str, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        parse_derived_args([*BASE, "--from-day", day])
