"""Reads template.yaml: CloudFormation short tags, Globals, and intrinsic functions.

Only what the local runtime needs: resource listing, !Ref / !GetAtt / !Sub / !Join / !If /
!Equals / !Select / !Split / !Not / !And / !Or / !FindInMap, resolved against the local resources'
names and ARNs. An intrinsic that cannot be resolved raises TemplateError naming it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # no stubs installed

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
STACK_NAME = "pipeline-local"
NO_VALUE = object()


class TemplateError(Exception):
    """The template uses something the local runtime cannot resolve."""


class _Loader(yaml.SafeLoader):
    pass


def _tag_constructor(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag_constructor)


def load_template(path: Path | str) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template with its short-form tags (!Ref, !Sub...)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return data


def resources_of_type(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template.get("Resources", {}).items() if r.get("Type") in types}


def function_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A SAM function's properties with Globals.Function merged in (environment merged per key)."""
    glob = copy.deepcopy(template.get("Globals", {}).get("Function", {}))
    props = copy.deepcopy(template["Resources"][logical_id].get("Properties", {}))
    merged = {**glob, **props}
    env_g = (glob.get("Environment") or {}).get("Variables") or {}
    env_p = (props.get("Environment") or {}).get("Variables") or {}
    merged["Environment"] = {"Variables": {**env_g, **env_p}}
    return merged


class Resolver:
    """Resolves intrinsic functions against a table of local resource values."""

    def __init__(self, template: dict[str, Any], *, parameters: dict[str, str] | None = None,
                 stack_name: str = STACK_NAME, region: str = REGION, account: str = ACCOUNT_ID):
        self.template = template
        self.stack_name = stack_name
        self.region = region
        self.account = account
        self.refs: dict[str, Any] = {}
        self.attrs: dict[tuple[str, str], Any] = {}
        self.params: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            if parameters and name in parameters:
                self.params[name] = parameters[name]
            elif "Default" in spec:
                self.params[name] = spec["Default"]
        self._conditions: dict[str, bool] = {}

    @property
    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region, "AWS::AccountId": self.account,
            "AWS::StackName": self.stack_name, "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/"
                            f"{self.stack_name}/00000000-0000-0000-0000-000000000000",
        }

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.refs:
            return self.refs[name]
        if name in (self.template.get("Parameters") or {}):
            raise TemplateError(f"parameter {name} has no Default: pass a local value for it")
        raise TemplateError(f"!Ref {name}: no local value for this resource")

    def get_att(self, logical_id: str, attr: str) -> Any:
        key = (logical_id, attr)
        if key in self.attrs:
            return self.attrs[key]
        raise TemplateError(f"!GetAtt {logical_id}.{attr}: no local value")

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            expr = (self.template.get("Conditions") or {}).get(name)
            if expr is None:
                raise TemplateError(f"condition {name} is not defined")
            self._conditions[name] = bool(self.resolve(expr))
        return self._conditions[name]

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def repl(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(self.resolve(variables[expr]))
            if "." in expr and expr.split(".", 1)[0] not in self.pseudo:
                lid, attr = expr.split(".", 1)
                return str(self.get_att(lid, attr))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            intrinsic = _INTRINSICS.get(key)
            if intrinsic is not None:
                return intrinsic(self, arg)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local runtime")
        out = {}
        for k, v in value.items():
            r = self.resolve(v)
            if r is not NO_VALUE:
                out[k] = r
        return out

    # -- one method per intrinsic function (the argument as written in the template) -----------
    def _fn_get_att(self, arg: Any) -> Any:
        lid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
        return self.get_att(lid, attr)

    def _fn_sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            return self._sub(arg[0], arg[1])
        return self._sub(arg, {})

    def _fn_join(self, arg: Any) -> str:
        return str(arg[0]).join(str(v) for v in self.resolve(arg[1]))

    def _fn_select(self, arg: Any) -> Any:
        return self.resolve(arg[1])[int(self.resolve(arg[0]))]

    def _fn_split(self, arg: Any) -> list[str]:
        return str(self.resolve(arg[1])).split(arg[0])

    def _fn_if(self, arg: Any) -> Any:
        return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])

    def _fn_equals(self, arg: Any) -> bool:
        return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))

    def _fn_find_in_map(self, arg: Any) -> Any:
        m, k1, k2 = (self.resolve(a) for a in arg)
        return self.template["Mappings"][m][k1][k2]


_INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": Resolver.ref,
    "Fn::GetAtt": Resolver._fn_get_att,
    "Fn::Sub": Resolver._fn_sub,
    "Fn::Join": Resolver._fn_join,
    "Fn::Select": Resolver._fn_select,
    "Fn::Split": Resolver._fn_split,
    "Fn::If": Resolver._fn_if,
    "Fn::Equals": Resolver._fn_equals,
    "Fn::Not": lambda r, arg: not r.resolve(arg[0]),
    "Fn::And": lambda r, arg: all(r.resolve(a) for a in arg),
    "Fn::Or": lambda r, arg: any(r.resolve(a) for a in arg),
    "Condition": Resolver.condition,
    "Fn::FindInMap": Resolver._fn_find_in_map,
    "Fn::GetAZs": lambda r, arg: [f"{r.region}a", f"{r.region}b"],
}
