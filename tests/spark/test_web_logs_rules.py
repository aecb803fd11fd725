"""The web_logs rules (datasets/web_logs.dqdl) calibrated on real days and on corruptions.

Runs the product's own quality engine (spark_jobs.common.quality) over the typed lines of
web_logs' parse, as the job measures them, and decides the history-dependent rule as the gate
does (pipeline_core.dqdl.evaluate_threshold) with the earlier days as the history. The real
days are /work/shared/data/apache-logs/apache_logs (elastic/examples, May 2015) split by the
server-local day of each line; the tests are skipped on a machine without that file. Two
representative days are measured unchanged here; every day: `make calibrate`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipeline_core.dqdl import evaluate_threshold, load_ruleset
from spark_jobs.common.quality import QualityEngine
from spark_jobs.web_logs import transforms as tr

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
RULES = load_ruleset(REPO / "datasets" / "web_logs.dqdl")
REAL_LOG = Path("/work/shared/data/apache-logs/apache_logs")
MONTHS = {m: i + 1 for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])}

UNIQUENESS = "Uniqueness "
DAY_END = 'ColumnValues "log_date" < now()'
DAY_START = 'ColumnValues "log_date" >= (now() - 1 days)'
NO_BODY = 'ColumnValues "response_bytes" in [NULL, 0]'
MAX_SIZE = 'ColumnValues "response_bytes" <= 107374182400'
ROW_COUNT = "RowCount > median(last(10))"
COMPLETE = ('Completeness "request_ts"', 'Completeness "client_ip"', 'Completeness "status"')
OUTAGE = 'ColumnValues "status" < 500'


def _real_days() -> dict[str, list[str]]:
    if not REAL_LOG.is_file():
        pytest.skip(f"{REAL_LOG} (the real log) is not on this machine")
    days: dict[str, list[str]] = defaultdict(list)
    for text in REAL_LOG.read_text(encoding="utf-8").splitlines():
        day, month, year = re.search(r"\[(\d\d)/(\w{3})/(\d{4}):", text).groups()
        days[f"{year}-{MONTHS[month]:02d}-{day}"].append(text)
    return dict(sorted(days.items()))


@pytest.fixture(scope="module")
def real_days() -> dict[str, list[str]]:
    days = _real_days()
    assert {d: len(v) for d, v in days.items()} == {
        "2015-05-17": 1632, "2015-05-18": 2893, "2015-05-19": 2896, "2015-05-20": 2579}
    return days


def judge(spark, lines: list[str], partition: str, history: list[float] | None = None
          ) -> tuple[dict[str, str], int, int]:
    """(each rule's text -> pass/fail, rows the job refuses, other rows row-level rules refuse)
    for a day's lines run as `partition`; `history`: earlier RowCounts, newest first."""
    frame = spark.createDataFrame([(t, i + 1) for i, t in enumerate(lines)],
                                  "value string, _line long")
    typed = tr.parse(frame)
    end = dt.datetime.combine(dt.date.fromisoformat(partition) + dt.timedelta(days=1),
                              dt.time(), dt.UTC)
    engine = QualityEngine(RULES, end)
    report, extra = engine.measure(typed.select(*tr.TYPED_COLUMNS, "_reason"), {
        "job_refused": F.count_if(F.col("_reason").isNotNull())})
    # Lines the job accepts and a row-level rule refuses.
    rule_refused = typed.where(F.col("_reason").isNull()
                               & engine.rejection_reason().isNotNull()).count()
    outcomes = {}
    for result in report.results:
        outcome = result.outcome
        if outcome == "deferred":
            outcome = "pass" if evaluate_threshold(result.rule, result.metric,
                                                   history).passed else "fail"
        outcomes[result.rule.text] = outcome
    return outcomes, extra["job_refused"], rule_refused


def failed(outcomes: dict[str, str], severity: str = "error") -> set[str]:
    texts = {r.text for r in RULES.rules if r.severity == severity}
    return {t for t, o in outcomes.items() if o == "fail" and t in texts}


def named(outcomes: dict[str, str], start: str) -> str:
    [text] = [t for t in outcomes if t.startswith(start)]
    return text


def test_representative_real_days_pass_every_rule(spark, real_days):
    """2015-05-17 (the log starts at 10:05: a short first day) and 2015-05-20 (its Googlebot
    line with no closing quote is the one line the job refuses; no legitimate line fails a
    row-level rule), each with the earlier days' counts as the history. Every real day:
    `make calibrate` (bench/calibrate_rules.py --dataset web_logs)."""
    days = list(real_days)
    for day in ("2015-05-17", "2015-05-20"):
        history = [float(len(real_days[d])) for d in reversed(days[:days.index(day)])]
        outcomes, job_refused, rule_refused = judge(spark, real_days[day], day, history)
        assert failed(outcomes) == set(), day
        assert failed(outcomes, "warn") == set(), day
        assert (job_refused, rule_refused) == ((1, 0) if day == "2015-05-20" else (0, 0)), day


def test_a_doubled_file_fails_uniqueness(spark, real_days):
    outcomes, _, _ = judge(spark, real_days["2015-05-18"] * 2, "2015-05-18")
    assert failed(outcomes) == {named(outcomes, UNIQUENESS)}


def test_a_file_of_another_day_fails_the_day_rules(spark, real_days):
    for content, partition in (("2015-05-18", "2015-05-17"), ("2015-05-18", "2015-05-19")):
        outcomes, _, refused = judge(spark, real_days[content], partition)
        expected = DAY_END if content > partition else DAY_START
        assert failed(outcomes) == {named(outcomes, expected)}
        assert refused == len(real_days[content])


def test_a_few_lines_of_the_next_day_are_tolerated_and_refused(spark, real_days):
    day = real_days["2015-05-19"]
    outcomes, _, refused = judge(spark, day + real_days["2015-05-20"][:20], "2015-05-19")
    assert failed(outcomes) == set() and refused == 20


@pytest.mark.parametrize("name, change", [
    # Apache's vhost_combined format: the virtual host before the client.
    ("virtual host added", lambda t: "semicomplete.com:80 " + t),
    # %D (microseconds) appended: the combined format no longer ends the line.
    ("response time appended", lambda t: t + " 1532"),
    # The identity column lost: every field after the client shifts left.
    ("column shifted", lambda t: t.replace(" - - [", " - [", 1)),
    # Status and size swapped by a LogFormat change.
    ("status and size swapped",
     lambda t: re.sub(r'" (\d{3}) (\S+) "', lambda m: f'" {m[2]} {m[1]} "', t, count=1)),
    # Anonymised clients ("x.x.x.x").
    ("clients masked", lambda t: re.sub(r"^\S+", "x.x.x.x", t)),
    # An error log delivered under the access log's name.
    ("error log", lambda t: "[Sun May 17 10:05:03.123 2015] [core:error] [pid 1] " + t[:40]),
])
def test_format_changes_fail_completeness(spark, real_days, name, change):
    outcomes, job_refused, _ = judge(spark, [change(t) for t in real_days["2015-05-17"]],
                                     "2015-05-17")
    assert failed(outcomes) & {named(outcomes, c) for c in COMPLETE}, name
    # Swapped fields still parse where a 3-digit size passes for a status: most lines do not.
    assert job_refused > 0.9 * 1632, name


def test_a_tampered_not_modified_size_is_caught_and_refused(spark, real_days):
    lines = list(real_days["2015-05-19"])
    index = next(i for i, t in enumerate(lines) if '" 304 - "' in t)
    lines[index] = lines[index].replace('" 304 - "', '" 304 48213 "')
    outcomes, _, refused = judge(spark, lines, "2015-05-19")
    assert failed(outcomes) == {named(outcomes, NO_BODY)} and refused == 1


def test_a_size_with_appended_digits_is_caught_and_refused(spark, real_days):
    lines = list(real_days["2015-05-19"])
    index = next(i for i, t in enumerate(lines) if '" 200 203023 "' in t)
    lines[index] = lines[index].replace('" 200 203023 "', '" 200 203023000000 "')
    outcomes, _, refused = judge(spark, lines, "2015-05-19")
    assert failed(outcomes) == {named(outcomes, MAX_SIZE)} and refused == 1


def test_a_truncated_file_fails_against_its_history(spark, real_days):
    """Cut inside a line after a fifth of the day: the partial line is refused by the job,
    the row count falls under a quarter of the earlier days' median."""
    text = "\n".join(real_days["2015-05-20"])
    cut = text[: len(text) // 5 + 60].splitlines()
    assert cut[-1] not in real_days["2015-05-20"]  # cut inside a line
    outcomes, job_refused, _ = judge(spark, cut, "2015-05-20", [2896.0, 2893.0, 1632.0])
    assert failed(outcomes) == {named(outcomes, ROW_COUNT)}
    assert job_refused == 1


def test_an_outage_warns_without_blocking(spark, real_days):
    lines = [re.sub(r'" 200 ', '" 503 ', t, count=1) if i % 8 == 0 else t
             for i, t in enumerate(real_days["2015-05-18"])]
    outcomes, _, refused = judge(spark, lines, "2015-05-18")
    assert failed(outcomes) == set() and refused == 0
    assert failed(outcomes, "warn") == {named(outcomes, OUTAGE)}
