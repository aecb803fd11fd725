"""pipeline_core.key_pattern: the file suffixes a catalog key pattern allows, which the raw
bucket's EventBridge rule routes as `<prefix>*<suffix>`. The suffixes must be exactly the keys
Python's `re` accepts after the partition: checked against `re` itself on every suffix and on
generated keys."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline_core.errors import ConfigurationError
from pipeline_core.key_pattern import MAX_SUFFIXES, key_suffixes

DAY = r"(?P<partition>\d{4}-\d{2}-\d{2})"


@pytest.mark.parametrize(("tail", "suffixes"), [
    (r"\.csv(?:\.gz)?$", (".csv", ".csv.gz")),
    (r"\.log(?:\.gz)?\Z", (".log", ".log.gz")),
    (r"\.jsonl", (".jsonl",)),
    (r"(?:\.json|\.jsonl)(?:\.gz)?$", (".json", ".json.gz", ".jsonl", ".jsonl.gz")),
    (r"\.tar(?:\.(?:gz|bz2))?$", (".tar", ".tar.bz2", ".tar.gz")),
    (r"_part\-1\.csv$", ("_part-1.csv",)),
    (r"\.csv\$", (".csv$",)),  # an escaped $ is a character of the key
])
def test_the_suffixes_are_enumerated(tail: str, suffixes: tuple[str, ...]) -> None:
    pattern = f"^shop/{DAY}{tail}"
    assert key_suffixes(pattern, "shop/") == suffixes
    for suffix in suffixes:
        assert re.fullmatch(pattern, f"shop/2019-10-01{suffix}"), suffix


@pytest.mark.parametrize(("pattern", "message"), [
    (rf"^shop/{DAY}\.csv.*$", r"the regex operator '\.'"),
    (rf"^shop/{DAY}\.[ct]sv$", r"the regex operator '\['"),
    (rf"^shop/{DAY}\.c+sv$", r"the regex operator '\+'"),
    (rf"^shop/{DAY}\.csv{{1,2}}$", r"the regex operator '\{'"),
    (rf"^shop/{DAY}\.\w+$", r"the escape \\w"),
    (rf"^shop/{DAY}(\.csv)$", r"the regex operator '\('"),
    (rf"^shop/{DAY}\.csv|\.tsv$", "a '|' outside a group"),
    (rf"^shop/{DAY}\.csv)$", r"an unmatched '\)'"),
    (rf"^shop/{DAY}(?:\.csv$", "an unclosed group"),
    (rf"^shop/{DAY}$", "every key needs a file suffix"),
    (rf"^shop/{DAY}(?:\.gz)?$", "every key needs a file suffix"),
    (rf"^shop/{DAY}(?:a|b)(?:c|d)(?:e|f)(?:g|h)(?:i|j)$", f"more than {MAX_SUFFIXES} suffixes"),
    (rf"shop/{DAY}\.csv$", r"must start with \^"),
    (rf"^.*/{DAY}\.csv$", "before the partition group write only"),
    (rf"^shop/daily/{DAY}\.csv$", "the pattern puts 'shop/daily/' before it"),
    (rf"^(?:shop/)?{DAY}\.csv$", "before the partition group write only"),
    (r"^shop/(?P<day>\d{4}-\d{2}-\d{2})\.csv$", r"needs a \(\?P<partition>\.\.\.\) group"),
])
def test_a_pattern_that_cannot_be_routed_is_refused(pattern: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        key_suffixes(pattern, "shop/")


_TAILS = [r"\.csv(?:\.gz)?$", r"(?:\.json|\.jsonl)(?:\.gz)?$", r"\.tar(?:\.(?:gz|bz2))?$"]


@given(tail=st.sampled_from(_TAILS),
       rest=st.text(alphabet=".csvjonlgztarbz2$", max_size=10))
def test_re_accepts_a_day_key_exactly_when_its_rest_is_a_suffix(tail: str, rest: str) -> None:
    """Whatever follows the partition, the compiled pattern and the enumerated suffixes agree."""
    pattern = f"^shop/{DAY}{tail}"
    accepted = re.fullmatch(pattern, f"shop/2019-10-01{rest}") is not None
    assert accepted == (rest in key_suffixes(pattern, "shop/"))
