"""The verification: preflight, deploy, one run, checks, teardown; each step timed.

Teardown runs whatever happened before it (a failed step, Ctrl-C), unless --keep: the copy role
leaves the warehouse, the stack's buckets are emptied (versions included), the stack is deleted
and then what the template retains (raw and curated buckets, run ledger). A teardown step that
fails does not stop the others, and the exit names the first step that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws.ledger import RunLedger
from pipeline_aws.redshift import RedshiftDataPort
from verify_aws import Refusal
from verify_aws import pipeline_run as run
from verify_aws import stack as st
from verify_aws.config import Settings
from verify_aws.copy_role import CopyRoleBinding
from verify_aws.runner import SamRunner
from verify_aws.timeline import StepFailed, Timeline, reason_of

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class Clients:
    """boto3 clients for the account and region confirmed (moto in the tests)."""

    cloudformation: Any
    s3: Any
    stepfunctions: Any
    dynamodb: Any  # the boto3 resource: the ledger adapter reads a Table
    emr: Any
    emr_serverless: Any
    redshift_data: RedshiftDataPort
    copy_roles: CopyRoleBinding


@dataclass
class Progress:
    """What exists so far, so teardown knows what to remove."""

    deploy_started: bool = False
    outputs: dict[str, str] = field(default_factory=dict)
    attached_role: str = ""
    run_id: str = ""
    rows: int = 0


def caller_identity(sts: Any) -> tuple[str, str]:
    """(account, ARN) of the credentials; Refusal in one line when there are none usable."""
    try:
        identity = sts.get_caller_identity()
    except (BotoCoreError, ClientError) as e:
        raise Refusal(f"no usable AWS credentials ({reason_of(e)}): configure a profile or "
                      "export AWS_PROFILE for the sandbox account") from e
    return str(identity["Account"]), str(identity["Arn"])


def deploy(settings: Settings, clients: Clients, sam: SamRunner, timeline: Timeline,
           progress: Progress) -> None:
    with timeline.step("sam build"):
        sam.run(st.build_args())
    with timeline.step("sam deploy") as note:
        progress.deploy_started = True
        sam.run(st.deploy_args(settings))
        note.detail = settings.stack
    with timeline.step("read stack outputs") as note:
        progress.outputs = st.stack_outputs(clients.cloudformation, settings.stack)
        note.detail = f"raw bucket {progress.outputs['RawBucketName']}"
    with timeline.step("publish job code") as note:
        st.publish_job_code(clients.s3, progress.outputs["ArtifactsBucketName"],
                            settings.job_package, settings.version)
        note.detail = f"jobs/{settings.version}/"
    with timeline.step("associate COPY role with the warehouse") as note:
        role = progress.outputs["RedshiftCopyRoleArn"]
        if clients.copy_roles.attach(role):
            progress.attached_role = role
        note.detail = role


def exercise(settings: Settings, clients: Clients, timeline: Timeline,
             progress: Progress, sleep: Callable[[float], None]) -> None:
    outputs, sfn = progress.outputs, clients.stepfunctions
    machine = outputs["PipelineStateMachineArn"]
    with timeline.step("upload sample") as note:
        upload = run.upload_sample(clients.s3, outputs["RawBucketName"], settings.sample,
                                   settings.sample_key)
        note.detail = f"s3://{upload.bucket}/{upload.key}"
    deadline = run.Deadline(settings.timeout_seconds)
    with timeline.step("find the execution the upload started") as note:
        arn = run.find_execution(sfn, machine, upload, deadline, sleep, settings.poll_seconds)
        note.detail = arn
    with timeline.step("wait for the execution") as note:
        finished = run.wait_for(sfn, arn, deadline, sleep, settings.poll_seconds)
        progress.run_id = run.run_id_of(finished)
        note.detail = f"SUCCEEDED, run {progress.run_id}"
    with timeline.step("read the run's figures from the ledger") as note:
        ledger = RunLedger(clients.dynamodb.Table(outputs["RunLedgerTableName"]))
        expected = run.expected_rows(ledger, progress.run_id, settings.sample)
        note.detail = f"{expected} lines written"
    with timeline.step("count the rows in Redshift") as note:
        note.detail = run.check_rows(clients.redshift_data, settings.day, progress.run_id,
                                     expected)
        progress.rows = expected
    with timeline.step("check no EMR compute is left running"):
        left = run.leftover_compute(clients.emr, clients.emr_serverless, settings.stack,
                                    outputs["EmrServerlessApplicationId"])
        if left:
            raise RuntimeError("still running: " + "; ".join(left))


def _attempt(timeline: Timeline, name: str, failures: list[StepFailed],
             action: Callable[[], object]) -> None:
    """Run one teardown step; record its failure and go on with the next."""
    try:
        with timeline.step(name) as note:
            note.detail = str(action() or "")
    except StepFailed as e:
        failures.append(e)


def teardown(settings: Settings, clients: Clients, timeline: Timeline,
             progress: Progress) -> list[StepFailed]:
    failures: list[StepFailed] = []
    cfn, s3 = clients.cloudformation, clients.s3
    if progress.attached_role:
        _attempt(timeline, "teardown: remove COPY role from the warehouse", failures,
                 lambda: clients.copy_roles.detach(progress.attached_role))
    resources: dict[str, str] = {}

    def find() -> str:
        if not st.stack_exists(cfn, settings.stack):
            return "no stack was created"
        resources.update(st.stack_resources(cfn, settings.stack))
        return f"{len(resources)} resources"

    _attempt(timeline, "teardown: list stack resources", failures, find)
    if not resources:
        return failures
    _attempt(timeline, "teardown: empty stack buckets", failures,
             lambda: f"{st.empty_stack_buckets(s3, resources)} object versions deleted")
    _attempt(timeline, "teardown: delete stack", failures,
             lambda: st.delete_stack(cfn, settings.stack, settings.poll_seconds,
                                     settings.timeout_seconds))

    def retained() -> str:
        done = st.delete_retained(s3, clients.dynamodb.meta.client, resources)
        return ", ".join([*done.buckets_deleted, *done.tables_deleted]) or "nothing left"

    _attempt(timeline, "teardown: delete retained buckets and ledger", failures, retained)
    return failures


def kept(settings: Settings, out: TextIO) -> None:
    print(f"--keep: stack {settings.stack} is left in {settings.account}/{settings.region}; "
          f"delete it with: make verify-aws VERIFY_ARGS='--teardown {settings.stack}'",
          file=out)


def verify(settings: Settings, clients: Clients, sam: SamRunner, out: TextIO,
           sleep: Callable[[float], None], timeline: Timeline | None = None) -> int:
    """Deploy, run, check, tear down; 0 when every step passed, 1 naming the first failure."""
    timeline = timeline or Timeline(out)
    progress = Progress()
    failure: StepFailed | None = None
    cleanup: list[StepFailed] = []
    try:
        try:
            deploy(settings, clients, sam, timeline, progress)
            exercise(settings, clients, timeline, progress, sleep)
        except StepFailed as e:
            failure = e
    finally:
        if settings.keep:
            kept(settings, out)
        elif progress.deploy_started:
            cleanup = teardown(settings, clients, timeline, progress)
    return report(settings, progress, [f for f in [failure, *cleanup] if f], out)


def teardown_only(settings: Settings, clients: Clients, out: TextIO) -> int:
    """--teardown STACK: remove a stack an earlier --keep left (and its COPY role)."""
    timeline = Timeline(out)
    progress = Progress(deploy_started=True)
    failures: list[StepFailed] = []

    def copy_role() -> str:
        if not st.stack_exists(clients.cloudformation, settings.stack):
            return "no such stack"
        stack = clients.cloudformation.describe_stacks(StackName=settings.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        progress.attached_role = outputs.get("RedshiftCopyRoleArn", "")
        return progress.attached_role or "no COPY role output"

    _attempt(timeline, "teardown: read stack outputs", failures, copy_role)
    failures += teardown(settings, clients, timeline, progress)
    return report(settings, progress, failures, out, what="teardown")


def report(settings: Settings, progress: Progress, failures: list[StepFailed], out: TextIO,
           what: str = "verify-aws") -> int:
    if failures:
        first = failures[0]
        more = f" (and {len(failures) - 1} more failed steps)" if len(failures) > 1 else ""
        print(f"{what}: FAILED at step '{first.step}': {first.reason}{more}", file=out)
        return EXIT_FAILED
    if what == "teardown":
        print(f"teardown: PASSED: {settings.stack} removed", file=out)
    else:
        print(f"verify-aws: PASSED: {settings.stack} ran {settings.sample_key} as run "
              f"{progress.run_id} and loaded {progress.rows} rows"
              + ("; stack kept" if settings.keep else "; torn down"), file=out)
    return EXIT_OK


def env_summary(settings: Settings) -> Mapping[str, str]:
    return {"account": settings.account, "region": settings.region, "stack": settings.stack,
            "job code": settings.version, "sample": settings.sample_key}
