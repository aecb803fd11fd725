"""What the hostile handler cases share: the moto account shaped like template.yaml (a
versioned raw bucket, as the template declares it; the ledger table; the alert topic read back
through an SQS subscriber), trigger builders, and the check that an input object is exactly as
it was delivered (bytes and version)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pipeline_aws.ledger import RunLedger
from tests.support.aws import delivered_alerts, object_created_event
from tests.unit.run.support import RAW, execution

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,UK\n"
GOOD = HEADER + ROW


def s3_event(key: Any, *, bucket: str = RAW, **fields: Any) -> dict[str, Any]:
    """An "Object Created" event for `key` as given (hostile cases pass anything)."""
    return object_created_event(key, bucket=bucket, **fields)


def resolve_payload(event: Any, name: str = "exec-hostile") -> dict[str, Any]:
    return {"event": event, "execution": execution(name), "state_name": "ResolveRun"}


@dataclass(frozen=True)
class Stored:
    """One object version as S3 holds it."""

    bucket: str
    key: str
    body: bytes
    version_id: str
    etag: str


@dataclass
class Account:
    """The moto account of one test."""

    s3: Any
    table: Any
    sqs: Any
    queue_url: str
    stored: list[Stored] = field(default_factory=list)

    @property
    def ledger(self) -> RunLedger:
        return RunLedger(self.table)

    def put_raw(self, key: str, body: bytes, bucket: str = RAW) -> Stored:
        put = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        stored = Stored(bucket, key, body, put.get("VersionId", "null"), put["ETag"].strip('"'))
        assert stored.etag == hashlib.md5(body).hexdigest()  # S3's ETag of a one-part upload
        self.stored.append(stored)
        return stored

    def ledger_items(self) -> list[dict[str, Any]]:
        return list(self.table.scan()["Items"])

    def assert_inputs_untouched(self, bucket: str = RAW) -> None:
        """Every object version put by the test is still there, byte for byte, and no other
        version or object appeared in the raw bucket (the pipeline never writes there)."""
        listed = self.s3.list_object_versions(Bucket=bucket)
        versions = {(v["Key"], v["VersionId"]) for v in listed.get("Versions", [])}
        assert not listed.get("DeleteMarkers"), "the pipeline deleted an input"
        mine = [s for s in self.stored if s.bucket == bucket]
        assert versions == {(s.key, s.version_id) for s in mine}
        for s in mine:
            got = self.s3.get_object(Bucket=bucket, Key=s.key, VersionId=s.version_id)
            assert got["Body"].read() == s.body and got["ETag"].strip('"') == s.etag

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts delivered to the SQS subscriber: subject, attributes and JSON document."""
        return delivered_alerts(self.sqs, self.queue_url)
