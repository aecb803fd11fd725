"""datasets/schema.json and pipeline_core.catalog agree: the real catalog passes both, and each
mutated copy is rejected by both (or, for the optional parts, accepted by both)."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_core.catalog import load_catalog, parse_dataset
from pipeline_core.errors import ConfigurationError

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return mutate


def _cluster_mode_without_cluster(doc: dict[str, Any]) -> None:
    doc["compute"] = {"mode": "cluster"}


def _table_without_keys(doc: dict[str, Any]) -> None:
    doc["load"]["tables"][0] = {"name": "sales_line_items"}


def _table_with_empty_keys(doc: dict[str, Any]) -> None:
    doc["load"]["tables"][0] = {"name": "t", "merge_keys": [], "replace_by": []}


def _format_without_header(fmt: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        doc["source"]["format"] = fmt
        del doc["source"]["header"]

    return mutate


def _derived(changes: dict[str, Any]) -> Mutation:
    """The base dataset as a derived one (no `source`), its derived block changed: a key set
    to None is removed."""
    def mutate(doc: dict[str, Any]) -> None:
        del doc["source"]
        doc["name"] = "retail_trends"  # reads online_retail, which the catalog also holds
        block: dict[str, Any] = {
            "inputs": [{"dataset": "online_retail", "table": "sales_line_items"}],
            "lookback_days": 30, "after_upstream_loads": True}
        block.update(changes)
        doc["derived"] = {k: v for k, v in block.items() if v is not None}

    return mutate


INVALID: dict[str, Mutation] = {
    "unknown top-level field": _set("owner", "someone"),
    "missing name": _delete("name"),
    "upper-case name": _set("name", "OnlineRetail"),
    "reserved word as name": _set("name", "select"),
    "missing source.prefix": _delete("source.prefix"),
    "prefix without trailing slash": _set("source.prefix", "online_retail"),
    "prefix with leading slash": _set("source.prefix", "/online_retail/"),
    "key pattern without partition group": _set("source.key_pattern", r"^online_retail/.*\.csv$"),
    "key pattern not a regex": _set("source.key_pattern", "^(?P<partition>[0-9"),
    "unsupported format": _set("source.format", "parquet"),
    "empty header": _set("source.header", []),
    "csv without header": _delete("source.header"),
    "jsonl with a header": _set("source.format", "jsonl"),
    "text with a header": _set("source.format", "text"),
    "prefix with a wildcard": _set("source.prefix", "online*retail/"),
    "unknown source field": _set("source.quote", "'"),
    "unknown delimiter": _set("source.delimiter", ":"),
    "missing job": _delete("job"),
    "job timeout zero": _set("job.timeout_minutes", 0),
    "job timeout over a day": _set("job.timeout_minutes", 1441),
    "job timeout as text": _set("job.timeout_minutes", "60"),
    "spark conf boolean value": _set("job.spark_conf", {"spark.x": True}),
    "unknown compute mode": _set("compute.mode", "gpu"),
    "cluster mode without cluster": _cluster_mode_without_cluster,
    "bad instance type": _set("compute.cluster.master.instance_types", ["M7G XL"]),
    "capacity zero": _set("compute.cluster.core.capacity", 0),
    "capacity boolean": _set("compute.cluster.core.capacity", True),
    "spot as text": _set("compute.cluster.master.spot", "yes"),
    "cluster without master": _delete("compute.cluster.master"),
    "idle timeout zero": _set("compute.cluster.idle_timeout_minutes", 0),
    "rules file in a folder": _set("quality.rules_file", "rules/online_retail.dqdl"),
    "rules file not .dqdl": _set("quality.rules_file", "online_retail.json"),
    "history runs over 100": _set("quality.history_runs", 101),
    "unknown quality field": _set("quality.strict", True),
    "unsafe schema name": _set("load.schema", "analytics; drop table x"),
    "no tables": _set("load.tables", []),
    "table without merge keys or replace_by": _table_without_keys,
    "table with empty key lists": _table_with_empty_keys,
    "reserved merge key": _set("load.tables.1.merge_keys", ["order"]),
    "merge keys only": _set("load.tables.0", {"name": "t", "merge_keys": ["order_date"]}),
    "unknown load mode": _set("load.tables.0.mode", "append"),
    "full refresh with replace_by": _set("load.tables.0.mode", "full_refresh"),
    "full refresh with merge keys": _set("load.tables.0", {
        "name": "t", "mode": "full_refresh", "merge_keys": ["k"]}),
    "full refresh without snapshot column": _set("load.tables.0", {
        "name": "t", "mode": "full_refresh"}),
    "snapshot column on a partitioned table": _set("load.tables.0.snapshot_column", "d"),
    "unknown table field": _set("load.tables.0.partition_by", ["order_date"]),
    "schedule offset as text": _set("schedule.date_offset_days", "-1"),
    "unknown schedule field": _set("schedule.cron", "cron(0 6 * * ? *)"),
    "schedule timezone as an offset": _set("schedule.timezone", "+09:00"),
    "schedule timezone with spaces": _set("schedule.timezone", "Asia/ Tokyo"),
    "schedule offset over a year": _set("schedule.date_offset_days", -400),
    "negative run cost limit": _set("cost.max_run_usd", -1),
    "zero monthly budget": _set("cost.monthly_budget_usd", 0),
    "null cost limit": _set("cost.max_run_usd", None),
    "backfill batch of zero objects": _set("backfill.max_objects_per_batch", 0),
    "backfill batch over 100 objects": _set("backfill.max_objects_per_batch", 101),
    "backfill batch under a MiB": _set("backfill.max_bytes_per_batch", 1000),
    "backfill concurrency zero": _set("backfill.max_concurrent_batches", 0),
    "backfill concurrency over Map's 40": _set("backfill.max_concurrent_batches", 41),
    "backfill objects as text": _set("backfill.max_objects_per_batch", "31"),
    "unknown backfill field": _set("backfill.max_batches", 3),
    "neither source nor derived": _delete("source"),
    "source and derived": _set("derived", {"inputs": [
        {"dataset": "online_retail", "table": "sales_line_items"}]}),
    "derived without inputs": _derived({"inputs": []}),
    "derived input without table": _derived({"inputs": [{"dataset": "online_retail"}]}),
    "derived lookback zero": _derived({"lookback_days": 0}),
    "derived trigger as text": _derived({"after_upstream_loads": "yes"}),
    "derived model without metric": _derived({"model": {"tolerance": 0.1}}),
    "derived model tolerance over 1": _derived({"model": {"metric": "mae", "tolerance": 2}}),
    "derived model unknown direction": _derived({"model": {"metric": "mae",
                                                           "direction": "up"}}),
    "unknown derived field": _derived({"cron": "x"}),
}

VALID: dict[str, Mutation] = {
    "no description": _delete("description"),
    "no schedule": _delete("schedule"),
    "schedule in Tokyo": _set("schedule.timezone", "Asia/Tokyo"),
    "schedule in New York": _set("schedule.timezone", "America/New_York"),
    "no cost": _delete("cost"),
    "serverless without cluster section": _delete("compute.cluster"),
    "cluster without task group": _delete("compute.cluster.task"),
    "cluster mode": _set("compute.mode", "cluster"),
    "integer cost limit": _set("cost.max_run_usd", 3),
    "numeric spark conf": _set("job.spark_conf", {"spark.executor.cores": 2}),
    "jsonl without header": _format_without_header("jsonl"),
    "text without header": _format_without_header("text"),
    "a full refresh table": _set("load.tables.0", {"name": "t", "mode": "full_refresh",
                                                   "snapshot_column": "as_of"}),
    "a semicolon-separated csv": _set("source.delimiter", ";"),
    "replace_partitions said": _set("load.tables.0.mode", "replace_partitions"),
    "merge keys with replace_by": _set("load.tables.0", {
        "name": "t", "merge_keys": ["k"], "replace_by": ["order_date"]}),
    "no backfill block (defaults)": _delete("backfill"),
    "backfill of one object at a time": _set("backfill.max_objects_per_batch", 1),
    "backfill with only a concurrency": _set("backfill", {"max_concurrent_batches": 40}),
    "a derived dataset": _derived({}),
    "a derived dataset over all history": _derived({"lookback_days": None}),
    "a derived dataset with a model": _derived({"model": {
        "metric": "model_mae", "direction": "lower_is_better", "tolerance": 0.05,
        "retrain_days": 7}}),
}


@pytest.fixture(scope="module")
def base_doc(catalog_files: list[Path]) -> dict[str, Any]:
    online_retail = [p for p in catalog_files if p.name == "online_retail.yaml"]
    assert online_retail, "datasets/online_retail.yaml is the base of the mutation tests"
    return yaml.safe_load(online_retail[0].read_text())


def _write_catalog(tmp_path: Path, doc: dict[str, Any], catalog_dir: Path) -> Path:
    """A catalog directory holding `doc` and its rules file (and, for a derived `doc`, the
    real online_retail it reads)."""
    name = doc.get("name") if isinstance(doc.get("name"), str) else "dataset"
    if "derived" in doc:
        for upstream in ("online_retail.yaml", "online_retail.dqdl"):
            shutil.copy(catalog_dir / upstream, tmp_path / upstream)
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rules_file = (doc.get("quality") or {}).get("rules_file")
    if isinstance(rules_file, str) and "/" not in rules_file:
        source = catalog_dir / rules_file
        if source.is_file():
            shutil.copy(source, tmp_path / rules_file)
        else:
            (tmp_path / rules_file).write_text('Rules = [ RowCount > 0 ]\n')
    return tmp_path


def _schema_errors(validator: Any, doc: Any) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


def test_there_is_a_catalog(catalog_files: list[Path]) -> None:
    assert catalog_files, "datasets/ holds no dataset files"


def test_catalog_files_match_the_schema(catalog_files: list[Path], schema_validator: Any) -> None:
    for path in catalog_files:
        doc = yaml.safe_load(path.read_text())
        assert _schema_errors(schema_validator, doc) == [], path.name


def test_catalog_files_parse(catalog_files: list[Path]) -> None:
    for path in catalog_files:
        parse_dataset(yaml.safe_load(path.read_text()), path)


def test_the_catalog_loads(catalog_dir: Path, catalog_files: list[Path]) -> None:
    catalog = load_catalog(catalog_dir)
    assert sorted(catalog.datasets) == sorted(p.stem for p in catalog_files)


@pytest.mark.parametrize("mutation", sorted(INVALID), ids=sorted(INVALID))
def test_invalid_catalog_is_rejected_by_both(mutation: str, base_doc: dict[str, Any],
                                             schema_validator: Any, catalog_dir: Path,
                                             tmp_path: Path) -> None:
    doc = copy.deepcopy(base_doc)
    INVALID[mutation](doc)
    assert _schema_errors(schema_validator, doc), f"schema accepted: {mutation}"
    directory = _write_catalog(tmp_path, doc, catalog_dir)
    with pytest.raises(ConfigurationError):
        load_catalog(directory)


@pytest.mark.parametrize("mutation", sorted(VALID), ids=sorted(VALID))
def test_optional_variants_are_accepted_by_both(mutation: str, base_doc: dict[str, Any],
                                                schema_validator: Any, catalog_dir: Path,
                                                tmp_path: Path) -> None:
    doc = copy.deepcopy(base_doc)
    VALID[mutation](doc)
    assert _schema_errors(schema_validator, doc) == []
    directory = _write_catalog(tmp_path, doc, catalog_dir)
    upstream = ["online_retail"] if "derived" in doc else []
    assert sorted(load_catalog(directory).datasets) == sorted([doc["name"], *upstream])


def test_file_name_must_match_dataset_name(base_doc: dict[str, Any], catalog_dir: Path,
                                           tmp_path: Path) -> None:
    """Not expressible in the schema: the parser alone enforces it."""
    directory = _write_catalog(tmp_path, copy.deepcopy(base_doc), catalog_dir)
    (directory / f"{base_doc['name']}.yaml").rename(directory / "other_name.yaml")
    with pytest.raises(ConfigurationError, match="must match the file name"):
        load_catalog(directory)


@pytest.mark.parametrize(("pattern", "message"), [
    (r"^online_retail/(?P<partition>\d{4}-\d{2}-\d{2}).*$", "the regex operator '.'"),
    (r"^online_retail/(?P<partition>\d{4}-\d{2}-\d{2})\.[a-z]+$", r"the regex operator '\['"),
    (r"^online_retail/(?P<partition>\d{4}-\d{2}-\d{2})$", "needs a file suffix"),
    (r"^other/(?P<partition>\d{4}-\d{2}-\d{2})\.csv$", "must start with the prefix"),
    (r"online_retail/(?P<partition>\d{4}-\d{2}-\d{2})\.csv$",
     r"must start with \^ and the dataset's prefix"),
    (r"^online_retail/(?P<partition>\d{8})\.csv$", "must match a date written YYYY-MM-DD"),
])
def test_a_key_pattern_eventbridge_cannot_route_is_refused_by_the_parser(
        base_doc: dict[str, Any], catalog_dir: Path, tmp_path: Path, pattern: str,
        message: str) -> None:
    """Not expressible in the schema: the raw bucket's rule routes `<prefix>*<suffix>`, so a
    key pattern must be the prefix, the partition and a fixed set of suffixes."""
    doc = copy.deepcopy(base_doc)
    doc["source"]["key_pattern"] = pattern
    directory = _write_catalog(tmp_path, doc, catalog_dir)
    with pytest.raises(ConfigurationError, match=message):
        load_catalog(directory)
