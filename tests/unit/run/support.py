"""What the run-path tests share (tests/unit/run, tests/unit/quality_gate, tests/unit/functions):
the environment the template gives the run-path functions, the bucket names, the sample day, a
copy of the catalog, and the `$$.Execution` the state machine passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline_aws.ledger import LedgerPort
from tests.support.aws import ACCOUNT, APP, BASE_ENV, REGION, REPO, TOPIC_ARN, execution_arn

RAW = f"{APP}-raw"
CURATED = f"{APP}-curated"
ARTIFACTS = f"{APP}-artifacts"
SAMPLE = REPO / "sample_data" / "online_retail" / "2010-12-01.csv"
KEY = "online_retail/2010-12-01.csv"
CODE_VERSION = "2026.11.21-abc1234"

# BASE_ENV plus the variables the template gives ResolveRun, StartLoad, RecordRun,
# HandleFailure and EvaluateQuality.
RUN_ENV = {
    **BASE_ENV,
    "ALERT_TOPIC_ARN": TOPIC_ARN,
    "RAW_BUCKET": RAW,
    "CURATED_BUCKET": CURATED,
    "ARTIFACTS_BUCKET": ARTIFACTS,
    "JOB_CODE_VERSION": CODE_VERSION,
    "EMR_SUBNET_IDS": "subnet-0a1b2c3d4e5f60718,subnet-0f1e2d3c4b5a69788",
    "REDSHIFT_DATABASE": "analytics",
    "REDSHIFT_WORKGROUP": APP,
    "REDSHIFT_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rs-admin-AbCdEf",
    "REDSHIFT_COPY_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{APP}-RedshiftCopyRole",
}
# Variables a developer's shell may hold that would change what a test sees.
UNSET = ("AWS_PROFILE", "POWERTOOLS_SERVICE_NAME", "MIGRATIONS_DIR",
         "EMR_SERVERLESS_APPLICATION_ID", "REDSHIFT_CLUSTER_ID", "REDSHIFT_DB_USER")


def register(ledger: LedgerPort, event: dict[str, Any], status: str = "RUNNING") -> str:
    """The run's ledger item as ResolveRun created it, for an event of a later state."""
    run = event["state"]["run"]
    ledger.create_run({
        "run_id": run["run_id"], "dataset": run["dataset"], "partition": run["partition"],
        "started_at": run["started_at"], "status": status, "attempt": run["attempt"],
        "execution_arn": event["execution"]["Id"]})
    return str(run["run_id"])


def execution(name: str = "exec-1") -> dict[str, str]:
    """`$$.Execution` as the state machine passes it (the fields the functions read)."""
    return {"Id": execution_arn(name), "Name": name, "StartTime": "2026-11-21T10:00:00.000Z"}


def write_catalog(directory: Path, **overrides: Any) -> Path:
    """A copy of the real online_retail catalog entry (top-level sections replaced by
    `overrides`) with a rules file, so tests do not depend on the rules being written yet."""
    directory.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((REPO / "datasets" / "online_retail.yaml").read_text())
    for key, value in overrides.items():
        data[key] = value
    (directory / "online_retail.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    rules = REPO / "datasets" / "online_retail.dqdl"
    (directory / "online_retail.dqdl").write_text(
        rules.read_text() if rules.is_file() else "Rules = [\n    RowCount > 0\n]\n"
    )
    return directory
