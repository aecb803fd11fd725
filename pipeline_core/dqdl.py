"""AWS Glue Data Quality Definition Language (DQDL): the subset this product runs.

Used on both sides of the pipeline (stdlib only, no pyspark, no boto3):

* the Spark job parses a dataset's ``.dqdl`` file and measures every rule
  (``spark_jobs.common.quality``);
* the quality-gate Lambda re-parses a rule's text from ``quality.json`` and decides rules whose
  threshold depends on earlier runs with :func:`evaluate_threshold`.

A rules file holds a ``Rules = [ ... ]`` section (severity ``error``: a failure blocks the load)
and an optional ``Warnings = [ ... ]`` section (severity ``warn``: alert only); ``#`` starts a
comment. The grammar follows awslabs/dqdl (``DataQualityDefinitionLanguage.g4``):
``RuleType "param"... <condition> [where "<Spark SQL predicate>"] [with threshold <condition>]``
and composites ``(rule) and (rule)``, ``(rule) or (rule)``, each operand in parentheses.

Supported rule types: RowCount, ColumnCount, ColumnExists, IsComplete, Completeness, IsUnique,
Uniqueness, IsPrimaryKey, DistinctValuesCount, ColumnValues, ColumnLength, Mean, Sum,
StandardDeviation, DataFreshness, CustomSql (scalar form) and DetectAnomalies. Dynamic thresholds
use ``avg|median|min|max|std(last(k))`` with ``+ - * /``. Anything else is a ConfigurationError
that names the rule's text and line, so a bad rules file fails CI, never a production run.

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

from __future__ import annotations

import hashlib
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline_core.errors import ConfigurationError

SEVERITIES = {"Rules": "error", "Warnings": "warn"}
HISTORY_FUNCTIONS = ("avg", "median", "min", "max", "std")
MAX_HISTORY_WINDOW = 100
MIN_ANOMALY_HISTORY = 3
ANOMALY_MAD_FACTOR = 6.0
ANOMALY_MIN_FACTOR = 2.5
DURATION_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400}
KEYWORDS = ("NULL", "EMPTY", "WHITESPACES_ONLY")

# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class History:
    """``func(last(window))`` over the metric's values in earlier runs, newest first."""

    func: str
    window: int


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr


Expr = Num | History | BinOp


@dataclass(frozen=True)
class Str:
    value: str


@dataclass(frozen=True)
class Keyword:
    name: str  # NULL | EMPTY | WHITESPACES_ONLY


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # minutes | hours | days

    @property
    def seconds(self) -> int:
        return self.amount * DURATION_SECONDS[self.unit]


Operand = Expr | Str | Keyword | Duration


@dataclass(frozen=True)
class Condition:
    """``operator`` is one of = != > >= < <= between, not between, in, not in, matches,
    not matches; ``operands`` holds one value (two for between, the members for in)."""

    operator: str
    operands: tuple[Operand, ...]

    @property
    def dynamic(self) -> bool:
        return any(_has_history(o) for o in self.operands)

    @property
    def history_window(self) -> int | None:
        windows = [w for o in self.operands for w in _windows(o)]
        return max(windows) if windows else None

    @property
    def text(self) -> str:
        return render_condition(self)


@dataclass(frozen=True)
class Rule:
    """One rule (or composite) of a rules file.

    ``condition`` is the rule's own expression (the metric's threshold for dataset-level rules,
    the per-row check for row-level ones); ``threshold`` is the ``with threshold`` clause of a
    row-level rule. ``metric_name`` is stable across runs (the gate keys history on it).
    """

    text: str
    line: int
    severity: str
    rule_type: str
    columns: tuple[str, ...] = ()
    condition: Condition | None = None
    where: str | None = None
    threshold: Condition | None = None
    operator: str | None = None
    children: tuple[Rule, ...] = ()
    sql: str | None = None
    anomaly_metric: str | None = None
    row_level: bool = False
    needs_history: bool = False
    metric_name: str | None = None
    history_window: int | None = None

    @property
    def is_composite(self) -> bool:
        return bool(self.children)

    @property
    def effective_threshold(self) -> Condition | None:
        """What the metric is compared with (None for composites and DetectAnomalies)."""
        if self.is_composite or self.rule_type == "DetectAnomalies":
            return None
        if self.row_level:
            return self.threshold or ALL_ROWS
        if self.rule_type in BOOLEAN_TYPES:
            return ALL_ROWS
        return self.condition


@dataclass(frozen=True)
class Ruleset:
    source: str
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.severity == "error")

    @property
    def warnings(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.severity == "warn")


@dataclass(frozen=True)
class Outcome:
    passed: bool
    threshold: str
    reason: str | None = None


ALL_ROWS = Condition("=", (Num(1.0),))

# ---------------------------------------------------------------------------------------------
# Rule types


@dataclass(frozen=True)
class _Spec:
    min_params: int
    max_params: int | None  # None: any number (at least min_params)
    condition: str | None  # number | value | length | duration | None (no condition)
    where: bool = True
    row_level: bool = False
    dynamic: bool = False

    def arity(self) -> str:
        if self.max_params is None:
            return f"at least {self.min_params} quoted column name(s)"
        if self.max_params == 0:
            return "no parameter"
        return f"{self.min_params} quoted column name" + ("s" if self.min_params > 1 else "")


SPECS: dict[str, _Spec] = {
    "RowCount": _Spec(0, 0, "number", dynamic=True),
    "ColumnCount": _Spec(0, 0, "number", where=False, dynamic=True),
    "ColumnExists": _Spec(1, 1, None, where=False),
    "IsComplete": _Spec(1, 1, None, row_level=True),
    "Completeness": _Spec(1, 1, "number", dynamic=True),
    "IsUnique": _Spec(1, None, None),
    "Uniqueness": _Spec(1, None, "number", dynamic=True),
    "IsPrimaryKey": _Spec(1, None, None),
    "DistinctValuesCount": _Spec(1, 1, "number", dynamic=True),
    "ColumnValues": _Spec(1, 1, "value", row_level=True),
    "ColumnLength": _Spec(1, 1, "length", row_level=True),
    "Mean": _Spec(1, 1, "number", dynamic=True),
    "Sum": _Spec(1, 1, "number", dynamic=True),
    "StandardDeviation": _Spec(1, 1, "number", dynamic=True),
    "DataFreshness": _Spec(1, 1, "duration", row_level=True),
    "CustomSql": _Spec(1, 1, "number", where=False, dynamic=True),
    "DetectAnomalies": _Spec(1, None, None),
}
BOOLEAN_TYPES = frozenset({"ColumnExists", "IsComplete", "IsUnique", "IsPrimaryKey"})
GROUPED_TYPES = frozenset({"IsUnique", "Uniqueness", "IsPrimaryKey"})
ANOMALY_METRICS = ("RowCount", "ColumnCount", "Completeness", "Uniqueness", "DistinctValuesCount",
                   "Mean", "Sum", "StandardDeviation")
_METRIC_SUFFIX = {
    "RowCount": "RowCount", "ColumnCount": "ColumnCount", "ColumnExists": "Exists",
    "IsComplete": "Completeness", "Completeness": "Completeness", "IsUnique": "Uniqueness",
    "Uniqueness": "Uniqueness", "IsPrimaryKey": "IsPrimaryKey",
    "DistinctValuesCount": "DistinctValuesCount", "Mean": "Mean", "Sum": "Sum",
    "StandardDeviation": "StandardDeviation", "ColumnValues": "ColumnValues.Compliance",
    "ColumnLength": "ColumnLength.Compliance", "DataFreshness": "DataFreshness.Compliance",
}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8]


def metric_name_for(rule_type: str, columns: Sequence[str], where: str | None = None,
                    condition: Condition | None = None, sql: str | None = None) -> str:
    """The AWS-style metric name of a measurement (``Dataset.*.RowCount``,
    ``Column.a,b.Uniqueness``). Anything that changes the measured value but is not in the
    AWS name (a where clause, a row-level condition, a SQL text) adds a short digest, so two
    different measurements never share a name and the same rule keeps its name across runs."""
    if rule_type == "CustomSql":
        return f"Dataset.*.CustomSQL.{_digest(sql or '')}"
    variant: list[str] = []
    if SPECS[rule_type].row_level and condition is not None:
        variant.append(condition.text)
    if where:
        variant.append("where:" + where)
    base = (f"Dataset.*.{_METRIC_SUFFIX[rule_type]}" if rule_type in ("RowCount", "ColumnCount")
            else f"Column.{','.join(columns)}.{_METRIC_SUFFIX[rule_type]}")
    return f"{base}.{_digest(*variant)}" if variant else base


# ---------------------------------------------------------------------------------------------
# Rendering (canonical text of thresholds: stable, readable)


def format_number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def render_expr(expr: Expr, parent: int = 0, right: bool = False) -> str:
    if isinstance(expr, Num):
        return format_number(expr.value)
    if isinstance(expr, History):
        return f"{expr.func}(last({expr.window}))"
    prec = _PRECEDENCE[expr.op]
    text = f"{render_expr(expr.left, prec)} {expr.op} {render_expr(expr.right, prec, True)}"
    needs_parens = prec < parent or (right and prec == parent)
    return f"({text})" if needs_parens else text


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_operand(operand: Operand) -> str:
    if isinstance(operand, Str):
        return _quote(operand.value)
    if isinstance(operand, Keyword):
        return operand.name
    if isinstance(operand, Duration):
        return f"{operand.amount} {operand.unit}"
    return render_expr(operand)


def render_condition(condition: Condition) -> str:
    op, ops = condition.operator, condition.operands
    if op.endswith("between"):
        return f"{op} {render_operand(ops[0])} and {render_operand(ops[1])}"
    if op.endswith("in"):
        return f"{op} [{', '.join(render_operand(o) for o in ops)}]"
    return f"{op} {render_operand(ops[0])}"


def _has_history(operand: Operand) -> bool:
    return bool(_windows(operand))


def _windows(operand: Operand) -> list[int]:
    if isinstance(operand, History):
        return [operand.window]
    if isinstance(operand, BinOp):
        return _windows(operand.left) + _windows(operand.right)
    return []


# ---------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class _Tok:
    kind: str  # str num ident op ( ) [ ] , end
    text: str
    start: int
    end: int
    value: str | float | None = None


class _RuleError(Exception):
    """A problem inside one rule; parse_ruleset adds the rule text, line and file."""


_OPERATORS = (">=", "<=", "!=", "=", ">", "<", "+", "-", "*", "/")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_IDENT = re.compile(r"[A-Za-z0-9_.]+")


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == '"':
            j, out = i + 1, []
            while True:
                if j >= n:
                    raise _RuleError("unterminated quoted string")
                c = text[j]
                if c == "\\" and j + 1 < n and text[j + 1] in '"\\':
                    out.append(text[j + 1])
                    j += 2
                    continue
                if c == '"':
                    break
                out.append(c)
                j += 1
            tokens.append(_Tok("str", text[i:j + 1], i, j + 1, "".join(out)))
            i = j + 1
            continue
        if ch.isdigit():
            m = _NUMBER.match(text, i)
            assert m is not None
            tokens.append(_Tok("num", m.group(), i, m.end(), float(m.group())))
            i = m.end()
            continue
        if ch.isalpha() or ch == "_":
            m = _IDENT.match(text, i)
            assert m is not None
            tokens.append(_Tok("ident", m.group(), i, m.end()))
            i = m.end()
            continue
        if ch in "()[],":
            tokens.append(_Tok(ch, ch, i, i + 1))
            i += 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is None:
            raise _RuleError(f"unexpected character {ch!r}")
        tokens.append(_Tok("op", op, i, i + len(op)))
        i += len(op)
    tokens.append(_Tok("end", "end of rule", n, n))
    return tokens


# ---------------------------------------------------------------------------------------------
# Rule parser (one top-level rule; the document splitter hands over each rule's text)

_AND = ("and", "AND")
_OR = ("or", "OR")
_COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")


class _RuleParser:
    def __init__(self, text: str, line: int, severity: str):
        self.text = text
        self.line = line
        self.severity = severity
        self.toks = _tokenize(text)
        self.i = 0

    # -- token helpers
    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def at(self, kind: str, *texts: str) -> bool:
        tok = self.peek()
        return tok.kind == kind and (not texts or tok.text in texts)

    def expect(self, kind: str, *texts: str, what: str) -> _Tok:
        if not self.at(kind, *texts):
            raise _RuleError(f"expected {what}, found {self.peek().text!r}")
        return self.take()

    # -- grammar
    def parse(self) -> Rule:
        rule = self.top()
        if not self.at("end"):
            tok = self.peek()
            if tok.text in _AND + _OR:
                raise _RuleError(f"each rule joined by {tok.text!r} must be in parentheses")
            raise _RuleError(f"unexpected {tok.text!r}")
        # A rule written in parentheses keeps its text as written.
        return replace(rule, text=self.text)

    def top(self) -> Rule:
        start = self.peek().start
        first = self.operand()
        if not (self.at("ident", *_AND) or self.at("ident", *_OR)):
            return first
        op = self.peek().text.lower()
        children = [first]
        while self.at("ident", *_AND) or self.at("ident", *_OR):
            tok = self.take()
            if tok.text.lower() != op:
                raise _RuleError("mixing 'and' and 'or' needs parentheses to say which comes first")
            children.append(self.operand())
        for child in children:
            if child.needs_history:
                raise _RuleError("a composite rule cannot use dynamic thresholds or "
                                 "DetectAnomalies (the gate decides those one metric at a time)")
        end = self.toks[self.i - 1].end
        return Rule(text=_normalize(self.text[start:end]), line=self.line, severity=self.severity,
                    rule_type="Composite", operator=op, children=tuple(children))

    def operand(self) -> Rule:
        if self.at("("):
            self.take()
            rule = self.top()
            self.expect(")", what="')'")
            return rule
        rule = self.dq_rule()
        if self.at("ident", *_AND) or self.at("ident", *_OR):
            raise _RuleError(f"each rule joined by {self.peek().text!r} must be in parentheses")
        return rule

    def dq_rule(self) -> Rule:
        start = self.peek().start
        type_tok = self.expect("ident", what="a rule type")
        rule_type = type_tok.text
        spec = SPECS.get(rule_type)
        if spec is None:
            raise _RuleError(f"unknown or unsupported rule type {rule_type!r} "
                             f"(supported: {', '.join(SPECS)})")
        params: list[str] = []
        while self.at("str"):
            params.append(str(self.take().value))
        if self.at("ident") and self.peek().text not in _NOT_A_COLUMN:
            raise _RuleError(f"column names must be quoted: \"{self.peek().text}\"")

        anomaly_metric = None
        columns = tuple(params)
        sql = None
        if rule_type == "DetectAnomalies":
            if not params:
                raise _RuleError('DetectAnomalies needs the metric to watch, e.g. '
                                 'DetectAnomalies "RowCount"')
            anomaly_metric, columns = params[0], tuple(params[1:])
            if anomaly_metric not in ANOMALY_METRICS:
                raise _RuleError(f"DetectAnomalies cannot watch {anomaly_metric!r} "
                                 f"(supported: {', '.join(ANOMALY_METRICS)})")
            inner = SPECS[anomaly_metric]
            if not _arity_ok(inner, len(columns)):
                raise _RuleError(f"DetectAnomalies \"{anomaly_metric}\" takes {inner.arity()}")
        elif not _arity_ok(spec, len(params)):
            raise _RuleError(f"{rule_type} takes {spec.arity()}")
        if rule_type == "CustomSql":
            sql, columns = params[0].strip(), ()
            if not sql:
                raise _RuleError("CustomSql needs a SQL statement")
        for col in columns:
            if not col.strip():
                raise _RuleError("empty column name")

        condition = None
        if self.at_condition():
            if spec.condition is None:
                raise _RuleError(f"{rule_type} takes no condition")
            condition = self.condition(spec.condition, dynamic=spec.dynamic)
        elif spec.condition is not None:
            raise _RuleError(f"{rule_type} needs a condition, e.g. {_EXAMPLES[spec.condition]}")

        where = threshold = None
        while self.at("ident", "where", "with"):
            if self.take().text == "where":
                if where is not None:
                    raise _RuleError("more than one where clause")
                tok = self.expect("str", what='a quoted Spark SQL predicate after "where"')
                where = str(tok.value).strip()
                if not where:
                    raise _RuleError("empty where clause")
                allowed = SPECS[anomaly_metric].where if anomaly_metric else spec.where
                if not allowed:
                    raise _RuleError(f"{rule_type} does not take a where clause")
            else:
                self.expect("ident", "threshold", what="'threshold' after 'with'")
                if threshold is not None:
                    raise _RuleError("more than one 'with threshold'")
                if not spec.row_level:
                    raise _RuleError(f"'with threshold' applies to row-level rules "
                                     f"(ColumnValues, ColumnLength, IsComplete, DataFreshness), "
                                     f"not {rule_type}")
                threshold = self.condition("number", dynamic=False)
                _check_fraction(threshold)

        end = self.toks[self.i - 1].end
        text = _normalize(self.text[start:end])
        dynamic = condition is not None and condition.dynamic
        needs_history = dynamic or rule_type == "DetectAnomalies"
        metric_type = anomaly_metric or rule_type
        return Rule(
            text=text, line=self.line, severity=self.severity, rule_type=rule_type,
            columns=columns, condition=condition, where=where, threshold=threshold, sql=sql,
            anomaly_metric=anomaly_metric, row_level=spec.row_level,
            needs_history=needs_history,
            metric_name=metric_name_for(metric_type, columns, where, condition, sql),
            history_window=condition.history_window if condition is not None else None,
        )

    def at_condition(self) -> bool:
        tok = self.peek()
        return (tok.kind == "op" and tok.text in _COMPARISONS) or (
            tok.kind == "ident" and tok.text in _CONDITION_WORDS)

    def condition(self, kind: str, dynamic: bool) -> Condition:
        negated = False
        if self.at("ident", "not"):
            self.take()
            negated = True
            if not self.at("ident", "between", "in", "matches"):
                raise _RuleError("'not' must be followed by between, in or matches")
        tok = self.take()
        prefix = "not " if negated else ""
        if tok.text == "between":
            low = self.value(kind, dynamic)
            self.expect("ident", *_AND, what="'and' in between ... and ...")
            high = self.value(kind, dynamic)
            return Condition(prefix + "between", (low, high))
        if tok.text == "in":
            self.expect("[", what="'[' to open the list")
            items = [self.value(kind, dynamic=False, in_list=True)]
            while self.at(","):
                self.take()
                items.append(self.value(kind, dynamic=False, in_list=True))
            self.expect("]", what="',' or ']' in the list")
            if len({type(i) for i in items if not isinstance(i, Keyword)}) > 1:
                raise _RuleError("a list mixes numbers and strings")
            return Condition(prefix + "in", tuple(items))
        if tok.text == "matches":
            if kind != "value":
                raise _RuleError("'matches' applies to ColumnValues only")
            pattern = self.expect("str", what="a quoted regular expression")
            try:
                re.compile(str(pattern.value))
            except re.error as e:
                raise _RuleError(f"invalid regular expression: {e}") from e
            return Condition(prefix + "matches", (Str(str(pattern.value)),))
        if tok.kind == "op" and tok.text in _COMPARISONS:
            return Condition(tok.text, (self.value(kind, dynamic),))
        raise _RuleError(f"expected a condition, found {tok.text!r}")

    def value(self, kind: str, dynamic: bool, in_list: bool = False) -> Operand:
        tok = self.peek()
        if kind == "duration":
            amount = self.expect("num", what="a duration like '24 hours'")
            unit = self.expect("ident", *DURATION_SECONDS, what="minutes, hours or days")
            if amount.value != int(amount.value or 0):
                raise _RuleError("durations are whole numbers of minutes, hours or days")
            return Duration(int(amount.value or 0), unit.text)
        if kind == "value" and tok.kind == "str":
            return Str(str(self.take().value))
        if kind == "value" and tok.kind == "ident" and tok.text.upper() in KEYWORDS:
            return Keyword(self.take().text.upper())
        expr = self.expr()
        if not _has_history(expr):
            return _fold(expr)
        if not dynamic:
            where = "a list" if in_list else "this condition"
            raise _RuleError(f"dynamic thresholds (avg/median/min/max/std of last(k)) are not "
                             f"allowed in {where}")
        return expr

    # -- numeric expressions with the usual precedence
    def expr(self) -> Expr:
        node = self.term()
        while self.at("op", "+", "-"):
            node = BinOp(self.take().text, node, self.term())
        return node

    def term(self) -> Expr:
        node = self.unary()
        while self.at("op", "*", "/"):
            node = BinOp(self.take().text, node, self.unary())
        return node

    def unary(self) -> Expr:
        if self.at("op", "-"):
            self.take()
            inner = self.unary()
            return Num(-inner.value) if isinstance(inner, Num) else BinOp("-", Num(0.0), inner)
        return self.primary()

    def primary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "num":
            self.take()
            return Num(float(tok.value or 0))
        if tok.kind == "(":
            self.take()
            node = self.expr()
            self.expect(")", what="')'")
            return node
        if tok.kind == "ident" and tok.text in HISTORY_FUNCTIONS:
            self.take()
            self.expect("(", what=f"'(' after {tok.text}")
            self.expect("ident", "last", what="last(k)")
            self.expect("(", what="'(' after last")
            k = self.expect("num", what="the number of earlier runs in last(k)")
            self.expect(")", what="')' after last(k")
            self.expect(")", what=f"')' closing {tok.text}(")
            window = float(k.value or 0)
            if window != int(window) or not 1 <= window <= MAX_HISTORY_WINDOW:
                raise _RuleError(f"last(k) needs a whole number of runs from 1 to "
                                 f"{MAX_HISTORY_WINDOW}")
            return History(tok.text, int(window))
        if tok.kind == "ident" and tok.text.startswith("now"):
            raise _RuleError("now() date expressions are not supported; use DataFreshness")
        raise _RuleError(f"expected a number, found {tok.text!r}")


_CONDITION_WORDS = ("between", "in", "not", "matches")
_CLAUSE_WORDS = ("where", "with")
_NOT_A_COLUMN = _CONDITION_WORDS + _CLAUSE_WORDS + _AND + _OR
_EXAMPLES = {"number": "> 0", "value": 'in ["a", "b"]', "length": "between 1 and 10",
             "duration": "<= 24 hours"}


def _fold(expr: Expr) -> Num:
    """Arithmetic on constants, computed once (`1 + 2` is the number 3)."""
    value = _eval_expr(expr, [])
    if not math.isfinite(value):
        raise _RuleError("the expression divides by zero")
    return Num(value)


def _arity_ok(spec: _Spec, count: int) -> bool:
    return count >= spec.min_params and (spec.max_params is None or count <= spec.max_params)


def _check_fraction(condition: Condition) -> None:
    for operand in condition.operands:
        if isinstance(operand, Num) and not 0 <= operand.value <= 1:
            raise _RuleError("'with threshold' compares the fraction of passing rows: "
                             "use numbers between 0 and 1")


def _normalize(text: str) -> str:
    """Collapse whitespace outside quoted strings (rules may span lines)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif ch.isspace():
            while i < n and text[i].isspace():
                i += 1
            out.append(" ")
        else:
            out.append(ch)
            i += 1
    return "".join(out).strip()


# ---------------------------------------------------------------------------------------------
# Document


def _strip_comments(text: str) -> str:
    """Blank out `#` comments (outside quoted strings), keeping offsets and line numbers."""
    out = list(text)
    i, n = 0, len(text)
    in_str = False
    while i < n:
        ch = text[i]
        if in_str:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "#":
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        i += 1
    return "".join(out)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _split_rules(body: str, base: int, text: str, source: str) -> list[tuple[str, int]]:
    """Split a section body at top-level commas; returns (rule text, line) pairs."""
    chunks: list[tuple[str, int]] = []
    depth, i, start, n = 0, 0, 0, len(body)
    while i <= n:
        # The end of the body always closes the last rule, balanced or not (the rule parser
        # then says what is missing).
        ch = body[i] if i < n else "\x00"
        if ch == '"':
            j = i + 1
            while j < n and body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            if j >= n:
                raise ConfigurationError(f"{source} line {_line_of(text, base + i)}: "
                                         "unterminated quoted string")
            i = j + 1
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif (ch == "," and depth == 0) or ch == "\x00":
            chunk = body[start:i]
            stripped = chunk.strip()
            offset = base + start + (len(chunk) - len(chunk.lstrip()))
            if stripped:
                chunks.append((stripped, _line_of(text, offset)))
            elif i < n or chunks:
                raise ConfigurationError(f"{source} line {_line_of(text, offset)}: empty rule "
                                         "(a stray comma?)")
            start = i + 1
        i += 1
    return chunks


def _section_end(text: str, open_at: int, source: str) -> int:
    """Index of the ']' closing the '[' at open_at (quotes and nesting respected)."""
    depth, i, n = 0, open_at, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                line = _line_of(text, i)
                raise ConfigurationError(
                    f"{source} line {line}: unterminated quoted string; rule: "
                    f"{text.splitlines()[line - 1].strip()}")
            i = j + 1
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ConfigurationError(f"{source} line {_line_of(text, open_at)}: the list opened here "
                             "is never closed with ']' (or a rule's [ ... ] list is not)")


def parse_rule(text: str, line: int = 1, severity: str = "error",
               source: str = "rule") -> Rule:
    """Parse one rule's text (as written in quality.json) into a Rule."""
    if severity not in SEVERITIES.values():
        raise ValueError(f"severity must be one of {sorted(SEVERITIES.values())}")
    normalized = _normalize(text)
    try:
        return _RuleParser(normalized, line, severity).parse()
    except _RuleError as e:
        raise ConfigurationError(f"{source} line {line}: {e}; rule: {normalized}") from None


_SECTION = re.compile(r"\s*([A-Za-z_]+)\s*=\s*\[")


def parse_ruleset(text: str, source: str = "rules") -> Ruleset:
    """Parse a whole rules file; every problem is a ConfigurationError naming the line."""
    clean = _strip_comments(text)
    rules: list[Rule] = []
    seen: set[str] = set()
    pos = 0
    while clean[pos:].strip():
        m = _SECTION.match(clean, pos)
        if not m:
            offset = pos + len(clean[pos:]) - len(clean[pos:].lstrip())
            snippet = clean[offset:].split("\n", 1)[0].strip()
            raise ConfigurationError(f"{source} line {_line_of(clean, offset)}: expected "
                                     f"'Rules = [' or 'Warnings = [', found {snippet!r}")
        name = m.group(1)
        line = _line_of(clean, m.start(1))
        if name not in SEVERITIES:
            raise ConfigurationError(f"{source} line {line}: unknown section {name!r} "
                                     "(use Rules or Warnings)")
        if name in seen:
            raise ConfigurationError(f"{source} line {line}: section {name} appears twice")
        seen.add(name)
        close = _section_end(clean, m.end() - 1, source)
        for rule_text, rule_line in _split_rules(clean[m.end():close], m.end(), clean, source):
            rules.append(parse_rule(rule_text, rule_line, SEVERITIES[name], source))
        pos = close + 1
    if "Rules" not in seen:
        raise ConfigurationError(f"{source}: no 'Rules = [ ... ]' section")
    return Ruleset(source=source, rules=tuple(rules))


def load_ruleset(path: str | Path) -> Ruleset:
    path = Path(path)
    return parse_ruleset(path.read_text(encoding="utf-8"), source=path.name)


# ---------------------------------------------------------------------------------------------
# Thresholds


class _InsufficientHistory(Exception):
    pass


def _eval_expr(expr: Expr, history: Sequence[float]) -> float:
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, History):
        points = list(history[:expr.window])
        need = 2 if expr.func == "std" else 1
        if len(points) < need:
            raise _InsufficientHistory(f"{expr.func}(last({expr.window})) needs {need} earlier "
                                       f"value(s), found {len(points)}")
        return {
            "avg": statistics.fmean, "median": statistics.median, "min": min, "max": max,
            "std": statistics.stdev,
        }[expr.func](points)
    left, right = _eval_expr(expr.left, history), _eval_expr(expr.right, history)
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    if expr.op == "*":
        return left * right
    return left / right if right != 0 else math.copysign(math.inf, left) if left else math.nan


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def compare(operator: str, value: float, operands: Sequence[float]) -> bool:
    """The numeric comparison of a condition whose operands are already numbers."""
    if operator == "=":
        return _close(value, operands[0])
    if operator == "!=":
        return not _close(value, operands[0])
    if operator == ">":
        return value > operands[0] and not _close(value, operands[0])
    if operator == ">=":
        return value >= operands[0] or _close(value, operands[0])
    if operator == "<":
        return value < operands[0] and not _close(value, operands[0])
    if operator == "<=":
        return value <= operands[0] or _close(value, operands[0])
    if operator in ("between", "not between"):
        low, high = operands
        inside = (value >= low or _close(value, low)) and (value <= high or _close(value, high))
        return inside if operator == "between" else not inside
    if operator in ("in", "not in"):
        found = any(_close(value, o) for o in operands)
        return found if operator == "in" else not found
    raise ValueError(f"operator {operator!r} does not compare numbers")


def _clean_history(history: Sequence[float] | None) -> list[float]:
    out = []
    for v in history or ():
        if v is None or isinstance(v, bool):
            continue
        number = float(v)
        if math.isfinite(number):
            out.append(number)
    return out


def evaluate_threshold(rule: Rule, value: float | None,
                       history: Sequence[float] | None = None) -> Outcome:
    """Check a rule's metric value against its threshold.

    ``history`` holds the same metric's values in earlier successful runs, newest first; only
    dynamic thresholds and DetectAnomalies read it. Returns whether the rule passed and a
    human description of the threshold it was held to (resolved for dynamic thresholds).
    """
    if rule.is_composite:
        raise ValueError("a composite rule is decided from its children's outcomes")
    points = _clean_history(history)
    if rule.rule_type == "DetectAnomalies":
        return _detect_anomaly(value, points)
    condition = rule.effective_threshold
    assert condition is not None
    text = condition.text
    if value is None or not math.isfinite(float(value)):
        return Outcome(False, text, "metric not measured")
    per_row = [o for o in condition.operands if not isinstance(o, Num | BinOp | History)]
    if per_row:
        raise ValueError(f"{rule.rule_type}: the condition {text!r} is checked per row, "
                         "not against a metric")
    try:
        resolved = [_eval_expr(o, points) for o in condition.operands]  # type: ignore[arg-type]
    except _InsufficientHistory as e:
        return Outcome(True, f"{text} (insufficient history: {e})", "insufficient history")
    if any(math.isnan(r) for r in resolved):
        return Outcome(False, f"{text} (threshold undefined: division by zero)",
                       "threshold undefined")
    passed = compare(condition.operator, float(value), resolved)
    if condition.dynamic:
        shown = Condition(condition.operator, tuple(Num(round(r, 6)) for r in resolved)).text
        used = min(len(points), condition.history_window or 0)
        text = f"{shown} ({text} over {used} earlier run{'s' if used != 1 else ''})"
    return Outcome(passed, text)


def anomaly_band(history: Sequence[float]) -> tuple[float, float, float]:
    """(median, low, high): the band of ordinary values around earlier values.

    Robust (median and MAD, so one odd earlier run does not widen it much) and, when every
    earlier value is positive (counts, sums, ratios), computed on a log scale: a metric that
    varies by a factor day to day gets a band of factors, and a collapse to a small fraction is
    outside it however noisy the history is. The band is never narrower than a factor of
    ANOMALY_MIN_FACTOR around the median (linear fallback: ANOMALY_MIN_FACTOR - 1 times |median|).
    """
    center = statistics.median(history)
    if all(x > 0 for x in history):
        logs = [math.log(x) for x in history]
        log_center = statistics.median(logs)
        mad = statistics.median(abs(x - log_center) for x in logs)
        half = max(ANOMALY_MAD_FACTOR * 1.4826 * mad, math.log(ANOMALY_MIN_FACTOR))
        return center, math.exp(log_center - half), math.exp(log_center + half)
    mad = statistics.median(abs(x - center) for x in history)
    half = max(ANOMALY_MAD_FACTOR * 1.4826 * mad, (ANOMALY_MIN_FACTOR - 1) * abs(center))
    return center, center - half, center + half


def _detect_anomaly(value: float | None, history: list[float]) -> Outcome:
    if len(history) < MIN_ANOMALY_HISTORY:
        return Outcome(True, f"no anomaly band (insufficient history: {len(history)} earlier "
                             f"run(s), needs {MIN_ANOMALY_HISTORY})", "insufficient history")
    center, low, high = anomaly_band(history)
    text = (f"between {format_number(round(low, 6))} and {format_number(round(high, 6))} "
            f"(median {format_number(round(center, 6))} of {len(history)} earlier runs, "
            f"robust band)")
    if value is None or not math.isfinite(float(value)):
        return Outcome(False, text, "metric not measured")
    return Outcome(low <= float(value) <= high, text)
