"""`make test` runs tests/unit, template, statemachine and spark in one pytest process, whose
default import mode takes a test module by its file name: two files of one name in different
layers stop the whole run at collection ("import file mismatch"), though each layer alone
passes. This holds it for every layer, whichever runs."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_name_is_unique_across_the_layers():
    where: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        where[path.name].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}
