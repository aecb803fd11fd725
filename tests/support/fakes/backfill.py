"""In-memory fakes of PlanBackfill's ports (pipeline_aws.backfill): the raw listing, the plan
store (JSON round trip, as S3 keeps it) and the ledger's loaded object versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipeline_core.backfill_plan import RawObject


class FakeLister:
    def __init__(self, objects: list[RawObject] | None = None):
        self.objects = list(objects or [])
        self.prefixes: list[str] = []

    def list_latest(self, bucket: str, prefix: str) -> Iterator[RawObject]:
        self.prefixes.append(prefix)
        return iter([o for o in self.objects if o.key.startswith(prefix)])


class FakeStore:
    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}

    def put_json(self, uri: str, data: Any) -> None:
        self.docs[uri] = json.loads(json.dumps(data))

    def get_json(self, uri: str) -> Any:
        return self.docs[uri]


class FakeLoadedVersions:
    """partition -> the object version its loaded run read (None: unversioned)."""

    def __init__(self, loaded: dict[str, str | None] | None = None):
        self.loaded = dict(loaded or {})

    def loaded_versions(self, dataset: str, partitions: list[str]) -> dict[str, str | None]:
        return {p: v for p, v in self.loaded.items() if p in partitions}
