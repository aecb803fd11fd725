"""checkov's findings on template.yaml: the fixes hold, and every skip says why (and the facts a
skip relies on stay true).

Sources:
- Lambda developer guide, "Invoking a Lambda function asynchronously"
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html (EventBridge rules and
  schedules invoke asynchronously) and "Retaining records of asynchronous invocations"
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html (after its
  retries Lambda discards the event unless a dead-letter queue or an on-failure destination is
  set; a DLQ is for asynchronous invocations only).
- checkov, "Suppressing and skipping policies" https://www.checkov.io/2.Basics/Suppressing%20and%20Skipping%20Policies.html
  (CloudFormation: Metadata.checkov.skip[].id / comment).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ASYNC_EVENT_TYPES = {"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent", "S3", "SNS"}


def _skips(resource: dict[str, Any]) -> dict[str, str]:
    entries = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    return {entry["id"]: entry.get("comment", "") for entry in entries}


def _invoked_by_state_machines(resources: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for resource in resources.values():
        if resource["Type"] == "AWS::Serverless::StateMachine":
            for value in resource["Properties"].get("DefinitionSubstitutions", {}).values():
                if isinstance(value, dict) and "Fn::GetAtt" in value:
                    names.add(value["Fn::GetAtt"][0])
    return names


def test_async_invoked_functions_keep_failed_events(functions: dict[str, Any],
                                                    resources: dict[str, Any]) -> None:
    asynchronous = {name for name, fn in functions.items()
                    if any(e["Type"] in ASYNC_EVENT_TYPES
                           for e in fn["Properties"].get("Events", {}).values())}
    assert asynchronous
    for name in asynchronous:
        dlq = functions[name]["Properties"].get("DeadLetterQueue")
        assert dlq and dlq["Type"] == "SQS", f"{name}: failed asynchronous events are dropped"
        queue = resources[dlq["TargetArn"]["Fn::GetAtt"][0]]
        assert queue["Type"] == "AWS::SQS::Queue"
        assert queue["Properties"]["MessageRetentionPeriod"] == 1209600, "keep them 14 days"


def _invoked_by_queues_with_redrive(resources: dict[str, Any]) -> set[str]:
    """Functions an SQS event source mapping invokes (synchronously), from a queue whose
    failed records go to a dead-letter queue (its RedrivePolicy)."""
    names: set[str] = set()
    for resource in resources.values():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        props = resource["Properties"]
        queue = resources[props["EventSourceArn"]["Fn::GetAtt"][0]]
        if queue["Type"] == "AWS::SQS::Queue" and queue["Properties"].get("RedrivePolicy"):
            names.add(props["FunctionName"]["Ref"])
    return names


def test_dlq_skips_only_on_functions_the_state_machine_invokes(
        functions: dict[str, Any], resources: dict[str, Any]) -> None:
    """The CKV_AWS_116 skip says "invoked synchronously by the state machine" (or by an SQS
    event source mapping whose queue has a dead-letter queue): keep it true."""
    invoked = _invoked_by_state_machines(resources) | _invoked_by_queues_with_redrive(resources)
    skipped = {name for name, fn in functions.items() if "CKV_AWS_116" in _skips(fn)}
    assert skipped
    for name in skipped:
        assert name in invoked, f"{name} skips the DLQ check but no state machine (nor a " \
            "queue with a dead-letter queue) invokes it"
        events = functions[name]["Properties"].get("Events", {})
        assert not events, f"{name} skips the DLQ check but has triggers {sorted(events)}"


def test_every_skip_in_the_template_says_why(resources: dict[str, Any]) -> None:
    for name, resource in resources.items():
        for check, comment in _skips(resource).items():
            assert re.fullmatch(r"CKV2?_AWS_\d+", check), f"{name}: {check}"
            assert len(comment.split()) >= 8, f"{name}: skip of {check} without a real reason"


def test_every_skip_in_the_config_says_why(repo: Path) -> None:
    """Each skip-check entry of .checkov.yaml follows a comment naming that check."""
    path = repo / ".checkov.yaml"
    config = yaml.safe_load(path.read_text())
    assert config["file"] == ["template.yaml"]
    lines = path.read_text().splitlines()
    listed = []
    for i, line in enumerate(lines):
        match = re.fullmatch(r"\s*- (CKV2?_AWS_\d+)\s*", line)
        if not match:
            continue
        listed.append(match.group(1))
        comment = []
        for previous in reversed(lines[:i]):
            if not previous.strip().startswith("#"):
                break
            comment.append(previous)
        assert any(match.group(1) in c for c in comment), f".checkov.yaml: {match.group(1)}"
        assert len(" ".join(comment).split()) >= 15, f".checkov.yaml: {match.group(1)}"
    assert listed == config["skip-check"]


def test_checkov_is_pinned_and_run_by_lint(repo: Path) -> None:
    requirements = (repo / "requirements-checkov.txt").read_text()
    assert re.search(r"^checkov==\d+\.\d+\.\d+$", requirements, re.MULTILINE)
    makefile = (repo / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(CHECKOV) --config-file .checkov.yaml" in lint
    assert "requirements-checkov.txt" in makefile.split("\nsetup:", 1)[1].split("\n\n", 1)[0]
