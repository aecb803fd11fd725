"""functions/resolve_run: every events/resolve_run file through the handler, on moto (the raw
bucket, versioned as in template.yaml, and the ledger table). RunResolver's logic is tested in
tests/unit/run/test_resolve.py."""

from __future__ import annotations

import copy
import hashlib

import pytest

from pipeline_core.errors import InvalidInput, UnknownDataset
from tests.support.aws import event_files, read_event
from tests.unit.functions.test_resolve_run_datasets import dataset_events
from tests.unit.run.support import ARTIFACTS, CODE_VERSION, CURATED, KEY, RAW

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,UK\n"


def test_every_event_file_is_exercised() -> None:
    """These here; each dataset's `<dataset>_*.json` in test_resolve_run_datasets.py."""
    exercised_there = {name for _, name in dataset_events()}
    assert [f for f in event_files("resolve_run") if f not in exercised_there] == [
        "key_outside_prefix.json", "malformed.json", "manual_rerun.json",
        "s3_folder_marker.json", "s3_object_created.json", "s3_object_created_gz.json",
        "s3_object_created_versioned.json", "schedule.json",
    ]


def test_s3_event_builds_the_manifest(aws, load_handler, context) -> None:
    body = aws.put_sample()
    app = load_handler("resolve_run")
    manifest = app.lambda_handler(read_event("resolve_run", "s3_object_created.json"), context)

    etag = hashlib.md5(body).hexdigest()  # S3's ETag of a single-part upload
    # The event names no version: the current one is headed, and it is the run's.
    version_id = aws.s3.head_object(Bucket=RAW, Key=KEY)["VersionId"]
    digest = hashlib.sha256(f"{RAW}/{KEY}/{etag}/{version_id}".encode()).hexdigest()[:12]
    run_id = f"online_retail-2010-12-01-{digest}"
    assert manifest["run_id"] == run_id
    assert manifest["duplicate"] is False and manifest["attempt"] == 1
    assert manifest["trigger"] == "s3" and manifest["compute"] == "serverless"
    assert manifest["input"] == {"bucket": RAW, "key": KEY, "etag": etag, "size": len(body),
                                 "uri": f"s3://{RAW}/{KEY}", "version_id": version_id}
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
        # online_retail measures freshness against the end of its day (freshness_reference)
        "--reference-time", "2010-12-02T00:00:00Z",
        "--input-etag", etag, "--input-version-id", version_id,
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


def _versioned_event(version_id: str) -> dict:
    """events/resolve_run/s3_object_created_versioned.json naming `version_id` (moto makes
    its own version ids)."""
    event = copy.deepcopy(read_event("resolve_run", "s3_object_created_versioned.json"))
    event["event"]["detail"]["object"]["version-id"] = version_id
    return event


def test_versioned_event_runs_its_version_not_the_newest(aws, load_handler, context) -> None:
    """The event's version (HeadObject with its VersionId) runs, even after a newer upload;
    the newer upload's own event is its own run."""
    body = aws.put_sample()
    older = aws.s3.head_object(Bucket=RAW, Key=KEY)["VersionId"]
    aws.put_raw(KEY, body + ROW)
    newer = aws.s3.head_object(Bucket=RAW, Key=KEY)["VersionId"]
    app = load_handler("resolve_run")
    first = app.lambda_handler(_versioned_event(older), context)
    assert first["input"]["version_id"] == older
    assert first["input"]["etag"] == hashlib.md5(body).hexdigest()
    assert first["job"]["arguments"][-4:] == ["--input-etag", first["input"]["etag"],
                                              "--input-version-id", older]
    event = _versioned_event(newer)
    event["event"]["detail"]["object"]["etag"] = hashlib.md5(body + ROW).hexdigest()
    event["execution"]["Id"] += "-newer"
    second = app.lambda_handler(event, context)
    assert second["input"]["version_id"] == newer and second["run_id"] != first["run_id"]
    assert second["duplicate"] is False
    item = aws.table.get_item(Key={"run_id": first["run_id"]})["Item"]
    assert item["input"]["version_id"] == older


def test_an_event_whose_etag_is_not_its_versions_is_refused(aws, load_handler,
                                                            context) -> None:
    aws.put_sample()
    version = aws.s3.head_object(Bucket=RAW, Key=KEY)["VersionId"]
    event = _versioned_event(version)
    event["event"]["detail"]["object"]["etag"] = "0" * 32
    app = load_handler("resolve_run")
    with pytest.raises(InvalidInput, match=f"version {version} has ETag .* but the event says"):
        app.lambda_handler(event, context)


def test_a_version_that_is_gone_is_refused(aws, load_handler, context) -> None:
    aws.put_sample()
    version = aws.s3.head_object(Bucket=RAW, Key=KEY)["VersionId"]
    aws.s3.delete_object(Bucket=RAW, Key=KEY, VersionId=version)
    app = load_handler("resolve_run")
    with pytest.raises(InvalidInput, match=f"version {version} of s3://.* does not exist"):
        app.lambda_handler(_versioned_event(version), context)


def test_folder_marker_is_ignored_without_a_run(aws, load_handler, context) -> None:
    aws.put_raw("online_retail/2010-12/", b"")
    app = load_handler("resolve_run")
    result = app.lambda_handler(read_event("resolve_run", "s3_folder_marker.json"), context)
    assert result["ignored"] is True and result["duplicate"] is False
    assert "folder marker" in result["reason"] and result["key"] == "online_retail/2010-12/"
    assert aws.table.scan()["Items"] == []  # nothing registered
    assert aws.alerts() == []


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
