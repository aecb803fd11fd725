"""Each step printed as it starts and ends, with the time since the start and its own duration.

A step that raises becomes a StepFailed naming the step, so the last line of a failed run says
where it failed and why; the original exception stays attached as its cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO


class StepFailed(Exception):
    def __init__(self, step: str, reason: str):
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class StepNote:
    """What a step may add to its "ok" line (a count, a name)."""

    detail: str = ""


def reason_of(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


class Timeline:
    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic):
        self._out = out
        self._clock = clock
        self._start = clock()
        self.steps: list[tuple[str, str, float]] = []  # (step, "ok" | "FAILED", seconds)

    def _print(self, text: str) -> None:
        print(f"[{self._clock() - self._start:7.1f}s] {text}", file=self._out, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[StepNote]:
        note = StepNote()
        began = self._clock()
        self._print(f"{name} ...")
        try:
            yield note
        except StepFailed:
            raise
        except Exception as e:
            took = self._clock() - began
            self.steps.append((name, "FAILED", took))
            self._print(f"{name}: FAILED after {took:.1f}s: {reason_of(e)}")
            raise StepFailed(name, reason_of(e)) from e
        took = self._clock() - began
        self.steps.append((name, "ok", took))
        suffix = f": {note.detail}" if note.detail else ""
        self._print(f"{name}: ok ({took:.1f}s){suffix}")
