"""Benchmark: how long each Lambda handler module takes to import cold (issue: cold starts).

Each handler is imported in a fresh interpreter, with the environment the template gives it
(read from template.yaml, so a new variable is measured as deployed), several rounds, and the
figures printed with `python -X importtime`'s top cumulative imports of the slowest handler.
The target is 300 ms per handler on this machine; a reference (`import boto3` alone) is
measured in the same rounds so the ratio survives a slower or busier machine.
CPU time is printed beside wall time: on a shared machine it moves less with the load.
Handlers build their boto3 clients on first use (pipeline_aws.clients), so a second figure
imports the handler and then builds every client it wired: the most its first invocation adds.
Figures, not assertions: the exit code is 0 whatever the times.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
TARGET_MS = 300.0
# As in Lambda (LAMBDA_TASK_ROOT set): tracing follows the template (Tracing: Active) unless
# BENCH_TRACING=off, which measures a stack deployed with POWERTOOLS_TRACE_DISABLED=true.
TRACING = os.environ.get("BENCH_TRACING", "on")
FAKE_ENV = {
    "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench", "LAMBDA_TASK_ROOT": str(REPO),
    "POWERTOOLS_TRACE_DISABLED": "true" if TRACING == "off" else "false",
}


class _Shaped(dict[Any, str]):
    """Answers every resource's Ref and GetAtt with a value of the right shape: no stack is
    deployed, only the settings' validation at import needs them."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> str:
        return _shaped(*key) if isinstance(key, tuple) else _shaped(key)


def _resolver(template: dict[str, Any]) -> Any:
    from local_runtime import cfn
    from local_runtime.stack import LOCAL_PARAMETERS

    params = {name: LOCAL_PARAMETERS.get(name, "local")  # as LocalDeployment chooses them
              for name, spec in template.get("Parameters", {}).items()
              if spec.get("Default") is None or (name in LOCAL_PARAMETERS
                                                 and not spec.get("Default"))}
    resolver = cfn.Resolver(template, parameters=params)
    resolver.refs = _Shaped()
    resolver.attrs = _Shaped()
    return resolver


def _shaped(logical_id: str, attr: str = "") -> str:
    name = logical_id.lower()
    if "role" in name:
        return f"arn:aws:iam::123456789012:role/{logical_id}"
    if "topic" in name:
        return f"arn:aws:sns:eu-west-1:123456789012:{logical_id}"
    if attr == "Arn" or "statemachine" in name:  # a state machine's Ref is its ARN too
        return f"arn:aws:states:eu-west-1:123456789012:stateMachine:{logical_id}"
    return logical_id.lower()


def handler_envs() -> dict[str, dict[str, str]]:
    """function folder -> the environment the template gives it, resolved as the local runtime
    resolves it (parameters' defaults, the local values of required ones)."""
    from local_runtime import cfn

    template = cfn.load_template(REPO / "template.yaml")
    resolver = _resolver(template)
    envs: dict[str, dict[str, str]] = {}
    for lid in cfn.resources_of_type(template, "AWS::Serverless::Function"):
        props = cfn.function_properties(template, lid)
        if "CodeUri" not in props:
            continue
        variables = resolver.resolve(props["Environment"]["Variables"])
        envs[Path(str(props["CodeUri"])).name] = {
            k: str(v) for k, v in variables.items() if v is not cfn.NO_VALUE}
    return envs


# After the import: build every client the handler wired (none where it built them at import).
BUILD_CLIENTS = ("import gc, sys; m = sys.modules.get('pipeline_aws.clients'); "
                 "[o.target() for o in gc.get_objects() if m and isinstance(o, m.OnFirstUse)]")


def import_ms(statement: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of `statement` in a fresh interpreter."""
    code = ("import time; t=time.perf_counter(); c=time.process_time(); " + statement +
            "; print((time.perf_counter()-t)*1000, (time.process_time()-c)*1000)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **FAKE_ENV, **env},
                         cwd=REPO, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{statement}: {out.stderr.strip().splitlines()[-1:]}")
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def top_imports(module: str, env: dict[str, str], count: int = 8) -> list[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         env={**os.environ, **FAKE_ENV, **env}, cwd=REPO,
                         capture_output=True, text=True, check=False)
    rows = []
    for line in out.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            rows.append((int(parts[1]), parts[2]))
    return [f"{us / 1000:7.1f} ms  {name}" for us, name in sorted(rows, reverse=True)[:count]]


def _row(name: str, runs: list[tuple[float, float]], reference: tuple[float, float],
         first_use: list[tuple[float, float]] | None = None) -> str:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    row = (f"  {name:<22} {wall:7.1f} ms  min {min(r[0] for r in runs):7.1f}  "
           f"x{wall / reference[0]:4.2f}  cpu {cpu:6.1f} ms x{cpu / reference[1]:4.2f}  "
           f"{'ok' if wall <= TARGET_MS else 'over'}")
    if first_use:
        row += (f"  | + every client: {statistics.median(r[0] for r in first_use):7.1f} ms"
                f"  cpu {statistics.median(r[1] for r in first_use):6.1f}")
    return row


def main() -> int:
    sys.path.insert(0, str(REPO))
    envs = handler_envs()
    load_before = os.getloadavg()
    ref = "(reference) boto3"
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in [ref, *sorted(envs)]}
    first_use: dict[str, list[tuple[float, float]]] = {name: [] for name in envs}
    for _ in range(ROUNDS):  # interleaved, so a busy moment hits every handler alike
        times[ref].append(import_ms("import boto3", {}))
        for folder, env in sorted(envs.items()):
            times[folder].append(import_ms(f"import functions.{folder}.app", env))
            first_use[folder].append(
                import_ms(f"import functions.{folder}.app; {BUILD_CLIENTS}", env))
    reference = (statistics.median(r[0] for r in times[ref]),
                 statistics.median(r[1] for r in times[ref]))
    print(f"cold import, tracing {TRACING}, median of {ROUNDS} rounds "
          f"(target <= {TARGET_MS:.0f} ms per handler); x = ratio to `import boto3`; "
          f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
    for name, runs in times.items():
        print(_row(name, runs, reference, first_use.get(name)))
    slowest = max(envs, key=lambda f: statistics.median(r[0] for r in times[f]))
    print(f"slowest handler {slowest}: top cumulative imports")
    for row in top_imports(f"functions.{slowest}.app", envs[slowest]):
        print("  " + row)
    print(json.dumps({k: round(statistics.median(r[0] for r in v), 1)
                      for k, v in times.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
