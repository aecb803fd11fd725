"""An event ResolveRun ignores (a folder marker) ends the execution in Ignored: a success that
started no job, no load, no failure handling and no alert."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.statemachine


def test_an_ignored_event_ends_in_ignored_without_a_run(harness):
    harness.lambdas.set("ResolveRun", {
        "ignored": True, "duplicate": False, "bucket": "raw", "key": "online_retail/2010-12/",
        "reason": "s3://raw/online_retail/2010-12/ is a folder marker: nothing to run"})
    ex = harness.run()
    assert ex.status == "SUCCEEDED"
    entered = ex.states_entered()
    assert entered[-1] == "Ignored" and "DuplicateDelivery" not in entered
    assert harness.jobs.runs == []
    for state in ("HandleFailure", "StartLoad", "TrackCost", "RecordRun"):
        assert state not in harness.lambdas.calls, state
