"""The pieces of a verification one at a time: the deploy command against template.yaml, how
the execution is found and waited for, what the expected row count is, and the COPY role."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from verify_aws_helpers import DAY, EXPECTED, RUN_ID, SAMPLE

from local_runtime.cfn import load_template
from tests.support.aws import REGION, REPO
from tests.support.fakes.ledger import FakeLedger
from tests.support.fakes.redshift_data import FakeRedshiftData
from verify_aws import pipeline_run as run
from verify_aws.config import RedshiftTarget, Settings, stack_name
from verify_aws.copy_role import ClusterRoles, NamespaceRoles, role_arns
from verify_aws.stack import deploy_args, deploy_parameters

ROLE = "arn:aws:iam::123456789012:role/emr-pipeline-verify-x-RedshiftCopyRole-ABC"
OTHER = "arn:aws:iam::123456789012:role/analyst-copy"


def settings(**redshift: str) -> Settings:
    return Settings(account="123456789012", region=REGION, stack="emr-pipeline-verify-1",
                    version="v1", job_package=Path("build/jobs/v1"), sample=SAMPLE, day=DAY,
                    redshift=RedshiftTarget(**{"database": "dev", **redshift}))


# -- the deploy command --------------------------------------------------------------------

@pytest.mark.parametrize("target", [{"workgroup": "sandbox"},
                                    {"cluster": "c1", "db_user": "loader"}])
def test_every_deploy_parameter_is_one_the_template_declares_and_allows(target):
    template = load_template(REPO / "template.yaml")
    declared = template["Parameters"]
    params = deploy_parameters(settings(**target))

    assert set(params) <= set(declared)
    for name, value in params.items():
        allowed = declared[name].get("AllowedValues")
        assert allowed is None or value in [str(v) for v in allowed], name
    # the template's OneRedshiftTarget rule: exactly one of workgroup and cluster
    targets = [params.get("RedshiftWorkgroupName"), params.get("RedshiftClusterIdentifier")]
    assert sum(bool(t) for t in targets) == 1


def test_the_deploy_names_its_own_stack_and_region():
    args = deploy_args(settings(workgroup="sandbox"))

    assert args[:5] == ["deploy", "--stack-name", "emr-pipeline-verify-1", "--region", REGION]
    assert "--no-confirm-changeset" in args
    assert "pipeline:verify=emr-pipeline-verify-1" in args
    assert "--config-env" not in args  # never the dev or prod settings of samconfig.toml


def test_stack_names_are_unique_per_second_and_valid_for_the_template():
    name = stack_name(datetime(2026, 11, 30, 19, 5, 7, tzinfo=UTC))

    assert name == "emr-pipeline-verify-20261130-190507"
    assert len(f"{name}-pipeline") <= 80  # Step Functions state machine names


# -- finding and waiting for the execution -------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def event_input(bucket: str, key: str) -> str:
    return json.dumps({"detail-type": "Object Created",
                       "detail": {"bucket": {"name": bucket}, "object": {"key": key}}})


@pytest.fixture
def machine(aws):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600,
                                                          "End": True}}}
    arn = sfn.create_state_machine(name="m", definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    return sfn, arn


def test_the_execution_is_the_one_whose_event_names_the_object(machine):
    """AWS Step Functions API Reference, ListExecutions
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListExecutions.html):
    "Results are sorted by time, with the most recent execution first" (the search stops at
    the first one older than the upload) and the list is eventually consistent (it is polled)."""
    sfn, arn = machine
    upload = run.Upload("raw", "online_retail/2010-12-01.csv",
                        datetime.now(UTC) - timedelta(minutes=2))
    sfn.start_execution(stateMachineArn=arn, name="other-key",
                        input=event_input("raw", "online_retail/2010-12-02.csv"))
    sfn.start_execution(stateMachineArn=arn, name="other-bucket",
                        input=event_input("elsewhere", upload.key))
    sfn.start_execution(stateMachineArn=arn, name="schedule", input=json.dumps({"x": 1}))
    ours = sfn.start_execution(stateMachineArn=arn, name="ours",
                               input=event_input("raw", upload.key))["executionArn"]
    clock = Clock()

    found = run.find_execution(sfn, arn, upload, run.Deadline(60, clock), clock.sleep, 5)

    assert found == ours


def test_no_execution_before_the_deadline_says_what_to_look_at(machine):
    sfn, arn = machine
    sfn.start_execution(stateMachineArn=arn, name="before",
                        input=event_input("raw", "online_retail/2010-12-01.csv"))
    upload = run.Upload("raw", "online_retail/2010-12-01.csv",
                        datetime.now(UTC) + timedelta(hours=1))  # uploaded after "before"
    clock = Clock()

    with pytest.raises(RuntimeError, match="is the raw bucket's EventBridge rule enabled"):
        run.find_execution(sfn, arn, upload, run.Deadline(30, clock), clock.sleep, 10)
    assert clock.now == 30


def test_an_execution_running_past_the_deadline_is_stopped(machine):
    sfn, arn = machine
    execution = sfn.start_execution(stateMachineArn=arn, name="slow", input="{}")["executionArn"]
    clock = Clock()

    with pytest.raises(RuntimeError, match="still RUNNING after 20s; it was stopped"):
        run.wait_for(sfn, execution, run.Deadline(20, clock), clock.sleep, 10)
    # moto's executing mode applies StopExecution on its worker thread, a moment later
    statuses = []
    for _ in range(50):
        statuses.append(sfn.describe_execution(executionArn=execution)["status"])
        if statuses[-1] != "RUNNING":
            break
        time.sleep(0.1)
    assert statuses[-1] == "ABORTED", statuses


def test_a_run_id_that_could_break_the_count_query_is_refused():
    finished = run.Finished("arn", {"run": {"run_id": "x'; drop table t; --"}})

    with pytest.raises(RuntimeError, match=r"no usable run\.run_id"):
        run.run_id_of(finished)
    with pytest.raises(ValueError, match="is not a run id"):
        run.count_sql(DAY, "x' or '1'='1")
    with pytest.raises(ValueError):
        run.count_sql("2010-12-01' or '1'='1", RUN_ID)


# -- the expected figure -------------------------------------------------------------------

def test_the_sample_lines_counted_match_an_independent_count():
    assert run.data_lines(SAMPLE) == EXPECTED["lines"] == 3108


def ledger_with(**changes: object) -> FakeLedger:
    ledger = FakeLedger()
    item = {"run_id": RUN_ID, "dataset": "online_retail", "partition": DAY,
            "started_at": "2026-11-30T10:00:00Z", "status": "SUCCEEDED",
            "lines": {"in": EXPECTED["lines"], "out": EXPECTED["line_items"]},
            "rows_loaded": {"sales_line_items": EXPECTED["line_items"]}}
    item.update(changes)
    ledger.create_run(item)
    return ledger


def test_the_expected_rows_are_the_runs_lines_written():
    assert run.expected_rows(ledger_with(), RUN_ID, SAMPLE) == EXPECTED["line_items"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"status": "FAILED"}, "is FAILED in the ledger"),
    ({"lines": {"in": 10, "out": 9}}, "read 10 lines but 2010-12-01.csv has 3108 data lines"),
    ({"lines": {"in": 3108, "out": 0}}, "wrote 0 lines: nothing to check"),
    ({"rows_loaded": {"sales_line_items": 5}}, "recorded 5 rows loaded"),
])
def test_a_ledger_that_disagrees_fails_the_check(changes, message):
    with pytest.raises(RuntimeError, match=message):
        run.expected_rows(ledger_with(**changes), RUN_ID, SAMPLE)


def test_rows_from_another_run_for_the_day_fail_the_count():
    redshift = FakeRedshiftData()
    redshift.rows[run.count_sql(DAY, RUN_ID)] = [[3064, 3000]]

    with pytest.raises(RuntimeError, match="holds 3064 rows for 2010-12-01 \\(3000 from run"):
        run.check_rows(redshift, DAY, RUN_ID, 3064)


# -- the COPY role -------------------------------------------------------------------------

@pytest.fixture
def creds(monkeypatch):
    """Stubbed clients still sign their requests: fake keys, so botocore looks no further."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

def test_namespace_role_entries_are_read_in_both_forms():
    """GetNamespace's iamRoles: plain ARNs or "IamRole(applyStatus=..., iamRoleArn=...)"."""
    entries = [f"IamRole(applyStatus=in-sync, iamRoleArn={OTHER})",
               f"IamRole(iamRoleArn={ROLE}, applyStatus=adding)", OTHER]

    assert role_arns(entries) == [OTHER, ROLE]


def namespace(roles: list[str], default: str = "", status: str = "AVAILABLE") -> dict:
    ns = {"namespace": {"namespaceName": "sandbox-ns", "iamRoles": roles, "status": status}}
    if default:
        ns["namespace"]["defaultIamRoleArn"] = default
    return ns


def test_a_serverless_namespace_gets_the_role_with_its_other_roles_and_default_kept(creds):
    """Amazon Redshift Management Guide, "Authorizing COPY, UNLOAD, CREATE EXTERNAL FUNCTION,
    and CREATE EXTERNAL SCHEMA operations using IAM roles"
    (https://docs.aws.amazon.com/redshift/latest/mgmt/copy-unload-iam-role.html): COPY's role
    must be associated with the warehouse. Redshift Serverless API Reference, UpdateNamespace
    (https://docs.aws.amazon.com/redshift-serverless/latest/APIReference/API_UpdateNamespace.html):
    iamRoles "must be updated together with defaultIamRoleArn"."""
    client = boto3.client("redshift-serverless", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("get_workgroup", {"workgroup": {"namespaceName": "sandbox-ns"}},
                      {"workgroupName": "sandbox"})
    stub.add_response("get_namespace", namespace([f"IamRole(applyStatus=in-sync, "
                                                  f"iamRoleArn={OTHER})"], OTHER))
    stub.add_response("update_namespace", namespace([OTHER, ROLE], OTHER, "MODIFYING"),
                      {"namespaceName": "sandbox-ns", "iamRoles": [OTHER, ROLE],
                       "defaultIamRoleArn": OTHER})
    stub.add_response("get_namespace", namespace([OTHER, ROLE], OTHER, "MODIFYING"))
    stub.add_response("get_namespace", namespace([OTHER, ROLE], OTHER))
    # detach: the list without the role, the default left as it was
    stub.add_response("get_workgroup", {"workgroup": {"namespaceName": "sandbox-ns"}})
    stub.add_response("get_namespace", namespace([OTHER, ROLE], OTHER))
    stub.add_response("update_namespace", namespace([OTHER], OTHER),
                      {"namespaceName": "sandbox-ns", "iamRoles": [OTHER],
                       "defaultIamRoleArn": OTHER})
    stub.add_response("get_namespace", namespace([OTHER], OTHER))
    sleeps: list[float] = []

    with stub:
        roles = NamespaceRoles(client, "sandbox", poll_seconds=3, sleep=sleeps.append)
        assert roles.attach(ROLE) is True
        roles.detach(ROLE)
    stub.assert_no_pending_responses()
    assert sleeps == [3]


def test_a_role_the_namespace_already_had_is_left_alone(creds):
    client = boto3.client("redshift-serverless", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("get_workgroup", {"workgroup": {"namespaceName": "sandbox-ns"}})
    stub.add_response("get_namespace", namespace([ROLE], ROLE))

    with stub:
        assert NamespaceRoles(client, "sandbox").attach(ROLE) is False
    stub.assert_no_pending_responses()


def test_a_provisioned_cluster_gets_the_role_and_it_is_waited_for(creds):
    client = boto3.client("redshift", region_name=REGION)
    stub = Stubber(client)

    def clusters(*roles: tuple[str, str]) -> dict:
        return {"Clusters": [{"ClusterIdentifier": "c1", "IamRoles": [
            {"IamRoleArn": arn, "ApplyStatus": status} for arn, status in roles]}]}

    stub.add_response("describe_clusters", clusters((OTHER, "in-sync")),
                      {"ClusterIdentifier": "c1"})
    stub.add_response("modify_cluster_iam_roles", {},
                      {"ClusterIdentifier": "c1", "AddIamRoles": [ROLE]})
    stub.add_response("describe_clusters", clusters((OTHER, "in-sync"), (ROLE, "adding")))
    stub.add_response("describe_clusters", clusters((OTHER, "in-sync"), (ROLE, "in-sync")))
    stub.add_response("describe_clusters", clusters((OTHER, "in-sync"), (ROLE, "in-sync")))
    stub.add_response("modify_cluster_iam_roles", {},
                      {"ClusterIdentifier": "c1", "RemoveIamRoles": [ROLE]})
    sleeps: list[float] = []

    with stub:
        roles = ClusterRoles(client, "c1", poll_seconds=2, sleep=sleeps.append)
        assert roles.attach(ROLE) is True
        roles.detach(ROLE)
    stub.assert_no_pending_responses()
    assert sleeps == [2]
