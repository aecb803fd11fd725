"""RunResolver (pipeline_aws.resolve) on FakeS3Objects and FakeLedger: the checks on the raw
object, the manifest contract, and the ledger's idempotency (duplicates, retries, re-runs).
The events/resolve_run files run through the handler in tests/unit/functions."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from pipeline_aws.contracts import ResolveRunRequest, RunManifest
from pipeline_aws.resolve import RunResolver
from pipeline_aws.settings import ResolveRunSettings
from pipeline_core.catalog import load_catalog
from pipeline_core.errors import ConfigurationError, InvalidInput, UnknownDataset
from tests.support.aws import object_created_event
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.s3_objects import FakeS3Objects
from tests.unit.run.conftest import NOW
from tests.unit.run.support import ARTIFACTS, KEY, RAW, execution, write_catalog

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,UK\n"


def payload(event: dict[str, Any], name: str = "exec-1") -> dict[str, Any]:
    return {"event": event, "execution": execution(name), "state_name": "ResolveRun"}


def request(event: dict[str, Any], name: str = "exec-1") -> ResolveRunRequest:
    return ResolveRunRequest.parse(payload(event, name))


def s3_event(key: str = KEY, bucket: str = RAW) -> dict[str, Any]:
    return object_created_event(key, bucket=bucket)


def make_resolver(objects: FakeS3Objects, ledger: FakeLedger, env: dict[str, str],
                  catalog_dir: str | None = None) -> RunResolver:
    return RunResolver(
        settings=ResolveRunSettings.from_environ(env),
        catalog=load_catalog(catalog_dir or env["CATALOG_DIR"]),
        objects=objects,
        ledger=ledger,
        clock=lambda: NOW,
    )


@pytest.fixture
def resolver(objects: FakeS3Objects, ledger: FakeLedger, env: dict[str, str]) -> RunResolver:
    return make_resolver(objects, ledger, env)


def yaml_catalog(tmp_path: Path, **overrides: Any) -> str:
    return str(write_catalog(tmp_path / "custom", **overrides))


def set_status(ledger: FakeLedger, run_id: str, status: str) -> None:
    """Change the item's status the way another writer would, without touching the rest."""
    ledger.items[run_id]["status"] = status


# -- the manifest is the contract's ----------------------------------------------------------


def test_the_manifest_is_a_valid_run_manifest(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request(s3_event()))
    assert RunManifest.model_validate(manifest).model_dump(mode="json") == manifest
    assert list(manifest) == ["run_id", "execution_id", "dataset", "partition", "trigger",
                              "duplicate", "attempt", "compute", "started_at", "input",
                              "outputs", "quarantine_uri", "metrics_uri", "quality_uri",
                              "from_day", "job", "cluster", "tags", "partitions", "batch_id",
                              "skipped"]
    # A single run is a batch of one: its one partition is the run itself.
    [part] = manifest["partitions"]
    assert {k: part[k] for k in ("run_id", "partition", "input", "outputs", "metrics_uri")} == {
        k: manifest[k] for k in ("run_id", "partition", "input", "outputs", "metrics_uri")}
    assert part["refused"] is None and manifest["batch_id"] is None
    assert manifest["from_day"] is None and part["from_day"] is None  # a derived range's only
    assert manifest["started_at"] == "2026-11-21T10:00:00Z"


# -- refusing bad input -----------------------------------------------------------------------


def test_missing_object(resolver) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        resolver.resolve(request(s3_event()))


def test_empty_object(objects, resolver) -> None:
    objects.put(RAW, KEY, b"")
    with pytest.raises(InvalidInput, match=r"is empty \(0 bytes\)"):
        resolver.resolve(request(s3_event()))


def test_header_mismatch_names_expected_and_found(objects, ledger, resolver) -> None:
    objects.put(RAW, KEY, b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"
                          b"CustomerID\n" + ROW)
    with pytest.raises(InvalidInput) as err:
        resolver.resolve(request(s3_event()))
    message = str(err.value)
    assert "missing ['Country']" in message and "expected [" in message and "found [" in message
    assert ledger.items == {}  # nothing registered for a refused object


def test_gz_key_that_is_not_gzip(objects, resolver) -> None:
    objects.put(RAW, KEY + ".gz", HEADER + ROW)
    with pytest.raises(InvalidInput, match=r"ends with \.gz but is not gzip"):
        resolver.resolve(request(s3_event(KEY + ".gz")))


def test_gzip_data_under_a_csv_key(objects, resolver) -> None:
    objects.put(RAW, KEY, gzip.compress(HEADER + ROW))
    with pytest.raises(InvalidInput, match=r"is gzip data but its key does not end with \.gz"):
        resolver.resolve(request(s3_event()))


def test_header_with_bom_and_crlf_is_accepted(objects, resolver) -> None:
    objects.put(RAW, KEY, b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n") + ROW)
    manifest = resolver.resolve(request(s3_event()))
    assert manifest["partition"] == "2010-12-01"


def test_other_bucket_is_refused(resolver) -> None:
    with pytest.raises(InvalidInput, match="is not the raw bucket"):
        resolver.resolve(request(s3_event(bucket="someone-elses")))


def test_key_under_prefix_but_not_matching_pattern(objects, resolver) -> None:
    objects.put(RAW, "online_retail/2010-12-01.txt", HEADER + ROW)
    with pytest.raises(InvalidInput, match="does not match its key pattern"):
        resolver.resolve(request(s3_event("online_retail/2010-12-01.txt")))


def test_url_encoded_key_from_the_event_is_decoded(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request(s3_event("online_retail%2F2010-12-01.csv")))
    assert manifest["input"]["key"] == KEY


def test_schedule_without_object(resolver) -> None:
    event = {"source": "pipeline.schedule", "dataset": "online_retail",
             "scheduled_time": "2010-12-05T06:00:00Z"}
    with pytest.raises(InvalidInput,
                       match=r"2010-12-04: none of .*2010-12-04.csv, .*2010-12-04.csv.gz exists"):
        resolver.resolve(request(event))


def test_schedule_with_both_csv_and_gz_is_ambiguous(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    objects.put(RAW, KEY + ".gz", gzip.compress(HEADER + ROW))
    with pytest.raises(InvalidInput, match="say which one"):
        resolver.resolve(request({"dataset": "online_retail", "date": "2010-12-01"}))


def test_manual_bucket_and_key(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request({"bucket": RAW, "key": KEY}))
    assert manifest["trigger"] == "manual" and manifest["input"]["key"] == KEY


def test_unknown_dataset_in_manual_event(resolver) -> None:
    with pytest.raises(UnknownDataset, match="'no_such_dataset' is not in the catalog"):
        resolver.resolve(request({"dataset": "no_such_dataset", "date": "2010-12-01"}))


def test_bad_date_in_manual_event(resolver) -> None:
    with pytest.raises(InvalidInput, match="not a real date"):
        resolver.resolve(request({"dataset": "online_retail", "date": "2010-02-30"}))


@pytest.mark.parametrize(("wrapped", "message"), [
    ({"event": {}}, "missing execution"),
    ({"execution": {"Id": "x", "Name": "y"}}, "missing event"),
    ({"event": {"source": "aws.ec2"}, "execution": {"Id": "x", "Name": "y"}}, "not supported"),
    ({"event": {"dataset": "online_retail"}, "execution": {"Id": "x", "Name": "y"}},
     "either dataset and date, or bucket and key"),
    ({"event": {"source": "pipeline.schedule", "dataset": "online_retail"},
      "execution": {"Id": "x", "Name": "y"}}, "event.scheduled_time: Field required"),
    ({"event": {"dataset": "online_retail", "date": "2010-12-01", "force": True},
      "execution": {"Id": "x", "Name": "y"}}, "event.force: Extra inputs"),
    ([], "expected an object"),
])
def test_malformed_requests(wrapped: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ResolveRunRequest.parse(wrapped)


def test_an_s3_event_is_read_with_powertools_eventbridge_model() -> None:
    event = s3_event()
    del event["detail"]["object"]
    with pytest.raises(InvalidInput) as err:
        ResolveRunRequest.parse(payload(event))
    assert "event.detail.object: Field required" in str(err.value)
    parsed = ResolveRunRequest.parse(payload(s3_event()))
    assert (parsed.trigger_kind, parsed.trigger.id) == ("s3", s3_event()["id"])


def test_unsafe_table_name_in_catalog_is_a_configuration_error(tmp_path) -> None:
    catalog = yaml_catalog(tmp_path, load={"schema": "analytics", "tables": [
        {"name": "sales; drop table x", "replace_by": ["order_date"]}]})
    with pytest.raises(ConfigurationError, match="not a safe SQL identifier"):
        load_catalog(catalog)


# -- idempotency ------------------------------------------------------------------------------


def test_same_object_twice_is_a_duplicate(objects, ledger, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    again = resolver.resolve(request(s3_event(), "exec-2"))
    assert first["duplicate"] is False
    assert again["duplicate"] is True and again["run_id"] == first["run_id"]
    assert len(ledger.items) == 1


def test_schedule_and_s3_of_the_same_object_share_the_run_id(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    scheduled = resolver.resolve(request(
        {"source": "pipeline.schedule", "dataset": "online_retail",
         "scheduled_time": "2010-12-02T06:00:00Z"}, "exec-2"))
    assert scheduled["run_id"] == first["run_id"] and scheduled["duplicate"] is True


def test_retry_within_the_same_execution_is_not_a_duplicate(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    retried = resolver.resolve(request(s3_event(), "exec-1"))
    assert retried["duplicate"] is False and retried["run_id"] == first["run_id"]


def test_new_version_of_the_object_is_a_new_run(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    objects.put(RAW, KEY, HEADER + ROW + ROW)
    second = resolver.resolve(request(s3_event(), "exec-2"))
    assert second["run_id"] != first["run_id"] and second["duplicate"] is False


def test_failed_run_is_not_restarted_without_rerun(objects, ledger, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    set_status(ledger, first["run_id"], "FAILED")
    again = resolver.resolve(request(s3_event(), "exec-2"))
    assert again["duplicate"] is True


@pytest.mark.parametrize("status", ["FAILED", "ABORTED", "TIMED_OUT", "SUCCEEDED"])
def test_rerun_after_an_ended_run_makes_the_next_attempt(objects, ledger, resolver,
                                                         status) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    set_status(ledger, first["run_id"], status)
    rerun = {"dataset": "online_retail", "date": "2010-12-01", "rerun": True}
    second = resolver.resolve(request(rerun, "exec-2"))
    assert (second["attempt"], second["duplicate"]) == (2, False)
    # While attempt 2 runs, another re-run request is a duplicate of it.
    third = resolver.resolve(request(rerun, "exec-3"))
    assert third["duplicate"] is True and third["run_id"] == second["run_id"]
    set_status(ledger, second["run_id"], "FAILED")
    fourth = resolver.resolve(request(rerun, "exec-4"))
    assert fourth["attempt"] == 3 and fourth["run_id"] == f"{first['run_id']}-r3"
    base = ledger.item(first["run_id"])
    assert base is not None
    assert base["latest_attempt"] == 3 and base["status"] == status
    assert ledger.item(fourth["run_id"])["base_run_id"] == first["run_id"]


def test_rerun_while_running_is_a_duplicate(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    resolver.resolve(request(s3_event(), "exec-1"))
    again = resolver.resolve(request({"bucket": RAW, "key": KEY, "rerun": True}, "exec-2"))
    assert again["duplicate"] is True and again["attempt"] == 1


def test_rerun_of_a_never_processed_object_is_attempt_one(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request(
        {"dataset": "online_retail", "date": "2010-12-01", "rerun": True}))
    assert manifest["attempt"] == 1 and manifest["duplicate"] is False


def test_only_one_of_two_racing_reruns_claims_the_attempt(objects, ledger, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    set_status(ledger, first["run_id"], "FAILED")
    assert ledger.claim_attempt(first["run_id"], 1, 2, first["run_id"] + "-r2") is True
    assert ledger.claim_attempt(first["run_id"], 1, 2, first["run_id"] + "-r2") is False


def test_a_rerun_that_loses_the_claim_is_a_duplicate(objects, ledger, resolver,
                                                     monkeypatch) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    set_status(ledger, first["run_id"], "FAILED")
    monkeypatch.setattr(ledger, "claim_attempt", lambda *args: False)  # another re-run won
    lost = resolver.resolve(request({"bucket": RAW, "key": KEY, "rerun": True}, "exec-2"))
    assert (lost["duplicate"], lost["run_id"], lost["attempt"]) == (True, first["run_id"], 1)


def test_the_ledger_item_of_a_run(objects, ledger, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request(s3_event(), "exec-1"))
    item = ledger.get(manifest["run_id"])
    assert item is not None
    assert {k: item[k] for k in ("dataset", "partition", "trigger", "compute", "code_version",
                                 "status", "attempt", "execution_arn", "started_at",
                                 "latest_attempt", "latest_run_id", "outputs")} == {
        "dataset": "online_retail", "partition": "2010-12-01", "trigger": "s3",
        "compute": "serverless", "code_version": "2026.11.21-abc1234", "status": "RUNNING",
        "attempt": 1, "execution_arn": manifest["execution_id"],
        "started_at": "2026-11-21T10:00:00Z", "latest_attempt": 1,
        "latest_run_id": manifest["run_id"], "outputs": manifest["outputs"]}
    assert item["input"] == {k: manifest["input"][k] for k in ("bucket", "key", "etag", "size")}


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


def test_cluster_section_matches_the_emr_api(objects, ledger, env, tmp_path) -> None:
    resolver = make_resolver(objects, ledger, env, yaml_catalog(tmp_path, compute=CLUSTER_COMPUTE))
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request(s3_event()))
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
    emr = botocore.session.get_session().get_service_model("emr")
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


def test_serverless_job_fields_match_the_emr_serverless_api(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request(s3_event()))
    job = manifest["job"]
    model = botocore.session.get_session().get_service_model("emr-serverless")
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


def test_cluster_mode_without_subnets_is_a_configuration_error(objects, ledger, env,
                                                                tmp_path) -> None:
    env = {**env, "EMR_SUBNET_IDS": ""}
    resolver = make_resolver(objects, ledger, env, yaml_catalog(tmp_path, compute=CLUSTER_COMPUTE))
    objects.put(RAW, KEY, HEADER + ROW)
    with pytest.raises(ConfigurationError, match="EMR_SUBNET_IDS is empty"):
        resolver.resolve(request(s3_event()))
    assert ledger.items == {}  # refused before anything was registered


def test_unsafe_spark_conf_is_refused(objects, ledger, env, tmp_path) -> None:
    job = {"name": "online_retail", "arguments": {},
           "spark_conf": {"spark.executor.memory": "4g --conf x=y"}}
    resolver = make_resolver(objects, ledger, env, yaml_catalog(tmp_path, job=job))
    objects.put(RAW, KEY, HEADER + ROW)
    with pytest.raises(ConfigurationError, match="without spaces or quotes"):
        resolver.resolve(request(s3_event()))


def test_catalog_job_arguments_are_appended(objects, ledger, env, tmp_path) -> None:
    job = {"name": "online_retail", "arguments": {"country-filter": "UK"}, "spark_conf": {}}
    resolver = make_resolver(objects, ledger, env, yaml_catalog(tmp_path, job=job))
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request(s3_event()))
    assert manifest["job"]["arguments"][-2:] == ["--country-filter", "UK"]
    assert manifest["job"]["spark_submit_parameters"].startswith("--py-files s3://")


def test_a_contract_argument_cannot_be_overridden(objects, ledger, env, tmp_path) -> None:
    job = {"name": "online_retail", "arguments": {"input": "s3://elsewhere/x.csv"}}
    resolver = make_resolver(objects, ledger, env, yaml_catalog(tmp_path, job=job))
    objects.put(RAW, KEY, HEADER + ROW)
    with pytest.raises(ConfigurationError, match="not one of the contract's"):
        resolver.resolve(request(s3_event()))


def test_manifest_is_deterministic_for_the_same_inputs(objects, resolver) -> None:
    objects.put(RAW, KEY, HEADER + ROW)
    first = resolver.resolve(request(s3_event(), "exec-1"))
    again = resolver.resolve(request(s3_event(), "exec-1"))
    assert copy.deepcopy(first) == again


def test_manual_compute_override_runs_one_execution_on_the_other_path(objects, ledger, env,
                                                                       tmp_path) -> None:
    resolver = make_resolver(objects, ledger, env, yaml_catalog(tmp_path, compute=CLUSTER_COMPUTE))
    objects.put(RAW, KEY, HEADER + ROW)
    manifest = resolver.resolve(request({"bucket": RAW, "key": KEY, "compute": "serverless"}))
    assert manifest["compute"] == "serverless" and manifest["cluster"] is None


def test_unknown_compute_override_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="compute"):
        ResolveRunRequest.parse(payload({"bucket": RAW, "key": KEY, "compute": "gpu"}))
