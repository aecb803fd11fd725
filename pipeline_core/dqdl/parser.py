"""Rules files and single rules into :class:`Rule` values; every refusal names the rule and line.

A file is ``Name = [ rule, rule, ... ]`` sections; a rule is
``RuleType "param"... <condition> [where "<predicate>"] [with threshold <condition>]`` or a
composite of parenthesised rules joined by ``and`` / ``or``. Problems are reported in the order
a reader meets them: a section's structure (unterminated string, unclosed list, stray comma)
before the rules inside it, and each rule before the next.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline_core.dqdl.anomaly import ANOMALY_METRICS
from pipeline_core.dqdl.lexer import UNTERMINATED, Token, end_token, span_text, tokenize
from pipeline_core.dqdl.model import (
    AGGREGATE_FUNCTIONS,
    DURATION_SECONDS,
    DYNAMIC_FUNCTIONS,
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
    Rule,
    Ruleset,
    RuleSpec,
    Str,
    has_history,
    metric_name_for,
    render_expr,
)
from pipeline_core.dqdl.thresholds import evaluate_expr
from pipeline_core.errors import ConfigurationError


class _RuleError(Exception):
    """A problem inside one rule; the caller adds the rule's text, line and file."""


_AND = ("and", "AND")
_OR = ("or", "OR")
_COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")
_CONDITION_WORDS = ("between", "in", "not", "matches")
_CLAUSE_WORDS = ("where", "with")
_NOT_A_COLUMN = (*_CONDITION_WORDS, *_CLAUSE_WORDS, *_AND, *_OR, "labels", "null", "empty",
                 "whitespaces_only", *KEYWORDS)
_EXAMPLES = {"number": "> 0", "value": 'in ["a", "b"]', "length": "between 1 and 10",
             "duration": "<= 24 hours"}
_SECTION_NAME = re.compile(r"[A-Za-z_]+")
_OTHER_SECTIONS = ("Metadata", "DataSources", "DefaultLabels", "Analyzers")
# AWS Glue rule types this pipeline refuses, and why (docs/dqdl.md has the whole table).
_OTHER_DATASET = "it compares with a reference dataset; a run here reads one object"
_FILES = "it checks S3 files; the pipeline checks the object it reads by its key and ETag"
UNSUPPORTED_RULE_TYPES = {
    "AggregateMatch": _OTHER_DATASET,
    "ColumnCorrelation": "not implemented (use CustomSql \"select corr(a, b) from primary\")",
    "ColumnDataType": "the job's parse spec fixes every column's type before the rules run",
    "ColumnNamesMatchPattern": "the job's parse spec fixes the column names",
    "DatasetMatch": _OTHER_DATASET,
    "Entropy": "not implemented (use CustomSql)",
    "ReferentialIntegrity": _OTHER_DATASET,
    "RowCountMatch": _OTHER_DATASET,
    "SchemaMatch": _OTHER_DATASET,
    "UniqueValueRatio": "not implemented (use CustomSql)",
    "Variance": "not implemented (use StandardDeviation or CustomSql)",
    "AllStatistics": "an analyzer, not a rule",
    "FileFreshness": _FILES,
    "FileMatch": _FILES,
    "FileUniqueness": _FILES,
    "FileSize": _FILES,
}

# ---------------------------------------------------------------------------------------------
# Entry points


def parse_rule(text: str, line: int = 1, severity: str = "error",
               source: str = "rule") -> Rule:
    """Parse one rule's text (as written in quality.json) into a Rule."""
    if severity not in SEVERITIES.values():
        raise ValueError(f"severity must be one of {sorted(SEVERITIES.values())}")
    return _parse_tokens(tokenize(text)[:-1], line, severity, source)


def parse_ruleset(text: str, source: str = "rules") -> Ruleset:
    """Parse a whole rules file; every problem is a ConfigurationError naming the line."""
    return _Document(text, source).parse()


def load_ruleset(path: str | Path) -> Ruleset:
    path = Path(path)
    return parse_ruleset(path.read_text(encoding="utf-8"), source=path.name)


def _parse_tokens(tokens: list[Token], line: int, severity: str, source: str) -> Rule:
    text = span_text(tokens)
    try:
        return _RuleParser(tokens, text, line, severity).parse()
    except _RuleError as e:
        raise ConfigurationError(f"{source} line {line}: {e}; rule: {text}") from None


# ---------------------------------------------------------------------------------------------
# Documents


class _Document:
    """A rules file's sections, each split into its rules at top-level commas."""

    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.toks = tokenize(text, comments=True)
        self.i = 0

    def error(self, line: int, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.source} line {line}: {message}")

    def parse(self) -> Ruleset:
        rules: list[Rule] = []
        seen: set[str] = set()
        while self.toks[self.i].kind != "end":
            header = self.toks[self.i]
            severity = SEVERITIES[self.section_header(seen)]
            section = self.section_rules()
            if not section and header.text == "Rules":
                # AWS Glue refuses it too ("No rules or analyzers provided.").
                raise self.error(header.line, "the Rules section is empty: a ruleset needs at "
                                              "least one rule")
            for tokens in section:
                rules.append(_parse_tokens(tokens, tokens[0].line, severity, self.source))
        if "Rules" not in seen:
            raise ConfigurationError(f"{self.source}: no 'Rules = [ ... ]' section")
        return Ruleset(source=self.source, rules=tuple(rules))

    def section_header(self, seen: set[str]) -> str:
        """``Name = [``; leaves the position on the ``[``."""
        name, equals, bracket = (self.toks[min(self.i + k, len(self.toks) - 1)] for k in range(3))
        if name.text in _OTHER_SECTIONS:
            raise self.error(name.line, f"DQDL's {name.text} section is not supported "
                                        "(use Rules and Warnings)")
        if not (name.kind == "ident" and _SECTION_NAME.fullmatch(name.text)
                and (equals.kind, equals.text) == ("op", "=") and bracket.kind == "["):
            raise self.error(name.line, "expected 'Rules = [' or 'Warnings = [', "
                                        f"found {self.rest_of_line(self.i)!r}")
        if name.text not in SEVERITIES:
            raise self.error(name.line, f"unknown section {name.text!r} (use Rules or Warnings; "
                                        "DQDL variables are not supported)")
        if name.text in seen:
            raise self.error(name.line, f"section {name.text} appears twice")
        seen.add(name.text)
        self.i += 2
        return name.text

    def section_rules(self) -> list[list[Token]]:
        """Each rule's tokens. Only top-level commas split: one inside a rule's list or
        parentheses belongs to the rule."""
        body, closing = self.section_body()
        rules: list[list[Token]] = []
        current: list[Token] = []
        depth = 0
        for tok in (*body, closing):
            if tok is closing or (tok.kind == "," and depth == 0):
                # A stray comma leaves an empty rule; so does one before the ']'.
                if not current and (tok is not closing or rules):
                    raise self.error(tok.line, "empty rule (a stray comma?)")
                if current:
                    rules.append(current)
                current = []
                continue
            depth += (tok.kind in ("(", "[")) - (tok.kind in (")", "]"))
            current.append(tok)
        return rules

    def section_body(self) -> tuple[list[Token], Token]:
        """The tokens inside the section's ``[ ]``, and the ``]``. Only brackets count, so an
        unbalanced parenthesis stays inside its rule, whose parser then names it."""
        opening, depth = self.i, 0
        for j in range(opening, len(self.toks)):
            tok = self.toks[j]
            if tok.kind == "bad" and tok.value == UNTERMINATED:
                physical = self.text.split("\n")[tok.line - 1].strip()
                raise self.error(tok.line, f"{UNTERMINATED}; rule: {physical}")
            depth += (tok.kind == "[") - (tok.kind == "]")
            if tok.kind == "]" and depth == 0:
                self.i = j + 1
                return self.toks[opening + 1:j], tok
        raise self.error(self.toks[opening].line, "the list opened here is never closed with "
                                                  "']' (or a rule's [ ... ] list is not)")

    def rest_of_line(self, index: int) -> str:
        """From a token to the end of its line, as written (without a trailing comment), to
        quote what the reader wrote rather than how it tokenized."""
        first = self.toks[index]
        eol = self.text.find("\n", first.start)
        eol = len(self.text) if eol < 0 else eol
        last = max(t.end for t in self.toks[index:] if t.kind != "end" and t.start < eol)
        return self.text[first.start:min(last, eol)].strip()


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class _Target:
    """What a rule measures: columns, a SQL statement, or (DetectAnomalies) another metric."""

    columns: tuple[str, ...] = ()
    sql: str | None = None
    anomaly_metric: str | None = None


class _RuleParser:
    """One top-level rule (a composite or a single rule) by recursive descent over its tokens."""

    def __init__(self, toks: list[Token], text: str, line: int, severity: str):
        last = toks[-1] if toks else None
        self.toks = [*toks, end_token(last.end, last.line) if last else end_token(0, line)]
        self.text = text
        self.line = line
        self.severity = severity
        self.i = 0

    # -- token helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> Token:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def at(self, kind: str, *texts: str) -> bool:
        tok = self.peek()
        return tok.kind == kind and (not texts or tok.text in texts)

    def expect(self, kind: str, *texts: str, what: str) -> Token:
        if not self.at(kind, *texts):
            raise _RuleError(f"expected {what}, found {self.peek().text!r}")
        return self.take()

    def span(self, start: int) -> str:
        """The canonical text of the tokens read since ``start``."""
        return span_text(self.toks[start:self.i])

    # -- rules
    def parse(self) -> Rule:
        # A character out of place is the rule's first problem, whatever the grammar would say.
        bad = next((t for t in self.toks if t.kind == "bad"), None)
        if bad is not None and bad.text == "$":
            raise _RuleError("DQDL variables ($name) are not supported: write the values in "
                             "the rule")
        if bad is not None:
            raise _RuleError(bad.value)
        rule = self.top()
        if not self.at("end"):
            tok = self.peek()
            if tok.text == "labels":
                raise _RuleError("DQDL labels are not supported (the run's report names each "
                                 "rule by its text and line instead)")
            if tok.text in _AND + _OR:
                raise _RuleError(f"each rule joined by {tok.text!r} must be in parentheses")
            raise _RuleError(f"unexpected {tok.text!r}")
        # A rule written in parentheses keeps its text as written.
        return replace(rule, text=self.text)

    def at_junction(self) -> bool:
        return self.at("ident", *_AND, *_OR)

    def top(self) -> Rule:
        start = self.i
        first = self.operand()
        if not self.at_junction():
            return first
        op = self.peek().text.lower()
        children = [first]
        while self.at_junction():
            if self.take().text.lower() != op:
                raise _RuleError("mixing 'and' and 'or' needs parentheses to say which comes first")
            children.append(self.operand())
        if any(child.needs_history for child in children):
            raise _RuleError("a composite rule cannot use dynamic thresholds or "
                             "DetectAnomalies (the gate decides those one metric at a time)")
        return Rule(text=self.span(start), line=self.line, severity=self.severity,
                    rule_type="Composite", operator=op, children=tuple(children))

    def operand(self) -> Rule:
        if self.at("("):
            self.take()
            rule = self.top()
            self.expect(")", what="')'")
            return rule
        rule = self.dq_rule()
        if self.at_junction():
            raise _RuleError(f"each rule joined by {self.peek().text!r} must be in parentheses")
        return rule

    def dq_rule(self) -> Rule:
        start = self.i
        rule_type, spec = self.rule_type()
        target = _target(rule_type, spec, self.params())
        condition = self.rule_condition(rule_type, spec)
        where, threshold = self.clauses(rule_type, spec, target.anomaly_metric)
        dynamic = condition is not None and condition.dynamic
        return Rule(
            text=self.span(start), line=self.line, severity=self.severity, rule_type=rule_type,
            columns=target.columns, condition=condition, where=where, threshold=threshold,
            sql=target.sql, anomaly_metric=target.anomaly_metric, row_level=spec.row_level,
            needs_history=dynamic or rule_type == "DetectAnomalies",
            metric_name=metric_name_for(target.anomaly_metric or rule_type, target.columns,
                                        where, condition, target.sql),
            history_window=condition.history_window if condition is not None else None,
        )

    def rule_type(self) -> tuple[str, RuleSpec]:
        rule_type = self.expect("ident", what="a rule type").text
        spec = SPECS.get(rule_type)
        if rule_type in UNSUPPORTED_RULE_TYPES:
            raise _RuleError(f"{rule_type} is an AWS Glue rule type this pipeline does not run: "
                             f"{UNSUPPORTED_RULE_TYPES[rule_type]}")
        if spec is None:
            raise _RuleError(f"unknown or unsupported rule type {rule_type!r} "
                             f"(supported: {', '.join(SPECS)})")
        return rule_type, spec

    def params(self) -> list[str]:
        """Quoted or, as AWS's grammar allows (``IsPrimaryKey colA "colB"``), bare names."""
        params: list[str] = []
        while self.at("str") or (self.at("ident") and self.peek().text not in _NOT_A_COLUMN):
            params.append(self.take().value if self.at("str") else self.take().text)
        return params

    def rule_condition(self, rule_type: str, spec: RuleSpec) -> Condition | None:
        if self.at_condition():
            if spec.condition is None:
                raise _RuleError(f"{rule_type} takes no condition")
            return self.condition(spec.condition, dynamic=spec.dynamic)
        if rule_type == "CustomSql":
            raise _RuleError("CustomSql needs a condition: the row-level form (a statement "
                             "selecting rows) is not supported; select one number and compare "
                             "it, e.g. CustomSql \"select count(*) from primary\" > 0")
        if spec.condition is not None:
            raise _RuleError(f"{rule_type} needs a condition, e.g. {_EXAMPLES[spec.condition]}")
        return None

    def clauses(self, rule_type: str, spec: RuleSpec,
                anomaly_metric: str | None) -> tuple[str | None, Condition | None]:
        """``where`` and ``with threshold``, in either order, each at most once."""
        where: str | None = None
        threshold: Condition | None = None
        while self.at("ident", *_CLAUSE_WORDS):
            if self.take().text == "where":
                if where is not None:
                    raise _RuleError("more than one where clause")
                # DetectAnomalies filters the way the metric it watches does.
                where = self.where_clause(rule_type, SPECS[anomaly_metric or rule_type])
            else:
                self.expect("ident", "threshold", what="'threshold' after 'with'")
                if threshold is not None:
                    raise _RuleError("more than one 'with threshold'")
                threshold = self.with_threshold(rule_type, spec)
        return where, threshold

    def where_clause(self, rule_type: str, measured: RuleSpec) -> str:
        where = self.expect("str", what='a quoted Spark SQL predicate after "where"').value.strip()
        if not where:
            raise _RuleError("empty where clause")
        if not measured.where:
            raise _RuleError(f"{rule_type} does not take a where clause")
        return where

    def with_threshold(self, rule_type: str, spec: RuleSpec) -> Condition:
        if not spec.row_level:
            raise _RuleError(f"'with threshold' applies to row-level rules "
                             f"(ColumnValues, ColumnLength, IsComplete, DataFreshness), "
                             f"not {rule_type}")
        threshold = self.condition("number", dynamic=False)
        _check_fraction(threshold)
        return threshold

    # -- conditions
    def at_condition(self) -> bool:
        tok = self.peek()
        return (tok.kind == "op" and tok.text in _COMPARISONS) or (
            tok.kind == "ident" and tok.text in _CONDITION_WORDS)

    def condition(self, kind: str, dynamic: bool) -> Condition:
        prefix = self.negation()
        tok = self.take()
        if tok.text == "between":
            return self.between(prefix, kind, dynamic)
        if tok.text == "in":
            return self.members(prefix, kind)
        if tok.text == "matches":
            return self.matches(prefix, kind)
        if tok.kind == "op" and tok.text in _COMPARISONS:
            return Condition(tok.text, (self.value(kind, dynamic),))
        raise _RuleError(f"expected a condition, found {tok.text!r}")

    def negation(self) -> str:
        if not self.at("ident", "not"):
            return ""
        self.take()
        if not self.at("ident", "between", "in", "matches"):
            raise _RuleError("'not' must be followed by between, in or matches")
        return "not "

    def between(self, prefix: str, kind: str, dynamic: bool) -> Condition:
        low = self.value(kind, dynamic)
        self.expect("ident", *_AND, what="'and' in between ... and ...")
        high = self.value(kind, dynamic)
        return Condition(prefix + "between", (low, high))

    def members(self, prefix: str, kind: str) -> Condition:
        self.expect("[", what="'[' to open the list")
        items = [self.value(kind, dynamic=False, in_list=True)]
        while self.at(","):
            self.take()
            items.append(self.value(kind, dynamic=False, in_list=True))
        self.expect("]", what="',' or ']' in the list")
        if len({type(i) for i in items if not isinstance(i, Keyword)}) > 1:
            raise _RuleError("a list mixes numbers and strings")
        return Condition(prefix + "in", tuple(items))

    def matches(self, prefix: str, kind: str) -> Condition:
        if kind != "value":
            raise _RuleError("'matches' applies to ColumnValues only")
        pattern = self.expect("str", what="a quoted regular expression").value
        try:
            re.compile(pattern)
        except re.error as e:
            raise _RuleError(f"invalid regular expression: {e}") from e
        return Condition(prefix + "matches", (Str(pattern),))

    def value(self, kind: str, dynamic: bool, in_list: bool = False) -> Operand:
        tok = self.peek()
        if kind == "duration":
            return self.duration()
        if kind == "value" and self.at_now():
            return self.now()
        if kind == "value" and tok.kind == "str":
            return Str(self.take().value)
        if kind == "value" and tok.kind == "ident" and tok.text.upper() in KEYWORDS:
            return Keyword(self.take().text.upper())
        expr = self.expr()
        if not has_history(expr):
            return _fold(expr)
        if not dynamic:
            where = "a list" if in_list else "this condition"
            raise _RuleError(f"dynamic thresholds (avg/median/min/max/std of last(k)) are not "
                             f"allowed in {where}")
        return expr

    def at_now(self) -> bool:
        return self.at("ident", "now") or (self.at("(") and self.peek(1).text == "now")

    def now(self) -> Now:
        """``now()`` or ``(now() +|- <duration>)``; AWS's grammar wants the parentheses."""
        parenthesized = self.at("(")
        if parenthesized:
            self.take()
        self.expect("ident", "now", what="now()")
        self.expect("(", what="'(' after now")
        self.expect(")", what="')' after now(")
        if not parenthesized:
            if self.at("op", "+", "-"):
                raise _RuleError("date arithmetic goes in parentheses: "
                                 f"(now() {self.peek().text} 3 days)")
            return Now()
        sign = self.expect("op", "+", "-", what="'+' or '-' after '(now()'").text
        shift = self.duration()
        self.expect(")", what="')' closing '(now() ...'")
        return Now(shift, sign)

    def duration(self) -> Duration:
        amount = self.expect("num", what="a duration like '24 hours'").number
        unit = self.expect("ident", *DURATION_SECONDS, what="minutes, hours or days")
        if amount != int(amount):
            raise _RuleError("durations are whole numbers of minutes, hours or days")
        return Duration(int(amount), unit.text)

    # -- numeric expressions with the usual precedence
    def expr(self) -> Expr:
        node = self.term()
        while self.at("op", "+", "-"):
            node = BinOp(self.take().text, node, self.term())
        return node

    def term(self) -> Expr:
        node = self.unary()
        while self.at("op", "*", "/"):
            node = _refuse_zero_divisor(BinOp(self.take().text, node, self.unary()))
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
            return Num(tok.number)
        if tok.kind == "(":
            self.take()
            node = self.expr()
            self.expect(")", what="')'")
            return node
        if tok.kind == "ident" and tok.text in (*DYNAMIC_FUNCTIONS, "last"):
            return self.function()
        if tok.kind == "ident" and tok.text == "now":
            raise _RuleError("now() is a date: compare it with a date or timestamp column in "
                             "ColumnValues (DataFreshness takes durations such as 24 hours)")
        if tok.kind == "ident" and self.peek(1).kind == "(":
            raise _RuleError(f"unknown function {tok.text!r} (dynamic rules use "
                             f"{', '.join(DYNAMIC_FUNCTIONS)} and last)")
        raise _RuleError(f"expected a number, found {tok.text!r}")

    def function(self) -> Expr:
        """A dynamic function, nested as deep as wanted: ``max(avg(last(10)), 5)``."""
        name = self.take().text
        if name == "last":
            raise _RuleError("last(k) is a list of earlier values: use it inside "
                             f"{', '.join(AGGREGATE_FUNCTIONS)} or index, e.g. avg(last(10))")
        self.expect("(", what=f"'(' after {name}")
        args = [self.argument()]
        while self.at(","):
            self.take()
            args.append(self.argument())
        self.expect(")", what=f"')' closing {name}(")
        return _call(name, args)

    def argument(self) -> Expr | Last:
        if not self.at("ident", "last"):
            return self.expr()
        self.take()
        self.expect("(", what="'(' after last")
        window = self.expect("num", what="the number of earlier runs in last(k)").number
        self.expect(")", what="')' after last(k")
        if window != int(window) or not 1 <= window <= MAX_HISTORY_WINDOW:
            raise _RuleError(f"last(k) needs a whole number of runs from 1 to "
                             f"{MAX_HISTORY_WINDOW}")
        return Last(int(window))


def _target(rule_type: str, spec: RuleSpec, params: list[str]) -> _Target:
    if rule_type == "DetectAnomalies":
        target = _anomaly_target(params)
    elif not spec.accepts(len(params)):
        raise _RuleError(f"{rule_type} takes {spec.arity()}")
    elif rule_type == "CustomSql":
        target = _Target(sql=params[0].strip())
        if not target.sql:
            raise _RuleError("CustomSql needs a SQL statement")
    else:
        target = _Target(columns=tuple(params))
    if any(not column.strip() for column in target.columns):
        raise _RuleError("empty column name")
    return target


def _anomaly_target(params: list[str]) -> _Target:
    if not params:
        raise _RuleError('DetectAnomalies needs the metric to watch, e.g. '
                         'DetectAnomalies "RowCount"')
    metric, columns = params[0], tuple(params[1:])
    if metric not in ANOMALY_METRICS:
        raise _RuleError(f"DetectAnomalies cannot watch {metric!r} "
                         f"(supported: {', '.join(ANOMALY_METRICS)})")
    inner = SPECS[metric]
    if not inner.accepts(len(columns)):
        raise _RuleError(f"DetectAnomalies \"{metric}\" takes {inner.arity()}")
    return _Target(columns=columns, anomaly_metric=metric)


def _call(name: str, args: list[Expr | Last]) -> Expr:
    """Check a function's arguments as AWS documents them; the plain ``func(last(k))`` of the
    five classic functions stays a History (its canonical text predates the general form)."""
    if name == "index":
        window = args[0]
        position = args[1] if len(args) == 2 else None
        if (not isinstance(window, Last) or not isinstance(position, Num)
                or position.value != int(position.value)
                or not 0 <= position.value < window.window):
            raise _RuleError("index takes last(k) and a position from 0 (the newest) to k - 1, "
                             "e.g. index(last(10), 2)")
        return Call(name, (window, position))
    if name == "abs":
        if len(args) != 1 or isinstance(args[0], Last):
            raise _RuleError("abs takes one number, e.g. abs(avg(last(3)) - 10)")
        return Call(name, tuple(args))
    if len(args) == 1 and isinstance(args[0], Last) and name in HISTORY_FUNCTIONS:
        return History(name, args[0].window)
    if name == "std" and len(args) < 2 and not any(isinstance(a, Last) for a in args):
        raise _RuleError("std of a single number is undefined: give it last(k) or two "
                         "numbers or more")
    return Call(name, tuple(args))


def _refuse_zero_divisor(node: BinOp) -> BinOp:
    """AWS DQDL refuses division by zero. It is checked as each division is read: a zero
    divisor folded later becomes infinity and can vanish (``0 / (1 / 0)`` would read as 0)."""
    if node.op == "/" and not has_history(node.right) and evaluate_expr(node.right, ()) == 0:
        raise _RuleError(f"the expression divides by zero: {render_expr(node)}")
    return node


def _fold(expr: Expr) -> Num:
    """Arithmetic on constants, computed once (`1 + 2` is the number 3)."""
    value = evaluate_expr(expr, ())
    if not math.isfinite(value):
        # Zero divisors never get here (refused where they are read), only arithmetic beyond
        # the float range (a 309-digit literal); it keeps the message it has always had.
        raise _RuleError("the expression divides by zero")
    return Num(value)


def _check_fraction(condition: Condition) -> None:
    for operand in condition.operands:
        if isinstance(operand, Num) and not 0 <= operand.value <= 1:
            raise _RuleError("'with threshold' compares the fraction of passing rows: "
                             "use numbers between 0 and 1")
