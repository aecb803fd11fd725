"""Redshift Data API stand-in backed by a real PostgreSQL.

Installed into moto's redshift-data responses, so both the state machine's
aws-sdk:redshiftdata tasks and boto3 calls from the Lambda handlers reach it.

- Statements run asynchronously in a worker thread: SUBMITTED -> STARTED -> FINISHED | FAILED |
  ABORTED. A batch is one transaction; each sub-statement has its own Status/ResultRows.
- Every transaction runs at SERIALIZABLE isolation, as on a provisioned Redshift cluster: of
  two concurrent loads into one table one can fail with a serialization error (Redshift's
  1023, PostgreSQL's SQLSTATE 40001), which the error text carries as `(SQLSTATE 40001)`.
- A statement belongs to the principal that submitted it (the caller's aws:userid, see
  local_runtime.identity): to anyone else DescribeStatement, GetStatementResult and
  CancelStatement answer as for an id that does not exist, as the Data API does.
- `COPY <table> FROM 's3://...' IAM_ROLE '...' FORMAT AS PARQUET` reads the parquet objects under
  that prefix from moto S3 with pyarrow and streams them into the table with PostgreSQL COPY, in
  the same transaction. Redshift maps parquet columns by position, and so does this.
- Redshift-only DDL clauses are dropped by the explicit rules in DDL_DROP_RULES, each drop logged.
  Anything else PostgreSQL does not understand fails the statement, as on Redshift.
- A statement submitted WithEvent sends, when it ends (FINISHED, FAILED or ABORTED), the event
  "Monitoring events for the Amazon Redshift Data API in Amazon EventBridge" (Amazon Redshift
  Management Guide) shows: source aws.redshift-data, detail-type "Redshift Data Statement Status
  Change", detail principal, statementName, statementId, redshiftQueryId, state, rows,
  expireAt. `on_event` (the local deployment's EventBridge) receives it; a statement submitted
  without WithEvent sends nothing.
- Tests can hold a statement before its commit (`hold_before_commit`: two loads overlap) or
  delay it (`delay_before_commit`: a slow load).
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_runtime.redaction import redact
from local_runtime.warehouse import strict_ddl

LOG = logging.getLogger("local_runtime.redshift")

# (name, pattern): applied to CREATE TABLE statements only, outside quoted text.
DDL_DROP_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("DISTSTYLE", re.compile(r"\bDISTSTYLE\s+(AUTO|EVEN|KEY|ALL)\b", re.I)),
    ("DISTKEY(column)", re.compile(r"\bDISTKEY\s*\(\s*\"?\w+\"?\s*\)", re.I)),
    ("SORTKEY(columns)", re.compile(
        r"\b(?:(?:COMPOUND|INTERLEAVED)\s+)?SORTKEY\s*(?:\([^)]*\)|AUTO\b)", re.I)),
    ("ENCODE", re.compile(r"\bENCODE\s+\w+", re.I)),
    ("BACKUP", re.compile(r"\bBACKUP\s+(YES|NO)\b", re.I)),
    ("column DISTKEY", re.compile(r"\bDISTKEY\b(?!\s*\()", re.I)),
    ("column SORTKEY", re.compile(r"\bSORTKEY\b(?!\s*\()", re.I)),
]

_COPY = re.compile(
    r"^\s*COPY\s+(?P<table>[\w.\"]+)\s*(?:\((?P<cols>[^)]*)\))?\s+FROM\s+'(?P<uri>s3://[^']+)'"
    r"\s+(?P<opts>.*?)\s*;?\s*$", re.I | re.S)
_COPY_OPTS = re.compile(
    r"^(?:IAM_ROLE\s+'[^']*'\s*|FORMAT\s+(?:AS\s+)?PARQUET\s*|SERIALIZETOJSON\s*)+$", re.I)
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+(?:(?:LOCAL\s+)?(?:TEMP|TEMPORARY)\s+)?TABLE\b", re.I)


class StatementError(Exception):
    """A statement failed: the message is the Data API's `Error` text."""


def translate_sql(sql: str) -> tuple[str, list[str]]:
    """Drop the Redshift-only DDL clauses of a CREATE TABLE, make it as strict as Redshift;
    return (sql, dropped clauses)."""
    if not _CREATE_TABLE.match(sql):
        return sql, []
    # split into quoted / unquoted pieces; rules touch only unquoted text
    parts = re.split(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")", sql)
    dropped: list[str] = []
    for i in range(0, len(parts), 2):
        text = parts[i]
        for name, pattern in DDL_DROP_RULES:
            for m in pattern.finditer(text):
                dropped.append(f"{name}: {m.group(0)}")
            text = pattern.sub("", text)
        parts[i] = text
    out = "".join(parts)
    out = re.sub(r"[ \t]+,", ",", out)
    out = re.sub(r"[ \t]+\)", ")", out)
    # Redshift's VARCHAR bytes and unenforced keys (local_runtime.warehouse.strict_ddl)
    return strict_ddl(out.rstrip())[0], dropped


@dataclass
class SubStatement:
    id: str
    sql: str
    status: str = "SUBMITTED"
    result_rows: int = -1
    has_result_set: bool = False
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    duration_ns: int = 0
    columns: list[dict[str, Any]] = field(default_factory=list)
    records: list[list[dict[str, Any]]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        d = {"Id": self.id, "QueryString": self.sql, "Status": self.status,
             "ResultRows": self.result_rows, "HasResultSet": self.has_result_set,
             "CreatedAt": self.created_at, "UpdatedAt": self.updated_at,
             "Duration": self.duration_ns, "ResultSize": -1,
             "RedshiftQueryId": abs(hash(self.id)) % 1_000_000}
        if self.error:
            d["Error"] = self.error
        return d


@dataclass
class Statement:
    id: str
    subs: list[SubStatement]
    batch: bool
    target: dict[str, Any]
    owner: str | None = None
    status: str = "SUBMITTED"
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    duration_ns: int = -1
    conn: Any = None
    cancelled: bool = False
    name: str | None = None
    with_event: bool = False
    principal: str | None = None  # the submitter's ARN, for the event

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "Id": self.id, "Status": self.status, "CreatedAt": self.created_at,
            "UpdatedAt": self.updated_at, "Duration": self.duration_ns,
            "HasResultSet": any(s.has_result_set for s in self.subs),
            "QueryString": "; ".join(s.sql for s in self.subs) if self.batch else self.subs[0].sql,
            "RedshiftPid": 1000 + abs(hash(self.id)) % 10000, "RedshiftQueryId": 0,
            "ResultRows": sum(max(s.result_rows, 0) for s in self.subs) if self.batch
            else self.subs[0].result_rows,
            "ResultSize": -1, **self.target,
        }
        if self.batch:
            d["SubStatements"] = [s.describe() for s in self.subs]
        if self.error:
            d["Error"] = self.error
        return d


class DataApiEngine:
    """Runs Data API statements on PostgreSQL. Thread-safe."""

    def __init__(self, database_url: Callable[[str], str],
                 read_parquet_prefix: Callable[[str], list[Any]]):
        self._database_url = database_url
        self._read_prefix = read_parquet_prefix
        self._lock = threading.Lock()
        self._statements: dict[str, Statement] = {}
        self._created_dbs: set[str] = set()
        self._failures: list[tuple[re.Pattern[str], str]] = []
        self._holds: list[_Hold] = []
        self._tokens: dict[tuple[str | None, str], str] = {}  # (owner, ClientToken) -> id
        self._delays: list[tuple[re.Pattern[str], float]] = []
        # where a WithEvent statement's event goes (EventBridge); None: nowhere
        self.on_event: Callable[[dict[str, Any]], object] | None = None
        self.account, self.region = "123456789012", "us-east-1"
        self.sql_seconds_total = 0.0
        self.dropped_clauses: list[str] = []

    # -- test hooks -----------------------------------------------------------------------------
    def inject_failure(self, pattern: str, message: str = "ERROR: injected failure") -> None:
        """Every statement whose SQL matches `pattern` fails with `message` (tests)."""
        with self._lock:
            self._failures.append((re.compile(pattern, re.I | re.S), message))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()
            self._holds.clear()
            self._delays.clear()

    def delay_before_commit(self, pattern: str, seconds: float) -> None:
        """Every statement whose SQL matches `pattern` waits `seconds` before it commits
        (tests: a slow load). clear_failures() ends it."""
        with self._lock:
            self._delays.append((re.compile(pattern, re.I | re.S), seconds))

    def _await_delay(self, st: Statement) -> None:
        with self._lock:
            seconds = sum(s for pattern, s in self._delays
                          if any(pattern.search(sub.sql) for sub in st.subs))
        if seconds > 0:
            time.sleep(seconds)

    def hold_before_commit(self, pattern: str, parties: int = 2, timeout: float = 10.0) -> None:
        """The first `parties` statements whose SQL matches `pattern` wait for each other just
        before they commit, at most `timeout` seconds (tests: make two loads overlap)."""
        with self._lock:
            self._holds.append(_Hold(re.compile(pattern, re.I | re.S),
                                     threading.Barrier(parties, timeout=timeout), parties))

    def _await_hold(self, st: Statement) -> None:
        with self._lock:
            hold = next((h for h in self._holds if h.remaining > 0 and any(
                h.pattern.search(sub.sql) for sub in st.subs)), None)
            if hold is not None:
                hold.remaining -= 1
        if hold is not None:
            try:
                hold.barrier.wait()
            except threading.BrokenBarrierError:
                LOG.info("statement %s: nobody else reached the commit hold", st.id)

    # -- API ------------------------------------------------------------------------------------
    def submit(self, sqls: list[str], *, batch: bool, target: dict[str, Any],
               parameters: list[dict[str, str]] | None = None, owner: str | None = None,
               token: str | None = None, name: str | None = None, with_event: bool = False,
               principal: str | None = None) -> Statement:
        """Run `sqls` (one transaction); `owner` is the submitter's aws:userid. The same
        ClientToken from the same owner returns the statement it started, not a second one.
        `with_event`: send the completion event to `on_event` when it ends."""
        sid = str(uuid.uuid4())
        subs = [SubStatement(f"{sid}:{i + 1}" if batch else sid, s) for i, s in enumerate(sqls)]
        st = Statement(sid, subs, batch, target, owner=owner, name=name, with_event=with_event,
                       principal=principal)
        with self._lock:
            if token and (owner, token) in self._tokens:
                return self._statements[self._tokens[(owner, token)]]
            if token:
                self._tokens[(owner, token)] = sid
            self._statements[sid] = st
        threading.Thread(target=self._run, args=(st, parameters), daemon=True,
                         name=f"redshift-data-{sid[:8]}").start()
        return st

    def get(self, statement_id: str, caller: str | None = None
            ) -> tuple[Statement, SubStatement | None]:
        """The statement (and sub-statement for `<id>:<n>`); KeyError when there is none, or
        when `caller` (an aws:userid) is not the principal that submitted it."""
        base, _, num = statement_id.partition(":")
        with self._lock:
            st = self._statements.get(base)
        if st is None or (caller is not None and caller != st.owner):
            raise KeyError(statement_id)
        if num:
            idx = int(num) - 1
            if not 0 <= idx < len(st.subs):
                raise KeyError(statement_id)
            return st, st.subs[idx]
        return st, None

    def cancel(self, statement_id: str, caller: str | None = None) -> bool:
        st, _ = self.get(statement_id, caller)
        with self._lock:
            if st.status not in ("SUBMITTED", "PICKED", "STARTED"):
                raise ValueError(f"Could not cancel a query that is already in {st.status} "
                                 f"state with ID: {statement_id}")
            st.cancelled = True
            conn = st.conn
        if conn is not None:
            try:
                conn.cancel_safe()
            except Exception:
                LOG.debug("cancel of %s: connection cancel failed", statement_id)
        return True

    # -- worker ---------------------------------------------------------------------------------
    def _ensure_database(self, database: str) -> None:
        import psycopg

        if database in self._created_dbs:
            return
        with psycopg.connect(self._database_url("postgres"), autocommit=True) as c:
            exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               (database,)).fetchone()
            if not exists:
                c.execute(f'CREATE DATABASE "{database}"')
        self._created_dbs.add(database)

    def _check_injected(self, sql: str) -> None:
        for pattern, message in list(self._failures):
            if pattern.search(sql):
                raise StatementError(message)

    def _run(self, st: Statement, parameters: list[dict[str, str]] | None) -> None:
        t0 = time.monotonic()
        try:
            self._run_transaction(st, parameters)
            self._finish(st, "FINISHED", None, None)
        except _Aborted:
            self._finish(st, "ABORTED", None, _stopped_at(st))
        except StatementError as e:
            if st.cancelled:
                self._finish(st, "ABORTED", None, _stopped_at(st))
            else:
                self._finish(st, "FAILED", str(e), _stopped_at(st))
        except Exception as e:
            LOG.exception("statement %s failed in the stand-in", st.id)
            self._finish(st, "FAILED", f"ERROR: {e}", _stopped_at(st))
        finally:
            elapsed = time.monotonic() - t0
            with self._lock:
                st.conn = None
                self.sql_seconds_total += elapsed
        self._send_event(st)

    def _send_event(self, st: Statement) -> None:
        """The completion event of a statement submitted WithEvent (nothing otherwise)."""
        sink = self.on_event
        if not st.with_event or sink is None:
            return
        try:
            sink(statement_event(st, self.account, self.region))
        except Exception:
            LOG.exception("statement %s: its completion event could not be sent", st.id)

    def _run_transaction(self, st: Statement, parameters: list[dict[str, str]] | None) -> None:
        """Every sub-statement in one transaction, committed unless cancelled meanwhile."""
        import psycopg

        database = st.target.get("Database") or "dev"
        self._ensure_database(database)
        with psycopg.connect(self._database_url(database)) as conn:
            conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
            with self._lock:
                st.conn = conn
                if st.cancelled:
                    raise _Aborted()
                st.status = "STARTED"
                st.updated_at = time.time()
            for sub in st.subs:
                if st.cancelled:
                    raise _Aborted()
                self._run_sub(conn, sub, parameters)
            if st.cancelled:
                raise _Aborted()
            self._await_delay(st)
            if st.cancelled:
                raise _Aborted()
            self._await_hold(st)
            try:
                conn.commit()
            except psycopg.Error as e:  # a serialization failure can surface at the commit
                raise StatementError(_pg_error(e)) from e

    def _run_sub(self, conn: Any, sub: SubStatement, parameters: list[dict[str, str]] | None
                 ) -> None:
        import psycopg

        sub.status = "STARTED"
        s0 = time.monotonic()
        try:
            self._execute(conn, sub, parameters)
        except psycopg.errors.QueryCanceled as e:
            raise _Aborted() from e
        except psycopg.Error as e:
            raise StatementError(_pg_error(e)) from e
        sub.duration_ns = int((time.monotonic() - s0) * 1e9)
        sub.status = "FINISHED"
        sub.updated_at = time.time()

    def _finish(self, st: Statement, status: str, error: str | None, failed_at: int | None
                ) -> None:
        with self._lock:
            now = time.time()
            if failed_at is not None:
                for j, sub in enumerate(st.subs):
                    if j == failed_at:
                        sub.status = status
                        sub.error = error
                    elif j > failed_at:
                        sub.status = "ABORTED"
                    sub.updated_at = now
            st.status = status
            st.error = error
            st.updated_at = now
            st.duration_ns = int((now - st.created_at) * 1e9)

    def _execute(self, conn: Any, sub: SubStatement, parameters: list[dict[str, str]] | None
                 ) -> None:
        self._check_injected(sub.sql)
        copy = _COPY.match(sub.sql)
        if copy:
            sub.result_rows = self._copy(conn, copy)
            return
        sql, dropped = translate_sql(sub.sql)
        for clause in dropped:
            LOG.info("dropped Redshift-only clause %r (PostgreSQL has no equivalent)", clause)
            self.dropped_clauses.append(clause)
        params = None
        if parameters:
            params = {p["name"]: p["value"] for p in parameters}
            sql = sql.replace("%", "%%")
            sql = re.sub(r"(?<!:):([A-Za-z_]\w*)", r"%(\1)s", sql)
        with conn.cursor() as cur:
            cur.execute(sql, params, prepare=False)
            if cur.description is not None:
                rows = cur.fetchall()
                sub.has_result_set = True
                sub.result_rows = len(rows)
                sub.columns = [_column_meta(d) for d in cur.description]
                sub.records = [[_field(v) for v in row] for row in rows]
            else:
                sub.result_rows = cur.rowcount if cur.rowcount is not None else -1

    def _copy(self, conn: Any, m: re.Match[str]) -> int:
        import pyarrow as pa

        opts = m.group("opts").strip()
        if not _COPY_OPTS.match(opts) or not re.search(r"PARQUET", opts, re.I):
            raise StatementError(
                f"ERROR: the local warehouse supports COPY ... FROM 's3://...' IAM_ROLE '...' "
                f"FORMAT AS PARQUET only; unsupported options: {opts!r}")
        table = m.group("table")
        tables = self._read_prefix(m.group("uri"))
        if not tables:
            raise StatementError(
                f"ERROR: The specified S3 prefix '{m.group('uri')}' does not exist")
        with conn.cursor() as cur:
            if m.group("cols"):
                columns = [c.strip() for c in m.group("cols").split(",")]
            else:
                cur.execute(
                    "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = %s::regclass "
                    "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (table,))
                columns = [r[0] for r in cur.fetchall()]
            total = 0
            col_list = ", ".join(f'"{c}"' for c in columns)
            with cur.copy(f"COPY {table} ({col_list}) FROM STDIN") as cp:
                for t in tables:
                    if t.num_columns != len(columns):
                        raise StatementError(
                            f"ERROR: Spectrum Scan Error: the parquet file has {t.num_columns} "
                            f"columns and the target {table} has {len(columns)}")
                    t = t.combine_chunks() if isinstance(t, pa.Table) else t
                    for batch in t.to_batches():
                        cols = [c.to_pylist() for c in batch.columns]
                        for row in zip(*cols, strict=True):
                            cp.write_row(row)
                            total += 1
        return total

    def sql_seconds(self) -> float:
        with self._lock:
            return self.sql_seconds_total


class _Aborted(Exception):
    pass


@dataclass
class _Hold:
    pattern: re.Pattern[str]
    barrier: threading.Barrier
    remaining: int


def statement_event(st: Statement, account: str, region: str) -> dict[str, Any]:
    """The EventBridge event of an ended statement, in the shape of the Redshift Management
    Guide's example ("Monitoring events for the Amazon Redshift Data API in Amazon
    EventBridge")."""
    if "WorkgroupName" in st.target:
        resource = f"arn:aws:redshift-serverless:{region}:{account}:workgroup/" \
                   f"{st.target['WorkgroupName']}"
    else:
        resource = f"arn:aws:redshift:{region}:{account}:cluster:" \
                   f"{st.target.get('ClusterIdentifier', 'local')}"
    rows = sum(max(s.result_rows, 0) for s in st.subs)
    return {
        "version": "0", "id": str(uuid.uuid4()),
        "detail-type": "Redshift Data Statement Status Change", "source": "aws.redshift-data",
        "account": account, "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region, "resources": [resource],
        "detail": {"principal": st.principal or "", "statementName": st.name or "",
                   "statementId": st.id, "redshiftQueryId": -1, "state": st.status,
                   "rows": rows, "expireAt": int(st.created_at) + 24 * 3600},
    }


def _stopped_at(st: Statement) -> int | None:
    """The sub-statement a started statement stopped at; None when it stopped before the first
    or after the last (while connecting, or at the commit)."""
    if st.status != "STARTED":
        return None
    return next((i for i, sub in enumerate(st.subs) if sub.status != "FINISHED"), None)


def _pg_error(e: Exception) -> str:
    diag = getattr(e, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag else None
    # the serialization failure class: say so as PostgreSQL's clients see it
    sqlstate = getattr(e, "sqlstate", None)
    suffix = f" (SQLSTATE {sqlstate})" if sqlstate and sqlstate.startswith("40") else ""
    # a connection error can quote the connection string: never pass a password on
    return redact(f"ERROR: {primary or str(e).strip().splitlines()[0]}{suffix}")


_TYPE_NAMES = {16: "bool", 20: "int8", 21: "int2", 23: "int4", 25: "text", 700: "float4",
               701: "float8", 1043: "varchar", 1082: "date", 1114: "timestamp",
               1184: "timestamptz", 1700: "numeric", 1042: "bpchar"}


def _column_meta(desc: Any) -> dict[str, Any]:
    type_name = _TYPE_NAMES.get(desc.type_code, str(desc.type_code))
    return {"name": desc.name, "label": desc.name, "typeName": type_name,
            "isSigned": type_name in ("int2", "int4", "int8", "float4", "float8", "numeric"),
            "isCaseSensitive": type_name in ("text", "varchar", "bpchar"),
            "isCurrency": False, "nullable": 1, "precision": desc.precision or 0,
            "scale": desc.scale or 0, "length": desc.internal_size or 0,
            "schemaName": "", "tableName": ""}


def _field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, decimal.Decimal):
        return {"stringValue": str(value)}
    if isinstance(value, dt.datetime):
        return {"stringValue": value.isoformat(sep=" ")}
    if isinstance(value, dt.date):
        return {"stringValue": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"stringValue": bytes(value).hex()}
    if isinstance(value, dict | list):
        return {"stringValue": json.dumps(value)}
    return {"stringValue": str(value)}


def read_parquet_objects(s3_client: Any, uri: str) -> list[Any]:
    """Every parquet object whose key starts with the COPY prefix, as pyarrow tables."""
    import pyarrow.parquet as pq

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    tables = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") or key.rsplit("/", 1)[-1].startswith(("_", ".")):
                continue
            body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
            tables.append(pq.read_table(io.BytesIO(body)))
    return tables
