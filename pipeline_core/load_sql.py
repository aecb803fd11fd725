"""Builds the SQL of one load: pending migrations, then stage-COPY-replace-insert per table.

Pure (no AWS calls). The batch is submitted with one BatchExecuteStatement, which Redshift runs
as one transaction: either every table of the run is replaced and every migration is recorded,
or nothing changes. Every identifier goes through safe_identifier and every literal through
quote_literal.

A full_refresh table is emptied with DELETE, never TRUNCATE: Redshift's TRUNCATE commits the
transaction it runs in, which would commit half a load (and the other tables' deletes) on its own.

A full_refresh table holds one snapshot, dated by its snapshot_column (the run's partition). A
snapshot older than the table's (a redelivery, an out-of-order upload) must never replace it:
its DELETE and INSERT are guarded in the same transaction by "no row of a newer snapshot", and
a SELECT of such a row comes first, whose ResultRows (the rows a SELECT returns, in the Data
API's SubStatementData) tell the load's describe that the run was stale
(LoadBatch.snapshot_checks; pipeline_aws.load). The same snapshot again replaces itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline_core.catalog import TableLoad
from pipeline_core.errors import ConfigurationError, InvalidInput
from pipeline_core.identifiers import quote_literal, safe_identifier

META_SCHEMA = "pipeline_meta"
MIGRATIONS_TABLE = f"{META_SCHEMA}.schema_migrations"
DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "warehouse" / "migrations"
_MIGRATION_FILE = re.compile(r"^V(?P<version>\d{3,})__(?P<name>[a-z0-9_]+)\.sql\Z")
_LABEL = re.compile(r"^V(?P<version>\d{3,})__(?P<name>[a-z0-9_]+)\Z")
# COPY reads every object under the prefix: `part-` keeps out _SUCCESS and other markers.
DATA_FILE_PREFIX = "part-"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]

    @property
    def label(self) -> str:
        """How a load batch names it (LoadBatch.migrations): `V001__name`."""
        return f"V{self.version:03d}__{self.name}"


def label_version(label: str) -> int | None:
    """The version of a Migration.label, or None if `label` is not one."""
    match = _LABEL.match(label)
    return int(match["version"]) if match else None


@dataclass(frozen=True)
class LoadBatch:
    sqls: list[str]
    insert_index: dict[str, int]  # table -> index of its INSERT in sqls (its ResultRows)
    migrations: list[str]  # "V001__name" of the migrations this batch applies
    # full_refresh table -> index of its stale-snapshot check (ResultRows > 0: stale)
    snapshot_checks: dict[str, int] = field(default_factory=dict)


def split_statements(sql: str) -> list[str]:
    """Split SQL text on semicolons outside quotes and comments; drop empty statements."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            current.append("\n")
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise ConfigurationError("unterminated /* comment in SQL")
            i = end + 2
            current.append(" ")
            continue
        if ch in ("'", '"'):
            end = i + 1
            while True:
                end = sql.find(ch, end)
                if end < 0:
                    raise ConfigurationError(f"unterminated {ch} quote in SQL")
                if sql.startswith(ch * 2, end):
                    end += 2
                    continue
                break
            current.append(sql[i : end + 1])
            i = end + 1
            continue
        if ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def load_migrations(directory: Path | str | None = None) -> list[Migration]:
    """Every `V<NNN>__<name>.sql` file in version order; malformed names or gaps are errors."""
    directory = Path(directory) if directory else DEFAULT_MIGRATIONS_DIR
    if not directory.is_dir():
        raise ConfigurationError(f"migrations directory {directory} does not exist")
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.fullmatch(path.name)
        if not match:
            raise ConfigurationError(
                f"{path.name}: migration files are named V<NNN>__<lower_snake_name>.sql"
            )
        statements = tuple(split_statements(path.read_text(encoding="utf-8")))
        if not statements:
            raise ConfigurationError(f"{path.name}: holds no SQL statement")
        migrations.append(Migration(int(match["version"]), match["name"], statements))
    migrations.sort(key=lambda m: m.version)
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ConfigurationError(
                f"migration versions must be 1, 2, 3... without gaps or repeats; "
                f"found V{migration.version:03d} where V{expected:03d} was expected"
            )
    return migrations


def ensure_meta_sqls() -> list[str]:
    """Creates the migration bookkeeping table when missing (safe to run every time)."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        "version integer NOT NULL, name varchar(256) NOT NULL, applied_at timestamp NOT NULL, "
        "run_id varchar(128))",
    ]


def applied_versions_sql() -> str:
    return f"SELECT DISTINCT version FROM {MIGRATIONS_TABLE} ORDER BY version"


def pending_migrations(migrations: Sequence[Migration], applied: Sequence[int]) -> list[Migration]:
    done = set(applied)
    return [m for m in migrations if m.version not in done]


def _partition_filter(column: str, partitions: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(quote_literal(p) for p in partitions)})"


def _replace_sqls(target: str, stage: str, table: TableLoad, partitions: Sequence[str]
                  ) -> list[str]:
    """What the load deletes, then what it inserts.

    A replace_partitions table deletes exactly the run's partitions, named here, never values
    read from the staged rows: a stray row of another day in the output must not delete that
    day. The insert takes only the run's partitions too, so such a row can neither double a day.
    A full_refresh table deletes every row (DELETE, not TRUNCATE: module docstring) and inserts
    every staged row.
    """
    if table.mode == "full_refresh":
        return _refresh_sqls(target, stage, table, partitions)
    if table.mode != "replace_partitions":
        raise ConfigurationError(f"table {table.name}: unknown load mode {table.mode!r}")
    if len(table.replace_by) != 1:
        raise ConfigurationError(
            f"table {table.name}: replace_by names the one column that holds the run's "
            f"partition, got {list(table.replace_by)}")
    column = safe_identifier(table.replace_by[0], f"partition column of {table.name}")
    where = _partition_filter(column, partitions)
    return [f"DELETE FROM {target} WHERE {where}",
            f"INSERT INTO {target} SELECT * FROM {stage} WHERE {where}"]


def _refresh_sqls(target: str, stage: str, table: TableLoad, partitions: Sequence[str]
                  ) -> list[str]:
    """A full_refresh table's snapshot check, DELETE and INSERT (module docstring): nothing
    changes when the table holds a newer snapshot than the run's; the INSERT takes only the
    run's snapshot."""
    if table.replace_by or table.merge_keys:
        raise ConfigurationError(f"table {table.name}: a full_refresh table takes no "
                                 "replace_by or merge_keys")
    if table.snapshot_column is None:
        raise ConfigurationError(f"table {table.name}: a full_refresh table needs its "
                                 "snapshot_column")
    if len(partitions) != 1:
        raise InvalidInput(f"table {table.name} is refreshed whole from one snapshot, but the "
                           f"load names {len(partitions)} partitions: {list(partitions)}")
    column = safe_identifier(table.snapshot_column, f"snapshot column of {table.name}")
    snapshot = quote_literal(partitions[0])
    newer = f"SELECT 1 FROM {target} AS newer WHERE newer.{column} > {snapshot}"
    return [
        f"SELECT {column} FROM {target} WHERE {column} > {snapshot} LIMIT 1",
        f"DELETE FROM {target} WHERE NOT EXISTS ({newer})",
        f"INSERT INTO {target} SELECT * FROM {stage} WHERE {column} = {snapshot} "
        f"AND NOT EXISTS ({newer})",
    ]


# A batch's partition's folder; `run_id=` under it is the layout of batches resolved before
# the batch's tables were written at once (a redriven execution of such a batch).
_BATCH_OUTPUT = re.compile(
    r"^(?P<base>s3://.+/batch=[^/]+/)partition=[^/]+/(?:run_id=[^/]+/)?\Z")


def copy_prefix(table: str, output_uris: Sequence[str]) -> str:
    """What one COPY reads for a table: a single partition's output prefix and its `part-`
    files; for several partitions, their batch's prefix `.../batch=<id>/partition=`, which
    holds only that batch's partitions (the INSERT then takes only the loaded ones)."""
    for uri in output_uris:
        if not uri.startswith("s3://") or not uri.endswith("/"):
            raise InvalidInput(f"output of table {table} must be an s3:// prefix ending with "
                               f"'/', got {uri!r}")
    if len(output_uris) == 1:
        return output_uris[0] + DATA_FILE_PREFIX
    bases = {m["base"] if (m := _BATCH_OUTPUT.match(uri)) else None for uri in output_uris}
    if len(bases) != 1 or None in bases:
        raise InvalidInput(f"the outputs of table {table} for several partitions must lie under "
                           f"one batch=<id>/ prefix, got {list(output_uris)}")
    return f"{bases.pop()}partition="


def table_load_sqls(schema: str, table: TableLoad, output_uri: str | Sequence[str],
                    copy_role_arn: str, partitions: Sequence[str]) -> list[str]:
    """Stage, COPY, delete what the run replaces, insert: the INSERT is the last statement.
    `output_uri`: the table's output prefix, or one per partition of a batch (one COPY for
    all of them: `copy_prefix`; BatchExecuteStatement takes at most 40 statements). A
    full_refresh table loads the last partition's output only: each holds the whole table.

    The staging table is dropped first in case the session is reused (Data API sessions kept
    alive, or the local runtime's single connection): a temp table lives as long as its session.
    """
    schema = safe_identifier(schema, "load schema")
    name = safe_identifier(table.name, "load table")
    stage = safe_identifier(f"stage_{name}", "staging table")
    target = f"{schema}.{name}"
    uris = [output_uri] if isinstance(output_uri, str) else list(output_uri)
    if table.mode == "full_refresh" and len(uris) == len(partitions) > 1:
        # A batch of snapshots: each output holds the whole table; only the newest loads.
        newest, newest_uri = max(zip(partitions, uris, strict=True))
        partitions, uris = [newest], [newest_uri]
    if not uris:
        raise InvalidInput(f"the load of table {name} names no output")
    if not partitions or not all(isinstance(p, str) and p for p in partitions):
        raise InvalidInput(f"the load of table {name} names no partition to replace")
    return [
        f"DROP TABLE IF EXISTS {stage}",
        f"CREATE TEMP TABLE {stage} (LIKE {target})",
        f"COPY {stage} FROM {quote_literal(copy_prefix(name, uris))} "
        f"IAM_ROLE {quote_literal(copy_role_arn)} FORMAT AS PARQUET",
        *_replace_sqls(target, stage, table, partitions),
    ]


def build_load_batch(*, schema: str, tables: Sequence[TableLoad],
                     outputs: Mapping[str, str | Sequence[str]],
                     copy_role_arn: str, pending: Sequence[Migration], run_id: str,
                     applied_at: str, partitions: Sequence[str]) -> LoadBatch:
    """The whole batch: pending migrations (each recorded), then every table of the run,
    replacing exactly `partitions` (the run's, passed explicitly; a batch's loaded ones, with
    their outputs in the same order)."""
    if not re.match(r"^arn:aws[\w-]*:iam::\d{12}:role/", copy_role_arn):
        raise ConfigurationError(f"COPY role {copy_role_arn!r} is not an IAM role ARN")
    if not re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}", applied_at):
        raise ValueError("applied_at must be an ISO-8601 timestamp")
    sqls: list[str] = []
    applied: list[str] = []
    stamp = applied_at.replace("T", " ").rstrip("Z")[:19]
    for migration in pending:
        sqls.extend(migration.statements)
        sqls.append(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at, run_id) VALUES "
            f"({int(migration.version)}, {quote_literal(migration.name)}, "
            f"CAST({quote_literal(stamp)} AS timestamp), {quote_literal(run_id)})"
        )
        applied.append(migration.label)
    insert_index: dict[str, int] = {}
    snapshot_checks: dict[str, int] = {}
    for table in tables:
        safe_identifier(table.name, "load table")
        if table.name not in outputs:
            raise InvalidInput(f"the run manifest has no output for table {table.name!r}")
        sqls.extend(table_load_sqls(schema, table, outputs[table.name], copy_role_arn,
                                    partitions))
        insert_index[table.name] = len(sqls) - 1
        if table.mode == "full_refresh":
            snapshot_checks[table.name] = len(sqls) - 3  # check, DELETE, INSERT
    return LoadBatch(sqls, insert_index, applied, snapshot_checks)
