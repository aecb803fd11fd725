"""moto (Step Functions executing its stand-in definitions), the verification's environment and
the world of verify_aws_helpers."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from verify_aws_helpers import (
    SANDBOX_ENV,
    VERSION,
    FakeCopyRoles,
    FakeSam,
    Pipeline,
    S3WithEvents,
    job_package,
    moto_clients,
)

from tests.support.aws import REGION
from tests.support.fakes.redshift_data import FakeRedshiftData
from verify_aws import cli
from verify_aws.verify import Clients


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@dataclass
class World:
    sam: FakeSam
    pipeline: Pipeline
    roles: FakeCopyRoles
    s3: S3WithEvents
    jobs_dir: Path
    out: io.StringIO

    def clients(self, session: object, settings: object) -> Clients:
        clients, _ = moto_clients(self.pipeline, self.roles)
        clients.s3 = self.s3
        return clients

    def run(self, *extra: str, env: dict[str, str] | None = None) -> int:
        argv = ["--version", VERSION, "--jobs-dir", str(self.jobs_dir), "--poll-seconds", "1",
                "--timeout-minutes", "1", *extra]
        return cli.run(argv, SANDBOX_ENV if env is None else env, self.out,
                       session_for=lambda region: boto3.session.Session(region_name=region),
                       clients_for=self.clients,
                       sam_for=lambda path: self.sam, sleep=lambda s: time.sleep(0.02))


@pytest.fixture
def world(aws: None, tmp_path: Path) -> World:
    pipeline = Pipeline(FakeRedshiftData())
    roles = FakeCopyRoles()
    s3 = S3WithEvents(boto3.client("s3", region_name=REGION), pipeline)
    return World(FakeSam(), pipeline, roles, s3, job_package(tmp_path / "jobs"), io.StringIO())
