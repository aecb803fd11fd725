"""The local warehouse: an embedded PostgreSQL started for the run (or any PostgreSQL by URL).

Order of preference: the installed server binaries (initdb/pg_ctl) into `.local/warehouse/`, on
a free port on 127.0.0.1; else the `pgserver` package. A server left by an earlier run is reused
when its postmaster.pid names a live postgres process of ours; a stale pid file is removed.
As root, PostgreSQL refuses to run: the server then runs as the `postgres` system user (or
`nobody`), which must own the data directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from local_runtime.errors import LocalRuntimeError
from local_runtime.redaction import redact

LOG = logging.getLogger("local_runtime.warehouse")

INSTALL_JAVA = "install Java 17: `apt-get install openjdk-17-jre-headless` (or set JAVA_HOME)"
INSTALL_POSTGRES = ("install PostgreSQL server binaries: `apt-get install postgresql` "
                    "(initdb and pg_ctl on PATH), or `pip install pgserver`")


class WarehouseError(LocalRuntimeError):
    """The warehouse could not be started or reached (the message never shows a password)."""


def missing_prerequisites(path: str | None = None, *, allow_pgserver: bool = True,
                          java_home: str | None = None) -> list[str]:
    """What is missing to run locally, each as a message saying what to install (empty: ok)."""
    path = os.environ.get("PATH", "") if path is None else path
    java_home = os.environ.get("JAVA_HOME") if java_home is None else java_home
    problems = []
    has_java = shutil.which("java", path=path) or (
        java_home and Path(java_home, "bin", "java").is_file())
    if not has_java:
        problems.append(f"Java is missing (Spark needs it): {INSTALL_JAVA}")
    if not postgres_binaries(path) and not (allow_pgserver and _has_pgserver()):
        problems.append(f"PostgreSQL is missing (the warehouse needs it): {INSTALL_POSTGRES}")
    return problems


def postgres_binaries(path: str | None = None) -> dict[str, str] | None:
    found = {}
    for name in ("initdb", "pg_ctl"):
        exe = shutil.which(name, path=path)
        if not exe:
            return None
        found[name] = exe
    return found


def _has_pgserver() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("pgserver") is not None
    except (ImportError, ValueError):
        return False


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int = 54329) -> int:
    for port in (preferred, *range(preferred + 1, preferred + 50)):
        if port_is_free(port):
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive_postgres(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"postgres" in cmd
    except OSError:
        return True


def _run_as_user() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    raise WarehouseError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def connection_problem(url: str) -> str | None:
    """Why `url` cannot be connected to (first line of the driver's error, passwords redacted),
    or None when it answers."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        return redact(lines[0] if lines else type(e).__name__)


def _can_connect(url: str) -> bool:
    return connection_problem(url) is None


@dataclass
class Warehouse:
    """A PostgreSQL server: `url` is a libpq URL of its maintenance database."""

    url: str
    kind: str  # "binaries" | "pgserver" | "external"
    data_dir: Path | None = None
    port: int | None = None
    reused: bool = False
    _pgserver: object | None = None

    def database_url(self, database: str) -> str:
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{database}"

    def stop(self) -> None:
        if self.kind == "binaries" and self.data_dir is not None:
            pg_ctl = (postgres_binaries() or {}).get("pg_ctl")
            if pg_ctl and (self.data_dir / "postmaster.pid").exists():
                subprocess.run(_as_user([pg_ctl, "-D", str(self.data_dir), "-m", "fast", "stop"]),
                               capture_output=True, check=False, timeout=60)
        elif self.kind == "pgserver" and self._pgserver is not None:
            with contextlib.suppress(Exception):
                self._pgserver.cleanup()  # type: ignore[attr-defined]


def _as_user(cmd: list[str]) -> list[str]:
    user = _run_as_user()
    if user is None:
        return cmd
    import pwd

    name = pwd.getpwuid(user[0]).pw_name
    runuser = shutil.which("runuser") or shutil.which("su")
    if runuser and runuser.endswith("runuser"):
        return [runuser, "-u", name, "--", *cmd]
    import shlex

    return ["su", name, "-s", "/bin/sh", "-c", shlex.join(cmd)]


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            with contextlib.suppress(OSError):
                os.chown(os.path.join(root, n), uid, gid)


def _ensure_traversable(path: Path) -> None:
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            with contextlib.suppress(OSError):
                os.chmod(parent, mode | 0o011)  # noqa: S103 - traverse only, for the postgres user


def _postmaster(data: Path) -> tuple[int, int]:
    """(pid, port) from the data directory's postmaster.pid (0 where unknown)."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return 0, 0
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else 0
    return pid, port


# What PostgreSQL logs when another process took the port between free_port()'s check and its
# own bind (two local runs starting at once): the start is tried again on another port.
_PORT_TAKEN = ("Address already in use", "could not create any TCP/IP sockets")
PORT_ATTEMPTS = 5


def _start_postmaster(pg_ctl: str, base: Path, data: Path, user: tuple[int, int] | None,
                      port: int) -> int:
    """Start the server of `data` on `port` (another free one if that was taken meanwhile);
    the port it listens on."""
    log_file = base / "server.log"
    log_file.touch()
    if user:
        os.chown(log_file, *user)
    attempt = 1
    while True:
        logged = log_file.stat().st_size  # pg_ctl appends: this start's lines come after
        # TCP on 127.0.0.1 only: no Unix-domain socket, whose path (in the data folder) may be
        # longer than the 107 bytes PostgreSQL allows under a deep work directory.
        opts = (f"-p {port} -c listen_addresses=127.0.0.1 -k '' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        proc = subprocess.run(
            _as_user([pg_ctl, "-D", str(data), "-l", str(log_file), "-o", opts, "-w",
                      "-t", "60", "start"]),
            capture_output=True, text=True, check=False, timeout=90)
        if proc.returncode == 0:
            return port
        with open(log_file, "rb") as f:
            f.seek(logged)
            tail = f.read().decode(errors="replace")[-2000:]
        if attempt == PORT_ATTEMPTS or not any(t in tail for t in _PORT_TAKEN):
            raise WarehouseError(f"pg_ctl start failed: {proc.stderr.strip()} {tail}")
        LOG.warning("port %s was taken before the warehouse server could listen on it; "
                    "trying another", port)
        attempt += 1
        port = free_port(port + 1)


def start_binaries(base: Path, bins: dict[str, str], port: int | None = None) -> Warehouse:
    data = base / "data"
    state_file = base / "server.json"
    base.mkdir(parents=True, exist_ok=True)
    user = _run_as_user()
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        pid, old_port = _postmaster(data)
        url = f"postgresql://postgres@127.0.0.1:{old_port}/postgres"
        if pid and _pid_alive_postgres(pid) and _can_connect(url):
            LOG.info("reusing the warehouse server left running (pid %s, port %s)", pid, old_port)
            return Warehouse(url, "binaries", data, old_port, reused=True)
        LOG.warning("removing the stale postmaster.pid of a server that is gone (pid %s)", pid)
        pid_file.unlink()
    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        if user:
            _ensure_traversable(base)
            _chown_tree(base, *user)
        proc = subprocess.run(
            _as_user([bins["initdb"], "-D", str(data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C", "--no-sync"]),
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise WarehouseError(f"initdb failed: {proc.stderr.strip()[-2000:]}")
    if user:
        _ensure_traversable(base)
        _chown_tree(base, *user)
    port = _start_postmaster(bins["pg_ctl"], base, data, user,
                             port if port and port_is_free(port) else free_port())
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    state_file.write_text(json.dumps({"url": url, "port": port, "kind": "binaries"}))
    return Warehouse(url, "binaries", data, port)


def start_pgserver(base: Path) -> Warehouse:
    try:
        from pgserver.postgres_server import get_server
    except ImportError as e:
        raise WarehouseError(f"PostgreSQL is missing: {INSTALL_POSTGRES}") from e
    data = base / "pgserver"
    data.mkdir(parents=True, exist_ok=True)
    server = get_server(data, cleanup_mode=None)
    url = server.get_uri()
    (base / "server.json").write_text(json.dumps({"url": url, "kind": "pgserver"}))
    return Warehouse(url, "pgserver", data, _pgserver=server)


def start_warehouse(base: Path, url: str | None = None, *, prefer: str = "binaries"
                    ) -> Warehouse:
    """Start (or reuse) the local warehouse; `url` uses an existing PostgreSQL instead."""
    if url:
        problem = connection_problem(url)
        if problem is not None:
            raise WarehouseError(f"cannot connect to the warehouse at {redact(url)}: {problem} "
                                 "(check --warehouse-url, or leave it out to use the embedded "
                                 "PostgreSQL)")
        return Warehouse(url, "external")
    bins = postgres_binaries()
    if bins and prefer == "binaries":
        return start_binaries(base, bins)
    return start_pgserver(base)


def saved_warehouse(base: Path) -> Warehouse | None:
    """The warehouse described by `.local/warehouse/server.json`, if it still answers."""
    state_file = base / "server.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    wh = Warehouse(state["url"], state.get("kind", "binaries"), base / "data", state.get("port"))
    if wh.kind == "binaries":
        # the server of this data directory, not whichever server took its old port since
        pid, port = _postmaster(base / "data")
        if not (pid and port == wh.port and _pid_alive_postgres(pid)):
            return None
    return wh if _can_connect(wh.url) else None


# -- Redshift's rules the local tables hold -----------------------------------------------------
#
# PostgreSQL counts VARCHAR(n) in characters and enforces PRIMARY KEY and UNIQUE; Redshift counts
# bytes and enforces neither (Amazon Redshift Database Developer Guide, "Character types" and
# "Table constraints"). Left as they are, the local warehouse would accept text Redshift refuses
# and refuse duplicates Redshift keeps: a false green both ways. So the DDL the local warehouse
# runs is translated: every VARCHAR becomes a domain that counts UTF-8 bytes (with the error
# Redshift's INSERT gives, SQLSTATE 22001), and key constraints are dropped, so the product's own
# dedupe is what keeps a table free of duplicates, here as there. NUL needs nothing: PostgreSQL
# refuses it in text, as Redshift's COPY does.

VARCHAR_DEFAULT_BYTES = 256  # VARCHAR with no length, and TEXT (converted to VARCHAR(256))
VARCHAR_MAX_BYTES = 65535  # VARCHAR(MAX)
STRICT_SCHEMA = "public"
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NAME = r'(?:"(?:[^"]|"")*"|\w+)'
_CONSTRAINT_NAME = rf"(?:CONSTRAINT\s+{_NAME}\s+)?"
# (what, pattern): table constraints first (they take their list's comma), then column ones
KEY_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("table PRIMARY KEY/UNIQUE", re.compile(
        rf",\s*{_CONSTRAINT_NAME}(?:PRIMARY\s+KEY|UNIQUE)\s*\([^)]*\)", re.I)),
    ("table FOREIGN KEY", re.compile(
        rf",\s*{_CONSTRAINT_NAME}FOREIGN\s+KEY\s*\([^)]*\)\s*REFERENCES\s+{_NAME}(?:\.{_NAME})?"
        r"(?:\s*\([^)]*\))?", re.I)),
    ("column PRIMARY KEY/UNIQUE", re.compile(
        rf"\s+{_CONSTRAINT_NAME}(?:PRIMARY\s+KEY|UNIQUE)\b(?!\s*\()", re.I)),
    ("column REFERENCES", re.compile(
        rf"\s+{_CONSTRAINT_NAME}REFERENCES\s+{_NAME}(?:\.{_NAME})?(?:\s*\(\s*{_NAME}\s*\))?",
        re.I)),
]
_VARCHAR = re.compile(
    r"\b(?:character\s+varying|nvarchar|varchar)\b(?:\s*\(\s*(?P<n>\d+|max)\s*\))?", re.I)
_TEXT_TYPE = re.compile(
    r"(?<=[\w\"])(?P<gap>\s+)(?:text|bpchar)\b(?=\s*(?:,|\)|NOT\b|NULL\b|DEFAULT\b|$))", re.I)

_BYTES_FUNCTION = f"""DO $redshift$
BEGIN
  IF to_regprocedure('{STRICT_SCHEMA}.redshift_varchar_fits(text,integer)') IS NULL THEN
    CREATE FUNCTION {STRICT_SCHEMA}.redshift_varchar_fits(value text, max_bytes integer)
    RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $fn$
    BEGIN
      IF octet_length(value) > max_bytes THEN
        RAISE EXCEPTION 'value too long for type character varying(%)', max_bytes
          USING ERRCODE = 'string_data_right_truncation',
                DETAIL = format('%s bytes in UTF-8 (%s characters): Redshift counts VARCHAR '
                                'lengths in bytes', octet_length(value), char_length(value));
      END IF;
      RETURN true;
    END $fn$;
  END IF;
EXCEPTION WHEN duplicate_function OR unique_violation THEN NULL;
END $redshift$"""


def varchar_domain(max_bytes: int) -> str:
    """The domain that stands for Redshift's VARCHAR(max_bytes)."""
    return f"{STRICT_SCHEMA}.redshift_varchar_{max_bytes}"


def _domain_sql(max_bytes: int) -> str:
    # Two loads may race on a fresh warehouse: the loser's CREATE waits for the winner's
    # commit, then fails with unique_violation, which is the "already there" it means.
    return f"""DO $redshift$
BEGIN
  IF to_regtype('{varchar_domain(max_bytes)}') IS NULL THEN
    CREATE DOMAIN {varchar_domain(max_bytes)} AS varchar
      CHECK ({STRICT_SCHEMA}.redshift_varchar_fits(VALUE, {max_bytes}));
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $redshift$"""


def _varchar_bytes(match: re.Match[str]) -> int:
    n = match.group("n")
    if n is None:
        return VARCHAR_DEFAULT_BYTES
    if n.lower() == "max":
        return VARCHAR_MAX_BYTES
    return int(n)


def strict_ddl(sql: str) -> tuple[str, list[str]]:
    """A CREATE TABLE statement as the local warehouse runs it: VARCHAR(n) counting bytes,
    no key constraints; the statements creating what it uses go first. Returns (sql, what
    changed). Quoted literals (defaults) are left alone."""
    literals: list[str] = []

    def hide(match: re.Match[str]) -> str:
        literals.append(match.group(0))
        return f"\x00{len(literals) - 1}\x00"

    text = _LITERAL.sub(hide, sql)
    changed: list[str] = []
    for what, pattern in KEY_RULES:
        for found in pattern.finditer(text):
            changed.append(f"{what} not enforced by Redshift: {found.group(0).strip(', ')}")
        text = pattern.sub("", text)
    text = _TEXT_TYPE.sub(lambda m: f"{m.group('gap')}varchar({VARCHAR_DEFAULT_BYTES})", text)
    lengths: list[int] = []

    def to_domain(match: re.Match[str]) -> str:
        size = _varchar_bytes(match)
        if not 0 < size <= VARCHAR_MAX_BYTES:
            return match.group(0)  # PostgreSQL refuses it; Redshift would as well
        lengths.append(size)
        changed.append(f"{match.group(0)}: counted in bytes")
        return varchar_domain(size)

    text = _VARCHAR.sub(to_domain, text)
    text = re.sub(r"\x00(\d+)\x00", lambda m: literals[int(m.group(1))], text)
    for change in changed:
        LOG.info("as Redshift: %s", change)
    if not lengths:
        return text, changed
    prelude = [_BYTES_FUNCTION, *(_domain_sql(n) for n in sorted(set(lengths)))]
    return ";\n".join([*prelude, text]), changed
