"""Why a Spark job failed, in one line: the one classifier for the job and for HandleFailure.

A failed job leaves a Python traceback, a JVM stack trace, EMR Serverless's `stateDetails`
("Job execution failed, please check complete logs in configured logging destination.
ExitCode: 1. Last few exceptions: ...") or an EMR step's `FailureDetails`. A person reading the
ledger or an alert needs what happened, not the stack: `classify_text` finds the cause in any of
those texts, `classify_exception` in a Python exception chain (py4j's errors carry the Java
trace in their text). Pure: no pyspark, no boto3.

Categories, first match wins (an executor lost to memory is also a failed task; a disk that
fills during a shuffle is also a SparkException): out_of_memory, disk_full, driver_lost,
task_failed, analysis, spark_error (any other Spark exception), job_error (the job's own
`JOB ERROR:` line), error (anything else).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from dataclasses import dataclass

LINE_MAX = 500
JOB_ERROR = "JOB ERROR:"

OUT_OF_MEMORY = "out_of_memory"
DISK_FULL = "disk_full"
DRIVER_LOST = "driver_lost"
TASK_FAILED = "task_failed"
ANALYSIS = "analysis"
SPARK_ERROR = "spark_error"
JOB_ERROR_CATEGORY = "job_error"
OTHER = "error"


@dataclass(frozen=True)
class FailureCause:
    """`line`: one line for a person (no stack); `logs`: where the text says the logs are."""

    category: str
    line: str
    logs: str | None = None


_JAVA_OOM = re.compile(r"java\.lang\.OutOfMemoryError(?::[ \t]*(?P<detail>[^\n]*))?")
_CONTAINER_MEMORY = re.compile(
    r"(?P<what>Container (?:\S+ )?killed (?:by YARN )?for exceeding memory limits[^\n]*"
    r"|Container killed on request\. Exit code is 137"
    r"|Executor lost[^\n]*exit code:? 137[^\n]*)", re.I)
_PY_MEMORY = re.compile(r"^(?:\w+\.)*MemoryError(?::[ \t]*(?P<detail>[^\n]*))?$", re.M)
_NO_SPACE = re.compile(r"No space left on device|\bENOSPC\b|\[Errno 28\]|Disk quota exceeded")
# where it was writing: Python's OSError text, java.io's "<path> (No space left on device)",
# or this module's own line (so a classified line classifies to itself)
_NO_SPACE_PATHS = (
    re.compile(r"\[Errno 28\] No space left on device: '(?P<path>[^']+)'"),
    re.compile(r"(?P<path>(?:[a-z][\w+.-]*://|/)[^\s'\"()]+) \(No space left on device\)"),
    re.compile(r"while writing (?P<path>\S+): No space left on device"),
    re.compile(r"(?:writing|write to|write|create|creating) (?P<path>(?:[a-z][\w+.-]*://|/)[^\s:'\"]+)"
               r"[^\n]*No space left on device", re.I),
)
# in order: the first that matches names it (py4j's own words before the class name)
_DRIVER_LOST = tuple(re.compile(f"(?P<what>{p})", re.I) for p in (
    r"Answer from Java side is empty",
    r"Error while (?:sending or receiving|receiving)",
    r"Java gateway process exited[^\n]*",
    r"(?:killed by|terminated by|exited on) signal (?:9|SIGKILL)",
    r"(?:ExitCode:|exit code|exit status:?) (?:137|-9)\b",
    r"Cannot call methods on a stopped SparkContext",
    r"SparkContext was shut down",
    r"the Spark context has no JVM gateway[^\n]*",
    r"Py4JNetworkError[^\n]*",
))
_STAGE_FAILURE = re.compile(
    r"Job aborted due to stage failure: Task (?P<task>\S+) in stage (?P<stage>\S+) failed "
    r"(?P<times>\d+) times?, most recent failure: Lost task [^:]*?\):\s*(?P<root>[^\n]*)")
_PYTHON_WORKER = re.compile(r"(?:^|[\s.:])PythonException:")
_SPARK_ERROR = re.compile(
    r"(?:pyspark\.errors\.exceptions\.captured\.|org\.apache\.spark\.(?:[\w]+\.)*)"
    r"(?P<name>\w*(?:Exception|Error)):\s*(?P<detail>[^\n]*)")
_ANALYSIS = re.compile(r"(?:^|[\s.:])AnalysisException:\s*(?P<detail>[^\n]*)")
_EXCEPTION_LINE = re.compile(
    r"^(?:Caused by: |Exception in thread \"[^\"]*\" |: )?"
    r"(?P<line>(?:[a-z_][\w$]*\.)*[A-Z][\w$]*(?:Exception|Error|Failure)(?::[^\n]*)?)$", re.M)
_LOGS_IN = re.compile(
    r"check complete logs in (?P<where>(?:[a-z][\w+.-]*://|/)[^\s,;]+?)\.?(?:\s|$)")
# EMR Serverless's stateDetails wording, kept apart from the exceptions it quotes
_STATE_DETAILS = re.compile(
    r"^Job (?:execution )?failed, please check complete logs in .*?\.(?:\s+|$)"
    r"(?:ExitCode: -?\d+\.?\s*)?(?:Last few exceptions:\s*)?", re.I | re.S)


def one_line(text: str, limit: int = LINE_MAX) -> str:
    """`text` on one line (whitespace runs become one space), clipped to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _out_of_memory(text: str) -> FailureCause | None:
    found = _JAVA_OOM.search(text)
    if found:
        detail = (found.group("detail") or "").strip()
        shown = "java.lang.OutOfMemoryError" + (f": {detail}" if detail else "")
        where = "a Spark executor" if re.search(r"\bLost task\b|\bexecutor\b", text[
            max(0, found.start() - 400):found.start()], re.I) else "the Spark driver"
        return FailureCause(OUT_OF_MEMORY, f"{where} ran out of memory ({shown})")
    found = _CONTAINER_MEMORY.search(text)
    if found:
        return FailureCause(OUT_OF_MEMORY,
                            f"a Spark executor ran out of memory ({found.group('what').strip()})")
    found = _PY_MEMORY.search(text)
    if found:
        detail = (found.group("detail") or "").strip()
        return FailureCause(OUT_OF_MEMORY, "the job's Python process ran out of memory "
                            f"(MemoryError{': ' + detail if detail else ''})")
    return None


def _disk_full(text: str) -> FailureCause | None:
    if not _NO_SPACE.search(text):
        return None
    for pattern in _NO_SPACE_PATHS:
        found = pattern.search(text)
        if found:
            return FailureCause(DISK_FULL,
                                f"disk full while writing {found.group('path')}: "
                                "No space left on device")
    return FailureCause(DISK_FULL, "disk full: No space left on device")


def _driver_lost(text: str) -> FailureCause | None:
    found = next((m for m in (p.search(text) for p in _DRIVER_LOST) if m), None)
    if not found:
        return None
    what = found.group("what").strip()
    if re.search(r"(?:137|-9)$|signal (?:9|SIGKILL)", what):
        return FailureCause(DRIVER_LOST, f"the job's processes were killed (SIGKILL: {what}; "
                            "the kernel's out-of-memory killer sends it too)")
    return FailureCause(DRIVER_LOST, f"the Spark driver JVM is gone (killed or crashed): {what}")


def _task_failed(text: str) -> FailureCause | None:
    found = _STAGE_FAILURE.search(text)
    if not found:
        return None
    root = found.group("root").strip() or "no reason given"
    if "PythonException" in root:  # the Python worker's own traceback follows: its last line
        root = _last_exception(text[found.end():]) or root
    return FailureCause(TASK_FAILED, f"a Spark task failed {found.group('times')} time(s) in "
                        f"stage {found.group('stage')}: {root}")


def _analysis(text: str) -> FailureCause | None:
    found = _ANALYSIS.search(text)
    if not found:
        return None
    return FailureCause(ANALYSIS, f"Spark refused the query (AnalysisException: "
                        f"{found.group('detail').strip()})")


def _python_worker(text: str) -> FailureCause | None:
    found = _PYTHON_WORKER.search(text)
    if not found:
        return None
    root = _last_exception(text[found.end():]) or "see the logs"
    return FailureCause(TASK_FAILED, f"a Python function in a Spark task failed ({root})")


def _spark_error(text: str) -> FailureCause | None:
    found = _SPARK_ERROR.search(text)
    if not found:
        return None
    detail = found.group("detail").strip()
    return FailureCause(SPARK_ERROR, f"Spark failed ({found.group('name')}"
                        + (f": {detail})" if detail else ")"))


_RULES: tuple[Callable[[str], FailureCause | None], ...] = (
    _out_of_memory, _disk_full, _driver_lost, _task_failed, _analysis, _python_worker,
    _spark_error)


def _last_exception(text: str) -> str | None:
    """The deepest exception line: the last `Caused by:` or a Python traceback's last line."""
    lines = [m.group("line").strip() for m in _EXCEPTION_LINE.finditer(text)]
    return lines[-1] if lines else None


# The beginnings of the lines this module writes, so that the job's JOB ERROR line (already
# classified by the job) keeps its words and its category when read back from the logs.
_OWN_LINES = (
    ("the Spark driver ran out of memory", OUT_OF_MEMORY),
    ("a Spark executor ran out of memory", OUT_OF_MEMORY),
    ("the job's Python process ran out of memory", OUT_OF_MEMORY),
    ("disk full", DISK_FULL),
    ("the Spark driver JVM is gone", DRIVER_LOST),
    ("the job's processes were killed", DRIVER_LOST),
    ("a Spark task failed", TASK_FAILED),
    ("a Python function in a Spark task failed", TASK_FAILED),
    ("Spark refused the query", ANALYSIS),
    ("Spark failed (", SPARK_ERROR),
)


def _recognized(body: str) -> FailureCause | None:
    for rule in _RULES:
        found = rule(body)
        if found is not None:
            return found
    return None


def classify_text(text: str) -> FailureCause:
    """The cause named by a log tail, a stack trace, stateDetails or FailureDetails' text."""
    text = text or ""
    logs_found = _LOGS_IN.search(text)
    logs = logs_found.group("where") if logs_found else None
    exit_code = re.search(r"ExitCode: (-?\d+)", text)
    body = _STATE_DETAILS.sub("", text.strip())
    if exit_code and not body.strip():
        code = exit_code.group(1)
        body = f"exit code {code}"
        if code not in ("137", "-9"):
            return FailureCause(OTHER, f"the job failed with exit code {code} and reported no "
                                "exception", logs)
    job_errors = [ln.strip() for ln in body.splitlines() if ln.strip().startswith(JOB_ERROR)]
    if job_errors:
        # the job's own line: it classified its exception itself (spark_jobs.common.entry),
        # or it refused its input in words of its own
        reason = job_errors[-1][len(JOB_ERROR):].strip()
        mine = next((c for start, c in _OWN_LINES if reason.startswith(start)), None)
        if mine is not None:
            return FailureCause(mine, one_line(reason), logs)
        return FailureCause(JOB_ERROR_CATEGORY, one_line(job_errors[-1]), logs)
    found = _recognized(body)
    if found is not None:
        return FailureCause(found.category, one_line(found.line), logs)
    last = _last_exception(body)
    if last is not None:
        return FailureCause(OTHER, one_line(last), logs)
    lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
    return FailureCause(OTHER, one_line(lines[0] if lines else "no details given"), logs)


def _exception_text(error: BaseException) -> str:
    """`module.Class: message` and, for OSError, the file, robust to a str() that raises (a
    py4j error whose JVM is gone)."""
    kind = type(error)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    try:
        message = str(error)
    except Exception:  # py4j asks the (dead) JVM for the Java exception's text
        message = ""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = error.filename or ""
        return f"disk full while writing {where}: No space left on device" if where else (
            "No space left on device")
    return f"{name}: {message}" if message else name


def classify_exception(error: BaseException) -> FailureCause:
    """The cause of an exception and of everything it was raised from (outermost first)."""
    seen: set[int] = set()
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(_exception_text(current))
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__)
    # in a Python traceback's order: the innermost first, the one raised last
    found = _recognized("\n".join(reversed(parts)))
    if found is not None:
        return FailureCause(found.category, one_line(found.line))
    return FailureCause(OTHER, one_line(parts[0]))
