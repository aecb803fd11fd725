"""The examples of AWS's DQDL reference, each with what this pipeline does with it.

Every case is an example rule as printed on an AWS Glue developer guide page (the page is the
case's first field; PAGES has its title and URL), with its outcome here: the parsed rule (columns,
condition, where clause) and, for rules decided on a metric, the decision for metric values on
either side of the threshold; or the refusal, at parse time, with the message the user sees.
docs/dqdl.md is the same table for people. A few printed examples are typos on AWS's side (an
unbalanced parenthesis, a stray ']', RowCount with a column): they are refused as AWS's own
parser (awslabs/dqdl) refuses them.

Pages:
- Data Quality Definition Language (DQDL) reference
  https://docs.aws.amazon.com/glue/latest/dg/dqdl.html
- DQDL rule type pages, https://docs.aws.amazon.com/glue/latest/dg/dqdl-rule-types-<Type>.html:
  RowCount, ColumnCount, Completeness, IsComplete, IsUnique, Uniqueness, IsPrimaryKey,
  DistinctValuesCount, Sum, StandardDeviation, ColumnLength, ColumnExists, ColumnValues,
  DataFreshness, CustomSql, DetectAnomalies, FileFreshness, RowCountMatch
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from pipeline_core.dqdl import evaluate_threshold, parse_rule, parse_ruleset
from pipeline_core.errors import ConfigurationError

GUIDE = "https://docs.aws.amazon.com/glue/latest/dg/"
PAGES = {
    "dqdl": ("Data Quality Definition Language (DQDL) reference", GUIDE + "dqdl.html"),
    **{name: (name, f"{GUIDE}dqdl-rule-types-{name}.html") for name in (
        "RowCount", "ColumnCount", "Completeness", "IsComplete", "IsUnique", "Uniqueness",
        "IsPrimaryKey", "DistinctValuesCount", "Sum", "StandardDeviation", "ColumnLength",
        "ColumnExists", "ColumnValues", "DataFreshness", "CustomSql", "DetectAnomalies",
        "FileFreshness", "RowCountMatch")},
}

Decision = tuple[float, tuple[float, ...], bool]  # metric value, earlier values, passed


@dataclass(frozen=True)
class Case:
    page: str
    text: str
    columns: tuple[str, ...] = ()
    condition: str | None = None
    where: str | None = None
    decides: tuple[Decision, ...] = ()
    refused: str | None = None
    composite_of: int = 0


BOOLEAN = ((1.0, (), True), (0.99, (), False))  # a boolean rule passes at 1 only
HIST = (10.0, 20.0, 30.0)  # newest first

CASES = [
    # -- DQDL reference: composite rules
    Case("dqdl", '(IsComplete "id") and (IsUnique "id")', composite_of=2),
    Case("dqdl", '(RowCount "id" > 100) or (IsPrimaryKey "id")',
         refused="RowCount takes no parameter"),
    Case("dqdl", '(Mean "Star_Rating" > 3) and (Mean "Order_Total" > 500) and '
                 '(IsComplete "Order_Id")', composite_of=3),
    Case("dqdl", '(Mean "Star_Rating" > 3) and ((Mean "Order_Total" > 500) or '
                 '(IsComplete "Order_Id"))', composite_of=2),
    Case("dqdl", '(RowCount > 0) or ((IsComplete "colA") and (IsUnique "colA"))',
         composite_of=2),
    # -- RowCount
    Case("RowCount", "RowCount between 10 and 100", condition="between 10 and 100",
         decides=((10, (), False), (11, (), True), (99.5, (), True), (100, (), False))),
    Case("RowCount", 'RowCount between 1 and 50 where "Customer_ID < 10"',
         condition="between 1 and 50", where="Customer_ID < 10",
         decides=((1, (), False), (2, (), True), (50, (), False))),
    Case("RowCount", "RowCount > avg(last(10)) *0.8", condition="> avg(last(10)) * 0.8",
         decides=((16.5, HIST, True), (16, HIST, False), (0, (), True))),
    # -- ColumnCount
    Case("ColumnCount", "ColumnCount between 10 and 20", condition="between 10 and 20",
         decides=((15, (), True), (10, (), False), (20, (), False))),
    Case("ColumnCount", "ColumnCount >= avg(last(10))", condition=">= avg(last(10))",
         decides=((20, HIST, True), (19, HIST, False))),
    Case("ColumnCount", "ColumnCount between min(last(10))-1 and max(last(10))+1",
         condition="between min(last(10)) - 1 and max(last(10)) + 1",
         decides=((9, HIST, False), (10, HIST, True), (30.5, HIST, True), (31, HIST, False))),
    # -- Completeness
    Case("Completeness", 'Completeness "First_Name" > 0.95', ("First_Name",), "> 0.95",
         decides=((0.96, (), True), (0.95, (), False))),
    Case("Completeness", 'Completeness "First_Name" > 0.95 where "weightinkgs > 10"',
         ("First_Name",), "> 0.95", "weightinkgs > 10", decides=((1.0, (), True),)),
    Case("Completeness", 'Completeness "colA" between min(last(5)) - 1 and max(last(5)) + 1',
         ("colA",), "between min(last(5)) - 1 and max(last(5)) + 1",
         decides=((0.5, (0.5, 0.6), True),)),
    Case("Completeness", 'Completeness "colA" <= avg(last(10))', ("colA",), "<= avg(last(10))",
         decides=((0.5, (0.5, 0.7), True), (0.61, (0.5, 0.7), False))),
    # -- IsComplete
    Case("IsComplete", 'IsComplete "email"', ("email",), decides=BOOLEAN),
    Case("IsComplete", 'IsComplete "Email" where "Customer_ID between 1 and 50"', ("Email",),
         where="Customer_ID between 1 and 50", decides=BOOLEAN),
    Case("IsComplete", 'IsComplete "Customer_ID"  where "Customer_ID < 16 and Customer_ID != 12"',
         ("Customer_ID",), where="Customer_ID < 16 and Customer_ID != 12", decides=BOOLEAN),
    Case("IsComplete", 'IsComplete "passenger_count" where "payment_type<>0"',
         ("passenger_count",), where="payment_type<>0", decides=BOOLEAN),
    # -- IsUnique
    Case("IsUnique", 'IsUnique "email"', ("email",), decides=BOOLEAN),
    Case("IsUnique", 'IsUnique "Customer_ID" where "Customer_ID < 10"]',
         refused="unexpected ']'"),  # the page's stray ']'
    Case("IsUnique", 'IsUnique "vendorid" "tpep_pickup_datetime"',
         ("vendorid", "tpep_pickup_datetime"), decides=BOOLEAN),
    # -- Uniqueness
    Case("Uniqueness", 'Uniqueness "email" = 1.0', ("email",), "= 1",
         decides=((1.0, (), True), (0.9, (), False))),
    Case("Uniqueness", 'Uniqueness "Customer_ID" != 1.0 where "Customer_ID < 10"',
         ("Customer_ID",), "!= 1", "Customer_ID < 10",
         decides=((0.9, (), True), (1.0, (), False))),
    Case("Uniqueness", 'Uniqueness "vendorid" "tpep_pickup_datetime" = 1',
         ("vendorid", "tpep_pickup_datetime"), "= 1", decides=((1.0, (), True),)),
    Case("Uniqueness", 'Uniqueness "colA" between min(last(10)) and max(last(10))', ("colA",),
         "between min(last(10)) and max(last(10))",
         decides=((0.5, (0.4, 0.6), True), (0.4, (0.4, 0.6), False))),
    Case("Uniqueness", 'Uniqueness "colA" >= avg(last(10))', ("colA",), ">= avg(last(10))",
         decides=((0.5, (0.4, 0.6), True), (0.49, (0.4, 0.6), False))),
    # -- IsPrimaryKey
    Case("IsPrimaryKey", 'IsPrimaryKey "Customer_ID"', ("Customer_ID",), decides=BOOLEAN),
    Case("IsPrimaryKey", 'IsPrimaryKey "Customer_ID" where "Customer_ID < 10"', ("Customer_ID",),
         where="Customer_ID < 10", decides=BOOLEAN),
    Case("IsPrimaryKey", 'IsPrimaryKey "colA" "colB"', ("colA", "colB"), decides=BOOLEAN),
    Case("IsPrimaryKey", 'IsPrimaryKey "colA" "colB" "colC"', ("colA", "colB", "colC"),
         decides=BOOLEAN),
    Case("IsPrimaryKey", 'IsPrimaryKey colA "colB" "colC"', ("colA", "colB", "colC"),
         decides=BOOLEAN),
    # -- DistinctValuesCount
    Case("DistinctValuesCount", 'DistinctValuesCount "State" > 3', ("State",), "> 3",
         decides=((4, (), True), (3, (), False))),
    Case("DistinctValuesCount", 'DistinctValuesCount "Customer_ID" < 6  where "Customer_ID < 10"',
         ("Customer_ID",), "< 6", "Customer_ID < 10", decides=((5, (), True), (6, (), False))),
    Case("DistinctValuesCount",
         'DistinctValuesCount "colA" between avg(last(10))-1 and avg(last(10))+1', ("colA",),
         "between avg(last(10)) - 1 and avg(last(10)) + 1",
         decides=((20, HIST, True), (21, HIST, False))),
    # index(last(10), 2) is the third newest value (30); std(last(5)) of 10, 20, 30 is 10.
    Case("DistinctValuesCount",
         'DistinctValuesCount "colA" <= index(last(10),2) + std(last(5))', ("colA",),
         "<= index(last(10), 2) + std(last(5))",
         decides=((40, HIST, True), (41, HIST, False), (99, (10.0, 20.0), True))),
    # -- Sum
    Case("Sum", 'Sum "transaction_total" > 500000', ("transaction_total",), "> 500000",
         decides=((500001, (), True), (500000, (), False))),
    Case("Sum", 'Sum "Salary" < 55600 where "Customer_ID < 10"', ("Salary",), "< 55600",
         "Customer_ID < 10", decides=((55599, (), True),)),
    Case("Sum", 'Sum "ColA" > avg(last(10))', ("ColA",), "> avg(last(10))",
         decides=((21, HIST, True), (20, HIST, False))),
    Case("Sum", 'Sum "colA" between min(last(10)) - 1 and max(last(10)) + 1', ("colA",),
         "between min(last(10)) - 1 and max(last(10)) + 1", decides=((9, HIST, False),)),
    # -- StandardDeviation
    Case("StandardDeviation", 'StandardDeviation "Star_Rating" < 1.5', ("Star_Rating",),
         "< 1.5", decides=((1.4, (), True), (1.5, (), False))),
    Case("StandardDeviation", 'StandardDeviation "Salary" < 3500 where "Customer_ID < 10"',
         ("Salary",), "< 3500", "Customer_ID < 10", decides=((3499, (), True),)),
    Case("StandardDeviation", 'StandardDeviation "colA" > avg(last(10) + 0.1',
         refused="expected ')' closing avg("),  # the page's unbalanced parenthesis
    Case("StandardDeviation",
         'StandardDeviation "colA" between min(last(10)) - 1 and max(last(10)) + 1', ("colA",),
         "between min(last(10)) - 1 and max(last(10)) + 1", decides=((31, HIST, False),)),
    # -- ColumnLength (row-level: the Spark engine measures the compliance, checked in
    #    tests/spark/test_quality_engine.py; here, what it is held to)
    Case("ColumnLength", 'ColumnLength "Postal_Code" = 5', ("Postal_Code",), "= 5",
         decides=((1.0, (), True), (0.99, (), False))),
    Case("ColumnLength", 'ColumnLength "weightinkgs" = 2 where "weightinkgs > 10"',
         ("weightinkgs",), "= 2", "weightinkgs > 10"),
    Case("ColumnLength", 'ColumnLength "Postal_Code" > 4', ("Postal_Code",), "> 4"),
    Case("ColumnLength", 'ColumnLength "Postal_Code" < 6', ("Postal_Code",), "< 6"),
    Case("ColumnLength", '(ColumnLength "Postal_Code" > 4) AND (ColumnValues "Postal_Code" != '
                         'NULL)', composite_of=2),
    # -- ColumnExists
    Case("ColumnExists", 'ColumnExists "Middle_Name"', ("Middle_Name",), decides=BOOLEAN),
    # -- ColumnValues
    Case("ColumnValues", 'ColumnValues "Country" in [ "US", "CA", "UK", NULL, EMPTY, '
                         'WHITESPACES_ONLY ]', ("Country",),
         'in ["US", "CA", "UK", NULL, EMPTY, WHITESPACES_ONLY]'),
    Case("ColumnValues", 'ColumnValues "gender" in ["F", "M"] where "weightinkgs < 10"',
         ("gender",), 'in ["F", "M"]', "weightinkgs < 10"),
    Case("ColumnValues", 'ColumnValues "First_Name" matches "[a-zA-Z]*"', ("First_Name",),
         'matches "[a-zA-Z]*"'),
    Case("ColumnValues", 'ColumnValues "Load_Date" > (now() - 3 days)', ("Load_Date",),
         "> (now() - 3 days)"),
    Case("ColumnValues", 'ColumnValues "Customer_ID" between 1 and 2000', ("Customer_ID",),
         "between 1 and 2000"),
    Case("ColumnValues", '(ColumnValues "Age" > 21) OR (ColumnValues "Age" = NULL)',
         composite_of=2),
    Case("ColumnValues", 'ColumnValues "Age" != 21', ("Age",), "!= 21"),
    Case("ColumnValues", 'ColumnValues "Age" not in [21, 22, 23]', ("Age",),
         "not in [21, 22, 23]"),
    Case("ColumnValues", '(ColumnValues "Age" != 21) AND (ColumnValues "Age" != NULL)',
         composite_of=2),
    Case("ColumnValues", 'ColumnValues "Age" not in [21, 22, 23, NULL]', ("Age",),
         "not in [21, 22, 23, NULL]"),
    # -- DataFreshness
    Case("DataFreshness", 'DataFreshness "Order_Date" <= 24 hours', ("Order_Date",),
         "<= 24 hours"),
    Case("DataFreshness", 'DataFreshness "Order_Date" between 2 days and 5 days',
         ("Order_Date",), "between 2 days and 5 days"),
    Case("DataFreshness", '(DataFreshness "Order_Date" <= 24 hours) OR (ColumnValues '
                          '"Order_Date" = NULL)', composite_of=2),
    Case("DataFreshness", 'DataFreshness "file_ts" < 24 hours', ("file_ts",), "< 24 hours"),
    # -- CustomSql
    Case("CustomSql", 'CustomSql "select count(*) from primary" between 10 and 20',
         condition="between 10 and 20", decides=((15, (), True), (20, (), False))),
    Case("CustomSql", 'CustomSql "select Name from primary where Age > 18"',
         refused="the row-level form (a statement selecting rows) is not supported"),
    Case("CustomSql", 'CustomSql "select Name from primary where Age > 18" with threshold > 3',
         refused="the row-level form (a statement selecting rows) is not supported"),
    # -- DetectAnomalies
    Case("DetectAnomalies", 'DetectAnomalies "RowCount"',
         decides=((100, (100.0, 110.0, 90.0), True), (5, (100.0, 110.0, 90.0), False),
                  (5, (100.0,), True))),
    Case("DetectAnomalies", 'DetectAnomalies "ColumnLength" "id"',
         refused="DetectAnomalies cannot watch 'ColumnLength'"),
    # -- Rule types this pipeline does not run
    Case("FileFreshness", 'FileFreshness "s3://amzn-s3-demo-bucket/artifacts/file/tickets/'
                          'tickets.parquet" > (now() - 24 hours)',
         refused="FileFreshness is an AWS Glue rule type this pipeline does not run"),
    Case("RowCountMatch", 'RowCountMatch "reference" >= 0.9',
         refused="RowCountMatch is an AWS Glue rule type this pipeline does not run"),
]


def _id(case: Case) -> str:
    return f"{case.page}: {case.text}"


def test_there_are_at_least_fifty_examples_from_named_pages():
    assert len(CASES) >= 50
    assert {case.page for case in CASES} <= set(PAGES)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_reference_example(case: Case):
    """Each example of the AWS page PAGES[case.page] (title, URL) as it fares here."""
    if case.refused is not None:
        with pytest.raises(ConfigurationError) as error:
            parse_rule(case.text)
        assert case.refused in str(error.value)
        assert str(error.value).endswith(f"rule: {case.text}")  # the message names the rule
        return
    rule = parse_rule(case.text)
    if case.composite_of:
        assert rule.is_composite and len(rule.children) == case.composite_of
        return
    assert rule.columns == case.columns or rule.rule_type in ("RowCount", "ColumnCount",
                                                              "CustomSql", "DetectAnomalies")
    assert (rule.condition.text if rule.condition else None) == case.condition
    assert rule.where == case.where
    for value, history, passed in case.decides:
        outcome = evaluate_threshold(rule, value, history)
        assert outcome.passed is passed, (value, history, outcome)


def test_a_ruleset_needs_a_rule():
    """Data Quality Definition Language (DQDL) reference
    (https://docs.aws.amazon.com/glue/latest/dg/dqdl.html): "The list should contain one or
    more comma-separated DQDL rules"; AWS's parser answers an empty list with "No rules or
    analyzers provided."."""
    ruleset = parse_ruleset('Rules = [ IsComplete "order-id", IsUnique "order-id" ]')
    assert [r.rule_type for r in ruleset.rules] == ["IsComplete", "IsUnique"]
    with pytest.raises(ConfigurationError, match="line 1: the Rules section is empty"):
        parse_ruleset("Rules = [ ]")
    with pytest.raises(ConfigurationError, match="the Rules section is empty"):
        parse_ruleset("# nothing yet\nRules = [\n  # RowCount > 0\n]")


@pytest.mark.parametrize(("text", "value", "history", "passed"), [
    # Nested functions: AWS's grammar nests function calls (awslabs/dqdl tests parse
    # "ColumnCount = avg(std(last(10)))"); an aggregate of one number is that number.
    ("RowCount > max(avg(last(10)))", 20.5, HIST, True),
    ("RowCount > max(avg(last(10)))", 20, HIST, False),
    ("ColumnCount = avg(std(last(10)))", 10, HIST, True),
    ("RowCount > max(avg(last(3)), 25)", 25.5, HIST, True),
    ("RowCount > max(avg(last(3)), 25)", 25, HIST, False),
    ("RowCount >= min(last(2), last(3))", 10, HIST, True),
    ("RowCount < sum(last(3))", 59, HIST, True),
    ("RowCount > abs(avg(last(3)) - 50)", 31, HIST, True),
    ("RowCount > abs(avg(last(3)) - 50)", 30, HIST, False),
    ("RowCount = index(last(3), 0)", 10, HIST, True),
    ("RowCount not between index(last(3), 0) and index(last(3), 1)", 10, HIST, True),
    ("RowCount not between index(last(3), 0) and index(last(3), 1)", 15, HIST, False),
])
def test_dynamic_functions(text, value, history, passed):
    """Data Quality Definition Language (DQDL) reference, "Dynamic rules"
    (https://docs.aws.amazon.com/glue/latest/dg/dqdl.html): last(k), avg, median, min, max,
    sum, std, abs and index(last(k), i) with i counted from 0 (the newest value)."""
    assert evaluate_threshold(parse_rule(text), value, history).passed is passed


@pytest.mark.parametrize(("text", "message"), [
    ("RowCount > last(3)", "last(k) is a list of earlier values"),
    ("RowCount > index(last(3), 3)", "index takes last(k) and a position from 0"),
    ("RowCount > index(last(3))", "index takes last(k) and a position from 0"),
    ("RowCount > abs(last(3))", "abs takes one number"),
    ("RowCount > std(5)", "std of a single number is undefined"),
    ("RowCount > average(last(10))", "unknown function 'average'"),
    ('ColumnValues "d" > now() - 3 days', "date arithmetic goes in parentheses"),
    ("RowCount > now()", "now() is a date"),
    ('ColumnValues "d" > (now() - 3 weeks)', "minutes, hours or days"),
    ('IsComplete "a" labels=["team"="a"]', "DQDL labels are not supported"),
    ('ColumnCorrelation "a" "b" > 0.8', "ColumnCorrelation is an AWS Glue rule type"),
    ('Entropy "a" > 1', "Entropy is an AWS Glue rule type"),
    ('SchemaMatch "ref" = 1.0', "SchemaMatch is an AWS Glue rule type"),
    ('ColumnValues "a" in $allowed', "DQDL variables ($name) are not supported"),
])
def test_refused_forms_name_the_rule(text, message):
    """Forms of the Data Quality Definition Language (DQDL) reference
    (https://docs.aws.amazon.com/glue/latest/dg/dqdl.html) this pipeline refuses, at parse
    time, with a message that names the rule; never evaluated differently from AWS."""
    with pytest.raises(ConfigurationError) as error:
        parse_rule(text)
    assert message in str(error.value)
    assert str(error.value).endswith(f"rule: {text}")


@pytest.mark.parametrize(("document", "message"), [
    ('Metadata = { "Version": "1.0" }\nRules = [ RowCount > 0 ]',
     "line 1: DQDL's Metadata section is not supported"),
    ('Rules = [ RowCount > 0 ]\nAnalyzers = [ RowCount ]',
     "line 2: DQDL's Analyzers section is not supported"),
    ('allowed = ["a", "b"]\nRules = [ RowCount > 0 ]', "DQDL variables are not supported"),
])
def test_refused_sections(document, message):
    """Sections of the Data Quality Definition Language (DQDL) reference
    (https://docs.aws.amazon.com/glue/latest/dg/dqdl.html) this pipeline does not run."""
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_ruleset(document)
