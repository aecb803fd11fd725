"""RunRecorder (pipeline_aws.record) on FakeLedger: what a finished load writes to the run's
ledger item. The events/record_run files run through the handler in tests/unit/functions."""

from __future__ import annotations

import pytest

from pipeline_aws.contracts import RecordRunRequest
from pipeline_aws.record import RunRecorder
from pipeline_core.errors import InvalidInput
from tests.support.aws import read_event
from tests.support.fakes.ledger import FakeLedger
from tests.unit.run.conftest import NOW
from tests.unit.run.support import register


@pytest.fixture
def recorder(ledger: FakeLedger) -> RunRecorder:
    return RunRecorder(ledger, clock=lambda: NOW)


@pytest.mark.parametrize("name", ["serverless_finished.json", "cluster_finished.json"])
def test_record_run_marks_succeeded(ledger, recorder, name) -> None:
    event = read_event("record_run", name)
    run_id = register(ledger, event)
    result = recorder.record(RecordRunRequest.parse(event))
    assert result == {"status": "SUCCEEDED",
                      "rows_loaded": {"sales_line_items": 3071, "customer_daily_sales": 98}}
    item = ledger.get(run_id)
    assert item is not None
    assert item["status"] == "SUCCEEDED" and item["ended_at"] == "2026-11-21T10:00:00Z"
    assert item["rows_loaded"] == result["rows_loaded"]
    assert item["quality_verdict"] == "pass"
    assert item["lines"] == {"in": 3108, "out": 3071, "quarantined": 11, "duplicates": 26}
    assert item["load_statement_id"] == event["state"]["load"]["statement_id"]
    if "cluster" in event["state"]:
        assert item["cluster_id"] == "j-2AXXXXXXGAPLF" and "job_run_id" not in item
    else:
        assert item["job_run_id"] == "00fo2a8d6e1c2b09"


def test_record_run_refuses_an_unfinished_or_short_status(ledger, recorder) -> None:
    event = read_event("record_run", "serverless_finished.json")
    run_id = register(ledger, event)
    event["state"]["load_status"]["Status"] = "STARTED"
    with pytest.raises(InvalidInput, match="is STARTED, not FINISHED"):
        recorder.record(RecordRunRequest.parse(event))
    event = read_event("record_run", "serverless_finished.json")
    event["state"]["load_status"]["SubStatements"] = event["state"]["load_status"][
        "SubStatements"][:9]
    with pytest.raises(InvalidInput, match="has 9 sub-statements; table customer_daily_sales"):
        recorder.record(RecordRunRequest.parse(event))
    event = read_event("record_run", "serverless_finished.json")
    event["state"]["load_status"]["SubStatements"][8]["ResultRows"] = -1
    with pytest.raises(InvalidInput, match=r"sub-statement 8 \(INSERT into sales_line_items\)"):
        recorder.record(RecordRunRequest.parse(event))
    assert ledger.get(run_id)["status"] == "RUNNING"  # nothing recorded


def test_record_run_for_an_unknown_run(recorder) -> None:
    with pytest.raises(InvalidInput, match="is not in the ledger"):
        recorder.record(RecordRunRequest.parse(read_event("record_run",
                                                          "serverless_finished.json")))


def test_a_load_without_migrations_applied_is_recorded(ledger, recorder) -> None:
    event = read_event("record_run", "serverless_finished.json")
    register(ledger, event)
    del event["state"]["load"]["migrations_applied"]  # optional: older states lack it
    assert recorder.record(RecordRunRequest.parse(event))["status"] == "SUCCEEDED"


def test_a_state_without_the_load_is_refused_naming_it() -> None:
    event = read_event("record_run", "serverless_finished.json")
    del event["state"]["load"]
    with pytest.raises(InvalidInput, match=r"RecordRun input: state\.load: Field required"):
        RecordRunRequest.parse(event)
