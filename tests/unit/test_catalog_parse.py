"""parse_dataset: what each catalog section builds, and the exact message of each refusal.

The schema/parser agreement tests (tests/template) only check *that* a bad catalog is refused;
these pin *what* the refusal says and which problem is reported first, so that restructuring the
parser cannot change what an engineer reads when CI rejects their catalog file.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline_core.catalog import (
    ClusterConfig,
    Compute,
    Cost,
    Job,
    Load,
    NodeGroup,
    Quality,
    Schedule,
    TableLoad,
    parse_dataset,
)
from pipeline_core.errors import ConfigurationError

DELETE = object()

BASE: dict[str, Any] = {
    "name": "sales",
    "description": "Daily sales.",
    "source": {
        "prefix": "sales/",
        "key_pattern": r"^sales/(?P<partition>\d{4}-\d{2}-\d{2})\.csv$",
        "format": "csv",
        "header": ["a", "b"],
    },
    "job": {
        "name": "sales_job",
        "arguments": {"--mode": "full", "--limit": 3},
        "spark_conf": {"spark.executor.cores": 2},
        "timeout_minutes": 30,
    },
    "compute": {
        "mode": "cluster",
        "cluster": {
            "release_label": "emr-7.0.0",
            "idle_timeout_minutes": 20,
            "master": {"instance_types": ["m7g.xlarge"], "capacity": 1},
            "core": {"instance_types": ["m7g.xlarge", "m6g.xlarge"], "capacity": 2},
            "task": {"instance_types": ["r7g.xlarge"], "capacity": 3, "spot": True},
        },
    },
    "quality": {"rules_file": "sales.dqdl", "history_runs": 7},
    "load": {
        "schema": "analytics",
        "tables": [
            {"name": "lines", "replace_by": ["order_date"]},
            {"name": "daily", "merge_keys": ["order_date", "customer_id"],
             "replace_by": ["order_date"]},
            {"name": "stores", "mode": "full_refresh", "snapshot_column": "as_of"},
        ],
    },
    "schedule": {"date_offset_days": -2},
    "cost": {"max_run_usd": 2, "monthly_budget_usd": 50.5},
}


def _doc(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with each ``(dotted.path, value)`` applied; the value DELETE removes the field."""
    doc = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        index = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[index]
        else:
            node[index] = value
    return doc


_UNSAFE = ("is not a safe SQL identifier: use 1-63 lower-case letters, digits and underscores, "
           "starting with a letter or underscore, and not a reserved word")


def test_every_section_is_built() -> None:
    dataset = parse_dataset(_doc(), Path("/catalog/sales.yaml"))
    assert dataset.name == "sales" and dataset.description == "Daily sales."
    assert dataset.path == Path("/catalog/sales.yaml")
    assert dataset.rules_path == Path("/catalog/sales.dqdl")
    assert dataset.source.prefix == "sales/" and dataset.source.format == "csv"
    assert dataset.source.header == ("a", "b") and dataset.source.suffixes == (".csv",)
    assert dataset.partition_for_key("sales/2011-12-01.csv") == "2011-12-01"
    assert dataset.job == Job("sales_job", {"--mode": "full", "--limit": "3"},
                              {"spark.executor.cores": "2"}, 30)
    assert dataset.compute == Compute("cluster", ClusterConfig(
        "emr-7.0.0", 20, NodeGroup(("m7g.xlarge",), 1),
        NodeGroup(("m7g.xlarge", "m6g.xlarge"), 2), NodeGroup(("r7g.xlarge",), 3, True)))
    assert dataset.quality == Quality("sales.dqdl", 7)
    assert dataset.load == Load("analytics", (
        TableLoad("lines", (), ("order_date",)),
        TableLoad("daily", ("order_date", "customer_id"), ("order_date",)),
        TableLoad("stores", mode="full_refresh", snapshot_column="as_of")))
    assert dataset.schedule == Schedule(-2)
    assert dataset.cost == Cost(2.0, 50.5)
    assert isinstance(dataset.cost.max_run_usd, float)


def test_optional_sections_and_fields_take_their_defaults() -> None:
    dataset = parse_dataset(_doc(
        ("description", DELETE), ("schedule", DELETE), ("cost", DELETE),
        ("compute", {"mode": "serverless"}), ("quality.history_runs", DELETE),
        ("job", {"name": "sales_job"}),
    ))
    assert dataset.description == ""
    assert dataset.schedule is None  # run only when its files are dropped
    assert dataset.cost == Cost(None, None)
    assert dataset.compute == Compute("serverless", None)
    assert dataset.quality.history_runs == 10
    assert dataset.job == Job("sales_job", {}, {}, 60)
    assert dataset.path is None
    cluster = parse_dataset(_doc(("compute.cluster.task", DELETE),
                                 ("compute.cluster.idle_timeout_minutes", DELETE)))
    assert cluster.compute.cluster is not None
    assert cluster.compute.cluster.task is None
    assert cluster.compute.cluster.idle_timeout_minutes == 15


@pytest.mark.parametrize(("changes", "message"), [
    # The document and its name
    ((("name", "Sales"),), f"dataset: dataset name 'Sales' {_UNSAFE}"),
    ((("name", DELETE),), "dataset: missing required field 'name'"),
    ((("name", 3),), "dataset.name: expected str, got int"),
    ((("owner", "me"),), "dataset: unknown field(s) owner"),
    ((("owner", "me"), ("zone", 1)), "dataset: unknown field(s) owner, zone"),
    ((("description", 5),), "dataset.description: expected str, got int"),
    # source
    ((("source", DELETE),), "dataset: give either 'source' (a raw dataset: its files in the "
                            "raw bucket) or 'derived' (computed from upstream datasets' "
                            "curated tables)"),
    ((("source", []),), "dataset.source: expected dict, got list"),
    ((("source.prefix", "sales"),),
     "dataset.source.prefix: must end with '/' and not start with '/'"),
    ((("source.prefix", "/sales/"),),
     "dataset.source.prefix: must end with '/' and not start with '/'"),
    ((("source.key_pattern", "(?P<partition>[0-9"),),
     "dataset.source.key_pattern: invalid regex: unterminated character set at position 14"),
    ((("source.key_pattern", "^sales/.*$"),),
     "dataset.source.key_pattern: needs a (?P<partition>...) group"),
    ((("source.format", "parquet"),),
     "dataset.source.format: 'parquet' is not one of ('csv', 'jsonl', 'text')"),
    ((("source.header", []),), "dataset.source.header: list the expected column names"),
    ((("source.header", ["a", ""]),), "dataset.source.header: list the expected column names"),
    ((("source.header", "a,b"),), "dataset.source.header: expected list, got str"),
    ((("source.quote", "'"),), "dataset.source: unknown field(s) quote"),
    ((("source.delimiter", ":"),),
     "dataset.source.delimiter: ':' is not one of ',', ';', '\\t', '|'"),
    ((("source.delimiter", ";"), ("source.format", "jsonl"), ("source.header", DELETE)),
     "dataset.source.delimiter: a jsonl file has no fields to separate: remove the field (only "
     "csv has one)"),
    # job
    ((("job", DELETE),), "dataset: missing required field 'job'"),
    ((("job.name", "Job"),), f"dataset.job.name 'Job' {_UNSAFE}"),
    ((("job.arguments", {"--x": None}),),
     "dataset.job.arguments.--x: expected a string or number"),
    ((("job.spark_conf", {"spark.x": True}),),
     "dataset.job.spark_conf.spark.x: expected a string or number"),
    ((("job.spark_conf", ["x"]),), "dataset.job.spark_conf: expected dict, got list"),
    ((("job.timeout_minutes", 0),), "dataset.job.timeout_minutes: must be between 1 and 1440"),
    ((("job.timeout_minutes", 1441),),
     "dataset.job.timeout_minutes: must be between 1 and 1440"),
    ((("job.timeout_minutes", True),), "dataset.job.timeout_minutes: expected int, got bool"),
    ((("job.retries", 2),), "dataset.job: unknown field(s) retries"),
    # compute
    ((("compute.mode", "gpu"),),
     "dataset.compute.mode: 'gpu' is not one of ('serverless', 'cluster')"),
    ((("compute", {"mode": "cluster"}),),
     "dataset.compute: mode 'cluster' needs a 'cluster' section"),
    ((("compute.cluster", None),), "dataset.compute.cluster: expected dict, got NoneType"),
    ((("compute.gpus", 1),), "dataset.compute: unknown field(s) gpus"),
    ((("compute.cluster.release_label", DELETE),),
     "dataset.compute.cluster: missing required field 'release_label'"),
    ((("compute.cluster.idle_timeout_minutes", 0),),
     "dataset.compute.cluster.idle_timeout_minutes: 1 to 10080"),
    ((("compute.cluster.idle_timeout_minutes", 10081),),
     "dataset.compute.cluster.idle_timeout_minutes: 1 to 10080"),
    ((("compute.cluster.zone", "a"),), "dataset.compute.cluster: unknown field(s) zone"),
    ((("compute.cluster.master", DELETE),),
     "dataset.compute.cluster: missing required field 'master'"),
    ((("compute.cluster.master.instance_types", ["M7G XL"]),),
     "dataset.compute.cluster.master.instance_types: list instance types like m7g.xlarge"),
    ((("compute.cluster.core.instance_types", []),),
     "dataset.compute.cluster.core.instance_types: list instance types like m7g.xlarge"),
    ((("compute.cluster.core.capacity", 0),),
     "dataset.compute.cluster.core.capacity: must be at least 1"),
    ((("compute.cluster.task.spot", "yes"),),
     "dataset.compute.cluster.task.spot: expected bool, got str"),
    ((("compute.cluster.task.market", "x"),),
     "dataset.compute.cluster.task: unknown field(s) market"),
    # quality
    ((("quality.rules_file", "rules/sales.dqdl"),),
     "dataset.quality.rules_file: a .dqdl file name beside the catalog"),
    ((("quality.rules_file", "sales.json"),),
     "dataset.quality.rules_file: a .dqdl file name beside the catalog"),
    ((("quality.history_runs", 0),), "dataset.quality.history_runs: must be between 1 and 100"),
    ((("quality.history_runs", 101),),
     "dataset.quality.history_runs: must be between 1 and 100"),
    ((("quality.strict", True),), "dataset.quality: unknown field(s) strict"),
    # load
    ((("load.tables", []),), "dataset.load.tables: at least one table"),
    ((("load.tables", {}),), "dataset.load.tables: expected list, got dict"),
    ((("load.tables.1", "daily"),), "dataset.load.tables[1]: expected a mapping, got str"),
    ((("load.tables.1", {"name": "daily"}),),
     "dataset.load.tables[1].replace_by: a replace_partitions table names the one column that "
     "holds the run's partition (a load replaces exactly the run's partitions), got []; a "
     "reference table replaced whole is mode: full_refresh"),
    ((("load.tables.1", {"name": "daily", "merge_keys": ["order_date"]}),),
     "dataset.load.tables[1].replace_by: a replace_partitions table names the one column that "
     "holds the run's partition (a load replaces exactly the run's partitions), got []; a "
     "reference table replaced whole is mode: full_refresh"),
    ((("load.tables.2.mode", "append"),),
     "dataset.load.tables[2].mode: 'append' is not one of ('replace_partitions', "
     "'full_refresh')"),
    ((("load.tables.2.mode", 1),), "dataset.load.tables[2].mode: expected str, got int"),
    ((("load.tables.2.snapshot_column", DELETE),),
     "dataset.load.tables[2].snapshot_column: a full_refresh table names the column that holds "
     "its snapshot's date (the run's partition), so that an older snapshot delivered late never "
     "replaces a newer one"),
    ((("load.tables.0.snapshot_column", "order_date"),),
     "dataset.load.tables[0].snapshot_column: only a full_refresh table has one (a "
     "replace_partitions table replaces by replace_by)"),
    ((("load.tables.2.snapshot_column", "As Of"),),
     f"dataset.load.tables[2].snapshot_column 'As Of' {_UNSAFE}"),
    ((("load.tables.2.replace_by", ["order_date"]),),
     "dataset.load.tables[2]: a full_refresh table replaces every row, so it takes no "
     "replace_by: remove it"),
    ((("load.tables.2.merge_keys", ["store_id"]), ("load.tables.2.replace_by", [])),
     "dataset.load.tables[2]: a full_refresh table replaces every row, so it takes no "
     "replace_by or merge_keys: remove them"),
    ((("load.tables.0.name", "Lines"),),
     f"dataset.load.tables[0]: table name 'Lines' {_UNSAFE}"),
    ((("load.tables.1.merge_keys", ["order"]),),
     f"dataset.load.tables[1].merge_keys: merge key 'order' {_UNSAFE}"),
    ((("load.tables.0.replace_by", ["Day"]),),
     f"dataset.load.tables[0].replace_by: column 'Day' {_UNSAFE}"),
    ((("load.tables.0.partition_by", ["x"]),),
     "dataset.load.tables[0]: unknown field(s) partition_by"),
    ((("load.schema", "a; drop"),), f"dataset.load.schema 'a; drop' {_UNSAFE}"),
    ((("load.mode", "x"),), "dataset.load: unknown field(s) mode"),
    # schedule and cost
    ((("schedule.date_offset_days", "-1"),),
     "dataset.schedule.date_offset_days: expected int, got str"),
    ((("schedule.cron", "x"),), "dataset.schedule: unknown field(s) cron"),
    ((("cost.max_run_usd", -1),), "dataset.cost.max_run_usd: must be positive"),
    ((("cost.monthly_budget_usd", 0),), "dataset.cost.monthly_budget_usd: must be positive"),
    ((("cost.max_run_usd", "2"),), "dataset.cost.max_run_usd: expected float, got str"),
    ((("cost.currency", "EUR"),), "dataset.cost: unknown field(s) currency"),
])
def test_refusals_name_the_field(changes: tuple[tuple[str, Any], ...], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        parse_dataset(_doc(*changes))


@pytest.mark.parametrize(("changes", "message"), [
    # Sections are checked in file order (name, source, job, compute, quality, load, schedule,
    # cost), each section's own fields before its unknown-field check, the document's unknown
    # fields last.
    ((("owner", "me"), ("cost.max_run_usd", -1)),
     "dataset.cost.max_run_usd: must be positive"),
    ((("cost.max_run_usd", -1), ("schedule.cron", "x")),
     "dataset.schedule: unknown field(s) cron"),
    ((("schedule.cron", "x"), ("load.tables", [])),
     "dataset.load.tables: at least one table"),
    ((("load.tables", []), ("quality.history_runs", 0)),
     "dataset.quality.history_runs: must be between 1 and 100"),
    ((("quality.history_runs", 0), ("compute.mode", "gpu")),
     "dataset.compute.mode: 'gpu' is not one of ('serverless', 'cluster')"),
    ((("compute.mode", "gpu"), ("job.timeout_minutes", 0)),
     "dataset.job.timeout_minutes: must be between 1 and 1440"),
    ((("job.timeout_minutes", 0), ("source.format", "x")),
     "dataset.source.format: 'x' is not one of ('csv', 'jsonl', 'text')"),
    ((("source.format", "x"), ("name", "X")), f"dataset: dataset name 'X' {_UNSAFE}"),
    ((("job", DELETE), ("quality", DELETE)), "dataset: missing required field 'job'"),
    ((("source.zone", 1), ("source.format", "x")),
     "dataset.source.format: 'x' is not one of ('csv', 'jsonl', 'text')"),
    ((("job.retries", 1), ("job.timeout_minutes", 0)),
     "dataset.job.timeout_minutes: must be between 1 and 1440"),
    ((("compute.cluster.zone", 1), ("compute.cluster.idle_timeout_minutes", 0)),
     "dataset.compute.cluster.idle_timeout_minutes: 1 to 10080"),
    ((("compute.cluster.master.capacity", 0), ("compute.cluster.release_label", 7)),
     "dataset.compute.cluster.release_label: expected str, got int"),
    ((("compute.cluster.task.capacity", 0), ("compute.cluster.core.capacity", 0)),
     "dataset.compute.cluster.core.capacity: must be at least 1"),
    ((("compute.gpus", 1), ("compute.mode", "serverless"), ("compute.cluster", DELETE)),
     "dataset.compute: unknown field(s) gpus"),
    ((("quality.strict", 1), ("quality.rules_file", "x.json")),
     "dataset.quality.rules_file: a .dqdl file name beside the catalog"),
    ((("load.tables.0.name", "X"), ("load.schema", "X")),
     f"dataset.load.tables[0]: table name 'X' {_UNSAFE}"),
    ((("load.mode", 1), ("load.schema", "X")), f"dataset.load.schema 'X' {_UNSAFE}"),
    ((("cost.currency", 1), ("cost.monthly_budget_usd", 0)),
     "dataset.cost.monthly_budget_usd: must be positive"),
])
def test_the_first_problem_in_file_order_is_reported(changes: tuple[tuple[str, Any], ...],
                                                     message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        parse_dataset(_doc(*changes))


def test_messages_name_the_file_when_there_is_one() -> None:
    with pytest.raises(ConfigurationError, match=r"^sales\.yaml: dataset name 'other' must match "
                                                 r"the file name$"):
        parse_dataset(_doc(("name", "other")), Path("sales.yaml"))
    with pytest.raises(ConfigurationError, match=r"^sales\.yaml\.load\.tables: at least one"):
        parse_dataset(_doc(("load.tables", [])), Path("sales.yaml"))
    with pytest.raises(ConfigurationError, match=r"^sales\.yaml: expected a mapping, got list$"):
        parse_dataset([], Path("sales.yaml"))



def test_replace_by_names_one_partition_column() -> None:
    """A load replaces exactly the run's partitions, so replace_by is that one column; the
    catalog refuses more at parse time instead of the load failing later."""
    doc = _doc()
    doc["load"]["tables"][0]["replace_by"] = ["order_date", "customer_id"]
    with pytest.raises(ConfigurationError, match="replace_by: a replace_partitions table "
                                                 "names the one column"):
        parse_dataset(doc, Path("/catalog/sales.yaml"))
