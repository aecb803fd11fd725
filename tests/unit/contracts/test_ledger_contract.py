"""The run ledger's contract: FakeLedger and RunLedger (moto, the table from template.yaml)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from pipeline_aws.ledger import LedgerPort, RunLedger
from pipeline_core.errors import InvalidInput
from tests.support.aws import create_ledger_table
from tests.support.fakes.ledger import FakeLedger
from tests.unit.contracts.conftest import NOW, SIDES, fake_or_real, resource

ARN = "arn:aws:states:eu-west-1:123456789012:execution:emr-pipelines-dev-pipeline:e-1"
OTHER_ARN = ARN.replace("e-1", "e-2")
STAMP = "2026-11-21T12:00:00Z"


@pytest.fixture(params=SIDES)
def ledger(request: pytest.FixtureRequest) -> LedgerPort:
    return fake_or_real(request, lambda: FakeLedger(clock=lambda: NOW), lambda: RunLedger(
        create_ledger_table(resource("dynamodb")), clock=lambda: NOW))


def run(run_id: str = "r-1", **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "dataset": "online_retail", "partition": "2011-12-01",
            "status": "RUNNING", "started_at": "2026-11-21T10:00:00Z", "attempt": 1,
            "execution_arn": ARN, **extra}


# -- creating ---------------------------------------------------------------------------------


def test_create_is_conditional_and_stamps_updated_at(ledger: LedgerPort) -> None:
    assert ledger.create_run(run()) is True
    assert ledger.create_run(run(status="FAILED")) is False
    item = ledger.get("r-1")
    assert item is not None
    assert item["status"] == "RUNNING"
    assert item["updated_at"] == STAMP


def test_numbers_come_back_as_dynamodb_returns_them(ledger: LedgerPort) -> None:
    ledger.create_run(run(lines={"in": 3108, "out": 3080}, metric=0.74, whole=2.0,
                          exact=Decimal("0.1"), values=[1, 1.5], flag=True, none=None))
    item = ledger.get("r-1")
    assert item is not None
    assert item["lines"] == {"in": 3108, "out": 3080}
    assert item["metric"] == 0.74 and isinstance(item["metric"], float)
    assert item["whole"] == 2 and isinstance(item["whole"], int)
    assert item["exact"] == 0.1
    assert item["values"] == [1, 1.5]
    assert item["flag"] is True and item["none"] is None
    assert item["attempt"] == 1 and isinstance(item["attempt"], int)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"nested": [float("-inf")]}])
def test_nan_and_infinity_are_refused_and_nothing_is_written(ledger: LedgerPort,
                                                             bad: Any) -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        ledger.create_run(run(metric=bad))
    assert ledger.get("r-1") is None
    ledger.create_run(run())
    with pytest.raises(ValueError):
        ledger.update("r-1", {"metric": bad})
    item = ledger.get("r-1")
    assert item is not None and "metric" not in item


def test_claim_attempt_is_a_compare_and_set(ledger: LedgerPort) -> None:
    ledger.create_run(run("base"))
    assert ledger.claim_attempt("base", 1, 2, "base-r2") is True
    assert ledger.claim_attempt("base", 1, 3, "base-r3") is False  # another re-run won
    assert ledger.claim_attempt("base", 2, 3, "base-r3") is True
    assert ledger.claim_attempt("missing", 1, 2, "missing-r2") is False
    item = ledger.get("base")
    assert item is not None
    assert (item["latest_attempt"], item["latest_run_id"]) == (3, "base-r3")


def test_get_of_an_unknown_run_is_none(ledger: LedgerPort) -> None:
    assert ledger.get("nope") is None


# -- querying ---------------------------------------------------------------------------------


def _history(ledger: LedgerPort) -> None:
    for day, status in [(1, "SUCCEEDED"), (2, "FAILED"), (3, "SUCCEEDED"), (4, "RUNNING")]:
        ledger.create_run(run(f"or-{day}", status=status, started_at=f"2026-11-0{day}T10:00:00Z"))
    ledger.create_run(run("wx-1", dataset="weather", started_at="2026-11-05T10:00:00Z"))


def test_query_is_newest_first_with_since_status_and_limit(ledger: LedgerPort) -> None:
    _history(ledger)
    ids = [r["run_id"] for r in ledger.query_by_dataset("online_retail")]
    assert ids == ["or-4", "or-3", "or-2", "or-1"]
    since = ledger.query_by_dataset("online_retail", since="2026-11-02T10:00:00Z")
    assert [r["run_id"] for r in since] == ["or-4", "or-3", "or-2"]
    assert [r["run_id"] for r in ledger.query_by_dataset("online_retail", since="2026-11-03")] \
        == ["or-4", "or-3"]
    ok = ledger.query_by_dataset("online_retail", status="SUCCEEDED")
    assert [r["run_id"] for r in ok] == ["or-3", "or-1"]
    # the status filter applies to attributes the projection leaves out (the gate's history)
    assert ledger.query_by_dataset("online_retail", status="SUCCEEDED", fields=("run_id",)) \
        == [{"run_id": "or-3"}, {"run_id": "or-1"}]
    assert [r["run_id"] for r in ledger.query_by_dataset("online_retail", limit=2)] \
        == ["or-4", "or-3"]
    assert ledger.query_by_dataset("online_retail", limit=0) == []
    assert ledger.query_by_dataset("unknown") == []


def test_query_reads_past_pages_of_other_statuses(ledger: LedgerPort) -> None:
    ledger.create_run(run("old-ok", status="SUCCEEDED", started_at="2026-10-01T00:00:00Z"))
    for i in range(30):
        ledger.create_run(run(f"f-{i:02d}", status="FAILED",
                              started_at=f"2026-11-01T00:{i:02d}:00Z"))
    found = ledger.query_by_dataset("online_retail", limit=1, status="SUCCEEDED")
    assert [r["run_id"] for r in found] == ["old-ok"]


def test_query_fields_reads_only_those_attributes(ledger: LedgerPort) -> None:
    _history(ledger)
    rows = ledger.query_by_dataset("online_retail", limit=1, fields=("run_id", "status", "cost"))
    assert rows == [{"run_id": "or-4", "status": "RUNNING"}]


def test_an_unknown_status_is_invalid_input(ledger: LedgerPort) -> None:
    with pytest.raises(InvalidInput, match="DONE"):
        ledger.query_by_dataset("online_retail", status="DONE")


def test_month_cost_sums_the_dataset_since_a_date_without_the_run_itself(
        ledger: LedgerPort) -> None:
    for run_id, started, usd in [("a", "2026-11-02T10:00:00Z", 30.0),
                                 ("b", "2026-11-12T10:00:00Z", 19.95),
                                 ("c", "2026-10-30T10:00:00Z", 40.0),
                                 ("self", "2026-11-21T10:00:00Z", 5.0)]:
        ledger.create_run(run(run_id, started_at=started, cost={"total_usd": usd}))
    ledger.create_run(run("no-cost", started_at="2026-11-03T10:00:00Z"))
    ledger.create_run(run("other", dataset="weather", cost={"total_usd": 7.0}))
    assert ledger.month_cost("online_retail", "2026-11-01T00:00:00Z", "self") == 49.95
    assert ledger.month_cost("weather", "2026-11-01T00:00:00Z", "self") == 7.0
    assert ledger.month_cost("nothing", "2026-11-01T00:00:00Z", "self") == 0.0


# -- later writers ----------------------------------------------------------------------------


def test_update_sets_attributes_of_an_existing_run_only(ledger: LedgerPort) -> None:
    ledger.create_run(run())
    ledger.update("r-1", {"status": "SUCCEEDED", "rows_loaded": {"sales": 3080}})
    item = ledger.get("r-1")
    assert item is not None
    assert item["status"] == "SUCCEEDED" and item["rows_loaded"] == {"sales": 3080}
    assert item["dataset"] == "online_retail" and item["updated_at"] == STAMP
    with pytest.raises(InvalidInput, match="not in the ledger"):
        ledger.update("missing", {"status": "SUCCEEDED"})
    assert ledger.get("missing") is None
    with pytest.raises(ValueError, match="key"):
        ledger.update("r-1", {"run_id": "other"})
    ledger.update("missing", {})  # nothing to write: no error


def test_mark_failed_creates_a_run_that_never_got_an_item(ledger: LedgerPort) -> None:
    ledger.mark_failed("exec-1", {"state": "ResolveRun", "error": "InvalidInput", "cause": "x"},
                       defaults={"partition": "2011-12-01", "execution_arn": ARN,
                                 "trigger": None})
    item = ledger.get("exec-1")
    assert item is not None
    assert item["status"] == "FAILED" and item["failure"]["state"] == "ResolveRun"
    assert item["dataset"] == "unknown" and item["started_at"] == STAMP
    assert item["ended_at"] == STAMP and item["partition"] == "2011-12-01"
    assert "trigger" not in item
    assert [r["run_id"] for r in ledger.query_by_dataset("unknown")] == ["exec-1"]


def test_mark_failed_keeps_what_the_run_has_and_sets_the_outcome(ledger: LedgerPort) -> None:
    ledger.create_run(run())
    ledger.mark_failed("r-1", {"state": "Load", "error": "TransientError"}, status="TIMED_OUT",
                       cleanup=[{"action": "cancel_statement", "id": "s-1"}],
                       defaults={"dataset": "other", "partition": "2099-01-01"})
    item = ledger.get("r-1")
    assert item is not None
    assert item["status"] == "TIMED_OUT" and item["failure"]["state"] == "Load"
    assert item["cleanup"] == [{"action": "cancel_statement", "id": "s-1"}]
    assert item["dataset"] == "online_retail" and item["partition"] == "2011-12-01"
    with pytest.raises(ValueError, match="status"):
        ledger.mark_failed("r-1", {}, status="SUCCEEDED")


def test_close_run_changes_only_a_running_item_of_this_execution(ledger: LedgerPort) -> None:
    ledger.create_run(run())
    ledger.create_run(run("other", execution_arn=OTHER_ARN))
    assert ledger.close_run("other", ARN, "ABORTED", ended_at="2026-11-21T10:13:12Z") is False
    assert ledger.close_run("missing", ARN, "ABORTED", ended_at=STAMP) is False
    assert ledger.close_run("r-1", ARN, "ABORTED", ended_at="2026-11-21T10:13:12Z",
                            error="StopExecution", cause="operator") is True
    assert ledger.close_run("r-1", ARN, "TIMED_OUT", ended_at=STAMP) is False  # already ended
    item = ledger.get("r-1")
    assert item is not None
    assert item["status"] == "ABORTED" and item["ended_at"] == "2026-11-21T10:13:12Z"
    assert item["failure"] == {"state": "(execution)", "error": "StopExecution",
                               "cause": "operator"}
    other = ledger.get("other")
    assert other is not None and other["status"] == "RUNNING"
    assert ledger.get("missing") is None


def test_close_run_keeps_a_failure_already_recorded(ledger: LedgerPort) -> None:
    ledger.create_run(run(failure={"state": "RunClusterStep", "error": "X", "cause": "y"}))
    assert ledger.close_run("r-1", ARN, "TIMED_OUT", ended_at=STAMP, error="States.Timeout")
    item = ledger.get("r-1")
    assert item is not None
    assert item["status"] == "TIMED_OUT" and item["failure"]["state"] == "RunClusterStep"
    ledger.create_run(run("r-2"))
    assert ledger.close_run("r-2", ARN, "FAILED", ended_at=STAMP)
    second = ledger.get("r-2")
    assert second is not None and "failure" not in second


def test_append_cleanup_appends_on_the_item_of_this_execution(ledger: LedgerPort) -> None:
    ledger.create_run(run(status="FAILED"))
    first = [{"action": "terminate_cluster", "id": "j-1", "result": "terminated"}]
    second = [{"action": "cancel_job_run", "id": "r", "result": "cancelled", "attempt": 2}]
    assert ledger.append_cleanup("r-1", ARN, first) is True
    assert ledger.append_cleanup("r-1", ARN, second) is True
    assert ledger.append_cleanup("r-1", OTHER_ARN, first) is False
    assert ledger.append_cleanup("missing", ARN, first) is False
    item = ledger.get("r-1")
    assert item is not None
    assert item["cleanup"] == first + second and item["status"] == "FAILED"
    assert ledger.get("missing") is None


def test_record_cost_writes_cost_and_keeps_an_earlier_end(ledger: LedgerPort) -> None:
    ledger.create_run(run(ended_at="2026-11-21T10:07:59Z"))
    cost = {"total_usd": 0.0712, "components": {"serverless": {"usd": 0.07, "priced": True}}}
    ledger.record_cost("r-1", cost, {"WaitForLoad": 6.0, "Load": 0.25}, ended_at=STAMP,
                       execution_arn=OTHER_ARN)
    item = ledger.get("r-1")
    assert item is not None
    assert item["cost"] == cost and item["state_durations"] == {"WaitForLoad": 6, "Load": 0.25}
    assert item["ended_at"] == "2026-11-21T10:07:59Z" and item["execution_arn"] == ARN
    assert item["updated_at"] == STAMP


def test_record_cost_of_a_run_without_an_item_creates_one_outside_the_index(
        ledger: LedgerPort) -> None:
    ledger.record_cost("exec-9", {"total_usd": 0.001}, {}, ended_at=STAMP, execution_arn=ARN)
    item = ledger.get("exec-9")
    assert item is not None
    assert item["cost"] == {"total_usd": 0.001} and item["execution_arn"] == ARN
    assert item["ended_at"] == STAMP
    assert ledger.query_by_dataset("online_retail") == []


# -- what a backfill asks: which partitions are loaded, from which object version ------------


def test_loaded_versions_are_those_of_each_partitions_newest_succeeded_run(
        ledger: LedgerPort) -> None:
    def day(run_id: str, partition: str, status: str, started: str,
            version: str | None) -> dict[str, Any]:
        inp = {"bucket": "raw", "key": f"online_retail/{partition}.csv", "etag": "e",
               "size": 1, **({"version_id": version} if version else {})}
        return run(run_id, partition=partition, status=status, started_at=started, input=inp,
                   batch_id="b1")

    for item in (
        day("a1", "2011-01-04", "SUCCEEDED", "2026-11-20T10:00:00Z", "v1"),
        day("a2", "2011-01-04", "SUCCEEDED", "2026-11-21T10:00:00Z", "v2"),  # re-loaded
        day("a3", "2011-01-04", "FAILED", "2026-11-22T10:00:00Z", "v3"),  # not loaded
        day("b1", "2011-01-05", "RUNNING", "2026-11-21T10:00:00Z", "v1"),
        day("c1", "2011-01-06", "SUCCEEDED", "2026-11-21T10:00:00Z", None),  # unversioned
        day("d1", "2011-01-07", "SUCCEEDED", "2026-11-21T10:00:00Z", "v9"),
        run("batch-1", partition="2011-01-04..2011-01-07", status="SUCCEEDED"),  # no input
    ):
        assert ledger.create_run(item)
    assert ledger.loaded_versions(
        "online_retail", ["2011-01-04", "2011-01-05", "2011-01-06", "2011-01-08"]) == {
        "2011-01-04": "v2", "2011-01-06": None}
    assert ledger.loaded_versions("web_logs", ["2011-01-04"]) == {}
    assert ledger.loaded_versions("online_retail", []) == {}


# -- what a derived run reads: each partition's newest loaded run and its folders -------------


def test_loaded_runs_are_each_partition_s_newest_succeeded_run_in_the_range(
        ledger: LedgerPort) -> None:
    def day(run_id: str, partition: str, status: str, started: str) -> dict[str, Any]:
        return run(run_id, partition=partition, status=status, started_at=started,
                   outputs={"sales_line_items": f"s3://c/{partition}/{run_id}/"})

    for item in (
        day("a1", "2011-01-04", "SUCCEEDED", "2026-11-20T10:00:00Z"),
        day("a2", "2011-01-04", "SUCCEEDED", "2026-11-21T10:00:00Z"),  # re-loaded
        day("a3", "2011-01-04", "FAILED", "2026-11-22T10:00:00Z"),  # not loaded
        day("b1", "2011-01-05", "RUNNING", "2026-11-21T10:00:00Z"),
        day("c1", "2011-01-03", "SUCCEEDED", "2026-11-21T10:00:00Z"),  # before the range
        day("d1", "2011-01-07", "SUCCEEDED", "2026-11-21T10:00:00Z"),
        day("e1", "2011-01-08", "SUCCEEDED", "2026-11-21T10:00:00Z"),  # after it
        run("batch-1", partition="2011-01-04..2011-01-07", status="SUCCEEDED"),  # no outputs
    ):
        assert ledger.create_run(item)
    found = ledger.loaded_runs("online_retail", "2011-01-04", "2011-01-07")
    assert {p: (i["run_id"], i["outputs"]["sales_line_items"]) for p, i in found.items()} == {
        "2011-01-04": ("a2", "s3://c/2011-01-04/a2/"),
        "2011-01-07": ("d1", "s3://c/2011-01-07/d1/")}
    assert list(ledger.loaded_runs("online_retail", None, "2011-01-04")) == [
        "2011-01-03", "2011-01-04"]
    assert ledger.loaded_runs("web_logs", None, "2011-12-31") == {}
