"""State-machine layer fixtures: the real ASL in moto, scripted integrations."""

from __future__ import annotations

import pytest
from sm_harness import REGION, Harness


@pytest.fixture
def harness(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        h = Harness()
        yield h
        # Leak check: whatever the scenario, no cluster is left running.
        assert h.active_clusters() == [], "a cluster outlived its execution"

