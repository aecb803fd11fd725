"""The local runtime's state across processes: the run ledger file and the lock that guards it.

moto keeps its tables in memory, so each process starts with an empty run ledger. The ledger
lives on in `<work dir>/ledger.json` (`.local/ledger.json` by default):

- restore: `LocalDeployment.start()` reads the file first thing after taking the lock (a bad
  file stops it before anything starts) and puts every item into moto's ledger table before
  the first execution, so a redelivered object is a duplicate (DuplicateDelivery), a
  `--rerun` claims the next attempt (`<run id>-r<n>`), and the quality gate's history rules
  (`median(last(10))`, DetectAnomalies: the last N SUCCEEDED runs of the dataset) see the
  runs of earlier processes, as they would in AWS.
- dump: after each execution the whole table is written back (to a temporary file, then
  renamed over the old one, so a reader never sees half a file).
- lock: a deployment holds an exclusive `fcntl.flock` on `<work dir>/ledger.lock` from
  `start()` to `stop()`, i.e. for the whole of each command that runs executions (`run`,
  `demo`). A second process waits for it (saying once whom it waits for), then restores the
  ledger and sees the first one's runs: the same object delivered to both is loaded once and
  the second execution ends in DuplicateDelivery. `runs` only reads the file and takes no lock.
- a ledger file that cannot be read or is not a ledger stops the command with one error that
  names the file; the file is never replaced or emptied, and the message says how to move it
  aside (its runs would then run and load again).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, TextIO

from local_runtime.errors import LocalRuntimeError

LEDGER_FILE = "ledger.json"
LOCK_FILE = "ledger.lock"


class LedgerFileError(LocalRuntimeError):
    """The ledger file exists but cannot be read as a ledger (it is left as it is)."""


class StateBusy(LocalRuntimeError):
    """Another process held the local state's lock for longer than the caller would wait."""


def ledger_path(work_dir: Path) -> Path:
    return Path(work_dir) / LEDGER_FILE


# -- the lock -----------------------------------------------------------------------------------

class StateLock:
    """An exclusive flock on `<work_dir>/ledger.lock`. `timeout` None waits as long as it takes;
    otherwise StateBusy after `timeout` seconds. A waiter says once, on `out` (default stderr),
    whom it waits for. The holder writes its pid and command line
    into the file so that a waiter can say whom it waits for."""

    def __init__(self, work_dir: Path, *, timeout: float | None = None,
                 out: TextIO | None = None, poll_s: float = 0.05):
        self.path = Path(work_dir) / LOCK_FILE
        self.timeout = timeout
        self.out = out
        self.poll_s = poll_s
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> StateLock:
        if self._file is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        try:
            if not _try_lock(f):
                self._wait(f)
        except BaseException:
            f.close()
            raise
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {' '.join(sys.argv) or 'python'}\n")
        f.flush()
        self._file = f
        return self

    def _wait(self, f: IO[str]) -> None:
        holder = self.holder() or "another process"
        print(f"waiting for the local runtime that holds {self.path} ({holder}) to finish",
              file=self.out or sys.stderr, flush=True)
        if self.timeout is None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + self.timeout
        while not _try_lock(f):
            if time.monotonic() >= deadline:
                raise StateBusy(
                    f"{self.path} is held by {holder}: another local runtime is using "
                    f"{self.path.parent}; waited {self.timeout:g} s (wait longer, or let it "
                    "finish)")
            time.sleep(self.poll_s)

    def holder(self) -> str:
        """`pid <n>: <command>` of the process that last took the lock ('' if unknown)."""
        with contextlib.suppress(OSError):
            text = self.path.read_text().strip()
            pid, _, command = text.partition(" ")
            if pid.isdigit():
                return f"pid {pid}: {command}" if command else f"pid {pid}"
        return ""

    def release(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        with contextlib.suppress(OSError):
            f.seek(0)
            f.truncate()
            f.flush()
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(f: IO[str]) -> bool:
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# -- the ledger file ----------------------------------------------------------------------------

def _unreadable(path: Path, reason: str) -> LedgerFileError:
    aside = path.with_name(path.name + ".broken")
    return LedgerFileError(
        f"the local run ledger {path} cannot be used: {reason}. It is left as it is; fix it, "
        f"or move it aside to start with an empty ledger (`mv {path} {aside}`: the runs it "
        "records then count as never run, and their objects load again)")


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The items (DynamoDB JSON, as a scan returns them) of the ledger file; [] if there is no
    file; LedgerFileError naming the file if it is unreadable or not a ledger."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise _unreadable(path, f"cannot read it ({e.strerror or e})") from e
    except ValueError as e:
        raise _unreadable(path, f"not valid JSON ({e})") from e
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise _unreadable(path, 'expected an object with an "items" list')
    for i, item in enumerate(items):
        problem = _item_problem(item)
        if problem:
            raise _unreadable(path, f"item {i} {problem}")
    return items


def _item_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "is not an object"
    run_id = item.get("run_id")
    if not isinstance(run_id, dict) or not isinstance(run_id.get("S"), str) or not run_id["S"]:
        return 'has no "run_id": {"S": "..."}'
    for name, value in item.items():
        if not isinstance(value, dict) or len(value) != 1:
            return f"({run_id['S']}): attribute {name!r} is not a typed DynamoDB value"
    return None


def write_ledger(path: Path, table: str, items: list[dict[str, Any]]) -> None:
    """Replace the ledger file in one step: a temporary file of its own (two writers in one
    process never share one), flushed to disk, then renamed over it, so a crash leaves the old
    ledger or the new one, never half of one."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"table": table, "items": items}, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def restore_ledger(ddb: Any, table: str, path: Path,
                   items: list[dict[str, Any]] | None = None) -> int:
    """Put every item of the ledger file (`items`: as read_ledger read them) into the empty
    table; the number restored."""
    from botocore.exceptions import BotoCoreError, ClientError

    items = read_ledger(path) if items is None else items
    for item in items:
        try:
            ddb.put_item(TableName=table, Item=item)
        except (ClientError, BotoCoreError) as e:
            raise _unreadable(Path(path), f"item {item['run_id']['S']!r} was refused by the "
                                          f"ledger table ({e})") from e
    return len(items)


def known_raw_versions(items: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(bucket, key) -> (etag, version id) of the newest run the ledger holds for each raw
    object: what the raw bucket held when an earlier process ended (its objects do not outlive
    the process; the ledger does)."""
    newest: dict[tuple[str, str], tuple[str, str, str]] = {}
    for item in items:
        source = (item.get("input") or {}).get("M") or {}
        fields = {k: (source.get(k) or {}).get("S") for k in ("bucket", "key", "etag",
                                                               "version_id")}
        started = (item.get("started_at") or {}).get("S") or ""
        if not all(fields.values()):
            continue
        place = (str(fields["bucket"]), str(fields["key"]))
        if place not in newest or started >= newest[place][0]:
            newest[place] = (started, str(fields["etag"]), str(fields["version_id"]))
    return {place: (etag, version) for place, (_, etag, version) in newest.items()}


def scan_table(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def dump_ledger(ddb: Any, table: str, path: Path) -> int:
    """Write the whole table to the ledger file (it holds everything restored at start, so
    nothing of the file is lost); the number of items written."""
    items = sorted(scan_table(ddb, table), key=lambda i: i["run_id"]["S"])
    write_ledger(path, table, items)
    return len(items)
