"""The whole verification against moto: its steps in order, and teardown after every outcome."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from verify_aws_helpers import DAY, EXPECTED, RUN_ID, VERSION, last_line

from tests.support.aws import REGION
from verify_aws.config import STACK_PREFIX

HAPPY_STEPS = [
    "sam build", "sam deploy", "read stack outputs", "publish job code",
    "associate COPY role with the warehouse", "upload sample",
    "find the execution the upload started", "wait for the execution",
    "read the run's figures from the ledger", "count the rows in Redshift",
    "check no EMR compute is left running",
]
TEARDOWN_STEPS = [
    "teardown: remove COPY role from the warehouse", "teardown: list stack resources",
    "teardown: empty stack buckets", "teardown: delete stack",
    "teardown: delete retained buckets and ledger",
]


def step_lines(out: str) -> list[str]:
    """The steps in the order they ended ("ok" or "FAILED" lines)."""
    names = []
    for line in out.splitlines():
        text = line.split("] ", 1)[-1]
        if ": ok (" in text or ": FAILED after" in text:
            names.append(text.split(": ok (")[0].split(": FAILED after")[0])
    return names


def stack_name(out: str) -> str:
    return next(w for w in out.split() if w.startswith(STACK_PREFIX))


def assert_nothing_left(stack: str) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName=stack)
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []
    assert boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"] == []


def test_happy_path_runs_every_step_in_order_then_tears_down(world):
    code = world.run()

    out = world.out.getvalue()
    assert code == 0, out
    assert step_lines(out) == HAPPY_STEPS + TEARDOWN_STEPS
    assert last_line(world.out).startswith("verify-aws: PASSED")
    assert f"loaded {EXPECTED['line_items']} rows" in last_line(world.out)
    assert [call[0] for call in world.sam.calls] == ["build", "deploy"]
    deploy = world.sam.calls[1]
    stack = deploy[deploy.index("--stack-name") + 1]
    assert stack.startswith(STACK_PREFIX)
    assert f"JobCodeVersion={VERSION}" in deploy
    assert "RedshiftWorkgroupName=sandbox" in deploy
    # the job code went where make deploy puts it, and the sample into the raw bucket
    assert any(key.endswith("/jobs/current.json") for key in world.s3.put_keys)
    assert any(key.endswith(f"/online_retail/{DAY}.csv") for key in world.s3.put_keys)
    assert len(world.pipeline.started) == 1
    assert world.roles.events == [f"attach {world.roles.events[0].split()[1]}",
                                  f"detach {world.roles.events[0].split()[1]}"]
    assert world.roles.roles == []
    assert RUN_ID in out
    assert_nothing_left(stack)


def test_keep_leaves_the_stack_and_says_how_to_remove_it(world):
    code = world.run("--keep")

    out = world.out.getvalue()
    assert code == 0, out
    stack = stack_name(out)
    assert f"--teardown {stack}" in out
    assert step_lines(out) == HAPPY_STEPS
    boto3.client("cloudformation", region_name=REGION).describe_stacks(StackName=stack)

    world.out.truncate(0)
    assert world.run("--teardown", stack) == 0, world.out.getvalue()
    assert_nothing_left(stack)
    assert world.roles.roles == []


@pytest.mark.parametrize(("arrange", "failing_step", "reason"), [
    (lambda w: setattr(w.pipeline, "rows_in_redshift", 7), "count the rows in Redshift",
     "holds 7 rows for 2010-12-01"),
    (lambda w: setattr(w.sam, "outcome", "fail"), "wait for the execution",
     "ended FAILED: QualityGateFailed: 2 rules failed"),
    (lambda w: setattr(w.sam, "outcome", "duplicate"), "wait for the execution",
     "duplicate delivery"),
    (lambda w: setattr(w.sam, "fail_on", "deploy"), "sam deploy", "sam deploy exited 1"),
])
def test_a_failing_step_is_named_and_the_stack_is_still_torn_down(world, arrange, failing_step,
                                                                   reason):
    arrange(world)

    code = world.run()

    out = world.out.getvalue()
    assert code == 1, out
    assert last_line(world.out).startswith(f"verify-aws: FAILED at step '{failing_step}'")
    assert reason in last_line(world.out)
    ran = step_lines(out)
    assert ran[ran.index(failing_step) + 1:] == [
        s for s in TEARDOWN_STEPS
        if "COPY role" not in s or "associate COPY role with the warehouse" in ran]
    assert_nothing_left(stack_name(out))
    assert world.roles.roles == []


def test_ctrl_c_during_the_deploy_still_tears_down(world):
    world.sam.fail_on = "deploy:interrupt"

    code = world.run()

    out = world.out.getvalue()
    assert code == 130, out
    assert step_lines(out)[-4:] == TEARDOWN_STEPS[1:]
    assert last_line(world.out).startswith("verify-aws: interrupted;")
    assert_nothing_left(stack_name(out))


def test_a_cluster_of_the_stack_left_running_fails_the_run(world, monkeypatch):
    """A transient cluster the run left behind (tagged pipeline:app = the stack) is a failure,
    as the design's cost-leak rule says; the check runs after the data checks."""
    from verify_aws import verify

    real = verify.run.leftover_compute

    def with_cluster(emr, emr_serverless, stack, application_id):
        emr.run_job_flow(Name="left", ReleaseLabel="emr-7.0.0",
                         Instances={"KeepJobFlowAliveWhenNoSteps": True, "InstanceCount": 1,
                                    "MasterInstanceType": "m5.xlarge"},
                         JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
                         Tags=[{"Key": "pipeline:app", "Value": stack}])
        emr.run_job_flow(Name="someone-else", ReleaseLabel="emr-7.0.0",
                         Instances={"KeepJobFlowAliveWhenNoSteps": True, "InstanceCount": 1,
                                    "MasterInstanceType": "m5.xlarge"},
                         JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
                         Tags=[{"Key": "pipeline:app", "Value": "another-stack"}])
        return real(emr, emr_serverless, stack, application_id)

    monkeypatch.setattr(verify.run, "leftover_compute", with_cluster)

    code = world.run()

    line = last_line(world.out)
    assert code == 1
    assert line.startswith("verify-aws: FAILED at step 'check no EMR compute is left running'")
    assert line.count("EMR cluster j-") == 1
    assert_nothing_left(stack_name(world.out.getvalue()))
