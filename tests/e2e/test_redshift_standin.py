"""The Redshift Data API stand-in: statuses, batches, COPY from parquet, typed records."""

import io
import time

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
    assert out == "CREATE TABLE a.t (id bigint, d date, s varchar(10))"
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
