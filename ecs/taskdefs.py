#!/usr/bin/env python3
"""Task definition JSON rendered from the CloudFormation template, so the two never disagree.

The template (ecs/cloudformation/task-management.yaml) is the source of truth. This script turns
its two AWS::ECS::TaskDefinition resources into the JSON that `aws ecs register-task-definition
--cli-input-json` takes, with `${Placeholder}` strings where the template has stack-specific
values:

  ${AWS_REGION} ${AWS_ACCOUNT_ID}     the pseudo parameters
  ${AuthImageTag} ...                 template parameters, by name
  ${ExecutionRoleArn} ${DbSecretArn}  stack outputs, by output name (every placeholder that is
  ...                                 not a parameter or pseudo parameter is one)
  ${AuthDbMaxConnections}             a Fn::FindInMap: the stack output whose Value is the same
                                      Fn::FindInMap (the mapped value depends on parameters); a
                                      Fn::FindInMap of literal keys is the mapped value itself

The committed JSON is the stack the parameter defaults deploy (JwtAlgorithm=HS256, Tracing=true):
Conditions, Fn::If and AWS::NoValue are evaluated for them (template_conditions.py), and
`render(params={...})` renders another choice.

Commands:
  render               write ecs/taskdefs/*.json from the template
  check                exit 1 when the committed JSON differs from a fresh rendering
  validate [FILE...]   validate task definition JSON against botocore's ECS model
                       (RegisterTaskDefinition input: types, required members, enums, ranges)
  fill FILE --outputs OUTPUTS.json [--set NAME=VALUE ...]
                       print FILE with the placeholders filled from the stack outputs
                       (`aws cloudformation describe-stacks --query 'Stacks[0].Outputs'`),
                       AWS_REGION/AWS_ACCOUNT_ID from the environment or --set, parameters from
                       --set or the template's defaults
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ECS_DIR = Path(__file__).resolve().parent
TEMPLATE = ECS_DIR / "cloudformation" / "task-management.yaml"
TASKDEF_DIR = ECS_DIR / "taskdefs"

# Template resource -> committed JSON file.
TASK_DEFINITIONS = {
    "AuthTaskDefinition": "auth-service.json",
    "TaskServiceTaskDefinition": "task-service.json",
}

PSEUDO = {
    "AWS::Region": "${AWS_REGION}",
    "AWS::AccountId": "${AWS_ACCOUNT_ID}",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::Partition": "aws",
}

# Resources whose Ref is a fixed name set in the template (the property holding it).
NAMED_BY_PROPERTY = {
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::Logs::LogGroup": "LogGroupName",
}

# Map-valued properties whose keys are data, not property names.
VERBATIM_KEYS = {"Options", "DockerLabels"}

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")

sys.path.insert(0, str(ECS_DIR))
import template_conditions  # noqa: E402  (Conditions, Fn::If and AWS::NoValue for given parameters)


def load_template(path: Path = TEMPLATE) -> dict:
    """The template as plain dicts/lists/strs; intrinsics as {"Ref": ...}, {"Fn::Sub": ...}."""
    from cfnlint.decode import cfn_yaml

    return _plain(cfn_yaml.load(str(path)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


class Resolver:
    """Turns intrinsic functions into literals or `${Placeholder}` strings."""

    def __init__(self, template: dict):
        self.resources = template.get("Resources", {})
        self.parameters = template.get("Parameters", {})
        self.outputs = template.get("Outputs", {})
        self.mappings = template.get("Mappings", {})

    def ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return "${%s}" % name
        resource = self.resources.get(name)
        if resource is None:
            raise ValueError(f"Ref to unknown name {name!r}")
        prop = NAMED_BY_PROPERTY.get(resource["Type"])
        physical = resource.get("Properties", {}).get(prop) if prop else None
        if physical is not None:
            # A literal name, or one derived from parameters (Fn::Sub "${NamePrefix}-...").
            return self.resolve(physical)
        return self._output_placeholder(f"{name}Arn", f"Ref {name}")

    def get_att(self, name: str, attribute: str) -> str:
        if attribute == "Arn":
            return self._output_placeholder(f"{name}Arn", f"GetAtt {name}.Arn")
        raise ValueError(f"GetAtt {name}.{attribute} has no placeholder")

    def _output_placeholder(self, output: str, what: str) -> str:
        if output not in self.outputs:
            raise ValueError(f"{what} needs a stack output named {output!r} to fill its placeholder")
        return "${%s}" % output

    def find_in_map(self, arg: Any) -> str:
        if all(isinstance(key, str) for key in arg):
            mapping, top, second = arg
            return self.mappings[mapping][top][second]
        for name, output in self.outputs.items():
            if output.get("Value") == {"Fn::FindInMap": arg}:
                return "${%s}" % name
        raise ValueError(f"Fn::FindInMap {arg} needs a stack output with the same Value to fill its placeholder")

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def one(match: re.Match) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return variables[expr]
            if "." in expr and expr.split(".", 1)[0] in self.resources:
                return self.get_att(*expr.split(".", 1))
            return self.ref(expr)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key == "Ref":
                    return self.ref(arg)
                if key == "Fn::GetAtt":
                    parts = arg.split(".", 1) if isinstance(arg, str) else arg
                    return self.get_att(parts[0], parts[1])
                if key == "Fn::Sub":
                    return self.sub(arg)
                if key == "Fn::FindInMap":
                    return self.find_in_map(arg)
                if key.startswith("Fn::") or key == "Condition":
                    raise ValueError(f"{key} is not supported in task definitions")
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def api_keys(value: Any) -> Any:
    """CloudFormation property names (PascalCase) -> ECS API member names (camelCase)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            api = key[:1].lower() + key[1:]
            out[api] = item if key in VERBATIM_KEYS else api_keys(item)
        return out
    if isinstance(value, list):
        return [api_keys(v) for v in value]
    return value


def render(template: dict | None = None, params: dict | None = None) -> dict[str, str]:
    """File name -> JSON text, for every task definition in the template, as the stack with
    these parameter values (defaults for the others) registers them."""
    template = template_conditions.for_parameters(template or load_template(), params)
    resolver = Resolver(template)
    rendered = {}
    for logical_id, filename in TASK_DEFINITIONS.items():
        resource = template["Resources"][logical_id]
        if resource["Type"] != "AWS::ECS::TaskDefinition":
            raise ValueError(f"{logical_id} is not an AWS::ECS::TaskDefinition")
        body = api_keys(resolver.resolve(resource["Properties"]))
        rendered[filename] = json.dumps(body, indent=2) + "\n"
    return rendered


def cmd_render(_args) -> int:
    TASKDEF_DIR.mkdir(exist_ok=True)
    for filename, text in render().items():
        (TASKDEF_DIR / filename).write_text(text)
        print(f"wrote {TASKDEF_DIR / filename}")
    return 0


def cmd_check(_args) -> int:
    stale = 0
    for filename, text in render().items():
        path = TASKDEF_DIR / filename
        current = path.read_text() if path.exists() else ""
        if current != text:
            stale += 1
            sys.stdout.writelines(
                difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(path), "rendered from template")
            )
    if stale:
        print(f"{stale} task definition file(s) differ from the template: run `python3 ecs/taskdefs.py render`")
        return 1
    print(f"task definition JSON matches the template ({len(TASK_DEFINITIONS)} files)")
    return 0


# ----------------------------------------------------------------------------- validation

def validate_params(params: dict, parameters: dict | None = None) -> list[str]:
    """Errors of `params` as a RegisterTaskDefinition request, per botocore's ECS model.

    A value that is exactly a `${Parameter}` placeholder of a template parameter with
    AllowedValues (CpuArchitecture) is checked as each of those values."""
    import botocore.session
    from botocore.validate import ParamValidator

    if parameters is None:
        parameters = load_template().get("Parameters", {})
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    errors = []
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        errors.extend(line.strip() for line in report.generate_report().splitlines() if line.strip())
    errors.extend(_enum_errors(params, shape, "params", parameters))
    return errors


def _enum_errors(value: Any, shape, path: str, parameters: dict) -> list[str]:
    """botocore's ParamValidator checks types and required members, not enum values."""
    errors = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                errors.extend(_enum_errors(item, shape.members[key], f"{path}.{key}", parameters))
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            errors.extend(_enum_errors(item, shape.member, f"{path}[{i}]", parameters))
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            errors.extend(_enum_errors(item, shape.value, f"{path}.{key}", parameters))
    elif shape.type_name == "string" and isinstance(value, str) and getattr(shape, "enum", None):
        whole = PLACEHOLDER.fullmatch(value)
        allowed = parameters.get(whole.group(1), {}).get("AllowedValues") if whole else None
        for candidate in allowed or [value]:
            if str(candidate) not in shape.enum:
                errors.append(f"Invalid value for {path}: {candidate!r}, valid values: {', '.join(shape.enum)}")
    return errors


def cmd_validate(args) -> int:
    import botocore

    files = [Path(f) for f in args.files] or [TASKDEF_DIR / f for f in TASK_DEFINITIONS.values()]
    failed = 0
    for path in files:
        errors = validate_params(json.loads(path.read_text()))
        if errors:
            failed += 1
            print(f"{path}: INVALID")
            for e in errors:
                print(f"  {e}")
        else:
            print(f"{path}: valid RegisterTaskDefinition input (botocore {botocore.__version__})")
    return 1 if failed else 0


# ----------------------------------------------------------------------------- fill

def cmd_fill(args) -> int:
    template = load_template()
    values = {k: v.get("Default") for k, v in template.get("Parameters", {}).items() if "Default" in v}
    for key in ("AWS_REGION", "AWS_ACCOUNT_ID"):
        if os.environ.get(key):
            values[key] = os.environ[key]
    if args.outputs:
        for out in json.loads(Path(args.outputs).read_text()):
            values[out["OutputKey"]] = out["OutputValue"]
    for item in args.set or []:
        key, _, value = item.partition("=")
        values[key] = value
    text = Path(args.file).read_text()
    missing = sorted({m for m in PLACEHOLDER.findall(text) if values.get(m) in (None, "")})
    if missing:
        print(f"no value for: {', '.join(missing)}", file=sys.stderr)
        return 1
    sys.stdout.write(PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("render").set_defaults(func=cmd_render)
    sub.add_parser("check").set_defaults(func=cmd_check)
    p = sub.add_parser("validate")
    p.add_argument("files", nargs="*")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("fill")
    p.add_argument("file")
    p.add_argument("--outputs")
    p.add_argument("--set", action="append", metavar="NAME=VALUE")
    p.set_defaults(func=cmd_fill)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
