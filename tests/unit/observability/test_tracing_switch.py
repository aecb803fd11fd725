"""The tracer is built only when powertools would trace, so cold starts skip aws_xray_sdk.

The rule mirrors powertools' Tracer._is_tracer_disabled (docs: "Tracer - Powertools for AWS
Lambda (Python)", environment variable POWERTOOLS_TRACE_DISABLED; outside Lambda and under SAM
local the tracer is disabled). The cross-check below asks powertools itself, so a change of its
rule on an upgrade fails here rather than silently tracing less or importing more.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aws_lambda_powertools import Tracer

from pipeline_aws.observability import build_observability, tracing_enabled
from tests.support.aws import LambdaContext

REPO = Path(__file__).resolve().parents[3]

LAMBDA = {"LAMBDA_TASK_ROOT": "/var/task"}
CASES = [
    ({}, False),
    (LAMBDA, True),
    ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}, False),
    ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "1"}, False),
    ({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "false"}, True),
    ({**LAMBDA, "AWS_SAM_LOCAL": "true"}, False),
    ({**LAMBDA, "AWS_CHALICE_CLI_MODE": "true"}, False),
]


@pytest.mark.parametrize(("environ", "expected"), CASES)
def test_tracing_switch_follows_powertools(environ: dict[str, str], expected: bool,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracing_enabled(environ) is expected
    for key in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL",
                "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert (not Tracer._is_tracer_disabled()) is expected


def test_an_invalid_switch_value_is_refused_as_powertools_refuses_it() -> None:
    with pytest.raises(ValueError, match="invalid truth value"):
        tracing_enabled({**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "maybe"})


def test_no_tracer_and_no_xray_import_when_tracing_is_off() -> None:
    code = ("import sys; from pipeline_aws.observability import build_observability as b; "
            "o = b('x', 'dev'); print(o.tracer is None, 'aws_xray_sdk' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, env={"POWERTOOLS_TRACE_DISABLED": "true",
                                          "PYTHONPATH": ".", "AWS_DEFAULT_REGION": "eu-west-1"})
    assert out.stdout.split() == ["True", "False"]


def test_handlers_still_run_when_tracing_is_off() -> None:
    obs = build_observability("x", "dev")
    assert obs.tracer is None
    wrapped = obs.instrument(lambda event, context: {"ok": event["v"]})
    assert wrapped({"v": 1}, LambdaContext()) == {"ok": 1}


def test_tracing_on_builds_a_tracer_that_patches_botocore_and_wraps_the_handler() -> None:
    """Skipping the tracer when tracing is off must not skip it when tracing is on: the X-Ray
    SDK is imported, botocore (every AWS call the functions make) is patched, and `instrument`
    opens the handler's segment through the tracer."""
    code = (
        "import sys\n"
        "from aws_lambda_powertools import Tracer\n"
        "calls = []\n"
        "capture = Tracer.capture_lambda_handler\n"
        "def spy(self, handler=None, **kw):\n"
        "    calls.append(handler)\n"
        "    return capture(self, handler, **kw)\n"
        "Tracer.capture_lambda_handler = spy\n"
        "from pipeline_aws.observability import build_observability as b\n"
        "o = b('x', 'dev'); o.instrument(lambda event, context: None)\n"
        "from aws_xray_sdk.core import patcher\n"
        "print(o.tracer is not None, 'aws_xray_sdk' in sys.modules,\n"
        "      'botocore' in patcher._PATCHED_MODULES, len(calls))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, env={**LAMBDA, "POWERTOOLS_TRACE_DISABLED": "false",
                                                    "PYTHONPATH": ".",
                                                    "AWS_DEFAULT_REGION": "eu-west-1"})
    assert out.stdout.split() == ["True", "True", "True", "1"]
