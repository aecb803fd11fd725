"""Smoke test of the moto 5.2.5 private APIs the local runtime hooks into."""

import pytest

from local_runtime.sfn_hooks import HOOK_POINTS, current


@pytest.mark.e2e
@pytest.mark.parametrize("dotted", HOOK_POINTS)
def test_hook_point_exists(dotted):
    # the lookup patch() uses: import the longest module prefix, then read the attributes;
    # it raises ImportError or AttributeError when moto moved or renamed the hook point
    current(dotted)


@pytest.mark.e2e
def test_moto_version_is_pinned():
    import moto

    assert moto.__version__ == "5.2.5"
