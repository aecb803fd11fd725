"""SQL identifier safety: every table and schema name reaches SQL only through here."""

import re

from pipeline_core.errors import ConfigurationError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
# Words that would be legal by shape but change the meaning of generated SQL.
_RESERVED = frozenset({
    "all", "and", "as", "asc", "between", "by", "case", "cast", "check", "column",
    "constraint", "create", "delete", "desc", "distinct", "drop", "else", "end", "false",
    "from", "grant", "group", "having", "in", "insert", "into", "is", "join", "limit", "not",
    "null", "offset", "on", "or", "order", "primary", "references", "select", "table", "then",
    "to", "true", "union", "unique", "update", "user", "using", "when", "where", "with",
})


def safe_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a safe lower-case SQL identifier, else raise ConfigurationError."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or name in _RESERVED:
        raise ConfigurationError(
            f"{what} {name!r} is not a safe SQL identifier: use 1-63 lower-case letters, digits "
            "and underscores, starting with a letter or underscore, and not a reserved word"
        )
    return name


def quote_literal(value: str) -> str:
    """Quote a string literal for SQL: single quotes doubled.

    A backslash is refused: Redshift reads it as an escape inside a literal (its QUOTE_LITERAL
    function doubles backslashes: Amazon Redshift Database Developer Guide, "QUOTE_LITERAL
    function"), while PostgreSQL with standard_conforming_strings does not, so one text would
    mean two values on the warehouse and on its local stand-in. No value this product quotes
    (URIs, ARNs, run ids, partitions, migration names) needs one.
    """
    if "\x00" in value:
        raise ConfigurationError("a SQL literal cannot contain a NUL character")
    if "\\" in value:
        raise ConfigurationError(
            f"a SQL literal cannot contain a backslash (Redshift reads it as an escape): {value!r}"
        )
    return "'" + value.replace("'", "''") + "'"
