"""A value given either as itself or as a function that builds it on first use.

Handlers pass the catalog and the migrations this way: reading them costs file I/O that only
some paths need, and a bad file then fails the invocation that needs it, with its own message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, cast

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
