"""The warehouse's column types and limits, read from the migrations' DDL.

`warehouse/migrations/*.sql` is the one definition of the tables a job loads. A job must not
write a value the table would refuse (the COPY, and with it the whole day's load, would fail),
so it takes each column's type and limit from here instead of keeping a copy of the DDL.

Redshift semantics (Amazon Redshift Database Developer Guide, "Character types" and "Numeric
types"): VARCHAR(n) and CHAR(n) hold at most n BYTES of UTF-8, not n characters; CHAR holds
single-byte characters only; neither can hold NUL. VARCHAR without a length is VARCHAR(256),
VARCHAR(MAX) is VARCHAR(65535), TEXT is VARCHAR(256), BPCHAR is CHAR(256), CHAR without a
length is CHAR(1); DECIMAL without a precision is DECIMAL(18,0). PostgreSQL (the local
stand-in) counts characters, so the byte limit is the stricter of the two and satisfies both.

The migrations are replayed in order: CREATE TABLE (with IF NOT EXISTS and LIKE), ALTER TABLE
ADD / DROP / ALTER ... TYPE / RENAME, and DROP TABLE change the definitions; any other statement
(CREATE SCHEMA, GRANT, INSERT, ALTER ... ENCODE / DISTKEY / SORTKEY, ...) leaves them as they
are. A table made with CREATE TABLE AS has columns no DDL names: asking for it is an error.

Pure: stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline_core.errors import ConfigurationError
from pipeline_core.load_sql import Migration, load_migrations

VARCHAR_MAX = 65535
INTEGER_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class ColumnType:
    """A column's type: `name` is canonical (varchar, char, decimal, smallint, integer, bigint,
    real, double precision, boolean, date, timestamp, timestamptz, ... or the DDL's own words
    for a type this module has no limits for)."""

    name: str
    length: int | None = None  # varchar/char: the most BYTES a value may hold
    precision: int | None = None  # decimal
    scale: int | None = None  # decimal

    @property
    def is_text(self) -> bool:
        return self.name in ("varchar", "char")

    def __str__(self) -> str:
        if self.is_text:
            return f"{self.name}({self.length})"
        if self.name == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return self.name


@dataclass(frozen=True)
class ColumnDefinition:
    name: str
    type: ColumnType
    not_null: bool = False


@dataclass(frozen=True)
class TableDefinition:
    name: str  # as written in the DDL, lower case: "schema.table" or "table"
    columns: tuple[ColumnDefinition, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnDefinition:
        for column in self.columns:
            if column.name == name:
                return column
        raise ConfigurationError(f"table {self.name} has no column {name!r} "
                                 f"(columns: {', '.join(self.column_names)})")

    def limits(self) -> dict[str, ColumnType]:
        """column -> type, in table order."""
        return {c.name: c.type for c in self.columns}


# ---------------------------------------------------------------------------------------------
# Tokens


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<ident>"(?:[^"]|"")*")
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>\d+(?:\.\d*)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class _Token:
    kind: str  # word (lower case, quoted identifiers unquoted), number, string, other
    text: str


def _tokens(statement: str) -> list[_Token]:
    out: list[_Token] = []
    for match in _TOKEN.finditer(statement):
        kind = match.lastgroup or "other"
        text = match.group()
        if kind == "space":
            continue
        if kind == "ident":
            # Redshift folds identifiers to lower case, quoted ones too (by default).
            kind, text = "word", text[1:-1].replace('""', '"')
        out.append(_Token(kind, text.lower() if kind == "word" else text))
    return out


class _Cursor:
    def __init__(self, tokens: Sequence[_Token], statement: str):
        self.tokens = tokens
        self.i = 0
        self.statement = statement

    def peek(self, offset: int = 0) -> str | None:
        j = self.i + offset
        return self.tokens[j].text if j < len(self.tokens) else None

    def accept(self, *words: str) -> bool:
        """Consume `words` if the next tokens are exactly them."""
        if all(self.peek(k) == w for k, w in enumerate(words)):
            self.i += len(words)
            return True
        return False

    def next(self) -> _Token:
        if self.i >= len(self.tokens):
            raise self.error("unexpected end of statement")
        token = self.tokens[self.i]
        self.i += 1
        return token

    def name(self) -> str:
        """A possibly qualified name: a, a.b or a.b.c."""
        parts = [self._word()]
        while self.peek() == ".":
            self.i += 1
            parts.append(self._word())
        return ".".join(parts)

    def _word(self) -> str:
        token = self.next()
        if token.kind != "word":
            raise self.error(f"expected a name, found {token.text!r}")
        return token.text

    def group(self) -> list[list[_Token]]:
        """A parenthesized list, split on its top-level commas (the cursor is at '(')."""
        if self.next().text != "(":
            raise self.error("expected '('")
        items: list[list[_Token]] = [[]]
        depth = 0
        while True:
            token = self.next()
            if token.text == ")" and depth == 0:
                return [item for item in items if item]
            depth += {"(": 1, ")": -1}.get(token.text, 0)
            if token.text == "," and depth == 0:
                items.append([])
            else:
                items[-1].append(token)

    def error(self, message: str) -> ConfigurationError:
        text = " ".join(self.statement.split())
        return ConfigurationError(f"{message} in: {text[:200]}")


# ---------------------------------------------------------------------------------------------
# Types


_ALIASES = {
    "character varying": "varchar", "nvarchar": "varchar", "varchar": "varchar",
    "character": "char", "nchar": "char", "char": "char",
    "numeric": "decimal", "decimal": "decimal",
    "int2": "smallint", "smallint": "smallint",
    "int": "integer", "int4": "integer", "integer": "integer",
    "int8": "bigint", "bigint": "bigint",
    "float4": "real", "real": "real",
    "float8": "double precision", "float": "double precision",
    "double precision": "double precision",
    "bool": "boolean", "boolean": "boolean",
    "timestamp without time zone": "timestamp", "timestamp": "timestamp",
    "timestamp with time zone": "timestamptz", "timestamptz": "timestamptz",
    "time without time zone": "time", "time with time zone": "timetz",
}
# Types that are another type with a fixed limit.
_FIXED = {"text": ColumnType("varchar", 256), "bpchar": ColumnType("char", 256)}
# Words that end a column's type and start its attributes.
_ATTRIBUTES = {"encode", "default", "identity", "generated", "not", "null", "primary", "unique",
               "references", "collate", "distkey", "sortkey", "constraint", "check"}


def _type_arguments(tokens: Sequence[_Token], where: _Cursor) -> list[str]:
    """The arguments of `(a, b)` as text ("max" included), [] when there are none."""
    if not tokens:
        return []
    if tokens[0].text != "(" or tokens[-1].text != ")":
        raise where.error(f"cannot read the type arguments {' '.join(t.text for t in tokens)!r}")
    return [t.text for t in tokens[1:-1] if t.text != ","]


def _integer(text: str, where: _Cursor) -> int:
    if not text.isdigit():
        raise where.error(f"type argument {text!r} is not a whole number")
    return int(text)


def parse_type(words: Sequence[str], arguments: Sequence[str], where: _Cursor) -> ColumnType:
    """The canonical type of DDL type words (e.g. ["character", "varying"]) and arguments."""
    spelled = " ".join(words)
    if spelled in _FIXED and not arguments:
        return _FIXED[spelled]
    name = _ALIASES.get(spelled, spelled)
    if name in ("varchar", "char"):
        if not arguments:
            return ColumnType(name, 256 if name == "varchar" else 1)
        if name == "varchar" and arguments == ["max"]:
            return ColumnType(name, VARCHAR_MAX)
        return ColumnType(name, _integer(arguments[0], where))
    if name == "decimal":
        precision = _integer(arguments[0], where) if arguments else 18
        scale = _integer(arguments[1], where) if len(arguments) > 1 else 0
        if not 1 <= precision <= 38 or not 0 <= scale <= precision:
            raise where.error(f"decimal({precision},{scale}) is not a valid decimal type")
        return ColumnType(name, precision=precision, scale=scale)
    return ColumnType(name)


def _column(tokens: Sequence[_Token], where: _Cursor) -> ColumnDefinition:
    """`name type[(args)] [attributes]` -> the column."""
    if not tokens or tokens[0].kind != "word":
        raise where.error("expected a column name")
    words: list[str] = []
    i = 1
    while i < len(tokens) and tokens[i].kind == "word" and tokens[i].text not in _ATTRIBUTES:
        words.append(tokens[i].text)
        i += 1
    if not words:
        raise where.error(f"column {tokens[0].text!r} has no type")
    start = i
    if i < len(tokens) and tokens[i].text == "(":
        while i < len(tokens) and tokens[i].text != ")":
            i += 1
        i += 1
    column_type = parse_type(words, _type_arguments(tokens[start:i], where), where)
    attributes = [t.text for t in tokens[i:]]
    not_null = any(attributes[k:k + 2] in (["not", "null"], ["primary", "key"])
                   for k in range(len(attributes)))
    return ColumnDefinition(tokens[0].text, column_type, not_null)


# ---------------------------------------------------------------------------------------------
# Statements


_CONSTRAINTS = {"primary", "unique", "foreign", "constraint", "check"}
# ALTER TABLE t ALTER <property>: physical design, no column changes.
_TABLE_PROPERTIES = {"distkey", "sortkey", "diststyle", "encode", "compound", "interleaved"}


def _primary_key(constraint: Sequence[_Token]) -> list[str]:
    """The columns of a table-level `[CONSTRAINT name] PRIMARY KEY (a, b)` (NOT NULL in
    PostgreSQL), [] for any other constraint."""
    words = [t.text for t in constraint]
    if words[:1] == ["constraint"]:
        words = words[2:]
    if words[:2] != ["primary", "key"]:
        return []
    return [w for w in words[2:] if w not in ("(", ")", ",")]


class _Replay:
    """The table definitions as the migrations leave them, statement by statement."""

    def __init__(self) -> None:
        self.tables: dict[str, TableDefinition] = {}
        self.opaque: set[str] = set()  # made by CREATE TABLE AS: no known columns

    def apply(self, statement: str) -> None:
        cursor = _Cursor(_tokens(statement), statement)
        if cursor.accept("create"):
            self._create(cursor)
        elif cursor.accept("alter", "table"):
            self._alter(cursor)
        elif cursor.accept("drop", "table"):
            self._drop(cursor)

    def _create(self, cursor: _Cursor) -> None:
        cursor.accept("local")
        if cursor.accept("temp") or cursor.accept("temporary"):
            return  # lives for one session: not a warehouse table
        if not cursor.accept("table"):
            return  # CREATE SCHEMA, VIEW, FUNCTION, ...
        if_not_exists = cursor.accept("if", "not", "exists")
        name = cursor.name()
        if name in self.tables or name in self.opaque:
            if if_not_exists:
                return
            raise cursor.error(f"table {name} is created twice")
        if cursor.peek() != "(":
            self.opaque.add(name)  # CREATE TABLE ... AS SELECT
            return
        self.tables[name] = TableDefinition(name, self._elements(cursor.group(), cursor))

    def _elements(self, items: list[list[_Token]], cursor: _Cursor
                  ) -> tuple[ColumnDefinition, ...]:
        columns: list[ColumnDefinition] = []
        keys: set[str] = set()
        for item in items:
            head = item[0].text
            if head == "like":
                columns.extend(self.table(_Cursor(item[1:], cursor.statement).name()).columns)
            elif head not in _CONSTRAINTS:
                columns.append(_column(item, cursor))
            else:
                keys.update(_primary_key(item))
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise cursor.error("a column is defined twice")
        return tuple(replace(c, not_null=True) if c.name in keys else c for c in columns)

    def _drop(self, cursor: _Cursor) -> None:
        cursor.accept("if", "exists")
        while True:
            name = cursor.name()
            self.tables.pop(name, None)
            self.opaque.discard(name)
            if not cursor.accept(","):
                return

    def _alter(self, cursor: _Cursor) -> None:
        cursor.accept("if", "exists")
        name = cursor.name()
        table = self.tables.get(name)
        if table is None:
            return  # a table the migrations do not define (or one made by CREATE TABLE AS)
        if cursor.accept("rename", "to"):
            new = cursor.name()
            qualified = f"{name.rsplit('.', 1)[0]}.{new}" if "." in name else new
            del self.tables[name]
            self.tables[qualified] = replace(table, name=qualified)
            return
        self.tables[name] = _alter_columns(table, cursor)

    def table(self, name: str) -> TableDefinition:
        return _find(self.tables, self.opaque, name)


def _find(tables: Mapping[str, TableDefinition], opaque: Iterable[str], name: str
          ) -> TableDefinition:
    if name in opaque:
        raise ConfigurationError(
            f"table {name} is made by CREATE TABLE AS: its columns are not in the DDL")
    try:
        return tables[name]
    except KeyError:
        known = ", ".join(sorted(tables)) or "none"
        raise ConfigurationError(
            f"the warehouse migrations define no table {name} (tables: {known})") from None


def _alter_columns(table: TableDefinition, cursor: _Cursor) -> TableDefinition:
    """ADD / DROP / ALTER ... TYPE / RENAME of one column; other ALTERs change no column."""
    for word, change in (("add", _add_column), ("drop", _drop_column),
                         ("rename", _rename_column), ("alter", _retype_column)):
        if cursor.accept(word):
            return change(table, cursor)
    return table


def _add_column(table: TableDefinition, cursor: _Cursor) -> TableDefinition:
    if cursor.peek() in _CONSTRAINTS:
        return table
    cursor.accept("column")
    column = _column(cursor.tokens[cursor.i:], cursor)
    if column.name in table.column_names:
        raise cursor.error(f"table {table.name} already has a column {column.name}")
    return replace(table, columns=(*table.columns, column))


def _drop_column(table: TableDefinition, cursor: _Cursor) -> TableDefinition:
    if cursor.peek() == "constraint":
        return table
    cursor.accept("column")
    cursor.accept("if", "exists")
    gone = cursor.name()
    return replace(table, columns=tuple(c for c in table.columns if c.name != gone))


def _rename_column(table: TableDefinition, cursor: _Cursor) -> TableDefinition:
    cursor.accept("column")
    old = cursor.name()
    if not cursor.accept("to"):
        raise cursor.error("expected RENAME [COLUMN] a TO b")
    new = cursor.name()
    return replace(table, columns=tuple(replace(c, name=new) if c.name == old else c
                                        for c in table.columns))


def _retype_column(table: TableDefinition, cursor: _Cursor) -> TableDefinition:
    if not cursor.accept("column") and cursor.peek() in _TABLE_PROPERTIES:
        return table  # ALTER DISTKEY / SORTKEY / DISTSTYLE / ENCODE AUTO
    target = table.column(cursor.name())
    if not (cursor.accept("type") or cursor.accept("set", "data", "type")):
        return table  # ALTER COLUMN ... ENCODE, SET DEFAULT, ...
    changed = _column([_Token("word", target.name), *cursor.tokens[cursor.i:]], cursor)
    retyped = replace(target, type=changed.type)
    return replace(table, columns=tuple(retyped if c.name == target.name else c
                                        for c in table.columns))


# ---------------------------------------------------------------------------------------------
# Entry points


@dataclass(frozen=True)
class WarehouseTables:
    """Every table the migrations define, by lower-case name ("schema.table")."""

    tables: Mapping[str, TableDefinition]
    opaque: frozenset[str] = frozenset()

    def table(self, schema: str, name: str) -> TableDefinition:
        return _find(self.tables, self.opaque, f"{schema}.{name}".lower())


def parse_statements(statements: Iterable[str]) -> WarehouseTables:
    """The tables that these SQL statements, run in order, leave behind."""
    replay = _Replay()
    for statement in statements:
        replay.apply(statement)
    return WarehouseTables(dict(replay.tables), frozenset(replay.opaque))


def table_definitions(migrations: Iterable[Migration]) -> WarehouseTables:
    """The tables after every migration (in the order given: load_migrations' version order)."""
    return parse_statements(s for m in migrations for s in m.statements)


def load_table_definitions(directory: Path | str | None = None) -> WarehouseTables:
    """The tables of the migrations directory (default: the repository's warehouse/migrations)."""
    return table_definitions(load_migrations(directory))
