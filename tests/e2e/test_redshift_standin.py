"""The Redshift Data API stand-in: statuses, batches, COPY from parquet, typed records."""

import io
import time
import uuid

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from local_runtime.redshift import DataApiEngine, read_parquet_objects, translate_sql
from local_runtime.warehouse import postgres_binaries, start_warehouse

pytestmark = pytest.mark.e2e


def test_ddl_rules_drop_only_listed_clauses():
    sql = ("CREATE TABLE a.t (id bigint ENCODE az64 DISTKEY, d date SORTKEY, s varchar(10) "
           "ENCODE lzo) DISTSTYLE KEY DISTKEY(id) COMPOUND SORTKEY(d, id) BACKUP NO")
    out, dropped = translate_sql(sql)
    # VARCHAR counts bytes there (local_runtime.warehouse.strict_ddl, test_warehouse_strict.py)
    assert out.rsplit(";\n", 1)[-1] == ("CREATE TABLE a.t (id bigint, d date, "
                                        "s public.redshift_varchar_10)")
    assert len(dropped) == 8
    same, none = translate_sql("SELECT 'DISTSTYLE ALL' AS x")
    assert none == [] and same == "SELECT 'DISTSTYLE ALL' AS x"
    quoted, _ = translate_sql("CREATE TABLE t (c varchar(20) DEFAULT 'ENCODE zstd')")
    assert "'ENCODE zstd'" in quoted


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    if not postgres_binaries():
        pytest.skip("no PostgreSQL binaries")
    wh = start_warehouse(tmp_path_factory.mktemp("wh"))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="curated")
        yield DataApiEngine(wh.database_url, lambda uri: read_parquet_objects(s3, uri)), s3
    wh.stop()


def _wait(engine, sid):
    for _ in range(200):
        st, _ = engine.get(sid)
        if st.status in ("FINISHED", "FAILED", "ABORTED"):
            return st
        time.sleep(0.05)
    raise AssertionError("statement did not finish")


def test_batch_copy_parquet_is_one_transaction(engine):
    eng, s3 = engine
    table = pa.table({"d": pa.array(["2010-12-01", "2010-12-02"]).cast(pa.date32()),
                      "n": pa.array([1, None], pa.int64()),
                      "v": pa.array([1.5, 2.25])})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    s3.put_object(Bucket="curated", Key="x/t/part-0.parquet", Body=buf.getvalue())
    s3.put_object(Bucket="curated", Key="x/t/_SUCCESS", Body=b"")
    st = eng.submit(["CREATE SCHEMA IF NOT EXISTS s",
                     "CREATE TABLE IF NOT EXISTS s.t (d date, n bigint, v double precision) "
                     "DISTSTYLE AUTO",
                     "COPY s.t FROM 's3://curated/x/t/part-' IAM_ROLE 'arn:aws:iam::1:role/r' "
                     "FORMAT AS PARQUET",
                     "SELECT d, n, v, true AS b FROM s.t ORDER BY d"],
                    batch=True, target={"Database": "dev"})
    done = _wait(eng, st.id)
    assert done.status == "FINISHED", done.error
    assert [s.status for s in done.subs] == ["FINISHED"] * 4
    assert done.subs[2].result_rows == 2
    _, sub = eng.get(f"{st.id}:4")
    assert sub.records[0] == [{"stringValue": "2010-12-01"}, {"longValue": 1},
                              {"doubleValue": 1.5}, {"booleanValue": True}]
    assert sub.records[1][1] == {"isNull": True}
    # a failing statement rolls the whole batch back, with the Data API's wording
    bad = eng.submit(["INSERT INTO s.t VALUES ('2011-01-01', 3, 1)", "SELECT * FROM nope"],
                     batch=True, target={"Database": "dev"})
    failed = _wait(eng, bad.id)
    assert failed.status == "FAILED"
    assert failed.error == 'ERROR: relation "nope" does not exist'
    assert [s.status for s in failed.subs] == ["FINISHED", "FAILED"]
    count = eng.submit(["SELECT count(*) FROM s.t"], batch=False, target={"Database": "dev"})
    _wait(eng, count.id)
    assert eng.get(count.id)[1] is None and count.subs[0].records == [[{"longValue": 2}]]


def test_injected_failure_and_unsupported_copy(engine):
    eng, _ = engine
    eng.inject_failure(r"boom", "ERROR: injected")
    st = _wait(eng, eng.submit(["SELECT 'boom'"], batch=False, target={"Database": "dev"}).id)
    assert st.status == "FAILED" and st.error == "ERROR: injected"
    eng.clear_failures()
    st = _wait(eng, eng.submit(["COPY s.t FROM 's3://curated/x/' IAM_ROLE 'r' CSV"],
                               batch=False, target={"Database": "dev"}).id)
    assert st.status == "FAILED" and "PARQUET" in st.error


def test_cancel_aborts(engine):
    eng, _ = engine
    st = eng.submit(["SELECT pg_sleep(5)"], batch=False, target={"Database": "dev"})
    time.sleep(0.3)
    eng.cancel(st.id)
    assert _wait(eng, st.id).status == "ABORTED"
    with pytest.raises(ValueError, match="already in ABORTED"):
        eng.cancel(st.id)


# -- ownership: a statement is its submitter's ----------------------------------------------


@pytest.fixture
def data_api(engine):
    """The moto Data API on this module's engine; `client(name, role)` is a client signed as
    that principal (local_runtime.identity), as the local deployment signs each function."""
    from local_runtime import moto_patches
    from local_runtime.identity import LOCAL_SECRET_KEY, PRINCIPALS

    eng, _ = engine
    saved = dict(moto_patches.STATE)
    moto_patches.install(saved.get("runner"), eng)

    def client(name: str, role: str):
        key = PRINCIPALS.register(name, f"arn:aws:iam::123456789012:role/{role}", name)
        return boto3.client("redshift-data", region_name="us-east-1", aws_access_key_id=key,
                            aws_secret_access_key=LOCAL_SECRET_KEY)

    yield client
    moto_patches.STATE.update(saved)


def _ended(client, sid):
    for _ in range(400):
        described = client.describe_statement(Id=sid)
        if described["Status"] in ("FINISHED", "FAILED", "ABORTED"):
            return described
        time.sleep(0.05)
    raise AssertionError("statement did not finish")


def test_only_the_submitter_can_describe_read_or_cancel_a_statement(data_api):
    """A statement belongs to the identity that ran it. "Configuring IAM permissions" (Amazon
    Redshift Management Guide, https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-iam.html)
    and the managed policy AmazonRedshiftDataFullAccess allow DescribeStatement,
    GetStatementResult and CancelStatement only where redshift-data:statement-owner-iam-userid
    equals aws:userid (`<role id>:<session>`: a Lambda function's session is its name). The
    stand-in answers another caller as the Data API answers an id it does not know:
    ResourceNotFoundException, the error DescribeStatement, GetStatementResult and
    CancelStatement list for a missing resource (Redshift Data API Reference)."""
    from botocore.exceptions import ClientError

    owner = data_api("stack-LoadStatementFunction", "stack-LoadStatementFunctionRole")
    other_function = data_api("stack-HandleFailureFunction", "stack-HandleFailureFunctionRole")
    state_machine = data_api("stack-pipeline", "stack-PipelineStateMachineRole")
    sid = owner.batch_execute_statement(Sqls=["SELECT 1 AS one", "SELECT pg_sleep(0.5)"],
                                        Database="dev", WorkgroupName="local-workgroup")["Id"]
    for foreign in (other_function, state_machine):
        for call in (lambda c=foreign: c.describe_statement(Id=sid),
                     lambda c=foreign: c.get_statement_result(Id=f"{sid}:1"),
                     lambda c=foreign: c.cancel_statement(Id=sid)):
            with pytest.raises(ClientError) as refused:
                call()
            assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
            assert refused.value.response["Error"]["Message"] == "Query does not exist."
    assert _ended(owner, sid)["Status"] == "FINISHED"  # the foreign cancel did nothing
    assert owner.get_statement_result(Id=f"{sid}:1")["Records"] == [[{"longValue": 1}]]


def test_a_client_token_is_the_submitters(data_api):
    """The same ClientToken from the same principal returns the statement it started."""
    owner = data_api("stack-LoadStatementFunction", "stack-LoadStatementFunctionRole")
    other = data_api("stack-ResolveRunFunction", "stack-ResolveRunFunctionRole")
    kwargs = {"Sqls": ["SELECT 1"], "Database": "dev", "WorkgroupName": "local-workgroup",
              "ClientToken": "run-load-a1-r1"}
    first = owner.batch_execute_statement(**kwargs)["Id"]
    assert owner.batch_execute_statement(**kwargs)["Id"] == first
    assert other.batch_execute_statement(**kwargs)["Id"] != first


def test_a_statement_submitted_with_event_sends_its_completion_event_and_no_other(
        data_api, engine):
    """"Monitoring events for the Amazon Redshift Data API in Amazon EventBridge" (Amazon
    Redshift Management Guide, https://docs.aws.amazon.com/redshift/latest/mgmt/
    data-api-monitoring-events.html): events are sent when ExecuteStatement or
    BatchExecuteStatement sets WithEvent to true; source aws.redshift-data, detail-type "Redshift
    Data Statement Status Change", detail principal, statementName, statementId,
    redshiftQueryId, state (ABORTED, FAILED or FINISHED), rows, expireAt."""
    eng, _ = engine
    sent: list[dict] = []
    saved, eng.on_event = eng.on_event, sent.append
    try:
        owner = data_api("stack-LoadStatementFunction", "stack-LoadStatementFunctionRole")
        target = {"Database": "dev", "WorkgroupName": "local-workgroup"}
        quiet = owner.batch_execute_statement(Sqls=["SELECT 1"], StatementName="quiet",
                                              **target)["Id"]
        loud = owner.batch_execute_statement(Sqls=["SELECT 1", "SELECT 2"],
                                             StatementName="stack-load/run/try-1",
                                             WithEvent=True, **target)["Id"]
        failing = owner.execute_statement(Sql="SELECT * FROM no_such_table",
                                          StatementName="stack-load/run/try-2",
                                          WithEvent=True, **target)["Id"]
        for sid in (quiet, loud, failing):
            _ended(owner, sid)
        time.sleep(0.2)
    finally:
        eng.on_event = saved
    by_id = {e["detail"]["statementId"]: e for e in sent}
    assert set(by_id) == {loud, failing}  # nothing for the statement without WithEvent
    event = by_id[loud]
    assert (event["source"], event["detail-type"]) == ("aws.redshift-data",
                                                       "Redshift Data Statement Status Change")
    assert set(event) >= {"version", "id", "account", "time", "region", "resources", "detail"}
    detail = event["detail"]
    assert set(detail) == {"principal", "statementName", "statementId", "redshiftQueryId",
                           "state", "rows", "expireAt"}
    assert (detail["statementName"], detail["state"]) == ("stack-load/run/try-1", "FINISHED")
    assert detail["principal"].endswith(
        ":assumed-role/stack-LoadStatementFunctionRole/stack-LoadStatementFunction")
    assert by_id[failing]["detail"]["state"] == "FAILED"


# -- SERIALIZABLE, as a provisioned cluster ----------------------------------------------------


def test_overlapping_writers_of_one_table_conflict_as_on_redshift(engine):
    """"Serializable isolation" (Amazon Redshift Database Developer Guide,
    https://docs.aws.amazon.com/redshift/latest/dg/c_serial_isolation.html): concurrent
    transactions writing one table must be serializable, else one fails (error 1023). The
    stand-in runs every batch SERIALIZABLE: of two overlapping replaces of one day, one commits
    and the other fails with SQLSTATE 40001, which the load classifies as retryable."""
    from pipeline_aws.load_policy import is_serialization_conflict

    eng, _ = engine
    _wait(eng, eng.submit(["CREATE SCHEMA IF NOT EXISTS ser",
                           "CREATE TABLE IF NOT EXISTS ser.day (d date, n integer)"],
                          batch=True, target={"Database": "dev"}).id)
    eng.hold_before_commit(r"^INSERT INTO ser\.day", parties=2, timeout=20)
    replace = ["DELETE FROM ser.day WHERE d = '2010-12-08'",
               "INSERT INTO ser.day SELECT '2010-12-08', g FROM generate_series(1, 1000) g"]
    try:
        first, second = (eng.submit(replace, batch=True, target={"Database": "dev"})
                         for _ in range(2))
        ended = sorted((_wait(eng, first.id), _wait(eng, second.id)), key=lambda s: s.status)
    finally:
        eng.clear_failures()
    assert [s.status for s in ended] == ["FAILED", "FINISHED"]
    assert "SQLSTATE 40001" in ended[0].error and is_serialization_conflict(ended[0].error)
    count = eng.submit(["SELECT count(*) FROM ser.day"], batch=False, target={"Database": "dev"})
    assert _wait(eng, count.id).subs[0].records == [[{"longValue": 1000}]]


def test_two_loads_applying_the_same_migration_leave_it_applied_once(engine, data_api):
    """On a fresh warehouse two loads both find the migrations pending and both apply them in
    their batch: the second one's DDL collides with the first's. The loser is rolled back whole;
    its describe sees them recorded by the other and says `retry`, and the retry reads the
    applied versions again (each applied once) and leaves them out."""
    from pipeline_aws.contracts import LoadStatementRequest
    from pipeline_aws.load import LoadStatement
    from pipeline_aws.redshift import RedshiftData
    from pipeline_core.load_sql import build_load_batch, ensure_meta_sqls, load_migrations
    from tests.support.aws import read_event

    eng, _ = engine
    client = data_api("race-LoadStatementFunction", "race-LoadStatementFunctionRole")
    rs = RedshiftData(client, {"Database": f"race_{uuid.uuid4().hex[:8]}",
                               "WorkgroupName": "local-workgroup"})
    rs.run(ensure_meta_sqls(), statement_name="ensure", timeout_seconds=30)
    migrations = load_migrations()
    batch = build_load_batch(schema="analytics", tables=[], outputs={},
                             copy_role_arn="arn:aws:iam::123456789012:role/copy",
                             pending=migrations, run_id="race", partitions=["2010-12-01"],
                             applied_at="2026-11-30T10:00:00Z")
    eng.hold_before_commit(r"^INSERT INTO pipeline_meta\.schema_migrations", parties=2,
                           timeout=3)
    try:
        ids = [rs.batch_execute(batch.sqls, statement_name=f"load {i}", token=f"race-{i}")
               for i in (1, 2)]
        ended = {sid: _ended(client, sid) for sid in ids}
    finally:
        eng.clear_failures()
    assert sorted(d["Status"] for d in ended.values()) == ["FAILED", "FINISHED"]
    [loser] = [sid for sid, d in ended.items() if d["Status"] == "FAILED"]

    owner = LoadStatement(catalog=lambda: None, redshift=rs, migrations=migrations,
                          app_name="emr-pipelines-dev",
                          copy_role_arn="arn:aws:iam::123456789012:role/copy")
    event = read_event("start_load", "serverless_pass.json")
    event["operation"] = "describe"
    event["state"]["load"] = {"statement_id": loser, "tables": {},
                              "migrations_applied": batch.migrations, "load_try": 1}
    status = owner.handle(LoadStatementRequest.parse(event))
    assert status["outcome"] == "retry", status
    versions = [m.version for m in migrations]
    assert owner.applied_versions("race") == versions  # each applied once, by the winner
    assert rs.query("SELECT count(*) FROM pipeline_meta.schema_migrations",
                    statement_name="n") == [[len(versions)]]
