"""What the warehouse must hold after loading one web_logs day, computed independently of the
product: plain Python (`re`, `datetime`), no Spark, no product code.

Read from the combined/common log format as Apache documents it
(https://httpd.apache.org/docs/2.4/logs.html#accesslog): host, identity, user, [time],
"request", status, size, then optionally "referer" "user-agent". Every line is a request,
exact duplicates included (two identical requests in one second); a line that does not have
that shape, or is of another day than the file's, is not loaded.
"""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
from collections import defaultdict
from pathlib import Path

# The crawler/automation tokens documented in the dataset (case-insensitive substrings).
BOT_TOKENS = ("bot", "crawl", "spider", "slurp", "archiver", "fetcher", "feedparser",
              "feedburner", "facebookexternalhit", "nutch", "curl/", "wget/", "python-urllib",
              "python-requests", "libwww-perl", "go-http-client", "java/", "httpclient",
              "scrapy", "headless")


def _quoted(text: str, start: int) -> tuple[str, int] | None:
    """The content of the quoted field opening at text[start] and the index after it."""
    if start >= len(text) or text[start] != '"':
        return None
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return text[start + 1:i], i + 1
        i += 1
    return None


def _fields(text: str) -> dict[str, str | None] | None:
    head, sep, rest = text.partition(" [")
    parts = head.split(" ")
    if not sep or len(parts) != 3 or "]" not in rest:
        return None
    time, _, rest = rest.partition("] ")
    request = _quoted(rest, 0)
    if request is None:
        return None
    tail = rest[request[1]:].split(" ", 3)
    if len(tail) < 3 or tail[0] != "":
        return None
    fields: dict[str, str | None] = {"client": parts[0], "time": time, "request": request[0],
                                     "status": tail[1], "size": tail[2], "referrer": None,
                                     "agent": None}
    if len(tail) == 4:
        referrer = _quoted(tail[3], 0)
        agent = _quoted(tail[3], referrer[1] + 1) if referrer else None
        if not referrer or not agent or tail[3][referrer[1]] != " " or agent[1] != len(tail[3]):
            return None
        fields["referrer"], fields["agent"] = referrer[0], agent[0]
    return fields


def _dash(value: str | None) -> str | None:
    return None if value in (None, "-", "") else value


def request_row(text: str) -> tuple | None:
    """(request_ts UTC, log_date, client_ip, method, path, query, protocol, status,
    response_bytes, referrer, user_agent, is_bot) of a loadable line, else None."""
    f = _fields(text)
    if f is None:
        return None
    ipaddress.ip_address(f["client"])  # the samples' clients are all valid
    local = dt.datetime.strptime(f["time"], "%d/%b/%Y:%H:%M:%S %z")
    utc = local.astimezone(dt.UTC).replace(tzinfo=None)
    words = f["request"].split(" ")
    method = path = query = protocol = None
    if len(words) in (2, 3) and (len(words) == 2 or words[2].startswith("HTTP/")):
        method, target = words[0], words[1]
        protocol = words[2] if len(words) == 3 else None
        path, mark, rest = target.partition("?")
        query = rest if mark else None
    agent = _dash(f["agent"])
    bot = agent is not None and any(t in agent.lower() for t in BOT_TOKENS)
    size = None if f["size"] == "-" else int(f["size"])
    return (utc, local.date(), f["client"], method, path, query, protocol, int(f["status"]),
            size, _dash(f["referrer"]), agent, bot)


def _lines(path: Path) -> list[str]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8").splitlines()


def expected_day(path: Path, day: dt.date) -> dict:
    """requests (sorted rows), hourly ({(hour, day): figures}), errors ({(status, path):
    (requests, first_seen, last_seen)}), lines, quarantined."""
    lines = _lines(path)
    rows = [r for r in map(request_row, lines) if r is not None and r[1] == day]
    hourly: dict[tuple, list] = defaultdict(lambda: [0, 0, set(), 0, 0, 0, 0, 0])
    errors: dict[tuple, list] = {}
    for r in rows:
        h = hourly[(r[0].replace(minute=0, second=0), r[1])]
        h[0] += 1
        h[1] += r[8] or 0
        h[2].add(r[2])
        if 200 <= r[7] < 600:
            h[3 + r[7] // 100 - 2] += 1
        h[7] += r[11]
        if r[7] >= 400:
            e = errors.setdefault((r[7], r[4]), [0, r[0], r[0]])
            e[0] += 1
            e[1], e[2] = min(e[1], r[0]), max(e[2], r[0])
    return {
        "requests": sorted(rows, key=repr),
        "hourly": {k: (v[0], v[1], len(v[2]), *v[3:]) for k, v in hourly.items()},
        "errors": {k: tuple(v) for k, v in errors.items()},
        "lines": len(lines),
        "quarantined": len(lines) - len(rows),
    }
