"""Fail when a function or method is longer than the ceiling (60 lines, decorators excluded).

ruff counts statements and branches, not lines; a 90-line function of straight-line code is
still one a reader has to hold in their head. Used by `make lint`.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

DEFAULT_MAX_LINES = 60


def python_files(root: Path) -> list[Path]:
    """The tracked and untracked-but-not-ignored .py files, as git sees the tree."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.split()
    return [root / name for name in listed if (root / name).is_file()]


def long_functions(path: Path, max_lines: int) -> list[tuple[int, str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > max_lines:
                found.append((node.lineno, node.name, length))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-lines", type=int, default=DEFAULT_MAX_LINES)
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    failures = [
        f"{path.relative_to(args.root)}:{line}: {name} is {length} lines (> {args.max_lines})"
        for path in python_files(args.root)
        for line, name, length in long_functions(path, args.max_lines)
    ]
    for failure in failures:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
