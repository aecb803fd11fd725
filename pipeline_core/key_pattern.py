"""What a catalog key_pattern says about the raw keys it accepts: the fixed file suffixes after
the partition (`.csv`, `.csv.gz`).

EventBridge routes a raw object by its key (template.yaml lists `<prefix>*<suffix>` for every
dataset) and ResolveRun looks a scheduled day up as `<prefix><day><suffix>`, so a key pattern has
one routable shape: `^`, the dataset's prefix, the `(?P<partition>...)` group, then a finite set
of literal suffixes written with escaped characters, `(?:...)` groups, `|` and `?`, then an
optional `$` or `\\Z`. Anything else (`.*`, classes, repeats) is refused with the reason, since
no prefix/suffix filter could route exactly those keys.
"""

from __future__ import annotations

from pipeline_core.errors import ConfigurationError

PARTITION_GROUP = "(?P<partition>"
MAX_SUFFIXES = 16
_META = set(".^$*+?{}[]\\|()")
_SAMPLE_PARTITION = "2000-01-31"
_TAIL_HINT = (r"after the partition group write only fixed suffixes, like \.csv(?:\.gz)? "
              "(EventBridge routes a key by its prefix and suffix)")
_HEAD_HINT = "before the partition group write only '^' and the dataset's prefix"


class _Tail:
    """A recursive-descent reader of the suffix part of a key pattern (a tiny regex subset)."""

    def __init__(self, text: str, where: str, hint: str = _TAIL_HINT):
        self.text, self.pos, self.where, self.hint = text, 0, where, hint

    def fail(self, problem: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self.where}: {problem} at position {self.pos} of {self.text!r}; {self.hint}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def alternatives(self) -> set[str]:
        found = self.sequence()
        while self.peek() == "|":
            self.pos += 1
            found |= self.sequence()
        return found

    def sequence(self) -> set[str]:
        found = {""}
        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            if self.peek() == "?":
                self.pos += 1
                atom = atom | {""}
            found = {a + b for a in found for b in atom}
            if len(found) > MAX_SUFFIXES:
                raise self.fail(f"more than {MAX_SUFFIXES} suffixes")
        return found

    def atom(self) -> set[str]:
        ch = self.peek()
        if self.text.startswith("(?:", self.pos):
            self.pos += 3
            inner = self.alternatives()
            if self.peek() != ")":
                raise self.fail("an unclosed group")
            self.pos += 1
            return inner
        if ch == "\\":
            escaped = self.text[self.pos + 1: self.pos + 2]
            if not escaped or escaped.isalnum() or escaped == "_":
                raise self.fail(f"the escape \\{escaped} (only escaped punctuation is literal)")
            self.pos += 2
            return {escaped}
        if ch in _META:
            raise self.fail(f"the regex operator {ch!r}")
        self.pos += 1
        return {ch}


def _group_end(pattern: str, start: int, where: str) -> int:
    """The index just after the `)` closing the group opened at `start`."""
    depth, i = 0, start
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            close = pattern.find("]", i + 2)
            i = len(pattern) if close < 0 else close + 1
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        i += 1
        if depth == 0:
            return i
    raise ConfigurationError(f"{where}: the partition group is not closed")


def _head(pattern: str, where: str) -> str:
    """The literal text before the partition group, without its `^`."""
    start = pattern.find(PARTITION_GROUP)
    if start < 0:
        raise ConfigurationError(f"{where}: needs a (?P<partition>...) group")
    head = pattern[:start]
    if not head.startswith("^"):
        raise ConfigurationError(f"{where}: must start with ^ and the dataset's prefix")
    reader = _Tail(head[1:], where, _HEAD_HINT)
    literal = reader.sequence()
    if len(literal) != 1 or reader.peek():
        raise ConfigurationError(f"{where}: {_HEAD_HINT}")
    return literal.pop()


def key_suffixes(pattern: str, prefix: str, where: str = "key_pattern") -> tuple[str, ...]:
    """The suffixes (sorted) a key of the pattern ends with after its partition, or
    ConfigurationError when the pattern does not have the routable shape (module docstring)."""
    head = _head(pattern, where)
    if head != prefix:
        raise ConfigurationError(
            f"{where}: keys must start with the prefix {prefix!r} followed by the partition "
            f"group; the pattern puts {head!r} before it")
    tail = pattern[_group_end(pattern, pattern.find(PARTITION_GROUP), where):]
    for anchor in ("$", "\\Z"):
        if tail.endswith(anchor) and not tail.endswith("\\" + anchor):
            tail = tail[: -len(anchor)]
            break
    reader = _Tail(tail, where)
    suffixes = reader.sequence()
    if reader.peek() == "|":
        raise reader.fail("a '|' outside a group (it splits the whole pattern; write "
                          r"(?:\.csv|\.tsv))")
    if reader.peek():
        raise reader.fail("an unmatched ')'")
    if "" in suffixes:
        raise ConfigurationError(f"{where}: every key needs a file suffix after the partition "
                                 "(e.g. .csv), so that it can be routed by its suffix")
    return tuple(sorted(suffixes))


def sample_key(prefix: str, suffix: str) -> str:
    """A key of a day under `prefix` with `suffix` (to check the pattern accepts it)."""
    return f"{prefix}{_SAMPLE_PARTITION}{suffix}"
