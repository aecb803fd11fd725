"""A value given either as itself or as a function that builds it on first use.

Handlers pass the catalog and the migrations this way: reading them costs file I/O that only
some paths need, and a bad file then fails the invocation that needs it, with its own message.
The modules that read them are imported on first use too, so a cold start on another path
does not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar, cast

if TYPE_CHECKING:
    from pipeline_core.catalog import Catalog
    from pipeline_core.load_sql import Migration

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, value: T | Callable[[], T]):
        self._value = value
        self._built = not callable(value)

    def get(self) -> T:
        if not self._built:
            self._value = cast(Callable[[], T], self._value)()
            self._built = True
        return cast(T, self._value)


def lazy_catalog(catalog_dir: str | None = None) -> Lazy[Catalog]:
    """The dataset catalog, read on first use: a catalog problem is then a ConfigurationError of
    the invocation (recorded by the state machine) rather than a crash at cold start."""
    def load() -> Catalog:
        from pipeline_core.catalog import load_catalog

        return load_catalog(catalog_dir)

    return Lazy(load)


def lazy_migrations(migrations_dir: str | None = None) -> Lazy[list[Migration]]:
    """The warehouse migrations, read on first use (only a load's submission applies them)."""
    def load() -> list[Migration]:
        from pipeline_core.load_sql import load_migrations

        return load_migrations(migrations_dir)

    return Lazy(load)
