"""The quality engine: measures a dataset's DQDL rules on a DataFrame.

Cost model (the input is read once, see `frames.materialize`):

* every dataset-level and row-level measurement is an aggregate expression; all of them, plus
  whatever the job wants to count (`extra`), run in ONE `agg` over the frame;
* rules that need grouping (IsUnique, Uniqueness, IsPrimaryKey) run as one more Spark job: one
  grouped aggregation per distinct column set, unioned and collected together;
* each CustomSql rule runs its own query over the frame (registered as the view `primary`).

`measure_each` measures the same rules on each part of a frame at once (a batch's partitions,
told apart by a key column): the single agg and the grouped metrics are grouped by the key too,
and each CustomSql rule is one query too: its statement over each part's rows (the view
`primary` bound to that part when the statement is analysed), unioned. So a batch costs the
Spark jobs of one run. A statement is not rewritten to group by the key: SQL over `primary`
cannot be regrouped soundly (a LIMIT, a window, a nested count would change meaning).
The instant `now()` and DataFreshness measure against is then a column of the frame
(`reference_column`), each part's own.

Semantics match `pipeline_core.dqdl` (which documents them). Outcomes: `pass` / `fail` for rules
the job can decide, `deferred` for dynamic thresholds and DetectAnomalies (the gate decides
those with the metric history). Row-level rules of severity error also give `rejection_reason`:
the text of the first such rule a row fails, which the job uses to quarantine the row.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import reduce
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipeline_core.dqdl import (
    GROUPED_TYPES,
    BinOp,
    Condition,
    Duration,
    Keyword,
    Now,
    Num,
    Rule,
    Ruleset,
    Str,
    evaluate_threshold,
    format_number,
    parse_ruleset,
)
from pipeline_core.errors import ConfigurationError
from spark_jobs.common.spark_internals import compile_java_regex
from spark_jobs.common.storage import Storage

PRIMARY_VIEW = "primary"  # the name CustomSql statements use for the dataset (as in Glue)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    metric: float | int | None
    outcome: str  # pass | fail | deferred
    threshold: str
    reason: str | None = None
    children: tuple[RuleResult, ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule.text,
            "line": self.rule.line,
            "severity": self.rule.severity,
            "rule_type": self.rule.rule_type,
            "metric_name": self.rule.metric_name,
            "metric": self.metric,
            "threshold": self.threshold,
            "outcome": self.outcome,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.children:
            out["children"] = [c.as_dict() for c in self.children]
        return out


@dataclass(frozen=True)
class QualityReport:
    results: tuple[RuleResult, ...]
    metrics: dict[str, float | int | None] = field(default_factory=dict)

    def as_dict(self, rules_file: str, reference_time: dt.datetime) -> dict[str, Any]:
        return {
            "rules_file": rules_file,
            "reference_time": reference_time.astimezone(dt.UTC).isoformat().replace(
                "+00:00", "Z"),
            "rules": [r.as_dict() for r in self.results],
            "metrics": dict(self.metrics),
        }


# ---------------------------------------------------------------------------------------------
# Helpers


def _col(name: str) -> Column:
    return F.col("`" + name.replace("`", "``") + "`")


def _number(value: float | int | Decimal | None) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def _fraction(passing: int | None, scope: int | None) -> float | None:
    if not scope:
        return None
    return (passing or 0) / scope


def _leaves(rules: Iterable[Rule]) -> Iterable[Rule]:
    for rule in rules:
        if rule.is_composite:
            yield from _leaves(rule.children)
        else:
            yield rule


def _measured_type(rule: Rule) -> str:
    return rule.anomaly_metric or rule.rule_type


class _RuleProblem(Exception):
    pass


# What a rule's (first) column must be: rule type -> (Spark type(s), how to say it).
_COLUMN_TYPES: dict[str, tuple[type[T.DataType] | tuple[type[T.DataType], ...], str]] = {
    "Mean": (T.NumericType, "a numeric column"),
    "Sum": (T.NumericType, "a numeric column"),
    "StandardDeviation": (T.NumericType, "a numeric column"),
    "ColumnLength": (T.StringType, "a text column"),
    "DataFreshness": ((T.TimestampType, T.DateType), "a date or timestamp column"),
}


def _validate_where(frame: DataFrame, where: str) -> None:
    try:
        field_type = frame.select(F.expr(where).alias("w")).schema[0].dataType
    except AnalysisException as e:
        raise _RuleProblem(f"invalid where clause: {_first_line(e)}") from None
    if not isinstance(field_type, T.BooleanType):
        raise _RuleProblem(f"the where clause is {field_type.simpleString()}, "
                           "not a true/false predicate")


def _validate_pattern(frame: DataFrame, condition: Condition) -> None:
    """A `matches` pattern must compile as a Java regular expression (what rlike runs)."""
    if not condition.operator.endswith("matches"):
        return
    pattern = condition.operands[0]
    assert isinstance(pattern, Str)
    try:
        compile_java_regex(frame.sparkSession, pattern.value)
    except (Py4JJavaError, PySparkException) as e:
        raise _RuleProblem(f"invalid Java regular expression: {pattern.value!r}") from e


def _validate_custom_sql(frame: DataFrame, rule: Rule) -> None:
    frame.createOrReplaceTempView(PRIMARY_VIEW)
    try:
        schema = frame.sparkSession.sql(rule.sql or "").schema
    except AnalysisException as e:
        raise _RuleProblem(f"invalid CustomSql statement: {_first_line(e)}") from None
    finally:
        frame.sparkSession.catalog.dropTempView(PRIMARY_VIEW)
    if len(schema.fields) != 1 or not isinstance(schema.fields[0].dataType, T.NumericType):
        raise _RuleProblem("CustomSql must select exactly one numeric value")


# ---------------------------------------------------------------------------------------------
# Engine


class QualityEngine:
    """Compiles a ruleset against one frame schema and measures it."""

    def __init__(self, ruleset: Ruleset, reference_time: dt.datetime,
                 reference_column: str | None = None):
        """`reference_time` is the evaluation instant; with `reference_column`, each row's own
        instant is that (timestamp) column of the frames measured instead."""
        self.ruleset = ruleset
        self.reference_time = reference_time.astimezone(dt.UTC)
        self.reference_column = reference_column
        self._dtypes: dict[str, T.DataType] | None = None

    @classmethod
    def from_rules_file(cls, storage: Storage, uri: str, reference_time: dt.datetime,
                        reference_column: str | None = None) -> tuple[str, QualityEngine]:
        """The engine of a run's rules file (--rules) and the file's name, which quality.json
        and every rule's error message name."""
        name = os.path.basename(uri.rstrip("/"))
        return name, cls(parse_ruleset(storage.read_text(uri), source=name), reference_time,
                         reference_column)

    def _reference_micros(self, offset_seconds: float = 0) -> Column:
        """The evaluation instant (plus an offset) in microseconds since the epoch."""
        offset = round(offset_seconds * 1_000_000)
        if self.reference_column is None:
            return F.lit(round(self.reference_time.timestamp() * 1_000_000) + offset)
        return F.unix_micros(_col(self.reference_column)) + F.lit(offset)

    def _hidden(self) -> tuple[str, ...]:
        """Columns of a measured frame that are the engine's, not the dataset's."""
        return (self.reference_column,) if self.reference_column else ()

    # -- validation --------------------------------------------------------------------------

    def _problem(self, rule: Rule, message: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self.ruleset.source} line {rule.line}: {message}; rule: {rule.text}")

    def validate(self, frame: DataFrame) -> None:
        """Every column, type, where clause, regex and SQL statement checked against `frame`
        before any work starts: a bad rule is a ConfigurationError naming its line."""
        self._dtypes = {f.name: f.dataType for f in frame.schema.fields}
        for rule in self.ruleset.rules:
            for leaf in _leaves([rule]):
                try:
                    self._validate_rule(frame, leaf)
                except _RuleProblem as e:
                    raise self._problem(rule, str(e)) from None

    def _dtype(self, name: str) -> T.DataType:
        assert self._dtypes is not None
        if name not in self._dtypes:
            raise _RuleProblem(f"no column {name!r} (columns: {', '.join(self._dtypes)})")
        return self._dtypes[name]

    def _validate_rule(self, frame: DataFrame, rule: Rule) -> None:
        kind = _measured_type(rule)
        if kind != "ColumnExists":
            dtypes = [self._dtype(c) for c in rule.columns]
            needed = _COLUMN_TYPES.get(kind)
            if needed is not None and not isinstance(dtypes[0], needed[0]):
                raise _RuleProblem(f"{kind} needs {needed[1]}; {rule.columns[0]!r} is "
                                   f"{dtypes[0].simpleString()}")
        if rule.where:
            _validate_where(frame, rule.where)
        if rule.row_level:
            self._row_check(rule)  # raises on operand/type mismatches
        if kind == "ColumnValues" and rule.condition is not None:
            _validate_pattern(frame, rule.condition)
        if kind == "CustomSql":
            _validate_custom_sql(frame, rule)

    # -- row-level checks ----------------------------------------------------------------------

    def _scope(self, rule: Rule) -> Column:
        return F.coalesce(F.expr(rule.where), F.lit(False)) if rule.where else F.lit(True)

    def _literal(self, operand: Any, dtype: T.DataType, what: str) -> Column:
        if isinstance(operand, Num):
            if not isinstance(dtype, T.NumericType):
                raise _RuleProblem(f"{what} is {dtype.simpleString()}: compare it with quoted "
                                   "values, not numbers")
            if isinstance(dtype, T.DoubleType | T.FloatType):
                return F.lit(operand.value)
            return F.lit(Decimal(format_number(operand.value)))
        if isinstance(operand, BinOp):
            raise _RuleProblem("row-level conditions take plain numbers, not arithmetic")
        if isinstance(operand, Str):
            return _text_literal(operand.value, dtype, what)
        if isinstance(operand, Now):
            if not isinstance(dtype, T.DateType | T.TimestampType | T.TimestampNTZType):
                raise _RuleProblem(f"now() compares dates; {what} is {dtype.simpleString()}")
            # now() is the evaluation time, the instant DataFreshness measures against.
            if self.reference_column is None:
                return F.lit(self.reference_time
                             + dt.timedelta(seconds=operand.offset_seconds))
            return F.timestamp_micros(self._reference_micros(operand.offset_seconds))
        raise _RuleProblem(f"unsupported value {operand!r}")

    @staticmethod
    def _compare(operator: str, value: Column, literals: list[Column]) -> Column:
        if operator in ("between", "not between"):
            # Exclusive, as in AWS Glue: between a and b is > a and < b.
            inside = (value > literals[0]) & (value < literals[1])
            return inside if operator == "between" else ~inside
        if operator in ("in", "not in"):
            found = value.isin(*literals) if literals else F.lit(False)
            return found if operator == "in" else ~found
        return {
            "=": value == literals[0], "!=": value != literals[0], ">": value > literals[0],
            ">=": value >= literals[0], "<": value < literals[0], "<=": value <= literals[0],
        }[operator]

    def _values_check(self, condition: Condition, column: Column, dtype: T.DataType,
                      what: str) -> Column:
        op, operands = condition.operator, condition.operands
        if op.endswith("matches"):
            if not isinstance(dtype, T.StringType):
                raise _RuleProblem(f"'matches' needs a text column; {what} is "
                                   f"{dtype.simpleString()}")
            pattern = operands[0]
            assert isinstance(pattern, Str)
            check = column.rlike(f"^(?:{pattern.value})$")
            return F.coalesce(~check if op.startswith("not") else check, F.lit(False))
        keywords = [o for o in operands if isinstance(o, Keyword)]
        values = [o for o in operands if not isinstance(o, Keyword)]
        if keywords and not isinstance(dtype, T.StringType) and any(
                k.name != "NULL" for k in keywords):
            raise _RuleProblem(f"EMPTY and WHITESPACES_ONLY apply to text; {what} is "
                               f"{dtype.simpleString()}")
        literals = [self._literal(o, dtype, what) for o in values]
        negated = op in ("!=", "not in")
        positive_op = {"!=": "=", "not in": "in"}.get(op, op)
        hits: list[Column] = []
        if values:
            hits.append(self._compare(positive_op, column, literals))
        for keyword in keywords:
            hits.append({
                "NULL": column.isNull(),
                "EMPTY": column == F.lit(""),
                "WHITESPACES_ONLY": column.rlike(r"^\s+$"),
            }[keyword.name])
        matched = reduce(lambda a, b: a | b, hits)
        listed_null = any(k.name == "NULL" for k in keywords)
        if negated:
            # Glue: `!=` and `not in` let NULL pass unless NULL itself is listed.
            return F.coalesce(~matched, F.lit(not listed_null))
        return F.coalesce(matched, F.lit(False))

    def _row_check(self, rule: Rule) -> Column:
        """True where a row in scope passes the rule (never NULL)."""
        name = rule.columns[0]
        column, dtype = _col(name), self._dtype(name)
        condition = rule.condition
        if rule.rule_type == "IsComplete":
            return column.isNotNull()
        assert condition is not None
        if rule.rule_type == "ColumnValues":
            return self._values_check(condition, column, dtype, repr(name))
        if rule.rule_type == "ColumnLength":
            length = F.length(F.coalesce(column, F.lit("")))
            literals = [F.lit(int(o.value)) if isinstance(o, Num) and o.value == int(o.value)
                        else F.lit(float(o.value)) if isinstance(o, Num)
                        else self._literal(o, T.IntegerType(), "a length")
                        for o in condition.operands]
            return F.coalesce(self._compare(condition.operator, length, literals), F.lit(False))
        if rule.rule_type == "DataFreshness":
            instant = column.cast("timestamp") if isinstance(dtype, T.DateType) else column
            age_seconds = ((self._reference_micros() - F.unix_micros(instant))
                           / F.lit(1_000_000.0))
            literals = [F.lit(float(o.seconds)) for o in condition.operands
                        if isinstance(o, Duration)]
            return F.coalesce(self._compare(condition.operator, age_seconds, literals),
                              F.lit(False))
        raise AssertionError(f"{rule.rule_type} is not row-level")

    def rejection_reason(self) -> Column | None:
        """Text of the first error-severity row-level rule a row fails (NULL if none).

        Composite rules are decided on the whole dataset and never reject single rows.
        """
        if self._dtypes is None:
            raise RuntimeError("validate() the engine against the frame first")
        reasons = [F.when(self._scope(r) & ~self._row_check(r), F.lit(r.text))
                   for r in self.ruleset.rules
                   if r.severity == "error" and r.row_level and not r.is_composite]
        return F.coalesce(*reasons) if reasons else None

    # -- measurement ---------------------------------------------------------------------------

    def _aggregates(self, rule: Rule) -> list[Column] | None:
        """Aggregate expressions measuring one leaf (None: not measured in the ONE agg)."""
        kind = _measured_type(rule)
        scope = self._scope(rule)
        if kind == "RowCount":
            return [F.count_if(scope)]
        if kind in ("Completeness", "IsComplete"):
            return [F.count_if(scope & _col(rule.columns[0]).isNotNull()), F.count_if(scope)]
        if kind in ("ColumnValues", "ColumnLength", "DataFreshness"):
            return [F.count_if(scope & self._row_check(rule)), F.count_if(scope)]
        if kind in ("Mean", "Sum", "StandardDeviation", "DistinctValuesCount"):
            value = F.when(scope, _col(rule.columns[0]))
            if kind == "Sum":  # exact for integers and decimals
                return [F.sum(value)]
            if kind == "DistinctValuesCount":
                return [F.count_distinct(value)]
            # In double: avg() of a decimal column would round to its scale + 4 digits.
            value = value.cast("double")
            return [F.avg(value) if kind == "Mean" else F.stddev_pop(value)]
        return None

    def measure(self, frame: DataFrame, extra: Mapping[str, Column] | None = None
                ) -> tuple[QualityReport, dict[str, Any]]:
        """Measure every rule on `frame`; `extra` aggregates ride along in the same `agg`.

        Returns the report and the values of the `extra` aggregates by name.
        """
        return self._measure(frame, None, extra)[None]

    def measure_each(self, frame: DataFrame, key: str,
                     extra: Mapping[str, Column] | None = None,
                     small: Collection[Any] = ()) -> dict[Any, tuple[QualityReport,
                                                                     dict[str, Any]]]:
        """`measure` on each part of `frame` (its rows with one value of the column `key`),
        all parts in one pass: by the key's value, each part that has rows. A `small` part's
        CustomSql statements read its rows as one partition: a single Spark task that needs
        no shuffle for the statement's grouping (a day's file is a few hundred of them
        otherwise); the values are the same."""
        return self._measure(frame, key, extra, small)

    def _measure(self, frame: DataFrame, key: str | None, extra: Mapping[str, Column] | None,
                 small: Collection[Any] = ()
                 ) -> dict[Any, tuple[QualityReport, dict[str, Any]]]:
        data = frame.drop(*(key,) if key else (), *self._hidden())  # the dataset's columns
        self.validate(data)
        extra = dict(extra or {})
        leaves = list({r.metric_name: r for r in _leaves(self.ruleset.rules)}.values())
        rows, slots = self._single_agg(frame, leaves, extra, key)
        grouped = self._grouped(frame, [r for r in leaves
                                        if _measured_type(r) in GROUPED_TYPES], key)
        data_of = {part: _part_of(frame, key, part, self._hidden()) for part in rows}
        data_of = {part: data.coalesce(1) if part in small else data
                   for part, data in data_of.items()}
        custom = {str(rule.metric_name): self._custom_sql_each(data_of, rule)
                  for rule in leaves if _measured_type(rule) == "CustomSql"}
        measured = {}
        for part, row in rows.items():
            values = self._values(leaves, data_of[part], row, slots, {
                **{m: v for (m, p), v in grouped.items() if p == part},
                **{m: by_part[part] for m, by_part in custom.items()}})
            results = tuple(self._decide(rule, values, row, slots)
                            for rule in self.ruleset.rules)
            measured[part] = (QualityReport(results, values), {n: row[n] for n in extra})
        return measured

    def _values(self, leaves: list[Rule], data: DataFrame, row: Mapping[str, Any],
                slots: Mapping[str, list[str]], queried: Mapping[str, float | int | None]
                ) -> dict[str, float | int | None]:
        """Each leaf's metric, from the single agg's row, and the grouped and CustomSql
        metrics (`queried`) of one part (`data`: its rows, the dataset's columns)."""
        values: dict[str, float | int | None] = {}
        for rule in leaves:
            name = str(rule.metric_name)
            kind = _measured_type(rule)
            if kind == "ColumnCount":
                values[name] = len(data.columns)
            elif kind == "ColumnExists":
                values[name] = 1 if rule.columns[0] in data.columns else 0
            elif kind in GROUPED_TYPES or kind == "CustomSql":
                values[name] = queried.get(name)
            elif len(slots[name]) == 2:
                values[name] = _fraction(row[slots[name][0]], row[slots[name][1]])
            else:
                values[name] = _number(row[slots[name][0]])
        return values

    def _single_agg(self, frame: DataFrame, leaves: list[Rule], extra: Mapping[str, Column],
                    key: str | None) -> tuple[dict[Any, dict[str, Any]], dict[str, list[str]]]:
        """The ONE `agg` (grouped by `key` when given): its row per part (slot name ->
        value, plus `extra` by name) and each measured leaf's slot names by metric name."""
        columns: list[Column] = []
        slots: dict[str, list[str]] = {}
        for rule in leaves:
            aggregates = self._aggregates(rule)
            if aggregates is None:
                continue
            names = []
            for aggregate in aggregates:
                names.append(f"_q{len(columns)}")
                columns.append(aggregate.alias(names[-1]))
            slots[str(rule.metric_name)] = names
        columns += [expression.alias(name) for name, expression in extra.items()]
        if key is not None:
            grouped = frame.groupBy(key).agg(F.count(F.lit(1)).alias("_rows"), *columns)
            return {r[key]: r.asDict() for r in grouped.collect()}, slots
        if not columns:
            return {None: {}}, slots
        first = frame.agg(*columns).first()
        assert first is not None  # an aggregation without grouping has exactly one row
        return {None: first.asDict()}, slots

    def _grouped(self, frame: DataFrame, rules: list[Rule], key: str | None
                 ) -> dict[tuple[str, Any], float | None]:
        """Uniqueness-style metrics, all in one Spark job: by (metric name, part)."""
        if not rules:
            return {}
        by = [F.col(key)] if key else []
        parts = []
        for rule in rules:
            scoped = frame.where(self._scope(rule)) if rule.where else frame
            keys = [_col(c) for c in rule.columns]
            counted = scoped.groupBy(*by, *keys).agg(F.count(F.lit(1)).alias("_n"))
            single = F.col("_n") == 1
            if _measured_type(rule) == "IsPrimaryKey":
                complete = reduce(lambda a, b: a & b, [_col(c).isNotNull() for c in rule.columns])
                single = single & complete
            parts.append(counted.groupBy(*by).agg(
                F.lit(rule.metric_name).alias("metric"),
                F.coalesce(F.sum(F.when(single, F.col("_n"))), F.lit(0)).cast("long")
                .alias("unique_rows"),
                F.coalesce(F.sum("_n"), F.lit(0)).cast("long").alias("rows"),
            ).select("metric", (F.col(key) if key else F.lit(None)).alias("_part"),
                     "unique_rows", "rows"))
        union = reduce(DataFrame.unionByName, parts)
        return {(r["metric"], r["_part"]): _fraction(r["unique_rows"], r["rows"])
                for r in union.collect()}

    def _custom_sql_each(self, data_of: Mapping[Any, DataFrame], rule: Rule
                         ) -> dict[Any, float | int | None]:
        """A CustomSql rule's value on each part (`data_of`: each part's rows): one Spark
        action for all parts. When that query fails or a part's statement does not return
        exactly one row, each part is queried alone, as a run of one is: the same values, the
        same error, naming the same part."""
        if len(data_of) > 1:
            try:
                values = _one_row_each(
                    reduce(DataFrame.union, [
                        _query(data, rule).toDF("_value").limit(2)
                        .select(F.lit(index).alias("_index"), "_value")
                        for index, data in enumerate(data_of.values())]).collect(),
                    len(data_of))
            except (PySparkException, Py4JJavaError):
                values = None
            if values is not None:
                return dict(zip(data_of, values, strict=True))
        return {part: self._custom_sql(data, rule) for part, data in data_of.items()}

    def _custom_sql(self, data: DataFrame, rule: Rule) -> float | int | None:
        """A CustomSql rule's value on `data` (one part's rows), registered as `primary`."""
        rows = _query(data, rule).take(2)
        if len(rows) != 1:
            raise self._problem(rule, f"CustomSql returned {len(rows)} rows; it must return "
                                      "exactly one")
        return _number(rows[0][0])

    def _decide(self, rule: Rule, values: Mapping[str, float | int | None],
                row: Mapping[str, Any], slots: Mapping[str, list[str]]) -> RuleResult:
        if rule.is_composite:
            children = tuple(self._decide(c, values, row, slots) for c in rule.children)
            passed = (all if rule.operator == "and" else any)(c.passed for c in children)
            return RuleResult(rule, None, "pass" if passed else "fail",
                              f" {rule.operator} ".join(f"({c.threshold})" for c in children),
                              children=children)
        value = values[str(rule.metric_name)]
        if rule.needs_history:
            threshold = (rule.condition.text if rule.condition is not None
                         else "anomaly band from history")
            return RuleResult(rule, value, "deferred", threshold,
                              reason="decided by the quality gate with the metric history")
        if rule.row_level and value is None:
            scope = row.get(slots.get(str(rule.metric_name), ["", ""])[1])
            if scope == 0:
                threshold = (rule.effective_threshold or Condition("=", (Num(1.0),))).text
                return RuleResult(rule, None, "pass", threshold, reason="no rows in scope")
        outcome = evaluate_threshold(rule, value)
        return RuleResult(rule, value, "pass" if outcome.passed else "fail", outcome.threshold,
                          reason=outcome.reason)


def _query(data: DataFrame, rule: Rule) -> DataFrame:
    """A CustomSql rule's statement over `data`, registered as `primary` while the statement
    is analysed (eagerly, by spark.sql): the query keeps reading `data` after the view is
    dropped or bound to another part."""
    spark = data.sparkSession
    data.createOrReplaceTempView(PRIMARY_VIEW)
    try:
        return spark.sql(rule.sql or "")
    finally:
        spark.catalog.dropTempView(PRIMARY_VIEW)


def _one_row_each(rows: list[Any], parts: int) -> list[float | int | None] | None:
    """Each part's value from the rows of the unioned query (`_index`, `_value`); None
    when a part has not exactly one row."""
    values: dict[int, list[Any]] = {}
    for row in rows:
        values.setdefault(row["_index"], []).append(row["_value"])
    if any(len(values.get(index, [])) != 1 for index in range(parts)):
        return None
    return [_number(values[index][0]) for index in range(parts)]


def _part_of(frame: DataFrame, key: str | None, part: Any, hidden: tuple[str, ...]
             ) -> DataFrame:
    """One part's rows of a measured frame, with the dataset's columns only."""
    rows = frame if key is None else frame.where(F.col(key) == F.lit(part)).drop(key)
    return rows.drop(*hidden)


def _text_literal(value: str, dtype: T.DataType, what: str) -> Column:
    """A quoted DQDL value compared with a column of type `dtype`."""
    if isinstance(dtype, T.StringType):
        return F.lit(value)
    if isinstance(dtype, T.DateType):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise _RuleProblem(f"{value!r} is not a date (YYYY-MM-DD)") from None
        return F.to_date(F.lit(value))
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise _RuleProblem(f"{value!r} is not a timestamp (YYYY-MM-DD HH:MM:SS)") from None
        return F.to_timestamp(F.lit(value))
    raise _RuleProblem(f"{what} is {dtype.simpleString()}: compare it with numbers, "
                       "not quoted values")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
