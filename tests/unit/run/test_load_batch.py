"""The load of a batch: one transaction replacing exactly the partitions that passed the gate,
with one COPY per table (the Data API's BatchExecuteStatement takes at most 40 statements,
"BatchExecuteStatement", Amazon Redshift Data API Reference,
https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_BatchExecuteStatement.html),
and RecordRun recording each partition."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeline_aws.contracts import LoadStatementRequest, RecordRunRequest
from pipeline_aws.load import LoadStatement
from pipeline_aws.record import RunRecorder
from pipeline_core.catalog import TableLoad, load_catalog
from pipeline_core.errors import InvalidInput
from pipeline_core.load_sql import build_load_batch, load_migrations
from tests.support.aws import REPO, read_event
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.redshift_data import FakeRedshiftData
from tests.unit.run.conftest import NOW
from tests.unit.run.support import RUN_ENV

ROLE = RUN_ENV["REDSHIFT_COPY_ROLE_ARN"]
BATCH = "online_retail-batch-0123456789ab"
CURATED = "s3://emr-pipelines-dev-curated/online_retail"
DAYS = ("2011-01-04", "2011-01-05", "2011-01-06")
TABLES = (TableLoad("sales_line_items", replace_by=("order_date",)),
          TableLoad("customer_daily_sales", replace_by=("order_date",)))


def out(table: str, day: str, batch: str = BATCH) -> str:
    return f"{CURATED}/{table}/batch={batch}/partition={day}/"


@pytest.mark.parametrize("run_level", ["", "run_id=r/"],
                         ids=["batch-layout", "earlier-layout-with-run-level"])
def test_one_copy_per_table_replaces_exactly_the_batchs_partitions(run_level: str) -> None:
    batch = build_load_batch(
        schema="analytics", tables=TABLES, copy_role_arn=ROLE, pending=[], run_id=BATCH,
        applied_at="2026-11-21T10:00:00Z", partitions=list(DAYS),
        outputs={t.name: [out(t.name, d) + run_level for d in DAYS] for t in TABLES})
    assert len(batch.sqls) == 10  # as many as a run of one partition
    days = "('2011-01-04', '2011-01-05', '2011-01-06')"
    assert batch.sqls[2] == (f"COPY stage_sales_line_items FROM '{CURATED}/sales_line_items/"
                             f"batch={BATCH}/partition=' IAM_ROLE '{ROLE}' FORMAT AS PARQUET")
    assert batch.sqls[3] == f"DELETE FROM analytics.sales_line_items WHERE order_date IN {days}"
    assert batch.sqls[4] == ("INSERT INTO analytics.sales_line_items SELECT * FROM "
                             f"stage_sales_line_items WHERE order_date IN {days}")
    assert batch.insert_index == {"sales_line_items": 4, "customer_daily_sales": 9}


@pytest.mark.parametrize("outputs", [
    [out("sales_line_items", DAYS[0]), out("sales_line_items", DAYS[1], "other")],
    [out("sales_line_items", DAYS[0]),
     f"{CURATED}/sales_line_items/partition={DAYS[1]}/run_id=r/"],
    [out("sales_line_items", DAYS[0]), out("sales_line_items", DAYS[1]) + "nested/"],
])
def test_outputs_of_several_partitions_must_share_one_batch_prefix(outputs: list[str]) -> None:
    with pytest.raises(InvalidInput, match="one batch=<id>/ prefix"):
        build_load_batch(schema="analytics", tables=TABLES[:1], copy_role_arn=ROLE,
                         pending=[], run_id=BATCH, applied_at="2026-11-21T10:00:00Z",
                         partitions=list(DAYS[:2]), outputs={"sales_line_items": outputs})


def test_a_full_refresh_table_loads_the_newest_snapshot_of_a_batch_only() -> None:
    """Each snapshot's output is the whole table: a batch of several loads the newest one,
    whatever the order it lists them in, guarded like a single snapshot's load."""
    stores = TableLoad("stores", mode="full_refresh", snapshot_column="snapshot_date")
    days = [DAYS[1], DAYS[-1], DAYS[0]]
    batch = build_load_batch(schema="analytics", tables=[stores], copy_role_arn=ROLE,
                             pending=[], run_id=BATCH, applied_at="2026-11-21T10:00:00Z",
                             partitions=days,
                             outputs={"stores": [out("stores", d) for d in days]})
    newest = max(DAYS)
    assert f"FROM '{out('stores', newest)}part-'" in batch.sqls[2]
    assert batch.sqls[3] == (f"SELECT snapshot_date FROM analytics.stores WHERE snapshot_date > "
                             f"'{newest}' LIMIT 1")
    assert batch.sqls[4].startswith("DELETE FROM analytics.stores WHERE NOT EXISTS")
    assert f"WHERE snapshot_date = '{newest}' AND NOT EXISTS" in batch.sqls[5]
    assert batch.snapshot_checks == {"stores": 3}


# -- StartLoad and RecordRun on a batch state --------------------------------------------------


def batch_state() -> dict[str, Any]:
    """The sample run's state as a batch of three partitions; the gate failed the second."""
    event = read_event("start_load", "serverless_pass.json")
    run = event["state"]["run"]
    parts = []
    for day in DAYS:
        rid = f"online_retail-{day}-abc"
        parts.append({"run_id": rid, "partition": day, "attempt": 1,
                      "input": {**run["input"], "key": f"online_retail/{day}.csv"},
                      "outputs": {t.name: out(t.name, day).replace(f"r-{day}", rid)
                                  for t in TABLES},
                      "quarantine_uri": run["quarantine_uri"],
                      "metrics_uri": run["metrics_uri"], "quality_uri": run["quality_uri"]})
    run.update(run_id=BATCH, partition=f"{DAYS[0]}..{DAYS[-1]}", trigger="batch",
               batch_id="b1", partitions=parts, input=None, outputs={})
    lines = {"in": 10, "out": 9, "quarantined": 1, "duplicates": 0}
    event["state"]["quality"] = {
        "verdict": "warn", "summary": "2 of 3", "failed_rules": [], "warned_rules": [],
        "lines": lines, "partitions": {
            day: {"run_id": f"online_retail-{day}-abc",
                  "verdict": "fail" if day == DAYS[1] else "pass", "summary": day,
                  "lines": lines, "rows": {"sales_line_items": 9, "customer_daily_sales": 2}}
            for day in DAYS}}
    return event


def test_the_load_leaves_out_the_partitions_the_gate_failed(redshift: FakeRedshiftData,
                                                            env: dict[str, str]) -> None:
    starter = LoadStatement(catalog=load_catalog(env["CATALOG_DIR"]), redshift=redshift,
                            migrations=load_migrations, app_name="emr-pipelines-dev",
                            copy_role_arn=ROLE, clock=lambda: NOW)
    starter.handle(LoadStatementRequest.parse(batch_state()))
    load = redshift.statements[-1]
    where = f"WHERE order_date IN ('{DAYS[0]}', '{DAYS[2]}')"
    assert f"DELETE FROM analytics.sales_line_items {where}" in load.sqls
    assert load.token == f"{BATCH}-load-a1-r1"

    every_failed = batch_state()
    for verdict in every_failed["state"]["quality"]["partitions"].values():
        verdict["verdict"] = "fail"
    with pytest.raises(InvalidInput, match="no partition passed the gate"):
        starter.handle(LoadStatementRequest.parse(every_failed))


def test_record_marks_each_loaded_partition_succeeded(ledger: FakeLedger) -> None:
    event = batch_state()
    state = event["state"]
    for part in state["run"]["partitions"]:
        ledger.create_run({"run_id": part["run_id"], "dataset": "online_retail",
                           "partition": part["partition"], "status": "RUNNING",
                           "started_at": "2026-11-21T10:00:00Z"})
    state["load"] = {"statement_id": "s-1", "tables": {"sales_line_items": 0,
                                                       "customer_daily_sales": 1}}
    state["load_status"] = {"Id": "s-1", "Status": "FINISHED", "outcome": "finished",
                            "SubStatements": [{"ResultRows": 18}, {"ResultRows": 4}]}
    event["state_name"] = "RecordRun"
    result = RunRecorder(ledger, clock=lambda: NOW).record(
        RecordRunRequest.parse(copy.deepcopy(event)))
    assert result == {"status": "SUCCEEDED",
                      "rows_loaded": {"sales_line_items": 18, "customer_daily_sales": 4}}
    for day in (DAYS[0], DAYS[2]):
        item = ledger.get(f"online_retail-{day}-abc")
        assert item is not None
        assert (item["status"], item["batch_run_id"], item["quality_verdict"]) == (
            "SUCCEEDED", BATCH, "pass")
        assert item["rows_loaded"] == {"sales_line_items": 9, "customer_daily_sales": 2}
    skipped = ledger.get(f"online_retail-{DAYS[1]}-abc")
    assert skipped is not None and skipped["status"] == "RUNNING"  # the gate records it


def test_a_derived_run_over_days_replaces_each_of_its_days(
        redshift: FakeRedshiftData) -> None:
    """An upstream batch's one sales_trends run writes the days from its `from_day` to its
    as_of (pipeline_aws.derived_trigger): its load replaces each of them, no other."""
    event = read_event("start_load", "serverless_pass.json")
    run = event["state"]["run"]
    run_id = "sales_trends-2011-01-06-0123456789ab"
    output = f"s3://emr-pipelines-dev-curated/sales_trends/sales_trends/partition=2011-01-06/" \
        f"run_id={run_id}/"
    run.update(dataset="sales_trends", run_id=run_id, partition="2011-01-06",
               from_day="2011-01-04", trigger="upstream", outputs={"sales_trends": output})
    event["state"]["quality"]["partitions"] = {"2011-01-06": {
        "run_id": run_id, "verdict": "pass", "summary": "ok",
        "lines": {"in": 1, "out": 1, "quarantined": 0, "duplicates": 0}, "rows": {}}}
    starter = LoadStatement(catalog=load_catalog(REPO / "datasets"), redshift=redshift,
                            migrations=load_migrations, app_name="emr-pipelines-dev",
                            copy_role_arn=ROLE, clock=lambda: NOW)
    starter.handle(LoadStatementRequest.parse(event))
    where = f"WHERE order_date IN ('{DAYS[0]}', '{DAYS[1]}', '{DAYS[2]}')"
    assert f"DELETE FROM analytics.sales_trends {where}" in redshift.statements[-1].sqls
    assert f"INSERT INTO analytics.sales_trends SELECT * FROM stage_sales_trends {where}" in \
        redshift.statements[-1].sqls
