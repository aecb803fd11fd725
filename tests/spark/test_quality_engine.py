"""The quality engine: every rule's Spark measurement equals a plain-Python one."""

from __future__ import annotations

import datetime as dt
import math
import re
import statistics
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline_core.dqdl import parse_ruleset
from pipeline_core.errors import ConfigurationError
from spark_jobs.common.quality import QualityEngine

pytestmark = pytest.mark.spark

REFERENCE = dt.datetime(2010, 12, 2, tzinfo=dt.UTC)
NOON = dt.datetime(2010, 12, 1, 12, tzinfo=dt.UTC)
SCHEMA = T.StructType([
    T.StructField("k", T.IntegerType()),
    T.StructField("s", T.StringType()),
    T.StructField("x", T.DecimalType(12, 3)),
    T.StructField("t", T.TimestampType()),
])

# Rules and their independent plain-Python measurement over rows (k, s, x, t).
RULES = [
    ("RowCount > 0", lambda rows: len(rows)),
    ('RowCount > 0 where "k > 1"', lambda rows: sum(1 for r in rows if _gt(r[0], 1))),
    ('Completeness "s" > 0.5', lambda rows: _frac(rows, lambda r: r[1] is not None)),
    ('Completeness "x" > 0.5 where "k = 1"',
     lambda rows: _frac([r for r in rows if r[0] == 1], lambda r: r[2] is not None)),
    ('IsComplete "k"', lambda rows: _frac(rows, lambda r: r[0] is not None)),
    ('Uniqueness "s" > 0.5', lambda rows: _uniqueness([(r[1],) for r in rows])),
    ('IsUnique "k" "s"', lambda rows: _uniqueness([(r[0], r[1]) for r in rows])),
    ('Uniqueness "k" > 0.5 where "s is not null"',
     lambda rows: _uniqueness([(r[0],) for r in rows if r[1] is not None])),
    ('IsPrimaryKey "k" "s"', lambda rows: _primary_key([(r[0], r[1]) for r in rows])),
    ('DistinctValuesCount "s" > 1', lambda rows: len({r[1] for r in rows} - {None})),
    ('Mean "x" > 0', lambda rows: _mean([r[2] for r in rows])),
    ('Sum "x" > 0', lambda rows: _sum([r[2] for r in rows])),
    ('Sum "k" > 0 where "s = \'a\'"', lambda rows: _sum([r[0] for r in rows if r[1] == "a"])),
    ('StandardDeviation "x" > 0', lambda rows: _pstdev([r[2] for r in rows])),
    ('ColumnValues "s" in ["a", "bb"]', lambda rows: _frac(rows, lambda r: r[1] in ("a", "bb"))),
    ('ColumnValues "s" in ["a", NULL]', lambda rows: _frac(rows, lambda r: r[1] in ("a", None))),
    ('ColumnValues "s" not in ["a"]', lambda rows: _frac(rows, lambda r: r[1] != "a")),
    ('ColumnValues "s" not in ["a", NULL]',
     lambda rows: _frac(rows, lambda r: r[1] is not None and r[1] != "a")),
    ('ColumnValues "s" = EMPTY', lambda rows: _frac(rows, lambda r: r[1] == "")),
    ('ColumnValues "s" in [WHITESPACES_ONLY, "a"]',
     lambda rows: _frac(rows, lambda r: r[1] is not None and (
         r[1] == "a" or (r[1] != "" and r[1].strip() == "")))),
    ('ColumnValues "s" = NULL', lambda rows: _frac(rows, lambda r: r[1] is None)),
    ('ColumnValues "s" != NULL', lambda rows: _frac(rows, lambda r: r[1] is not None)),
    ('ColumnValues "s" matches "a+"',
     lambda rows: _frac(rows, lambda r: r[1] is not None and re.fullmatch("a+", r[1]))),
    ('ColumnValues "s" not matches "a+"',
     lambda rows: _frac(rows, lambda r: r[1] is not None and not re.fullmatch("a+", r[1]))),
    # between is exclusive and not between its complement, as in AWS Glue.
    ('ColumnValues "x" between 0 and 2.5',
     lambda rows: _frac(rows, lambda r: r[2] is not None and 0 < r[2] < Decimal("2.5"))),
    ('ColumnValues "x" not between 0 and 2.5',
     lambda rows: _frac(rows, lambda r: r[2] is not None and not 0 < r[2] < Decimal("2.5"))),
    ('ColumnValues "k" != 1', lambda rows: _frac(rows, lambda r: r[0] != 1)),
    ('ColumnValues "k" > 1', lambda rows: _frac(rows, lambda r: _gt(r[0], 1))),
    ('ColumnValues "k" in [0, 2]', lambda rows: _frac(rows, lambda r: r[0] in (0, 2))),
    ('ColumnValues "x" >= 1 where "k is not null"',
     lambda rows: _frac([r for r in rows if r[0] is not None],
                        lambda r: r[2] is not None and r[2] >= 1)),
    ('ColumnValues "t" < "2010-12-01 12:00:00"',
     lambda rows: _frac(rows, lambda r: r[3] is not None and r[3] < NOON)),
    ('ColumnLength "s" between 1 and 3',
     lambda rows: _frac(rows, lambda r: 1 < len(r[1] or "") < 3)),
    ('ColumnLength "s" < 2', lambda rows: _frac(rows, lambda r: len(r[1] or "") < 2)),
    ('DataFreshness "t" <= 24 hours',
     lambda rows: _frac(rows, lambda r: r[3] is not None and _age_h(r[3]) <= 24)),
    ('DataFreshness "t" between 6 hours and 12 hours',
     lambda rows: _frac(rows, lambda r: r[3] is not None and 6 < _age_h(r[3]) < 12)),
    # now() is the evaluation time (REFERENCE), shifted by whole durations.
    ('ColumnValues "t" < now()',
     lambda rows: _frac(rows, lambda r: r[3] is not None and r[3] < REFERENCE)),
    ('ColumnValues "t" > (now() - 12 hours)',
     lambda rows: _frac(rows, lambda r: r[3] is not None and r[3] > NOON)),
    ('ColumnValues "t" between (now() - 1 days) and (now() - 720 minutes)',
     lambda rows: _frac(rows, lambda r: r[3] is not None
                        and REFERENCE - dt.timedelta(days=1) < r[3] < NOON)),
    ('CustomSql "select count(*) from primary where k > 0" >= 0',
     lambda rows: sum(1 for r in rows if _gt(r[0], 0))),
    ('CustomSql "select max(x) from primary" >= 0', lambda rows: _max([r[2] for r in rows])),
    ("ColumnCount = 4", lambda rows: 4),
    ('ColumnExists "s"', lambda rows: 1),
    ('ColumnExists "nope"', lambda rows: 0),
]


def _gt(value, limit):
    return value is not None and value > limit


def _frac(rows, passes):
    return sum(1 for r in rows if passes(r)) / len(rows) if rows else None


def _uniqueness(keys):
    counts = Counter(keys)
    return sum(1 for k in keys if counts[k] == 1) / len(keys) if keys else None


def _primary_key(keys):
    counts = Counter(keys)
    good = sum(1 for k in keys if counts[k] == 1 and None not in k)
    return good / len(keys) if keys else None


def _present(values):
    return [v for v in values if v is not None]


def _mean(values):
    values = _present(values)
    return float(sum(values) / len(values)) if values else None


def _sum(values):
    values = _present(values)
    return float(sum(values)) if values else None


def _max(values):
    values = _present(values)
    return float(max(values)) if values else None


def _pstdev(values):
    values = [float(v) for v in _present(values)]
    return statistics.pstdev(values) if values else None


def _age_h(ts):
    return (REFERENCE - ts).total_seconds() / 3600


def _ruleset(texts):
    body = ",\n".join(texts)
    return parse_ruleset(f"Rules = [\n{body}\n]", source="t.dqdl")


def _close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


rows_strategy = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 3)),
        st.one_of(st.none(), st.sampled_from(["a", "aa", "bb", "", " ", "abc"])),
        st.one_of(st.none(), st.decimals(-5, 5, places=3, allow_nan=False)),
        st.one_of(st.none(), st.integers(0, 60).map(
            lambda h: dt.datetime(2010, 11, 30, 12, tzinfo=dt.UTC) + dt.timedelta(hours=h))),
    ),
    min_size=0, max_size=12,
)


@pytest.fixture
def one_shuffle_partition(spark):
    """Frames of a dozen rows: one shuffle partition saves most of Spark's task overhead."""
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    yield
    spark.conf.set("spark.sql.shuffle.partitions", previous)


def _hour(h: int) -> dt.datetime:
    """The strategy's timestamps: 2010-11-30 12:00 UTC plus h hours (h = 24 is NOON)."""
    return dt.datetime(2010, 11, 30, 12, tzinfo=dt.UTC) + dt.timedelta(hours=h)


# Each example is one Spark query set (seconds each on CI) over several row sets at once: the
# fixed sets hold the edges every run must cover, random ones the rest. Fixed: no rows; only
# NULLs; one row (a zero standard deviation); the bounds of every between/comparison (x = 0,
# 1, 2.5; t at now() - 1 day, NOON = now() - 12 hours, now() - 6 hours, now()); duplicates and
# ties for Uniqueness, IsUnique, IsPrimaryKey; every string the strategy draws (EMPTY,
# WHITESPACES_ONLY, lengths 0..3).
D = Decimal
EDGES = [
    [],
    [(None, None, None, None), (None, None, None, None)],
    [(1, "a", D("1.000"), NOON)],
    [(0, "a", D("0.000"), _hour(12)), (1, "aa", D("1.000"), _hour(24)),
     (1, None, D("2.500"), _hour(30)), (2, "bb", D("-5.000"), _hour(36)),
     (3, "abc", D("5.000"), _hour(0)), (None, " ", None, _hour(60))],
    [(1, "a", D("1.500"), NOON), (1, "a", D("1.500"), NOON), (2, "a", None, None),
     (2, "", D("-0.001"), _hour(11)), (None, "a", D("2.499"), _hour(13)), (0, " ", None, None),
     (0, "bb", D("0.001"), _hour(35))],
]


def _measured(spark, row_sets):
    """Each row set's report: the non-empty ones as the parts of ONE measure_each pass (one
    query set for all, where one measure() each cost seconds on CI), an empty one by measure()
    (measure_each measures only parts that have rows)."""
    engine = QualityEngine(_ruleset([text for text, _ in RULES]), REFERENCE)
    frame = spark.createDataFrame(
        [(*row, part) for part, rows in enumerate(row_sets) for row in rows],
        T.StructType([*SCHEMA.fields, T.StructField("_part", T.IntegerType())])).coalesce(1)
    each = engine.measure_each(frame, "_part") if any(row_sets) else {}
    empty = engine.measure(spark.createDataFrame([], SCHEMA))[0] if not all(row_sets) else None
    return [each[part][0] if rows else empty for part, rows in enumerate(row_sets)]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@example(row_sets=EDGES)
@given(row_sets=st.lists(rows_strategy, min_size=1, max_size=8))
def test_every_rule_matches_plain_python(spark, one_shuffle_partition, row_sets):
    for rows, report in zip(row_sets, _measured(spark, row_sets), strict=True):
        for (text, reference), result in zip(RULES, report.results, strict=True):
            expected = reference(rows)
            assert _close(result.metric, expected), (text, result.metric, expected, rows)
            assert report.metrics[result.rule.metric_name] == result.metric


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@example(first=EDGES[2], second=EDGES[3])
@example(first=EDGES[1], second=[])  # a part with no rows is not measured at all
@given(first=rows_strategy.filter(bool), second=rows_strategy)
def test_each_part_measures_as_if_alone(spark, one_shuffle_partition, first, second):
    """measure_each (a batch's partitions in one pass) gives each part what measure() gives
    it alone: its own rows for every rule (CustomSql's `primary` and Uniqueness included), its
    own evaluation instant (a column) for now() and DataFreshness, and the key and instant
    columns never counted as the dataset's."""
    ruleset = _ruleset([text for text, _ in RULES])
    instants = {0: REFERENCE, 1: REFERENCE + dt.timedelta(hours=7)}
    parts = [(0, first), (1, second)]
    frame = spark.createDataFrame(
        [(*row, part, instants[part]) for part, rows in parts for row in rows],
        T.StructType([*SCHEMA.fields, T.StructField("_part", T.IntegerType()),
                      T.StructField("_at", T.TimestampType())])).coalesce(1)
    each = QualityEngine(ruleset, REFERENCE, reference_column="_at").measure_each(
        frame, "_part", extra={"n": F.count(F.lit(1))}, small=[1])  # part 1: one partition
    assert set(each) == {part for part, rows in parts if rows}
    for part, rows in parts:
        if not rows:
            continue
        alone, _ = QualityEngine(ruleset, instants[part]).measure(
            spark.createDataFrame(rows, SCHEMA).coalesce(1))
        report, extra = each[part]
        assert extra == {"n": len(rows)}
        assert [(r.metric, r.outcome) for r in report.results] == \
            [(r.metric, r.outcome) for r in alone.results]


def test_outcomes(spark):
    rows = [(1, "a", Decimal("1.000"), None), (2, None, Decimal("3.000"), None),
            (2, "b", None, None)]
    engine = QualityEngine(_ruleset([
        "RowCount = 3",
        'Completeness "s" > 0.9',
        'IsComplete "s" with threshold >= 0.6',
        'ColumnValues "k" > 5 where "k > 10"',  # no row in scope: nothing fails
        'Completeness "s" > 0.5 where "k > 10"',  # no row in scope: not measured
        "RowCount > avg(last(3))",
        '(RowCount = 3) and ((IsComplete "k") or (RowCount = 0))',
        '(RowCount = 3) and (IsComplete "s")',
    ]), REFERENCE)
    report, extra = engine.measure(spark.createDataFrame(rows, SCHEMA),
                                   extra={"total_x": F.sum("x")})
    assert extra == {"total_x": Decimal("4.000")}
    got = [(r.outcome, r.metric, r.threshold, r.reason) for r in report.results]
    assert got[0] == ("pass", 3, "= 3", None)
    assert got[1] == ("fail", 2 / 3, "> 0.9", None)
    assert got[2] == ("pass", 2 / 3, ">= 0.6", None)
    assert got[3] == ("pass", None, "= 1", "no rows in scope")
    assert got[4] == ("fail", None, "> 0.5", "metric not measured")
    assert got[5] == ("deferred", 3, "> avg(last(3))",
                      "decided by the quality gate with the metric history")
    composite = report.results[6]
    assert composite.outcome == "pass" and composite.metric is None
    assert [c.outcome for c in composite.children] == ["pass", "pass"]
    assert [c.outcome for c in composite.children[1].children] == ["pass", "fail"]
    assert report.results[7].outcome == "fail"
    as_dict = report.as_dict("t.dqdl", REFERENCE)
    assert as_dict["reference_time"] == "2010-12-02T00:00:00Z"
    assert as_dict["rules"][6]["children"][1]["children"][1]["rule"] == "RowCount = 0"
    assert as_dict["metrics"]["Dataset.*.RowCount"] == 3


def test_rejection_reason_is_the_first_failing_error_row_rule(spark):
    engine = QualityEngine(parse_ruleset("""
        Rules = [
            RowCount > 0,
            ColumnValues "k" > 0 with threshold > 0.1,
            IsComplete "s" where "k = 2",
            (IsComplete "x") or (RowCount > 100)
        ]
        Warnings = [ ColumnValues "s" = "zzz" ]
    """), REFERENCE)
    frame = spark.createDataFrame([
        (1, "a", None, None),   # fine (the composite and the warning never reject)
        (0, "a", None, None),   # k > 0 fails
        (0, None, None, None),  # k > 0 fails first
        (2, None, None, None),  # IsComplete s where k = 2 fails
        (None, None, None, None),  # NULL fails k > 0
    ], SCHEMA)
    engine.validate(frame)
    reasons = [r[0] for r in frame.select(engine.rejection_reason()).collect()]
    assert reasons == [None, 'ColumnValues "k" > 0 with threshold > 0.1',
                       'ColumnValues "k" > 0 with threshold > 0.1',
                       'IsComplete "s" where "k = 2"',
                       'ColumnValues "k" > 0 with threshold > 0.1']


def test_rejection_reason_none_without_row_rules(spark):
    engine = QualityEngine(parse_ruleset("Rules = [ RowCount > 0 ]"), REFERENCE)
    engine.validate(spark.createDataFrame([], SCHEMA))
    assert engine.rejection_reason() is None


@pytest.mark.parametrize(("rule", "problem"), [
    ('IsComplete "nope"', "no column 'nope' (columns: k, s, x, t)"),
    ('Mean "s" > 1', "Mean needs a numeric column; 's' is string"),
    ('ColumnLength "k" > 1', "ColumnLength needs a text column; 'k' is int"),
    ('DataFreshness "k" <= 1 hours', "DataFreshness needs a date or timestamp column"),
    ('IsComplete "s" where "nope > 1"', "invalid where clause"),
    ('IsComplete "s" where "k + 1"', "the where clause is int, not a true/false predicate"),
    ('IsComplete "s" where "k >"', "invalid where clause"),
    ('ColumnValues "s" > 1', "'s' is string: compare it with quoted values, not numbers"),
    ('ColumnValues "k" = "a"', "'k' is int: compare it with numbers, not quoted values"),
    ('ColumnValues "k" matches "1"', "'matches' needs a text column"),
    ('ColumnValues "k" in [EMPTY]', "EMPTY and WHITESPACES_ONLY apply to text"),
    ('ColumnValues "t" > "yesterday"', "'yesterday' is not a timestamp"),
    ('ColumnValues "s" < now()', "now() compares dates; 's' is string"),
    ('ColumnValues "s" matches "(?P<n>a)"', "invalid Java regular expression"),
    ('CustomSql "select nope from primary" = 0', "invalid CustomSql statement"),
    ('CustomSql "select k, s from primary" = 0', "must select exactly one numeric value"),
    ('CustomSql "select s from primary" = 0', "must select exactly one numeric value"),
    ('(RowCount > 0) and (Sum "nope" > 0)', "no column 'nope'"),
])
def test_rules_are_checked_against_the_frame(spark, rule, problem):
    engine = QualityEngine(parse_ruleset(f"Rules = [\n  RowCount > 0,\n  {rule}\n]",
                                         source="x.dqdl"), REFERENCE)
    with pytest.raises(ConfigurationError) as error:
        engine.measure(spark.createDataFrame([(1, "a", None, None)], SCHEMA))
    assert str(error.value).startswith("x.dqdl line 3: ")
    assert problem in str(error.value)
    assert str(error.value).endswith(f"rule: {rule}")


def test_custom_sql_must_return_one_row(spark):
    engine = QualityEngine(parse_ruleset(
        'Rules = [ CustomSql "select k from primary" > 0 ]', source="x.dqdl"), REFERENCE)
    with pytest.raises(ConfigurationError, match="CustomSql returned 2 rows"):
        engine.measure(spark.createDataFrame([(1, "a", None, None), (2, "b", None, None)],
                                             SCHEMA))


def test_dates_compare_with_quoted_dates(spark):
    frame = spark.createDataFrame([(dt.date(2010, 12, 1),), (dt.date(2010, 12, 3),), (None,)],
                                  "d date")
    engine = QualityEngine(_ruleset([
        'ColumnValues "d" = "2010-12-01"', 'ColumnValues "d" between "2010-12-01" and "2010-12-02"',
        'ColumnValues "d" between "2010-11-30" and "2010-12-02"',
        'DataFreshness "d" <= 24 hours', 'ColumnValues "d" < now()']), REFERENCE)
    report, _ = engine.measure(frame)
    # between is exclusive (AWS Glue), so 2010-12-01 is not between itself and the next day.
    # A date after the reference time has a negative age, which is "<= 24 hours": rules that
    # mean "within the day" add `ColumnValues "d" < now()` (see datasets/online_retail.dqdl).
    assert [r.metric for r in report.results] == [1 / 3, 0, 1 / 3, 2 / 3, 1 / 3]


def _two_parts(spark, first, second):
    return spark.createDataFrame(
        [(*row, 0) for row in first] + [(*row, 1) for row in second],
        T.StructType([*SCHEMA.fields, T.StructField("_part", T.IntegerType())])).coalesce(1)


def test_custom_sql_is_one_query_for_every_part(spark, monkeypatch):
    """A batch's CustomSql rule is one Spark action for all its parts, each part's statement
    reading its own rows only: the query per part is not run."""
    engine = QualityEngine(_ruleset(['CustomSql "select sum(k) from primary" > 0']), REFERENCE)

    def per_part(*_args):
        raise AssertionError("a CustomSql query per part")

    monkeypatch.setattr(QualityEngine, "_custom_sql", per_part)
    frame = _two_parts(spark, [(1, "a", None, None), (2, "b", None, None)],
                       [(40, "c", None, None)]).repartition(3)
    for small in ((), (0, 1)):  # a small part's rows read as one partition: the same values
        each = engine.measure_each(frame, "_part", small=small)
        assert [each[p][0].results[0].metric for p in (0, 1)] == [3, 40]


@pytest.mark.parametrize(("statement", "problem"), [
    # part 1 returns two rows: the error of that part measured alone
    ("select k from primary where s = 'x' or k = 1", "CustomSql returned 2 rows"),
    # part 1's value cannot be cast (ANSI): the query fails as it does for that part alone
    ("select cast(max(s) as int) from primary", "CAST_INVALID_INPUT"),
])
def test_a_part_the_statement_fails_on_fails_as_if_alone(spark, statement, problem):
    rule = f'CustomSql "{statement}" > 0'
    first, second = [(1, "7", None, None)], [(1, "x", None, None), (2, "x", None, None)]
    with pytest.raises(Exception, match=problem) as alone:
        QualityEngine(_ruleset([rule]), REFERENCE).measure(spark.createDataFrame(second, SCHEMA))
    with pytest.raises(type(alone.value), match=problem):
        QualityEngine(_ruleset([rule]), REFERENCE).measure_each(
            _two_parts(spark, first, second), "_part")
