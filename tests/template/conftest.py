"""Fixtures for the template tests: template.yaml read with CloudFormation's short tags, the
state machine definitions, the dataset catalog and its JSON Schema.

The local runtime reads template.yaml with its own loader; this one belongs to these tests.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` into {"Ref": x}, `!GetAtt a.b` into
    {"Fn::GetAtt": ["a", "b"]}, `!Condition c` into {"Condition": c} and any other `!Name v`
    into {"Fn::Name": v}."""


def _construct(loader: yaml.Loader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct)


def load_cfn_yaml(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CloudFormationLoader)  # a SafeLoader subclass


def walk(node: Any) -> Iterator[Any]:
    """Every dict and list inside `node`, depth first, `node` included."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_cfn_yaml(REPO / "template.yaml")


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return template["Resources"]


@pytest.fixture(scope="session")
def functions(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}


@pytest.fixture(scope="session")
def state_machine_files() -> list[Path]:
    return sorted((REPO / "statemachines").glob("*.asl.json"))


@pytest.fixture(scope="session")
def definitions(state_machine_files: list[Path]) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in state_machine_files}


@pytest.fixture(scope="session")
def catalog_dir() -> Path:
    return REPO / "datasets"


@pytest.fixture(scope="session")
def catalog_files(catalog_dir: Path) -> list[Path]:
    return sorted(catalog_dir.glob("*.yaml"))


@pytest.fixture(scope="session")
def schema(catalog_dir: Path) -> dict[str, Any]:
    return json.loads((catalog_dir / "schema.json").read_text())


@pytest.fixture(scope="session")
def schema_validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="session")
def samconfig() -> dict[str, Any]:
    return tomllib.loads((REPO / "samconfig.toml").read_text())


@pytest.fixture(scope="session")
def iam_statements(resources: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(resource name, statement) for every policy statement in the template, including those
    inside SAM `Policies` and inside Fn::If branches."""
    found = []
    for name, resource in resources.items():
        for node in walk(resource.get("Properties", {})):
            if isinstance(node, dict) and "Effect" in node and (
                "Action" in node or "NotAction" in node
            ):
                found.append((name, node))
    return found
