"""AWS Glue Data Quality Definition Language (DQDL): the subset this product runs.

Used on both sides of the pipeline (stdlib only, no pyspark, no boto3):

* the Spark job parses a dataset's ``.dqdl`` file and measures every rule
  (``spark_jobs.common.quality``);
* the quality-gate Lambda re-parses a rule's text from ``quality.json`` and decides rules whose
  threshold depends on earlier runs with :func:`evaluate_threshold`.

Modules: ``model`` (rules, conditions, canonical text, rule types), ``lexer`` (the one
tokenizer), ``parser`` (files and rules), ``thresholds`` (deciding a metric) and ``anomaly``
(DetectAnomalies). Import from the package: the modules are its internals.

A rules file holds a ``Rules = [ ... ]`` section (severity ``error``: a failure blocks the load)
and an optional ``Warnings = [ ... ]`` section (severity ``warn``: alert only); ``#`` starts a
comment. The grammar follows awslabs/dqdl (``DataQualityDefinitionLanguage.g4``):
``RuleType "param"... <condition> [where "<Spark SQL predicate>"] [with threshold <condition>]``
and composites ``(rule) and (rule)``, ``(rule) or (rule)``, each operand in parentheses.

Supported rule types: RowCount, ColumnCount, ColumnExists, IsComplete, Completeness, IsUnique,
Uniqueness, IsPrimaryKey, DistinctValuesCount, ColumnValues, ColumnLength, Mean, Sum,
StandardDeviation, DataFreshness, CustomSql (scalar form) and DetectAnomalies; column names
quoted or bare. Dynamic thresholds use AWS's functions (avg, median, min, max, sum, std of
numbers and ``last(k)`` lists, ``index(last(k), i)``, ``abs``), nested at will, with
``+ - * /``. ColumnValues compares dates with ``now()`` and ``(now() +|- <n> days|hours|minutes)``.
Anything else is a ConfigurationError that names the rule's text and line, so a bad rules file
fails CI, never a production run; so is a division by zero anywhere in a threshold (as in AWS's
DQDL), however deeply nested, and a ``Rules = [ ]`` without rules (AWS refuses it too).
docs/dqdl.md lists every rule type and form of AWS's reference and what happens to it here.

``between a and b`` is exclusive (``> a and < b``) and ``not between`` its complement, as in
AWS Glue. DataFreshness and ``now()`` measure against the evaluation time: the run's start, or
the end of the partition day when the catalog declares ``quality.freshness_reference:
partition_end``.

Semantics that Glue leaves open, fixed here (the Spark engine implements the same):

* Completeness / row-level compliance are fractions of the rows in scope (after ``where``).
  With no row in scope a row-level rule passes (no row fails it) while a dataset-level
  ratio is not measured, and its rule fails.
* Uniqueness is the fraction of rows whose value (tuple) occurs exactly once; NULL is a value.
* IsPrimaryKey's metric is the fraction of rows that are complete in every key column and whose
  key occurs exactly once; it passes at 1.
* DistinctValuesCount ignores NULL; StandardDeviation is the population standard deviation.
* ColumnValues: NULL fails every condition except ``!=`` / ``not in`` (which let NULL pass)
  unless the NULL keyword is listed; ``matches`` is a whole-value Java regex match.
  ColumnLength treats NULL as length 0. DataFreshness fails NULL rows.
* ``std(last(k))`` is the sample standard deviation (needs 2 earlier values); the other
  functions need 1. Fewer earlier values than a rule needs: the rule passes with the reason
  "insufficient history" (a new dataset must be able to start).
* DetectAnomalies needs 3 earlier values; the value is anomalous outside a robust band
  around them: median ± ANOMALY_MAD_FACTOR · 1.4826 · MAD, on a log scale when every earlier
  value is positive, and never narrower than a factor ANOMALY_MIN_FACTOR (see anomaly_band).
  Calibrated on the 305 real Online Retail days: one alarm (the 279-line day of 2011-02-06,
  a fifth of its usual volume), while a day collapsing to 5% of its volume is caught on 290
  of 295 days.
"""

from pipeline_core.dqdl.anomaly import (
    ANOMALY_MAD_FACTOR,
    ANOMALY_METRICS,
    ANOMALY_MIN_FACTOR,
    MIN_ANOMALY_HISTORY,
    anomaly_band,
)
from pipeline_core.dqdl.model import (
    AGGREGATE_FUNCTIONS,
    ALL_ROWS,
    BOOLEAN_TYPES,
    DURATION_SECONDS,
    DYNAMIC_FUNCTIONS,
    GROUPED_TYPES,
    HISTORY_FUNCTIONS,
    KEYWORDS,
    MAX_HISTORY_WINDOW,
    SEVERITIES,
    SPECS,
    BinOp,
    Call,
    Condition,
    Duration,
    Expr,
    History,
    Keyword,
    Last,
    Now,
    Num,
    Operand,
    Outcome,
    Rule,
    Ruleset,
    Str,
    format_number,
    metric_name_for,
    render_condition,
    render_expr,
    render_operand,
)
from pipeline_core.dqdl.parser import load_ruleset, parse_rule, parse_ruleset
from pipeline_core.dqdl.thresholds import compare, evaluate_threshold

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "ALL_ROWS",
    "ANOMALY_MAD_FACTOR",
    "ANOMALY_METRICS",
    "ANOMALY_MIN_FACTOR",
    "BOOLEAN_TYPES",
    "DURATION_SECONDS",
    "DYNAMIC_FUNCTIONS",
    "GROUPED_TYPES",
    "HISTORY_FUNCTIONS",
    "KEYWORDS",
    "MAX_HISTORY_WINDOW",
    "MIN_ANOMALY_HISTORY",
    "SEVERITIES",
    "SPECS",
    "BinOp",
    "Call",
    "Condition",
    "Duration",
    "Expr",
    "History",
    "Keyword",
    "Last",
    "Now",
    "Num",
    "Operand",
    "Outcome",
    "Rule",
    "Ruleset",
    "Str",
    "anomaly_band",
    "compare",
    "evaluate_threshold",
    "format_number",
    "load_ruleset",
    "metric_name_for",
    "parse_rule",
    "parse_ruleset",
    "render_condition",
    "render_expr",
    "render_operand",
]
