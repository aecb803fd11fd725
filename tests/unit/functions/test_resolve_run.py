"""functions/resolve_run: every events/resolve_run file through the handler, on moto (the raw
bucket and the ledger table). RunResolver's logic is tested in tests/unit/run/test_resolve.py."""

from __future__ import annotations

import hashlib

import pytest

from pipeline_core.errors import InvalidInput, UnknownDataset
from tests.support.aws import event_files, read_event
from tests.unit.run.support import ARTIFACTS, CODE_VERSION, CURATED, KEY, RAW

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,UK\n"


def test_every_event_file_is_exercised() -> None:
    assert event_files("resolve_run") == [
        "key_outside_prefix.json", "malformed.json", "manual_rerun.json",
        "s3_object_created.json", "s3_object_created_gz.json", "schedule.json",
    ]


def test_s3_event_builds_the_manifest(aws, load_handler, context) -> None:
    body = aws.put_sample()
    app = load_handler("resolve_run")
    manifest = app.lambda_handler(read_event("resolve_run", "s3_object_created.json"), context)

    etag = hashlib.md5(body).hexdigest()  # S3's ETag of a single-part upload
    digest = hashlib.sha256(f"{RAW}/{KEY}/{etag}".encode()).hexdigest()[:12]
    run_id = f"online_retail-2010-12-01-{digest}"
    assert manifest["run_id"] == run_id
    assert manifest["duplicate"] is False and manifest["attempt"] == 1
    assert manifest["trigger"] == "s3" and manifest["compute"] == "serverless"
    assert manifest["input"] == {"bucket": RAW, "key": KEY, "etag": etag, "size": len(body),
                                 "uri": f"s3://{RAW}/{KEY}"}
    run_path = f"partition=2010-12-01/run_id={run_id}/"
    assert manifest["outputs"] == {
        "sales_line_items": f"s3://{CURATED}/online_retail/sales_line_items/{run_path}",
        "customer_daily_sales": f"s3://{CURATED}/online_retail/customer_daily_sales/{run_path}",
    }
    job = manifest["job"]
    version = CODE_VERSION
    assert job["entry_point"] == (f"s3://{ARTIFACTS}/jobs/{version}/spark_jobs/online_retail/"
                                  "main.py")
    assert job["arguments"] == [
        "--input", f"s3://{RAW}/{KEY}",
        "--output-root", f"s3://{CURATED}/online_retail/{{table}}/{run_path}",
        "--quarantine", f"s3://{CURATED}/quarantine/online_retail/{run_path}",
        "--metrics", f"s3://{CURATED}/_runs/online_retail/{run_id}/metrics.json",
        "--quality", f"s3://{CURATED}/_runs/online_retail/{run_id}/quality.json",
        "--rules", f"s3://{ARTIFACTS}/jobs/{version}/datasets/online_retail.dqdl",
        "--run-id", run_id, "--partition", "2010-12-01", "--encoding", "utf-8",
    ]
    assert job["spark_submit_parameters"] == (
        f"--py-files s3://{ARTIFACTS}/jobs/{version}/spark_jobs.zip "
        "--conf spark.executor.cores=2 --conf spark.executor.memory=4g "
        "--conf spark.dynamicAllocation.maxExecutors=4")
    assert job["client_token"] == f"{run_id}-a1"
    assert manifest["tags"]["pipeline:execution"] == manifest["execution_id"]
    assert manifest["cluster"] is None

    item = aws.table.get_item(Key={"run_id": run_id})["Item"]
    assert item["status"] == "RUNNING" and item["execution_arn"] == manifest["execution_id"]
    # The input object is untouched.
    assert aws.s3.get_object(Bucket=RAW, Key=KEY)["Body"].read() == body


def test_gz_event(aws, load_handler, context) -> None:
    aws.put_sample(KEY + ".gz")
    app = load_handler("resolve_run")
    manifest = app.lambda_handler(read_event("resolve_run", "s3_object_created_gz.json"), context)
    assert manifest["input"]["key"] == KEY + ".gz"
    assert manifest["partition"] == "2010-12-01"


def test_schedule_event_finds_the_previous_day(aws, load_handler, context) -> None:
    aws.put_sample()  # scheduled 2010-12-02T06:00Z with date_offset_days -1 -> 2010-12-01
    app = load_handler("resolve_run")
    manifest = app.lambda_handler(read_event("resolve_run", "schedule.json"), context)
    assert manifest["trigger"] == "schedule"
    assert manifest["input"]["key"] == KEY


def test_manual_rerun_event_after_success_starts_attempt_two(aws, load_handler, context) -> None:
    aws.put_sample()
    app = load_handler("resolve_run")
    first = app.lambda_handler(read_event("resolve_run", "s3_object_created.json"), context)
    aws.table.update_item(Key={"run_id": first["run_id"]}, UpdateExpression="SET #s = :s",
                          ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":s": "SUCCEEDED"})
    second = app.lambda_handler(read_event("resolve_run", "manual_rerun.json"), context)
    assert second["trigger"] == "manual" and second["duplicate"] is False
    assert second["attempt"] == 2
    assert second["run_id"] == f"{first['run_id']}-r2"
    assert second["job"]["client_token"] == f"{first['run_id']}-r2-a2"
    assert second["outputs"]["sales_line_items"].endswith(f"run_id={first['run_id']}-r2/")


def test_malformed_event_names_what_is_missing(aws, load_handler, context) -> None:
    app = load_handler("resolve_run")
    with pytest.raises(InvalidInput) as err:
        app.lambda_handler(read_event("resolve_run", "malformed.json"), context)
    assert "event.detail.bucket.name" in str(err.value)
    assert "event.detail.object" in str(err.value)


def test_key_outside_every_prefix(aws, load_handler, context) -> None:
    aws.put_raw("exports/2010-12-01.csv", HEADER + ROW)
    app = load_handler("resolve_run")
    with pytest.raises(UnknownDataset, match="outside every dataset prefix"):
        app.lambda_handler(read_event("resolve_run", "key_outside_prefix.json"), context)
