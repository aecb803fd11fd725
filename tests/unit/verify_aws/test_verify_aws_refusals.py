"""Nothing starts without usable credentials and the user's confirmation of account and region:
one line, exit 2, no traceback, no `sam` call, no stack."""

from __future__ import annotations

import io

import boto3
import pytest
from botocore.stub import Stubber
from verify_aws_helpers import SANDBOX_ENV

from tests.support.aws import ACCOUNT, REGION
from verify_aws import cli


def refused(world, env: dict[str, str], *extra: str) -> str:
    code = world.run(*extra, env=env)
    out = world.out.getvalue()
    assert code == 2, out
    assert "Traceback" not in out
    assert world.sam.calls == []
    assert boto3.client("cloudformation", region_name=REGION).describe_stacks()["Stacks"] == []
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("verify-aws: refused: ")
    return lines[0]


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in SANDBOX_ENV.items() if k != name}


def test_no_credentials_at_all(monkeypatch, tmp_path):
    """No key, no profile, no SSO, no instance role: botocore finds nothing, and the refusal
    says so in one line before any client other than STS is made."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    out = io.StringIO()

    def no_clients(session, settings):
        raise AssertionError("no client may be made without credentials")

    code = cli.run(["--version", "v1"], SANDBOX_ENV, out, clients_for=no_clients,
                   sam_for=lambda path: pytest.fail("sam must not run"))

    assert code == 2
    assert out.getvalue().strip().splitlines() == [
        "verify-aws: refused: no usable AWS credentials (Unable to locate credentials): "
        "configure a profile or export AWS_PROFILE for the sandbox account"]


def test_expired_credentials_are_refused_too(world):
    sts = boto3.client("sts", region_name=REGION)
    stub = Stubber(sts)
    stub.add_client_error("get_caller_identity", "ExpiredToken",
                          "The security token included in the request is expired")

    class Session:
        def client(self, name):
            return sts

    with stub:
        code = cli.run(["--version", "v1"], SANDBOX_ENV, world.out,
                       session_for=lambda region: Session())

    assert code == 2
    assert "refused: no usable AWS credentials (An error occurred (ExpiredToken)" in \
        world.out.getvalue()


def test_account_not_confirmed_names_the_callers_account(world):
    line = refused(world, without("VERIFY_AWS_ACCOUNT"))

    assert f"set VERIFY_AWS_ACCOUNT={ACCOUNT} to confirm it is a sandbox" in line


def test_account_mismatch_deploys_nothing(world):
    line = refused(world, {**SANDBOX_ENV, "VERIFY_AWS_ACCOUNT": "210987654321"})

    assert f"credentials are for account {ACCOUNT}" in line
    assert "not VERIFY_AWS_ACCOUNT=210987654321: nothing was deployed" in line


@pytest.mark.parametrize(("env", "message"), [
    (without("VERIFY_AWS_REGION"), "set VERIFY_AWS_REGION=<region> to confirm"),
    ({**SANDBOX_ENV, "VERIFY_AWS_REGION": "Ireland"}, "'Ireland' is not an AWS region name"),
    ({**SANDBOX_ENV, "VERIFY_AWS_ACCOUNT": "12345"}, "'12345' is not a 12-digit account id"),
    (without("VERIFY_REDSHIFT_WORKGROUP"), "set exactly one of VERIFY_REDSHIFT_WORKGROUP"),
    ({**SANDBOX_ENV, "VERIFY_REDSHIFT_CLUSTER": "c1"}, "set exactly one of"),
    ({**SANDBOX_ENV, "VERIFY_REDSHIFT_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:"
      "123456789012:secret:x", "VERIFY_REDSHIFT_DB_USER": "u"}, "at most one of"),
    ({**SANDBOX_ENV, "VERIFY_REDSHIFT_DATABASE": "my db"}, "is not a Redshift database name"),
])
def test_incomplete_settings_are_refused(world, env, message):
    assert message in refused(world, env)


@pytest.mark.parametrize(("extra", "message"), [
    (["--day", "2010-12-09"], "no sample for --day 2010-12-09"),
    (["--day", "2010-13-01"], "is not a YYYY-MM-DD date"),
    (["--teardown", "emr-pipelines-prod"], "only removes verification stacks"),
    (["--timeout-minutes", "0"], "must be positive"),
])
def test_bad_arguments_are_refused(world, extra, message):
    assert message in refused(world, SANDBOX_ENV, *extra)


def test_an_unpackaged_job_version_is_refused(world):
    code = cli.run(["--version", "never-packaged", "--jobs-dir", str(world.jobs_dir)],
                   SANDBOX_ENV, world.out,
                   session_for=lambda region: boto3.session.Session(region_name=region))

    assert code == 2
    assert "is not packaged: run make package-jobs" in world.out.getvalue()


def test_a_missing_profile_is_a_refusal(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile-anywhere")
    out = io.StringIO()

    assert cli.run(["--version", "v1"], SANDBOX_ENV, out) == 2
    assert out.getvalue().startswith("verify-aws: refused: no usable AWS credentials")
    assert "no-such-profile-anywhere" in out.getvalue()

