"""The gate's adapters: the S3 reader of the job's files, the EMF metrics, and the catalog's
history window. Each turns AWS failures into the pipeline's domain errors."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlparse

from aws_lambda_powertools.metrics import EphemeralMetrics
from botocore.exceptions import BotoCoreError, ClientError

from pipeline_aws import domain_error, error_code
from pipeline_aws.lazy import lazy_catalog
from pipeline_core.catalog import Quality
from pipeline_core.errors import InvalidInput

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


def not_written(uri: str) -> InvalidInput:
    """The error for a file the Spark job should have written and did not."""
    return InvalidInput(f"{uri} does not exist: the Spark job did not write it")


def json_document(raw: bytes, uri: str) -> Any:
    """The JSON document in `raw`; InvalidInput naming `uri` when it is not one."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"{uri} is not valid JSON: {e}") from e


class S3JsonReader:
    """Reads one JSON document from S3; a missing or broken file is InvalidInput naming it."""

    def __init__(self, s3_client: Any):
        self._s3 = s3_client

    def read(self, uri: str) -> Any:
        parsed = urlparse(uri)
        try:
            body = self._s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
            raw = body.read()
        except ClientError as e:
            if error_code(e) in _NOT_FOUND:
                raise not_written(uri) from e
            raise domain_error(e, f"reading {uri}") from e
        except BotoCoreError as e:
            raise domain_error(e, f"reading {uri}") from e
        return json_document(raw, uri)


class EmfQualityMetrics:
    """CloudWatch metrics in EMF: per rule type, how many rules passed, warned and failed,
    plus the gate's verdict. Dimensions stay low-cardinality (service, environment, dataset,
    rule_type); the run id is metadata, searchable in the log but never a dimension."""

    OUTCOMES = ("RulePassed", "RuleWarned", "RuleFailed")
    VERDICTS = (("pass", "QualityGatePassed"), ("warn", "QualityGateWarned"),
                ("fail", "QualityGateFailed"))

    def __init__(self, metrics: Any, environment: str | None = None,
                 blob_factory: Callable[[], Any] | None = None):
        self._metrics = metrics
        self._environment = environment
        self._blob_factory = blob_factory or (
            lambda: EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
        )

    def publish(self, dataset: str, run_id: str, verdict: str,
                outcomes: Iterable[tuple[str, str]]) -> None:
        """`outcomes`: one (rule_type, one of OUTCOMES) pair per rule."""
        counts = Counter(outcomes)
        for rule_type in sorted({t for t, _ in counts}):
            blob = self._blob_factory()
            if self._environment:
                blob.add_dimension(name="environment", value=self._environment)
            blob.add_dimension(name="dataset", value=dataset)
            blob.add_dimension(name="rule_type", value=rule_type)
            for name in self.OUTCOMES:
                blob.add_metric(name=name, unit="Count", value=counts[(rule_type, name)])
            blob.add_metadata(key="run_id", value=run_id)
            blob.flush_metrics()
        self._metrics.add_dimension(name="dataset", value=dataset)
        self._metrics.add_metadata(key="run_id", value=run_id)
        for this, name in self.VERDICTS:
            self._metrics.add_metric(name=name, unit="Count", value=int(verdict == this))


def catalog_quality(catalog_dir: str | None = None) -> Callable[[str], Quality]:
    """dataset name -> its catalog `quality` section (the catalog read once, on first use)."""
    catalog = lazy_catalog(catalog_dir)
    return lambda dataset: catalog.get().get(dataset).quality
