"""ResolveRun: every events/resolve_run file through the handler, the checks on the raw object,
the manifest contract, and the ledger's idempotency (duplicates, retries, re-runs)."""

from __future__ import annotations

import copy
import gzip
import hashlib
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.validate import ParamValidator
from core_run_helpers import (
    ARTIFACTS,
    CURATED,
    EXECUTION_PREFIX,
    RAW,
    REGION,
    event_files,
    read_event,
    write_catalog,
)

from pipeline_aws.ledger import RunLedger
from pipeline_aws.resolve import ResolveRequest, RunResolver
from pipeline_aws.s3_objects import S3Objects
from pipeline_aws.settings import ResolveRunSettings
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import ConfigurationError, InvalidInput, UnknownDataset

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,UK\n"
KEY = "online_retail/2010-12-01.csv"


def payload(event: dict[str, Any], name: str = "exec-1") -> dict[str, Any]:
    return {"event": event, "execution": {"Id": EXECUTION_PREFIX + name, "Name": name},
            "state_name": "ResolveRun"}


def s3_event(key: str = KEY, bucket: str = RAW) -> dict[str, Any]:
    return {"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key}}}


@pytest.fixture
def resolver(aws: Any, env: dict[str, str]) -> RunResolver:
    return make_resolver(aws, env)


def make_resolver(aws: Any, env: dict[str, str], catalog_dir: str | None = None) -> RunResolver:
    settings = ResolveRunSettings.from_environ(env)
    return RunResolver(
        settings=settings,
        catalog=load_catalog(catalog_dir or env["CATALOG_DIR"]),
        objects=S3Objects(aws.s3),
        ledger=RunLedger(aws.table),
        clock=lambda: datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    )


# -- the events/ files through the handler ---------------------------------------------------


def test_every_event_file_is_exercised() -> None:
    assert event_files("resolve_run") == [
        "key_outside_prefix.json", "malformed.json", "manual_rerun.json",
        "s3_object_created.json", "s3_object_created_gz.json", "schedule.json",
    ]


def test_handler_s3_event_builds_the_manifest(aws, load_handler, context) -> None:
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
    version = "2026.11.21-abc1234"
    assert job["entry_point"] == (f"s3://{ARTIFACTS}/jobs/{version}/spark_jobs/online_retail/"
                                  "main.py")
    assert job["arguments"] == [
        "--input", f"s3://{RAW}/{KEY}",
        "--output-root", f"s3://{CURATED}/online_retail/{{table}}/{run_path}",
        "--quarantine", f"s3://{CURATED}/quarantine/online_retail/{run_path}",
        "--metrics", f"s3://{CURATED}/_runs/online_retail/{run_id}/metrics.json",
        "--quality", f"s3://{CURATED}/_runs/online_retail/{run_id}/quality.json",
        "--rules", f"s3://{ARTIFACTS}/jobs/{version}/datasets/online_retail.dqdl",
        "--run-id", run_id, "--partition", "2010-12-01",
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


def test_handler_gz_event(aws, load_handler, context) -> None:
    aws.put_sample(KEY + ".gz")
    app = load_handler("resolve_run")
    manifest = app.lambda_handler(read_event("resolve_run", "s3_object_created_gz.json"), context)
    assert manifest["input"]["key"] == KEY + ".gz"
    assert manifest["partition"] == "2010-12-01"


def test_handler_schedule_event_finds_the_previous_day(aws, load_handler, context) -> None:
    aws.put_sample()  # scheduled 2010-12-02T06:00Z with date_offset_days -1 -> 2010-12-01
    app = load_handler("resolve_run")
    manifest = app.lambda_handler(read_event("resolve_run", "schedule.json"), context)
    assert manifest["trigger"] == "schedule"
    assert manifest["input"]["key"] == KEY


def test_handler_manual_rerun_event_after_success_starts_attempt_two(
        aws, load_handler, context) -> None:
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


def test_handler_malformed_event_names_what_is_missing(aws, load_handler, context) -> None:
    app = load_handler("resolve_run")
    with pytest.raises(InvalidInput) as err:
        app.lambda_handler(read_event("resolve_run", "malformed.json"), context)
    assert "event.detail.bucket.name" in str(err.value)
    assert "event.detail.object" in str(err.value)


def test_handler_key_outside_every_prefix(aws, load_handler, context) -> None:
    aws.put_raw("exports/2010-12-01.csv", HEADER + ROW)
    app = load_handler("resolve_run")
    with pytest.raises(UnknownDataset, match="outside every dataset prefix"):
        app.lambda_handler(read_event("resolve_run", "key_outside_prefix.json"), context)


# -- refusing bad input -----------------------------------------------------------------------


def test_missing_object(aws, resolver) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event())))


def test_empty_object(aws, resolver) -> None:
    aws.put_raw(KEY, b"")
    with pytest.raises(InvalidInput, match=r"is empty \(0 bytes\)"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event())))


def test_header_mismatch_names_expected_and_found(aws, resolver) -> None:
    aws.put_raw(KEY, b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
                + ROW)
    with pytest.raises(InvalidInput) as err:
        resolver.resolve(ResolveRequest.parse(payload(s3_event())))
    message = str(err.value)
    assert "missing ['Country']" in message and "expected [" in message and "found [" in message
    assert aws.table.scan()["Count"] == 0  # nothing registered for a refused object


def test_gz_key_that_is_not_gzip(aws, resolver) -> None:
    aws.put_raw(KEY + ".gz", HEADER + ROW)
    with pytest.raises(InvalidInput, match=r"ends with \.gz but is not gzip"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event(KEY + ".gz"))))


def test_gzip_data_under_a_csv_key(aws, resolver) -> None:
    aws.put_raw(KEY, gzip.compress(HEADER + ROW))
    with pytest.raises(InvalidInput, match=r"is gzip data but its key does not end with \.gz"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event())))


def test_header_with_bom_and_crlf_is_accepted(aws, resolver) -> None:
    aws.put_raw(KEY, b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n") + ROW)
    manifest = resolver.resolve(ResolveRequest.parse(payload(s3_event())))
    assert manifest["partition"] == "2010-12-01"


def test_other_bucket_is_refused(aws, resolver) -> None:
    with pytest.raises(InvalidInput, match="is not the raw bucket"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event(bucket="someone-elses"))))


def test_key_under_prefix_but_not_matching_pattern(aws, resolver) -> None:
    aws.put_raw("online_retail/2010-12-01.txt", HEADER + ROW)
    with pytest.raises(InvalidInput, match="does not match its key pattern"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event("online_retail/2010-12-01.txt"))))


def test_url_encoded_key_from_the_event_is_decoded(aws, resolver, env, tmp_path) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    manifest = resolver.resolve(ResolveRequest.parse(payload(
        s3_event("online_retail%2F2010-12-01.csv"))))
    assert manifest["input"]["key"] == KEY


def test_schedule_without_object(aws, resolver) -> None:
    event = {"source": "pipeline.schedule", "dataset": "online_retail",
             "scheduled_time": "2010-12-05T06:00:00Z"}
    with pytest.raises(InvalidInput, match=r"2010-12-04: neither .*2010-12-04.csv nor .csv.gz"):
        resolver.resolve(ResolveRequest.parse(payload(event)))


def test_schedule_with_both_csv_and_gz_is_ambiguous(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    aws.put_raw(KEY + ".gz", gzip.compress(HEADER + ROW))
    with pytest.raises(InvalidInput, match="say which one"):
        resolver.resolve(ResolveRequest.parse(payload(
            {"dataset": "online_retail", "date": "2010-12-01"})))


def test_manual_bucket_and_key(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    manifest = resolver.resolve(ResolveRequest.parse(payload({"bucket": RAW, "key": KEY})))
    assert manifest["trigger"] == "manual" and manifest["input"]["key"] == KEY


def test_unknown_dataset_in_manual_event(aws, resolver) -> None:
    with pytest.raises(UnknownDataset, match="'web_logs' is not in the catalog"):
        resolver.resolve(ResolveRequest.parse(payload({"dataset": "web_logs",
                                                       "date": "2010-12-01"})))


def test_bad_date_in_manual_event(aws, resolver) -> None:
    with pytest.raises(InvalidInput, match="not a real date"):
        resolver.resolve(ResolveRequest.parse(payload({"dataset": "online_retail",
                                                       "date": "2010-02-30"})))


@pytest.mark.parametrize(("wrapped", "message"), [
    ({"event": {}}, "missing execution"),
    ({"execution": {"Id": "x", "Name": "y"}}, "missing event"),
    ({"event": {"source": "aws.ec2"}, "execution": {"Id": "x", "Name": "y"}}, "not supported"),
    ({"event": {"dataset": "online_retail"}, "execution": {"Id": "x", "Name": "y"}},
     "either dataset and date, or bucket and key"),
    ({"event": {"source": "pipeline.schedule", "dataset": "online_retail"},
      "execution": {"Id": "x", "Name": "y"}}, "event.scheduled_time: field required"),
    ({"event": {"dataset": "online_retail", "date": "2010-12-01", "force": True},
      "execution": {"Id": "x", "Name": "y"}}, "event.force: extra inputs"),
    ([], "expected an object"),
])
def test_malformed_requests(wrapped: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ResolveRequest.parse(wrapped)


def test_unsafe_table_name_in_catalog_is_a_configuration_error(aws, env, tmp_path) -> None:
    catalog = yaml_catalog(tmp_path, load={"schema": "analytics", "tables": [
        {"name": "sales; drop table x", "replace_by": ["order_date"]}]})
    with pytest.raises(ConfigurationError, match="not a safe SQL identifier"):
        load_catalog(catalog)


def yaml_catalog(tmp_path, **overrides: Any) -> str:
    return str(write_catalog(tmp_path / "custom", **overrides))


# -- idempotency ------------------------------------------------------------------------------


def test_same_object_twice_is_a_duplicate(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    first = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    again = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-2")))
    assert first["duplicate"] is False
    assert again["duplicate"] is True and again["run_id"] == first["run_id"]
    assert aws.table.scan()["Count"] == 1


def test_schedule_and_s3_of_the_same_object_share_the_run_id(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    first = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    scheduled = resolver.resolve(ResolveRequest.parse(payload(
        {"source": "pipeline.schedule", "dataset": "online_retail",
         "scheduled_time": "2010-12-02T06:00:00Z"}, "exec-2")))
    assert scheduled["run_id"] == first["run_id"] and scheduled["duplicate"] is True


def test_retry_within_the_same_execution_is_not_a_duplicate(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    first = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    retried = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    assert retried["duplicate"] is False and retried["run_id"] == first["run_id"]


def test_new_version_of_the_object_is_a_new_run(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    first = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    aws.put_raw(KEY, HEADER + ROW + ROW)
    second = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-2")))
    assert second["run_id"] != first["run_id"] and second["duplicate"] is False


def set_status(aws, run_id: str, status: str) -> None:
    aws.table.update_item(Key={"run_id": run_id}, UpdateExpression="SET #s = :s",
                          ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":s": status})


def test_failed_run_is_not_restarted_without_rerun(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    first = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    set_status(aws, first["run_id"], "FAILED")
    again = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-2")))
    assert again["duplicate"] is True


@pytest.mark.parametrize("status", ["FAILED", "ABORTED", "TIMED_OUT", "SUCCEEDED"])
def test_rerun_after_an_ended_run_makes_the_next_attempt(aws, resolver, status) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    first = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    set_status(aws, first["run_id"], status)
    rerun = {"dataset": "online_retail", "date": "2010-12-01", "rerun": True}
    second = resolver.resolve(ResolveRequest.parse(payload(rerun, "exec-2")))
    assert (second["attempt"], second["duplicate"]) == (2, False)
    # While attempt 2 runs, another re-run request is a duplicate of it.
    third = resolver.resolve(ResolveRequest.parse(payload(rerun, "exec-3")))
    assert third["duplicate"] is True and third["run_id"] == second["run_id"]
    set_status(aws, second["run_id"], "FAILED")
    fourth = resolver.resolve(ResolveRequest.parse(payload(rerun, "exec-4")))
    assert fourth["attempt"] == 3 and fourth["run_id"] == f"{first['run_id']}-r3"
    base = aws.table.get_item(Key={"run_id": first["run_id"]})["Item"]
    assert base["latest_attempt"] == 3 and base["status"] == status


def test_rerun_while_running_is_a_duplicate(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    again = resolver.resolve(ResolveRequest.parse(payload(
        {"bucket": RAW, "key": KEY, "rerun": True}, "exec-2")))
    assert again["duplicate"] is True and again["attempt"] == 1


def test_rerun_of_a_never_processed_object_is_attempt_one(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    manifest = resolver.resolve(ResolveRequest.parse(payload(
        {"dataset": "online_retail", "date": "2010-12-01", "rerun": True})))
    assert manifest["attempt"] == 1 and manifest["duplicate"] is False


def test_only_one_of_two_racing_reruns_claims_the_attempt(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    first = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    set_status(aws, first["run_id"], "FAILED")
    ledger = RunLedger(aws.table)
    assert ledger.claim_attempt(first["run_id"], 1, 2, first["run_id"] + "-r2") is True
    assert ledger.claim_attempt(first["run_id"], 1, 2, first["run_id"] + "-r2") is False


# -- compute == cluster -----------------------------------------------------------------------


CLUSTER_COMPUTE = {
    "mode": "cluster",
    "cluster": {
        "release_label": "emr-spark-8.1.0", "idle_timeout_minutes": 15,
        "master": {"instance_types": ["m7g.xlarge"], "capacity": 1},
        "core": {"instance_types": ["m7g.xlarge", "m6g.xlarge"], "capacity": 2},
        "task": {"instance_types": ["m7g.2xlarge", "r7g.xlarge"], "capacity": 2, "spot": True},
    },
}


def test_cluster_section_matches_the_emr_api(aws, env, tmp_path) -> None:
    resolver = make_resolver(aws, env, yaml_catalog(tmp_path, compute=CLUSTER_COMPUTE))
    aws.put_raw(KEY, HEADER + ROW)
    manifest = resolver.resolve(ResolveRequest.parse(payload(s3_event())))
    cluster = manifest["cluster"]
    assert manifest["compute"] == "cluster"
    fleets = {f["InstanceFleetType"]: f for f in cluster["instances"]["InstanceFleets"]}
    assert fleets["MASTER"]["TargetOnDemandCapacity"] == 1
    assert fleets["CORE"]["TargetOnDemandCapacity"] == 2
    assert fleets["TASK"]["TargetSpotCapacity"] == 2
    spot = fleets["TASK"]["LaunchSpecifications"]["SpotSpecification"]
    assert spot["TimeoutAction"] == "SWITCH_TO_ON_DEMAND"
    assert cluster["instances"]["Ec2SubnetIds"] == ["subnet-0a1b2c3d4e5f60718",
                                                    "subnet-0f1e2d3c4b5a69788"]
    assert cluster["instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert cluster["log_uri"] == f"s3://{ARTIFACTS}/logs/emr/"
    assert cluster["idle_timeout_seconds"] == 900
    job = manifest["job"]
    assert cluster["step_args"][:5] == ["spark-submit", "--deploy-mode", "cluster", "--py-files",
                                        job["py_files"]]
    entry = cluster["step_args"].index(job["entry_point"])
    assert cluster["step_args"][entry + 1:] == job["arguments"]  # same arguments as serverless
    assert cluster["step_args"][5:entry] == [
        "--conf", "spark.executor.cores=2", "--conf", "spark.executor.memory=4g",
        "--conf", "spark.dynamicAllocation.maxExecutors=4"]

    # What the ASL's CreateCluster and AddStep pass must be valid RunJobFlow/AddJobFlowSteps input.
    emr = boto3.client("emr", region_name=REGION).meta.service_model
    validator = ParamValidator()
    report = validator.validate({
        "Name": cluster["name"], "ReleaseLabel": cluster["release_label"],
        "Applications": [{"Name": "Spark"}], "Instances": cluster["instances"],
        "ServiceRole": "EMR_DefaultRole", "JobFlowRole": "EMR_EC2_DefaultRole",
        "LogUri": cluster["log_uri"],
        "AutoTerminationPolicy": {"IdleTimeout": cluster["idle_timeout_seconds"]},
        "Tags": cluster["tags"], "VisibleToAllUsers": True,
    }, emr.operation_model("RunJobFlow").input_shape)
    assert not report.has_errors(), report.generate_report()
    report = validator.validate({"JobFlowId": "j-1", "Steps": [{
        "Name": manifest["run_id"], "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": cluster["step_args"]}}]},
        emr.operation_model("AddJobFlowSteps").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_serverless_job_fields_match_the_emr_serverless_api(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    manifest = resolver.resolve(ResolveRequest.parse(payload(s3_event())))
    job = manifest["job"]
    model = boto3.client("emr-serverless", region_name=REGION).meta.service_model
    report = ParamValidator().validate({
        "applicationId": "00fo1ttqvjbk3p09", "clientToken": job["client_token"],
        "executionRoleArn": "arn:aws:iam::123456789012:role/job",
        "name": manifest["run_id"], "executionTimeoutMinutes": job["timeout_minutes"],
        "jobDriver": {"sparkSubmit": {"entryPoint": job["entry_point"],
                                      "entryPointArguments": job["arguments"],
                                      "sparkSubmitParameters": job["spark_submit_parameters"]}},
        "configurationOverrides": {"monitoringConfiguration": {
            "s3MonitoringConfiguration": {"logUri": job["log_uri"]}}},
        "tags": manifest["tags"],
    }, model.operation_model("StartJobRun").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_cluster_mode_without_subnets_is_a_configuration_error(aws, env, tmp_path) -> None:
    env = {**env, "EMR_SUBNET_IDS": ""}
    resolver = make_resolver(aws, env, yaml_catalog(tmp_path, compute=CLUSTER_COMPUTE))
    aws.put_raw(KEY, HEADER + ROW)
    with pytest.raises(ConfigurationError, match="EMR_SUBNET_IDS is empty"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event())))


def test_unsafe_spark_conf_is_refused(aws, env, tmp_path) -> None:
    job = {"name": "online_retail", "arguments": {},
           "spark_conf": {"spark.executor.memory": "4g --conf x=y"}}
    resolver = make_resolver(aws, env, yaml_catalog(tmp_path, job=job))
    aws.put_raw(KEY, HEADER + ROW)
    with pytest.raises(ConfigurationError, match="without spaces or quotes"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event())))


def test_catalog_job_arguments_are_appended(aws, env, tmp_path) -> None:
    job = {"name": "online_retail", "arguments": {"country-filter": "UK"}, "spark_conf": {}}
    resolver = make_resolver(aws, env, yaml_catalog(tmp_path, job=job))
    aws.put_raw(KEY, HEADER + ROW)
    manifest = resolver.resolve(ResolveRequest.parse(payload(s3_event())))
    assert manifest["job"]["arguments"][-2:] == ["--country-filter", "UK"]
    assert manifest["job"]["spark_submit_parameters"].startswith("--py-files s3://")


def test_a_contract_argument_cannot_be_overridden(aws, env, tmp_path) -> None:
    job = {"name": "online_retail", "arguments": {"input": "s3://elsewhere/x.csv"}}
    resolver = make_resolver(aws, env, yaml_catalog(tmp_path, job=job))
    aws.put_raw(KEY, HEADER + ROW)
    with pytest.raises(ConfigurationError, match="not one of the contract's"):
        resolver.resolve(ResolveRequest.parse(payload(s3_event())))


def test_manifest_is_deterministic_for_the_same_inputs(aws, resolver) -> None:
    aws.put_raw(KEY, HEADER + ROW)
    first = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    again = resolver.resolve(ResolveRequest.parse(payload(s3_event(), "exec-1")))
    assert copy.deepcopy(first) == again


def test_manual_compute_override_runs_one_execution_on_a_cluster(aws, env, tmp_path) -> None:
    resolver = make_resolver(aws, env, yaml_catalog(tmp_path, compute=CLUSTER_COMPUTE))
    aws.put_raw(KEY, HEADER + ROW)
    request = ResolveRequest.parse(payload({"bucket": RAW, "key": KEY, "compute": "serverless"}))
    manifest = resolver.resolve(request)
    assert manifest["compute"] == "serverless" and manifest["cluster"] is None


def test_unknown_compute_override_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="compute"):
        ResolveRequest.parse(payload({"bucket": RAW, "key": KEY, "compute": "gpu"}))
