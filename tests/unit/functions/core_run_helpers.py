"""Names and event helpers shared by the core run Lambda tests (a unique module name, so it
cannot collide with other test folders' helpers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
SAMPLE = REPO / "sample_data" / "online_retail" / "2010-12-01.csv"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
RAW = "emr-pipelines-dev-raw"
CURATED = "emr-pipelines-dev-curated"
ARTIFACTS = "emr-pipelines-dev-artifacts"
LEDGER = "emr-pipelines-dev-ledger"
TOPIC = "emr-pipelines-dev-alerts"
EXECUTION_PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:emr-pipelines-dev-pipeline:"

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "ENVIRONMENT": "dev",
    "APP_NAME": "emr-pipelines-dev",
    "LEDGER_TABLE": LEDGER,
    "ALERT_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC}",
    "RAW_BUCKET": RAW,
    "CURATED_BUCKET": CURATED,
    "ARTIFACTS_BUCKET": ARTIFACTS,
    "JOB_CODE_VERSION": "2026.11.21-abc1234",
    "EMR_SUBNET_IDS": "subnet-0a1b2c3d4e5f60718,subnet-0f1e2d3c4b5a69788",
    "REDSHIFT_DATABASE": "analytics",
    "REDSHIFT_WORKGROUP": "emr-pipelines-dev",
    "REDSHIFT_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rs-admin-AbCdEf",
    "REDSHIFT_COPY_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/emr-pipelines-dev-RedshiftCopyRole",
    "POWERTOOLS_METRICS_NAMESPACE": "EmrPipelines",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


def read_event(function: str, name: str) -> dict[str, Any]:
    return json.loads((EVENTS / function / name).read_text())


def event_files(function: str) -> list[str]:
    return sorted(p.name for p in (EVENTS / function).glob("*.json"))


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
