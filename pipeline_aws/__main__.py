"""`python -m pipeline_aws <command>`: operator commands over the deployed pipeline."""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {"runs": "recent runs with status, duration, rows and cost"}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        usage = "\n".join(f"  {name:<8}{text}" for name, text in COMMANDS.items())
        print(f"usage: python -m pipeline_aws <command> [options]\n\ncommands:\n{usage}",
              file=sys.stderr if args and args[0] not in ("-h", "--help") else sys.stdout)
        return 0 if args and args[0] in ("-h", "--help") else 2
    if args[0] == "runs":
        from pipeline_aws.runs_cli import main as runs

        return runs(args[1:])
    return 2


if __name__ == "__main__":
    sys.exit(main())
