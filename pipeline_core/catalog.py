"""The dataset catalog: one declarative file per dataset in `datasets/`.

Parsing is strict (unknown keys, wrong types and unsafe identifiers are errors that name the file
and the field) so that a bad catalog fails CI and deploys, never a production run.
`datasets/schema.json` describes the same shape for editors and the test suite.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline_core.errors import ConfigurationError, UnknownDataset
from pipeline_core.identifiers import safe_identifier
from pipeline_core.key_pattern import key_suffixes, sample_key

DEFAULT_CATALOG_DIR = Path(__file__).resolve().parent.parent / "datasets"
COMPUTE_MODES = ("serverless", "cluster")
# csv: a header line the catalog lists, then records; jsonl: one JSON object a line; text: lines
# the job parses with its own pattern. Only csv has a header.
INPUT_FORMATS = ("csv", "jsonl", "text")
# replace_partitions: the run's partitions (rows whose replace_by column holds them) are deleted
# and inserted again; full_refresh: every row of the table is deleted and the run's rows inserted.
LOAD_MODES = ("replace_partitions", "full_refresh")
# The text encodings a raw file may declare (`source.encoding`): spelling -> canonical name,
# which is also Python's codec name. UTF-8 is the default.
INPUT_ENCODINGS = {
    "utf-8": "utf-8",
    "latin-1": "latin-1",
    "iso-8859-1": "latin-1",
    "cp1252": "cp1252",
    "windows-1252": "cp1252",
}
DEFAULT_ENCODING = "utf-8"
# The field separators a csv file may declare (`source.delimiter`); a comma unless it says so.
DELIMITERS = (",", ";", "\t", "|")
DEFAULT_DELIMITER = ","
_PARTITION = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
DEFAULT_TIMEZONE = "UTC"
_TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}")
# A schedule's offset moves its day by at most a year (a larger one is a typo).
MAX_DATE_OFFSET_DAYS = 366


@dataclass(frozen=True)
class Source:
    """Where a dataset's raw files land and how they read. `header` is csv's only (empty for
    the other formats); `suffixes` are the file suffixes the key pattern allows after the
    partition (pipeline_core.key_pattern), which the raw bucket's EventBridge rule routes.
    `delimiter` separates a csv file's fields (DELIMITERS; a comma by default)."""

    prefix: str
    key_pattern: re.Pattern[str]
    format: str
    header: tuple[str, ...] = ()
    encoding: str = DEFAULT_ENCODING  # canonical (INPUT_ENCODINGS)
    suffixes: tuple[str, ...] = ()
    delimiter: str = DEFAULT_DELIMITER

    def day_keys(self, partition: str) -> tuple[str, ...]:
        """Every key a day's raw file may have (one per suffix) that the pattern accepts."""
        keys = (f"{self.prefix}{partition}{suffix}" for suffix in self.suffixes)
        return tuple(k for k in keys if self.key_pattern.fullmatch(k))


@dataclass(frozen=True)
class Job:
    name: str
    arguments: dict[str, str] = field(default_factory=dict)
    spark_conf: dict[str, str] = field(default_factory=dict)
    timeout_minutes: int = 60


@dataclass(frozen=True)
class NodeGroup:
    instance_types: tuple[str, ...]
    capacity: int
    spot: bool = False


@dataclass(frozen=True)
class ClusterConfig:
    release_label: str
    idle_timeout_minutes: int
    master: NodeGroup
    core: NodeGroup
    task: NodeGroup | None = None


@dataclass(frozen=True)
class Compute:
    mode: str
    cluster: ClusterConfig | None = None


OUTPUT_SEVERITIES = ("error", "warn")
FRESHNESS_REFERENCES = ("run_start", "partition_end")


@dataclass(frozen=True)
class Quality:
    """The rules file, how many past runs its history rules read, and what the outputs must
    hold: at least `min_output_rows` rows in each output table, at most `max_quarantined_ratio`
    of the data lines quarantined (a fail, or a warning when `output_severity` is "warn").

    `freshness_reference` is the evaluation time of DataFreshness and now(): the run's start
    (AWS Glue measures against the current time) or, for data that arrives or is backfilled
    days later, the end of the partition day."""

    rules_file: str
    history_runs: int = 10
    min_output_rows: int = 1
    max_quarantined_ratio: float = 1.0
    output_severity: str = "error"
    freshness_reference: str = "run_start"

    def evaluation_time(self, partition: str, run_started_at: dt.datetime) -> dt.datetime:
        """The instant DataFreshness and now() measure against, in UTC."""
        if self.freshness_reference == "partition_end":
            day = dt.date.fromisoformat(partition)
            return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        if run_started_at.tzinfo is None:
            raise ValueError("run_started_at must carry its time zone")
        return run_started_at.astimezone(dt.UTC)


@dataclass(frozen=True)
class TableLoad:
    """A target table and how a load replaces its rows (LOAD_MODES): the run's partitions, by
    the `replace_by` column, or the whole table (`full_refresh`, a reference table).
    `merge_keys` name the columns that identify a row of a replace_partitions table.
    `snapshot_column` (full_refresh only, required) holds the snapshot's date, the run's
    partition: a load of a snapshot older than the table's changes nothing and says so
    (pipeline_core.load_sql), so a late or redelivered old file never rolls the table back."""

    name: str
    merge_keys: tuple[str, ...] = ()
    replace_by: tuple[str, ...] = ()
    mode: str = "replace_partitions"
    snapshot_column: str | None = None


@dataclass(frozen=True)
class Load:
    schema: str
    tables: tuple[TableLoad, ...]


@dataclass(frozen=True)
class Schedule:
    """A scheduled run processes the day of its scheduled time, as a calendar in `timezone`
    (the schedule's ScheduleExpressionTimezone in template.yaml), moved by `date_offset_days`."""

    date_offset_days: int = -1
    timezone: str = DEFAULT_TIMEZONE


@dataclass(frozen=True)
class DerivedInput:
    """An upstream table a derived dataset reads: its curated parquet, one folder per loaded
    partition (the partition's newest SUCCEEDED run in the ledger)."""

    dataset: str
    table: str


# The metric directions a model's promotion rule compares in.
MODEL_DIRECTIONS = ("higher_is_better", "lower_is_better")
MAX_LOOKBACK_DAYS = 3660


@dataclass(frozen=True)
class ModelPolicy:
    """A derived dataset that trains a model: which of its metrics decides promotion, in which
    direction, and by how much (`tolerance`, a fraction of the current model's metric) a new
    model may be worse and still be promoted. `retrain_days`: a run retrains when the current
    model was trained on an as_of at least that many days before the run's (0: every run);
    the other runs only score with the current model."""

    metric: str
    direction: str = "higher_is_better"
    tolerance: float = 0.0
    retrain_days: int = 0


@dataclass(frozen=True)
class Derived:
    """A dataset computed from the curated tables of upstream datasets, not from raw files.

    A run's partition is its `as_of` day; its inputs are the upstream partitions the ledger
    has as loaded from `as_of - lookback_days + 1` to `as_of` (`lookback_days` None: all
    history up to as_of). `after_upstream_loads`: an upstream execution that loaded days starts
    one run of this dataset (besides any schedule), for its newest loaded day. `rows_per_day`:
    the dataset's rows are per day (its tables' replace_by column is a day, as sales_trends'
    order_date), so that run covers every day from the execution's first loaded day to its
    newest (`from_day`); otherwise (a snapshot as of a day, as a model's scores) it is for the
    newest day only."""

    inputs: tuple[DerivedInput, ...]
    lookback_days: int | None = None
    after_upstream_loads: bool = False
    model: ModelPolicy | None = None
    rows_per_day: bool = False

    @property
    def upstream(self) -> tuple[str, ...]:
        """The upstream datasets, each once, in the order first named."""
        return tuple(dict.fromkeys(i.dataset for i in self.inputs))

    def first_day(self, as_of: str, from_day: str | None = None) -> str | None:
        """The first partition a run for `as_of` reads (None: all history); a run that
        writes the days from `from_day` reads the lookback of its first day."""
        if self.lookback_days is None:
            return None
        first = dt.date.fromisoformat(from_day or as_of)
        return (first - dt.timedelta(days=self.lookback_days - 1)).isoformat()


@dataclass(frozen=True)
class Cost:
    max_run_usd: float | None = None
    monthly_budget_usd: float | None = None


# A batch's objects travel in the pipeline execution's input and in its run manifest (paths and
# checks per partition), which Step Functions caps at 256 KiB a state: 100 objects stay well
# inside. Inline Map runs at most 40 iterations at once ("Map state in Inline mode", Step
# Functions developer guide).
MAX_OBJECTS_PER_BATCH = 100
MAX_CONCURRENT_BATCHES = 40
MIN_BYTES_PER_BATCH = 1024 * 1024


@dataclass(frozen=True)
class Backfill:
    """How a backfill groups a dataset's raw objects into pipeline runs (batches) and how many
    run at once. Larger batches share one job's start-up and per-worker minimum billing; a
    batch that crashes fails together, so a batch is also the unit that is run again."""

    max_objects_per_batch: int = 10
    max_bytes_per_batch: int = 1024 * 1024 * 1024
    max_concurrent_batches: int = 2


@dataclass(frozen=True)
class Dataset:
    """One catalog file. A raw dataset has a `raw_source` (files dropped in the raw bucket); a
    derived one has `derived` (upstream curated tables) instead: exactly one of the two."""

    name: str
    description: str
    raw_source: Source | None
    job: Job
    compute: Compute
    quality: Quality
    load: Load
    schedule: Schedule | None  # None: the dataset runs only when its files are dropped
    cost: Cost
    path: Path | None = None
    backfill: Backfill = field(default_factory=Backfill)
    derived: Derived | None = None

    @property
    def source(self) -> Source:
        """The raw source; ConfigurationError for a derived dataset, which has no raw files."""
        if self.raw_source is None:
            raise ConfigurationError(
                f"dataset {self.name} is derived (from {', '.join(self.derived.upstream)}): "
                "it has no raw files" if self.derived else f"dataset {self.name} has no source")
        return self.raw_source

    @property
    def is_derived(self) -> bool:
        return self.derived is not None

    def partition_for_key(self, key: str) -> str | None:
        """The partition encoded in a raw key, or None when the key is not this dataset's."""
        if self.raw_source is None or not key.startswith(self.source.prefix):
            return None
        match = self.source.key_pattern.fullmatch(key)
        return match.group("partition") if match else None

    @property
    def rules_path(self) -> Path:
        base = self.path.parent if self.path else DEFAULT_CATALOG_DIR
        return base / self.quality.rules_file


class _Reader:
    """Walks one raw mapping, collecting the path for error messages."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise ConfigurationError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is ...:
                raise ConfigurationError(f"{self.where}: missing required field {key!r}")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigurationError(
                f"{self.where}.{key}: expected {getattr(kind, '__name__', kind)}, "
                f"got {type(value).__name__}"
            )
        return value

    def sub(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), f"{self.where}.{key}")

    def optional_sub(self, key: str) -> _Reader | None:
        value = self.get(key, dict, None)
        return None if value is None else _Reader(value, f"{self.where}.{key}")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigurationError(f"{self.where}: unknown field(s) {', '.join(unknown)}")


def _str_map(reader: _Reader, key: str) -> dict[str, str]:
    raw = reader.get(key, dict, {}) or {}
    out = {}
    for k, v in raw.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ConfigurationError(f"{reader.where}.{key}.{k}: expected a string or number")
        out[str(k)] = str(v)
    return out


def _names(reader: _Reader, key: str, what: str) -> tuple[str, ...]:
    values = reader.get(key, list, [])
    return tuple(safe_identifier(v, f"{reader.where}.{key}: {what}") for v in values)


# One function per catalog section. Each reads its own fields in file order and ends with its
# unknown-field check, so the first problem reported is the first one a reader of the file meets.


def _dataset_name(root: _Reader, path: Path | None) -> str:
    name: str = safe_identifier(root.get("name", str), f"{root.where}: dataset name")
    if path is not None and path.stem != name:
        raise ConfigurationError(f"{root.where}: dataset name {name!r} must match the file name")
    return name


def _source(src: _Reader) -> Source:
    prefix = src.get("prefix", str)
    if not prefix.endswith("/") or prefix.startswith("/"):
        raise ConfigurationError(f"{src.where}.prefix: must end with '/' and not start with '/'")
    if "*" in prefix or "\\" in prefix:
        raise ConfigurationError(f"{src.where}.prefix: '*' and '\\' are EventBridge wildcard "
                                 "syntax, not allowed in a prefix")
    pattern, suffixes = _key_pattern(src, prefix)
    fmt = src.get("format", str)
    if fmt not in INPUT_FORMATS:
        raise ConfigurationError(f"{src.where}.format: {fmt!r} is not one of {INPUT_FORMATS}")
    encoding = canonical_encoding(src.get("encoding", str, DEFAULT_ENCODING),
                                  f"{src.where}.encoding")
    header = _header(src, fmt)
    delimiter = _delimiter(src, fmt)
    src.done()
    return Source(prefix, pattern, fmt, header, encoding, suffixes, delimiter)


def _key_pattern(src: _Reader, prefix: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """The compiled key pattern and its suffixes; a day's key of every suffix must match it
    with the day as its partition."""
    where = f"{src.where}.key_pattern"
    text = src.get("key_pattern", str)
    try:
        pattern = re.compile(text)
    except re.error as e:
        raise ConfigurationError(f"{where}: invalid regex: {e}") from e
    if "partition" not in pattern.groupindex:
        raise ConfigurationError(f"{where}: needs a (?P<partition>...) group")
    suffixes = key_suffixes(text, prefix, where)
    for suffix in suffixes:
        key = sample_key(prefix, suffix)
        match = pattern.fullmatch(key)
        if match is None or not _PARTITION.match(match.group("partition") or ""):
            raise ConfigurationError(
                f"{where}: does not take the key {key!r} with its partition 2000-01-31: the "
                "partition group must match a date written YYYY-MM-DD")
    if any("*" in s for s in suffixes):
        raise ConfigurationError(f"{where}: '*' is EventBridge wildcard syntax, not allowed "
                                 "in a key suffix")
    return pattern, suffixes


def _header(src: _Reader, fmt: str) -> tuple[str, ...]:
    """csv files have a header line the catalog lists; jsonl and text files have none."""
    if fmt != "csv":
        if "header" in src.data:
            raise ConfigurationError(
                f"{src.where}.header: a {fmt} file has no header line: remove the field "
                "(only csv has one)")
        return ()
    header = src.get("header", list)
    if not header or not all(isinstance(h, str) and h for h in header):
        raise ConfigurationError(f"{src.where}.header: list the expected column names")
    return tuple(header)


def _delimiter(src: _Reader, fmt: str) -> str:
    """csv files separate their fields by `delimiter` (a comma unless declared); the other
    formats have no fields to separate."""
    if fmt != "csv":
        if "delimiter" in src.data:
            raise ConfigurationError(
                f"{src.where}.delimiter: a {fmt} file has no fields to separate: remove the "
                "field (only csv has one)")
        return DEFAULT_DELIMITER
    delimiter: str = src.get("delimiter", str, DEFAULT_DELIMITER)
    if delimiter not in DELIMITERS:
        raise ConfigurationError(f"{src.where}.delimiter: {delimiter!r} is not one of "
                                 f"{', '.join(map(repr, DELIMITERS))}")
    return delimiter


def canonical_encoding(name: str, where: str = "encoding") -> str:
    """The canonical name of a declared input encoding (spelled as in INPUT_ENCODINGS, lower
    case, like datasets/schema.json's enum), or ConfigurationError naming the ones allowed."""
    try:
        return INPUT_ENCODINGS[name]
    except KeyError:
        raise ConfigurationError(
            f"{where}: {name!r} is not one of {', '.join(INPUT_ENCODINGS)}") from None


def _job(reader: _Reader) -> Job:
    job = Job(
        name=safe_identifier(reader.get("name", str), f"{reader.where}.name"),
        arguments=_str_map(reader, "arguments"),
        spark_conf=_str_map(reader, "spark_conf"),
        timeout_minutes=reader.get("timeout_minutes", int, 60),
    )
    if not 1 <= job.timeout_minutes <= 24 * 60:
        raise ConfigurationError(f"{reader.where}.timeout_minutes: must be between 1 and 1440")
    reader.done()
    return job


def _node_group(reader: _Reader) -> NodeGroup:
    types = reader.get("instance_types", list)
    if not types or not all(isinstance(t, str) and re.match(r"^[a-z0-9-]+\.[a-z0-9]+$", t)
                            for t in types):
        raise ConfigurationError(
            f"{reader.where}.instance_types: list instance types like m7g.xlarge")
    group = NodeGroup(tuple(types), reader.get("capacity", int), reader.get("spot", bool, False))
    if group.capacity < 1:
        raise ConfigurationError(f"{reader.where}.capacity: must be at least 1")
    reader.done()
    return group


def _cluster(reader: _Reader) -> ClusterConfig:
    cluster = ClusterConfig(
        release_label=reader.get("release_label", str),
        idle_timeout_minutes=reader.get("idle_timeout_minutes", int, 15),
        master=_node_group(reader.sub("master")),
        core=_node_group(reader.sub("core")),
        task=_optional_node_group(reader.optional_sub("task")),
    )
    if not 1 <= cluster.idle_timeout_minutes <= 7 * 24 * 60:
        raise ConfigurationError(f"{reader.where}.idle_timeout_minutes: 1 to 10080")
    reader.done()
    return cluster


def _optional_node_group(reader: _Reader | None) -> NodeGroup | None:
    return None if reader is None else _node_group(reader)


def _compute(reader: _Reader) -> Compute:
    mode = reader.get("mode", str)
    if mode not in COMPUTE_MODES:
        raise ConfigurationError(f"{reader.where}.mode: {mode!r} is not one of {COMPUTE_MODES}")
    section = reader.optional_sub("cluster")
    cluster = None if section is None else _cluster(section)
    if mode == "cluster" and cluster is None:
        raise ConfigurationError(f"{reader.where}: mode 'cluster' needs a 'cluster' section")
    reader.done()
    return Compute(mode, cluster)


def _quality(reader: _Reader) -> Quality:
    quality = Quality(reader.get("rules_file", str), reader.get("history_runs", int, 10),
                      reader.get("min_output_rows", int, 1),
                      reader.get("max_quarantined_ratio", float, 1.0),
                      reader.get("output_severity", str, "error"),
                      reader.get("freshness_reference", str, "run_start"))
    if "/" in quality.rules_file or not quality.rules_file.endswith(".dqdl"):
        raise ConfigurationError(
            f"{reader.where}.rules_file: a .dqdl file name beside the catalog")
    if not 1 <= quality.history_runs <= 100:
        raise ConfigurationError(f"{reader.where}.history_runs: must be between 1 and 100")
    if quality.min_output_rows < 0:
        raise ConfigurationError(f"{reader.where}.min_output_rows: must be 0 or more")
    if not 0.0 <= quality.max_quarantined_ratio <= 1.0:
        raise ConfigurationError(f"{reader.where}.max_quarantined_ratio: must be between 0 and 1")
    if quality.freshness_reference not in FRESHNESS_REFERENCES:
        raise ConfigurationError(
            f"{reader.where}.freshness_reference: {quality.freshness_reference!r} is not one of "
            f"{FRESHNESS_REFERENCES}")
    if quality.output_severity not in OUTPUT_SEVERITIES:
        raise ConfigurationError(
            f"{reader.where}.output_severity: {quality.output_severity!r} is not one of "
            f"{OUTPUT_SEVERITIES}")
    reader.done()
    return quality


def _table(reader: _Reader) -> TableLoad:
    table = TableLoad(
        name=safe_identifier(reader.get("name", str), f"{reader.where}: table name"),
        mode=reader.get("mode", str, "replace_partitions"),
        merge_keys=_names(reader, "merge_keys", "merge key"),
        replace_by=_names(reader, "replace_by", "column"),
        snapshot_column=_snapshot_column(reader),
    )
    if table.mode not in LOAD_MODES:
        raise ConfigurationError(
            f"{reader.where}.mode: {table.mode!r} is not one of {LOAD_MODES}")
    if table.mode == "full_refresh":
        given = [k for k in ("replace_by", "merge_keys") if k in reader.data]
        if given:
            raise ConfigurationError(
                f"{reader.where}: a full_refresh table replaces every row, so it takes no "
                f"{' or '.join(given)}: remove {'them' if len(given) > 1 else 'it'}")
        if table.snapshot_column is None:
            raise ConfigurationError(
                f"{reader.where}.snapshot_column: a full_refresh table names the column that "
                "holds its snapshot's date (the run's partition), so that an older snapshot "
                "delivered late never replaces a newer one")
    elif table.snapshot_column is not None:
        raise ConfigurationError(
            f"{reader.where}.snapshot_column: only a full_refresh table has one (a "
            "replace_partitions table replaces by replace_by)")
    elif len(table.replace_by) != 1:
        raise ConfigurationError(
            f"{reader.where}.replace_by: a replace_partitions table names the one column that "
            f"holds the run's partition (a load replaces exactly the run's partitions), got "
            f"{list(table.replace_by)}; a reference table replaced whole is mode: full_refresh")
    reader.done()
    return table


def _snapshot_column(reader: _Reader) -> str | None:
    name = reader.get("snapshot_column", str, None)
    return None if name is None else safe_identifier(name, f"{reader.where}.snapshot_column")


def _load(reader: _Reader) -> Load:
    tables = tuple(_table(_Reader(raw, f"{reader.where}.tables[{i}]"))
                   for i, raw in enumerate(reader.get("tables", list)))
    if not tables:
        raise ConfigurationError(f"{reader.where}.tables: at least one table")
    load = Load(safe_identifier(reader.get("schema", str), f"{reader.where}.schema"), tables)
    reader.done()
    return load


def _schedule(reader: _Reader | None) -> Schedule | None:
    if reader is None:
        return None
    schedule = Schedule(reader.get("date_offset_days", int, -1),
                        validate_timezone(reader.get("timezone", str, DEFAULT_TIMEZONE),
                                          f"{reader.where}.timezone"))
    if abs(schedule.date_offset_days) > MAX_DATE_OFFSET_DAYS:
        raise ConfigurationError(f"{reader.where}.date_offset_days: {schedule.date_offset_days} "
                                 f"is more than {MAX_DATE_OFFSET_DAYS} days away")
    reader.done()
    return schedule


def validate_timezone(name: str, where: str = "timezone") -> str:
    """An IANA time zone name (`Europe/London`), as EventBridge Scheduler's
    ScheduleExpressionTimezone takes it; ConfigurationError otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name == DEFAULT_TIMEZONE:
        return name
    if not _TIMEZONE.fullmatch(name):
        raise ConfigurationError(f"{where}: {name!r} is not an IANA time zone name "
                                 "(Area/Location, e.g. Europe/London)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigurationError(f"{where}: {name!r} is not a known IANA time zone") from e
    return name


def _cost(reader: _Reader | None) -> Cost:
    if reader is None:
        return Cost()
    cost = Cost(reader.get("max_run_usd", float, None),
                reader.get("monthly_budget_usd", float, None))
    for label, value in (("max_run_usd", cost.max_run_usd),
                         ("monthly_budget_usd", cost.monthly_budget_usd)):
        if value is not None and value <= 0:
            raise ConfigurationError(f"{reader.where}.{label}: must be positive")
    reader.done()
    return cost


def _backfill(reader: _Reader | None) -> Backfill:
    if reader is None:
        return Backfill()
    default = Backfill()
    backfill = Backfill(
        reader.get("max_objects_per_batch", int, default.max_objects_per_batch),
        reader.get("max_bytes_per_batch", int, default.max_bytes_per_batch),
        reader.get("max_concurrent_batches", int, default.max_concurrent_batches))
    for label, value, low, high in (
            ("max_objects_per_batch", backfill.max_objects_per_batch, 1, MAX_OBJECTS_PER_BATCH),
            ("max_bytes_per_batch", backfill.max_bytes_per_batch, MIN_BYTES_PER_BATCH, None),
            ("max_concurrent_batches", backfill.max_concurrent_batches, 1,
             MAX_CONCURRENT_BATCHES)):
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigurationError(f"{reader.where}.{label}: must be {bound}, got {value}")
    reader.done()
    return backfill


def _derived_input(reader: _Reader) -> DerivedInput:
    found = DerivedInput(
        dataset=safe_identifier(reader.get("dataset", str), f"{reader.where}.dataset"),
        table=safe_identifier(reader.get("table", str), f"{reader.where}.table"))
    reader.done()
    return found


def _model(reader: _Reader | None) -> ModelPolicy | None:
    if reader is None:
        return None
    model = ModelPolicy(
        metric=safe_identifier(reader.get("metric", str), f"{reader.where}.metric"),
        direction=reader.get("direction", str, "higher_is_better"),
        tolerance=reader.get("tolerance", float, 0.0),
        retrain_days=reader.get("retrain_days", int, 0))
    if model.direction not in MODEL_DIRECTIONS:
        raise ConfigurationError(
            f"{reader.where}.direction: {model.direction!r} is not one of {MODEL_DIRECTIONS}")
    if not 0.0 <= model.tolerance <= 1.0:
        raise ConfigurationError(
            f"{reader.where}.tolerance: a fraction of the current model's metric, between 0 "
            f"and 1, got {model.tolerance}")
    if not 0 <= model.retrain_days <= MAX_LOOKBACK_DAYS:
        raise ConfigurationError(
            f"{reader.where}.retrain_days: must be between 0 and {MAX_LOOKBACK_DAYS}")
    reader.done()
    return model


def _derived(reader: _Reader | None, name: str) -> Derived | None:
    """The `derived:` block: upstream tables, the partition range, triggers, the model."""
    if reader is None:
        return None
    raw_inputs = reader.get("inputs", list)
    if not raw_inputs:
        raise ConfigurationError(f"{reader.where}.inputs: at least one upstream table")
    inputs = tuple(_derived_input(_Reader(raw, f"{reader.where}.inputs[{i}]"))
                   for i, raw in enumerate(raw_inputs))
    if any(i.dataset == name for i in inputs):
        raise ConfigurationError(f"{reader.where}.inputs: {name} cannot read itself")
    if len(set(inputs)) != len(inputs):
        raise ConfigurationError(f"{reader.where}.inputs: a table is named twice")
    derived = Derived(inputs, reader.get("lookback_days", int, None),
                      reader.get("after_upstream_loads", bool, False),
                      _model(reader.optional_sub("model")),
                      reader.get("rows_per_day", bool, False))
    if derived.lookback_days is not None and \
            not 1 <= derived.lookback_days <= MAX_LOOKBACK_DAYS:
        raise ConfigurationError(f"{reader.where}.lookback_days: must be between 1 and "
                                 f"{MAX_LOOKBACK_DAYS} (omit it to read all history)")
    reader.done()
    return derived


def _source_or_derived(root: _Reader, name: str) -> tuple[Source | None, Derived | None]:
    """Exactly one of `source` (raw files) and `derived` (upstream curated tables)."""
    has_source, has_derived = "source" in root.data, "derived" in root.data
    if has_source == has_derived:
        raise ConfigurationError(
            f"{root.where}: give either 'source' (a raw dataset: its files in the raw bucket) "
            "or 'derived' (computed from upstream datasets' curated tables)"
            + (", not both" if has_source else ""))
    if has_source:
        return _source(root.sub("source")), None
    return None, _derived(root.sub("derived"), name)


def parse_dataset(data: Any, path: Path | None = None) -> Dataset:
    """Build a Dataset from one catalog file, or raise ConfigurationError naming the field."""
    root = _Reader(data, path.name if path else "dataset")
    name = _dataset_name(root, path)
    source, derived = _source_or_derived(root, name)
    # Keyword arguments are evaluated in the order written: the file's section order.
    dataset = Dataset(
        name=name,
        raw_source=source,
        derived=derived,
        job=_job(root.sub("job")),
        compute=_compute(root.sub("compute")),
        quality=_quality(root.sub("quality")),
        load=_load(root.sub("load")),
        schedule=_schedule(root.optional_sub("schedule")),
        cost=_cost(root.optional_sub("cost")),
        backfill=_backfill(root.optional_sub("backfill")),
        description=root.get("description", str, ""),
        path=path,
    )
    root.done()
    return dataset


@dataclass(frozen=True)
class Catalog:
    datasets: dict[str, Dataset]

    def get(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise UnknownDataset(
                f"dataset {name!r} is not in the catalog (known: {known})") from None

    @property
    def raw_datasets(self) -> dict[str, Dataset]:
        """The datasets with raw files (the ones the raw bucket's events route)."""
        return {n: d for n, d in self.datasets.items() if d.raw_source is not None}

    def downstream_of(self, upstream: str) -> list[Dataset]:
        """The derived datasets that start when a partition of `upstream` loads."""
        return [d for _, d in sorted(self.datasets.items())
                if d.derived and d.derived.after_upstream_loads
                and upstream in d.derived.upstream]

    def match_key(self, key: str) -> tuple[Dataset, str]:
        """The dataset and partition for a raw object key, or UnknownDataset/InvalidInput."""
        from pipeline_core.errors import InvalidInput

        for dataset in self.raw_datasets.values():
            if key.startswith(dataset.source.prefix):
                partition = dataset.partition_for_key(key)
                if partition is None:
                    raise InvalidInput(
                        f"key {key!r} is under dataset {dataset.name!r}'s prefix but does not "
                        "match "
                        f"its key pattern {dataset.source.key_pattern.pattern!r}"
                    )
                return dataset, validate_partition(partition)
        prefixes = ", ".join(d.source.prefix for d in self.raw_datasets.values())
        raise UnknownDataset(f"key {key!r} is outside every dataset prefix ({prefixes})")


def validate_partition(partition: str) -> str:
    """A partition is a real calendar date written YYYY-MM-DD."""
    import datetime as dt

    from pipeline_core.errors import InvalidInput

    if not isinstance(partition, str) or not _PARTITION.match(partition):
        raise InvalidInput(f"partition {partition!r} is not a date written YYYY-MM-DD")
    try:
        dt.date.fromisoformat(partition)
    except ValueError as e:
        raise InvalidInput(f"partition {partition!r} is not a real date: {e}") from e
    return partition


def load_catalog(directory: Path | str | None = None) -> Catalog:
    """Read and validate every `*.yaml` dataset file in the catalog directory."""
    # Only needed where catalog files are read (Lambdas, tests), not in Spark jobs.
    import yaml  # type: ignore[import-untyped, unused-ignore]  # no stubs in requirements-dev.txt

    directory = Path(directory) if directory else DEFAULT_CATALOG_DIR
    if not directory.is_dir():
        raise ConfigurationError(f"catalog directory {directory} does not exist")
    datasets: dict[str, Dataset] = {}
    prefixes: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigurationError(f"{path.name}: not valid YAML: {e}") from e
        dataset = parse_dataset(raw, path)
        if not dataset.rules_path.is_file():
            raise ConfigurationError(
                f"{path.name}: rules file {dataset.quality.rules_file} is missing")
        if dataset.raw_source is not None:
            _check_prefix(path, dataset.raw_source.prefix, prefixes)
            prefixes[dataset.raw_source.prefix] = dataset.name
        datasets[dataset.name] = dataset
    if not datasets:
        raise ConfigurationError(f"catalog directory {directory} holds no dataset files")
    for dataset in datasets.values():
        check_upstream(dataset, datasets)
    return Catalog(datasets)


def _check_prefix(path: Path, prefix: str, prefixes: dict[str, str]) -> None:
    for other_prefix, other in prefixes.items():
        if prefix.startswith(other_prefix) or other_prefix.startswith(prefix):
            raise ConfigurationError(f"{path.name}: prefix {prefix!r} overlaps dataset {other!r}")


def check_upstream(dataset: Dataset, datasets: dict[str, Dataset]) -> None:
    """A derived dataset reads tables that a raw dataset of the catalog loads (a raw
    upstream keeps the graph one level deep: no cycles, and every input has a ledger of
    loaded partitions)."""
    if dataset.derived is None:
        return
    for i, item in enumerate(dataset.derived.inputs):
        where = f"{dataset.name}.derived.inputs[{i}]"
        upstream = datasets.get(item.dataset)
        if upstream is None or upstream.derived is not None:
            raw = ", ".join(sorted(n for n, d in datasets.items() if d.derived is None))
            raise ConfigurationError(
                f"{where}: {item.dataset!r} is not a raw dataset of the catalog (raw: "
                f"{raw or 'none'})")
        tables = [t.name for t in upstream.load.tables]
        if item.table not in tables:
            raise ConfigurationError(f"{where}: {item.dataset} has no table {item.table!r} "
                                     f"(it loads {', '.join(tables)})")
