"""template.yaml against its contracts: state machine placeholders, error handling in the ASL,
triggers vs the catalog, function folders and events, IAM hygiene, bucket and ledger settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")

# A Task's catch-all normally goes to the failure handler (directly, or after terminating the
# cluster the run created). These are the documented exceptions (docs/architecture.md).
CATCH_TARGETS_DEFAULT = {"HandleFailure", "TerminateClusterOnFailure"}
CATCH_TARGETS = {
    "HandleFailure": {"TrackCostOnFailure"},  # the failure handler must not loop on itself
    "DescribeLoad": {"CancelLoad"},  # the load function cancels its statement first
    # a lost completion event: one describe decides; any other failure cancels first
    "AwaitLoad": {"DescribeLoad", "CancelLoad"},
    "TrackCost": {"Succeeded"},  # cost tracking never fails a run that loaded
    "TrackCostOnFailure": {"Failed"},
    # backfill.asl.json: a backfill starts no run of its own; a batch's failure is reported and
    # the other batches go on; a plan or summary that cannot be made fails the backfill.
    "Plan": {"BackfillFailed"},
    "Summarize": {"BackfillFailed"},
    "LoadBatch": {"BatchFailed"},
    "RunBatch": {"BatchAlreadyRan", "BatchFailed"},
}

# Actions AWS does not allow to scope to a resource: the only ones that may use Resource "*".
ACTIONS_WITHOUT_RESOURCE_TYPES = {
    "elasticmapreduce:ListClusters",
    "elasticmapreduce:RunJobFlow",
    "redshift-data:DescribeStatement",
    "redshift-data:GetStatementResult",
    "redshift-data:CancelStatement",
    # a task token names the task, not a resource ARN (test_load_statement_owner.py says where
    # AWS documents it)
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _uri(value: Any) -> str:
    assert isinstance(value, str), f"expected a literal path, got {value!r}"
    return value


def _states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, including those inside Parallel branches and Map iterators."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        found[name] = state
        for branch in state.get("Branches", []):
            found.update(_states(branch))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found.update(_states(state[key]))
    return found


def _state_machines(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in resources.items() if r["Type"] == "AWS::Serverless::StateMachine"}


def _function_env(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    env = dict(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    env.update(function["Properties"].get("Environment", {}).get("Variables", {}))
    return env


# --- state machines --------------------------------------------------------------------------


def test_every_definition_is_used_by_a_state_machine(resources: dict[str, Any],
                                                     state_machine_files: list[Path],
                                                     repo: Path) -> None:
    used = {(repo / _uri(r["Properties"]["DefinitionUri"])).resolve()
            for r in _state_machines(resources).values()}
    assert state_machine_files
    assert {p.resolve() for p in state_machine_files} == used


def test_placeholders_equal_definition_substitutions(resources: dict[str, Any],
                                                     repo: Path) -> None:
    for name, machine in _state_machines(resources).items():
        props = machine["Properties"]
        text = (repo / _uri(props["DefinitionUri"])).read_text()
        placeholders = set(PLACEHOLDER.findall(text))
        substitutions = set(props.get("DefinitionSubstitutions", {}))
        assert placeholders - substitutions == set(), f"{name}: placeholders not substituted"
        assert substitutions - placeholders == set(), f"{name}: substitutions not used"


def test_definitions_hold_no_arns_or_account_ids(state_machine_files: list[Path]) -> None:
    for path in state_machine_files:
        text = path.read_text()
        for match in re.finditer(r"arn:aws[a-z-]*:[a-z0-9-]+:([a-z0-9-]*):(\d*):", text):
            assert not match.group(1) and not match.group(2), (
                f"{path.name}: {match.group(0)} names a region or account; use a placeholder")


def test_every_task_has_retry_and_a_catch_all(definitions: dict[str, Any]) -> None:
    for file, definition in definitions.items():
        for name, state in _states(definition).items():
            if state["Type"] != "Task":
                continue
            assert state.get("Retry"), f"{file}: Task {name} has no Retry"
            catches = state.get("Catch") or []
            assert catches, f"{file}: Task {name} has no Catch"
            catch_all = [c for c in catches if "States.ALL" in c["ErrorEquals"]]
            assert catch_all, f"{file}: Task {name} has no States.ALL catch"
            allowed = CATCH_TARGETS.get(name, CATCH_TARGETS_DEFAULT)
            for catch in catches:
                assert catch["Next"] in allowed, (
                    f"{file}: Task {name} catches to {catch['Next']}, expected one of {allowed}")


def test_retries_back_off(definitions: dict[str, Any]) -> None:
    for file, definition in definitions.items():
        for name, state in _states(definition).items():
            for retry in state.get("Retry", []):
                assert retry.get("BackoffRate", 1) > 1, f"{file}: {name} retries without backoff"
                assert retry.get("MaxAttempts", 3) >= 1


def test_a_cluster_is_terminated_on_every_failure_path(definitions: dict[str, Any]) -> None:
    """Once a cluster exists, a failing Task catches to TerminateClusterOnFailure first."""
    for file, definition in definitions.items():
        for name, state in _states(definition).items():
            if state["Type"] != "Task" or "terminateCluster" in state["Resource"]:
                continue
            if "$.cluster.cluster_id" in json.dumps(state.get("Parameters", {})):
                for catch in state.get("Catch", []):
                    assert catch["Next"] == "TerminateClusterOnFailure", f"{file}: {name}"


def test_state_machine_settings(resources: dict[str, Any]) -> None:
    for name, machine in _state_machines(resources).items():
        props = machine["Properties"]
        assert props["Type"] == "STANDARD", name
        assert props["Tracing"] == {"Enabled": True}, name
        assert props["Logging"]["Level"] == "ALL", name
        assert props["Logging"]["IncludeExecutionData"] is True, name
        assert "Role" in props, f"{name}: give it its own least-privilege role"


def test_state_machine_role_invokes_exactly_its_functions(resources: dict[str, Any]) -> None:
    for name, machine in _state_machines(resources).items():
        props = machine["Properties"]
        substituted = {v["Fn::GetAtt"][0] for v in props["DefinitionSubstitutions"].values()
                       if isinstance(v, dict) and "Fn::GetAtt" in v
                       and resources[v["Fn::GetAtt"][0]]["Type"] == "AWS::Serverless::Function"}
        role = resources[props["Role"]["Fn::GetAtt"][0]]
        invokable = set()
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                if "lambda:InvokeFunction" in _as_list(statement["Action"]):
                    invokable |= {r["Fn::GetAtt"][0] for r in _as_list(statement["Resource"])}
        assert invokable == substituted, name


# --- triggers vs the catalog -----------------------------------------------------------------


def _catalog_prefixes(catalog_files: list[Path]) -> set[str]:
    docs = [yaml.safe_load(p.read_text()) for p in catalog_files]
    return {d["source"]["prefix"] for d in docs if "source" in d}  # derived: no raw files


def test_raw_rule_prefixes_equal_the_catalog(resources: dict[str, Any],
                                             catalog_files: list[Path]) -> None:
    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"
             and r["Properties"]["EventPattern"].get("source") == ["aws.s3"]]
    assert len(rules) == 1
    pattern = rules[0]["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "RawBucket"}]
    # tests/template/test_raw_event_pattern.py runs events through it; here: the catalog's.
    with_bytes, named_like_data = pattern["detail"]["object"]["$or"]
    prefixes = {entry["prefix"] for entry in with_bytes["key"]}
    assert prefixes == _catalog_prefixes(catalog_files)
    # Each dataset's suffixes: tests/template/test_catalog_routing.py.
    assert {e["wildcard"].partition("*")[0] for e in named_like_data["key"]} == prefixes
    target = rules[0]["Properties"]["Targets"][0]
    assert "DeadLetterConfig" in target and "RetryPolicy" in target
    assert "Input" not in target and "InputTransformer" not in target, "pass the event as is"


def test_schedules_run_catalog_datasets(resources: dict[str, Any],
                                        catalog_files: list[Path]) -> None:
    names = {p.stem for p in catalog_files}
    schedules = [r for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert schedules
    for schedule in schedules:
        props = schedule["Properties"]
        payload = json.loads(props["Target"]["Input"])
        assert payload == {"source": "pipeline.schedule", "dataset": payload["dataset"],
                           "scheduled_time": "<aws.scheduler.scheduled-time>"}
        assert payload["dataset"] in names
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert "Ref" in props["ScheduleExpression"] and "Ref" in props["State"]
        # ResolveRun reads the scheduled time as a date in the catalog's zone: the schedule
        # must fire in that same zone.
        dataset = yaml.safe_load(next(p for p in catalog_files if p.stem == payload["dataset"])
                                 .read_text())
        zone = (dataset.get("schedule") or {}).get("timezone", "UTC")
        assert props["ScheduleExpressionTimezone"] == zone


def test_trigger_derived_rule_watches_this_state_machine_s_successes(
        functions: dict[str, Any]) -> None:
    """"Step Functions Execution Status Change" events, as "AWS Step Functions events"
    (https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-states.html) names them
    (delivered best effort: the derived datasets' schedules are the backstop); the function
    may start executions of the pipeline and describe its executions, nothing else."""
    function = functions["TriggerDerivedFunction"]["Properties"]
    pattern = function["Events"]["ExecutionSucceeded"]["Properties"]["Pattern"]
    assert pattern == {"source": ["aws.states"],
                       "detail-type": ["Step Functions Execution Status Change"],
                       "detail": {"status": ["SUCCEEDED"],
                                  "stateMachineArn": [{"Ref": "PipelineStateMachine"}]}}
    grants = {s["Sid"]: s for s in function["Policies"][0]["Statement"]}
    assert set(grants) == {"StartDerivedRuns", "DescribePipelineExecutions"}
    assert grants["StartDerivedRuns"]["Action"] == "states:StartExecution"
    assert grants["StartDerivedRuns"]["Resource"] == {"Ref": "PipelineStateMachine"}
    assert grants["DescribePipelineExecutions"]["Action"] == "states:DescribeExecution"
    assert ":execution:${AWS::StackName}-pipeline:*" in str(
        grants["DescribePipelineExecutions"]["Resource"])


def test_resolve_run_writes_only_run_files_of_the_curated_bucket(
        functions: dict[str, Any]) -> None:
    """A derived run's inputs.json goes under `_runs/`: ResolveRun may put objects there and
    nowhere else."""
    statements = functions["ResolveRunFunction"]["Properties"]["Policies"][0]["Statement"]
    writes = [s for s in statements if "s3:PutObject" in str(s["Action"])]
    assert [(w["Action"], w["Resource"]) for w in writes] == [
        ("s3:PutObject", {"Fn::Sub": "${CuratedBucket.Arn}/_runs/*"})]


def test_cleanup_rule_watches_this_state_machine(functions: dict[str, Any]) -> None:
    event = functions["CleanupExecutionFunction"]["Properties"]["Events"]["ExecutionEnded"]
    pattern = event["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert set(pattern["detail"]["status"]) == {"ABORTED", "TIMED_OUT", "FAILED"}
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": "PipelineStateMachine"}]


# --- functions -------------------------------------------------------------------------------


def test_every_function_has_code_and_events(functions: dict[str, Any], repo: Path) -> None:
    assert functions
    for name, function in functions.items():
        code_uri = _uri(function["Properties"]["CodeUri"])
        match = re.fullmatch(r"functions/([a-z_]+)/?", code_uri)
        assert match, f"{name}: CodeUri {code_uri} is not functions/<name>/"
        folder = match.group(1)
        assert (repo / "functions" / folder / "app.py").is_file(), f"{name}: no app.py"
        events = list((repo / "events" / folder).glob("*.json"))
        assert events, f"{name}: no sample event in events/{folder}/"


def test_function_globals(template: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    assert glob["Tracing"] == "Active"
    assert glob["Handler"] == "app.lambda_handler"
    assert glob["Layers"] == [{"Ref": "CommonLayer"}]


def test_function_environment(template: dict[str, Any], functions: dict[str, Any]) -> None:
    common = {"ENVIRONMENT", "APP_NAME", "LEDGER_TABLE", "ALERT_TOPIC_ARN", "RAW_BUCKET",
              "CURATED_BUCKET", "ARTIFACTS_BUCKET", "POWERTOOLS_SERVICE_NAME",
              "POWERTOOLS_METRICS_NAMESPACE"}
    specific = {
        "ResolveRunFunction": {"JOB_CODE_VERSION", "EMR_SUBNET_IDS", "EMR_RELEASE_LABEL",
                               "EMR_SERVERLESS_APPLICATION_ID", "EMR_SERVERLESS_ARCHITECTURE"},
        "LoadStatementFunction": {"REDSHIFT_DATABASE", "REDSHIFT_WORKGROUP",
                                  "REDSHIFT_CLUSTER_ID", "REDSHIFT_SECRET_ARN",
                                  "REDSHIFT_DB_USER", "REDSHIFT_COPY_ROLE_ARN"},
        "HandleFailureFunction": {"EMR_SERVERLESS_APPLICATION_ID"},
        "CleanupExecutionFunction": {"EMR_SERVERLESS_APPLICATION_ID"},
        "TrackCostFunction": {"RATE_CARD_PARAMETER", "EMR_SERVERLESS_ARCHITECTURE",
                              "LAMBDA_MEMORY_MB"},
        "AutoTerminatorFunction": {"IDLE_THRESHOLD_MINUTES", "GRACE_PERIOD_MINUTES", "DRY_RUN",
                                   "ALLOW_PROTECTED_CLUSTER_IDS"},
        "PlanBackfillFunction": {"PIPELINE_STATE_MACHINE_ARN"},
        "TriggerDerivedFunction": {"PIPELINE_STATE_MACHINE_ARN"},
    }
    services = set()
    for name, function in functions.items():
        env = _function_env(template, function)
        missing = (common | specific.get(name, set())) - set(env)
        assert not missing, f"{name}: missing {sorted(missing)}"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "EmrPipelines"
        services.add(env["POWERTOOLS_SERVICE_NAME"])
    assert len(services) == len(functions), "one POWERTOOLS_SERVICE_NAME per function"


def test_layer(resources: dict[str, Any]) -> None:
    layer = resources["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/common"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"]["BuildMethod"] == "python3.13"


# --- IAM -------------------------------------------------------------------------------------


def test_no_wildcard_actions_in_allow(iam_statements: list[tuple[str, dict[str, Any]]]) -> None:
    assert iam_statements
    for resource, statement in iam_statements:
        assert "NotAction" not in statement, resource
        if statement["Effect"] != "Allow":
            continue
        for action in _as_list(statement["Action"]):
            assert isinstance(action, str) and "*" not in action, f"{resource}: {action}"


def test_wildcard_denies_are_only_tls_guards(
        iam_statements: list[tuple[str, dict[str, Any]]]) -> None:
    for resource, statement in iam_statements:
        if statement["Effect"] == "Deny":
            assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, resource


def test_star_resources_only_where_aws_requires_them(
        iam_statements: list[tuple[str, dict[str, Any]]]) -> None:
    for resource, statement in iam_statements:
        if statement["Effect"] != "Allow" or "*" not in _as_list(statement.get("Resource")):
            continue
        actions = set(_as_list(statement["Action"]))
        assert actions <= ACTIONS_WITHOUT_RESOURCE_TYPES, (
            f"{resource}: {sorted(actions - ACTIONS_WITHOUT_RESOURCE_TYPES)} on Resource '*'")


def test_clusters_are_created_only_with_this_apps_tag(
        iam_statements: list[tuple[str, dict[str, Any]]]) -> None:
    for resource, statement in iam_statements:
        actions = set(_as_list(statement["Action"]))
        if statement["Effect"] == "Allow" and actions & {
                "elasticmapreduce:RunJobFlow", "elasticmapreduce:TerminateJobFlows"}:
            condition = json.dumps(statement.get("Condition", {}))
            assert "pipeline:app" in condition, f"{resource}: {sorted(actions)} without tag"


def test_pass_role_only_for_the_emr_roles(
        iam_statements: list[tuple[str, dict[str, Any]]]) -> None:
    allowed = {"EmrJobRole", "EmrServiceRole", "EmrInstanceRole"}
    for resource, statement in iam_statements:
        if "iam:PassRole" in _as_list(statement["Action"]):
            targets = {r["Fn::GetAtt"][0] for r in _as_list(statement["Resource"])}
            assert targets <= allowed, resource


# --- storage ---------------------------------------------------------------------------------


def test_buckets_are_encrypted_private_and_tls_only(resources: dict[str, Any]) -> None:
    buckets = [n for n, r in resources.items() if r["Type"] == "AWS::S3::Bucket"]
    assert set(buckets) >= {"RawBucket", "CuratedBucket", "ArtifactsBucket"}
    policies = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"]
    for name in buckets:
        props = resources[name]["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        block = props["PublicAccessBlockConfiguration"]
        assert all(block[k] is True for k in ("BlockPublicAcls", "BlockPublicPolicy",
                                               "IgnorePublicAcls", "RestrictPublicBuckets")), name
        mine = [p for p in policies if p["Bucket"] == {"Ref": name}]
        assert any(s["Effect"] == "Deny"
                   and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for p in mine for s in p["PolicyDocument"]["Statement"]), name
        rules = props["LifecycleConfiguration"]["Rules"]
        assert any("AbortIncompleteMultipartUpload" in r for r in rules), name


def test_raw_bucket_sends_events_and_keeps_versions(resources: dict[str, Any]) -> None:
    props = resources["RawBucket"]["Properties"]
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"] == {
        "EventBridgeEnabled": True}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}


def test_lifecycle_expiry(resources: dict[str, Any]) -> None:
    def expiring(bucket: str) -> dict[str, Any]:
        return {r.get("Prefix"): r.get("ExpirationInDays")
                for r in resources[bucket]["Properties"]["LifecycleConfiguration"]["Rules"]}

    assert expiring("ArtifactsBucket")["logs/"] == {"Ref": "LogRetentionDays"}
    assert expiring("CuratedBucket")["quarantine/"] == {"Ref": "QuarantineRetentionDays"}


def test_ledger(resources: dict[str, Any]) -> None:
    props = resources["RunLedger"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "run_id", "KeyType": "HASH"}]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    (index,) = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == "by_dataset"]
    assert index["KeySchema"] == [{"AttributeName": "dataset", "KeyType": "HASH"},
                                  {"AttributeName": "started_at", "KeyType": "RANGE"}]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types == {"run_id": "S", "dataset": "S", "started_at": "S"}


def test_emr_serverless_application(resources: dict[str, Any]) -> None:
    props = resources["EmrServerlessApplication"]["Properties"]
    assert props["Type"] == "SPARK"
    assert props["ReleaseLabel"] == {"Ref": "EmrReleaseLabel"}
    assert props["Architecture"] == {"Ref": "EmrServerlessArchitecture"}
    assert props["AutoStartConfiguration"] == {"Enabled": True}
    assert props["AutoStopConfiguration"]["Enabled"] is True
    assert set(props["MaximumCapacity"]) == {"Cpu", "Memory", "Disk"}
    tags = {t["Key"] for t in props["Tags"]}
    assert {"Project", "Environment", "CostCenter", "pipeline:app"} <= tags


def test_parameter_defaults(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["EmrReleaseLabel"]["Default"] == "emr-spark-8.1.0"
    assert params["EmrServerlessArchitecture"]["Default"] == "ARM64"
    assert params["EmrServerlessIdleTimeoutMinutes"]["Default"] == 5


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_samconfig_environments(samconfig: dict[str, Any], template: dict[str, Any],
                                env: str) -> None:
    deploy = samconfig[env]["deploy"]["parameters"]
    assert deploy["region"] == "eu-west-1"
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    keys = {item.split("=", 1)[0] for item in deploy["parameter_overrides"]}
    assert keys <= set(template["Parameters"]), sorted(keys - set(template["Parameters"]))
    assert f"Environment={env}" in deploy["parameter_overrides"]
