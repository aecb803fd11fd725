"""Smoke test of the moto 5.2.5 private APIs the local runtime hooks into."""

import importlib

import pytest

from local_runtime.sfn_hooks import HOOK_POINTS


@pytest.mark.e2e
@pytest.mark.parametrize("dotted", HOOK_POINTS)
def test_hook_point_exists(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return
    pytest.fail(f"{dotted} not found")


@pytest.mark.e2e
def test_moto_version_is_pinned():
    import moto

    assert moto.__version__ == "5.2.5"
