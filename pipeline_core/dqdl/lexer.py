"""The one tokenizer of DQDL text, for whole rules files and for single rules alike.

Everything that needs to know where a quoted string or a comment starts and ends (splitting a
file into sections and rules, a rule's canonical text, the rule grammar) reads these tokens, so
the quoting rules live in one place. The tokenizer never raises: a character it does not know and
an unterminated string become ``bad`` tokens, and the parser reports them where the grammar
reaches them, so a file's problems are reported in the order a reader meets them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_SCANNER = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<num>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    | (?P<punct>[()\[\],])
    | (?P<op>>=|<=|!=|=|>|<|\+|-|\*|/)
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r'\\(["\\])')  # only \" and \\ are escapes; "\d" keeps its backslash
_SKIPPED = ("space", "comment")
UNTERMINATED = "unterminated quoted string"


@dataclass(frozen=True)
class Token:
    """``kind`` is str, num, ident, op, one of ``( ) [ ] ,``, bad or end. ``text`` is the token
    as written; ``value`` is a string's content (escapes resolved) or, for bad, the problem."""

    kind: str
    text: str
    start: int
    end: int
    line: int
    value: str = ""

    @property
    def number(self) -> float:
        return float(self.text)


def tokenize(text: str, comments: bool = False) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token.

    ``comments``: ``#`` starts a comment (rules files). A single rule's text never holds one
    (its canonical text is written without), so there ``#`` is a character out of place.
    """
    tokens: list[Token] = []
    pos, line = 0, 1
    while pos < len(text):
        token = _scan(text, pos, line, comments)
        if token.kind not in _SKIPPED:
            tokens.append(token)
        line += text.count("\n", token.start, token.end)
        pos = token.end
    tokens.append(end_token(pos, line))
    return tokens


def end_token(offset: int, line: int) -> Token:
    """The sentinel a parser finds when the text runs out (its text is what errors show)."""
    return Token("end", "end of rule", offset, offset, line)


def _scan(text: str, pos: int, line: int, comments: bool) -> Token:
    match = _SCANNER.match(text, pos)
    kind = match.lastgroup if match else None
    if match is None or kind is None or (kind == "comment" and not comments):
        if text[pos] == '"':
            return Token("bad", text[pos:], pos, len(text), line, UNTERMINATED)
        return Token("bad", text[pos], pos, pos + 1, line, f"unexpected character {text[pos]!r}")
    written = match.group()
    if kind == "str":
        return Token(kind, written, pos, match.end(), line, _ESCAPE.sub(r"\1", written[1:-1]))
    return Token(written if kind == "punct" else kind, written, pos, match.end(), line)


def span_text(tokens: Sequence[Token]) -> str:
    """The tokens as written, with one space wherever the source had whitespace or a comment
    between them: the canonical text of a rule, however it was spread over lines."""
    parts: list[str] = []
    for before, token in zip((None, *tokens), tokens, strict=False):
        if before is not None and token.start > before.end:
            parts.append(" ")
        parts.append(token.text)
    # An unterminated string runs to the end of the text, trailing whitespace included.
    return "".join(parts).strip()
