"""The deployment's templates as moto's CloudFormation can run them, and what that leaves out.

moto implements CloudFormation for some resource types only. For the others it logs a warning and
creates nothing, and any Fn::GetAtt of such a resource stops the whole stack. So the deploy test
deploys copies of the templates without those resources: every reference to one becomes the
string `moto-lacks-<LogicalId>` (so nothing downstream pretends it exists), and the test prints
the list. What the copies leave out is covered offline by ecs/check.sh (cfn-lint, checkov, the
invariants) and only by a real deploy for behaviour.

    python ecs/deploy_test/moto_templates.py SRC_DIR DST_DIR   writes the copies, prints the report
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ECS_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ECS_DIR))

import taskdefs  # noqa: E402  (the template loader: cfn-lint's decoder, intrinsics as dicts)

TEMPLATES = ("bootstrap.yaml", "network.yaml", "task-management.yaml")


def moto_models() -> dict:
    """Resource type -> moto's model class, for the types moto's CloudFormation creates."""
    from moto.cloudformation.parsing import get_model_map

    return dict(get_model_map())


def moto_answers(model, attribute: str) -> bool:
    """Whether moto answers Fn::GetAtt of this attribute (some models have no attributes at all)."""
    return hasattr(model, "get_cfn_attribute") and model.has_cfn_attr(attribute)


def _marker(logical_id: str) -> str:
    return f"moto-lacks-{logical_id}"


def _replace_refs(value, dropped: set[str], unanswered: set[str] = frozenset()):
    """`value` with references to `dropped` resources and GetAtts in `unanswered`
    ("Logical.Attribute") replaced by markers."""
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and arg in dropped:
                return _marker(arg)
            if key == "Fn::GetAtt":
                target, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                if target in dropped:
                    return _marker(target)
                if f"{target}.{attribute}" in unanswered:
                    return _marker(f"{target}.{attribute}")
            if key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})

                def sub(match: re.Match) -> str:
                    expr = match.group(1)
                    name = expr.split(".")[0]
                    if name in variables:
                        return match.group(0)
                    if name in dropped or expr in unanswered:
                        return _marker(expr if expr in unanswered else name)
                    return match.group(0)

                text = re.sub(r"\$\{([^}!]+)\}", sub, text)
                variables = {k: _replace_refs(v, dropped, unanswered) for k, v in variables.items()}
                return {"Fn::Sub": [text, variables] if variables else text}
        return {k: _replace_refs(v, dropped, unanswered) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_refs(v, dropped, unanswered) for v in value]
    return value


def _get_atts(value):
    """Every (logical id, attribute) a value reads with Fn::GetAtt or ${X.Attr} in Fn::Sub."""
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Fn::GetAtt":
                yield tuple(arg.split(".", 1)) if isinstance(arg, str) else tuple(arg[:2])
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                for expr in re.findall(r"\$\{([^}!]+)\}", text):
                    if "." in expr:
                        yield tuple(expr.split(".", 1))
                yield from _get_atts(arg)
            else:
                yield from _get_atts(arg)
    elif isinstance(value, list):
        for item in value:
            yield from _get_atts(item)


def for_moto(template: dict, models: dict) -> tuple[dict, list[tuple[str, str]]]:
    """(the template without the resources moto lacks, [(logical id or Logical.Attribute, type
    or "attribute")] left out)."""
    resources = template.get("Resources", {})
    dropped = {name: res["Type"] for name, res in resources.items() if res["Type"] not in models}
    unanswered = {
        f"{target}.{attribute}"
        for target, attribute in _get_atts([template.get("Resources"), template.get("Outputs")])
        if target in resources and target not in dropped and not moto_answers(models[resources[target]["Type"]], attribute)
    }
    out = dict(template)
    kept = {}
    for name, res in resources.items():
        if name in dropped:
            continue
        res = _replace_refs(res, set(dropped), unanswered)
        depends = res.get("DependsOn")
        if depends:
            depends = [d for d in ([depends] if isinstance(depends, str) else depends) if d not in dropped]
            res = {**res, "DependsOn": depends} if depends else {k: v for k, v in res.items() if k != "DependsOn"}
        kept[name] = res
    out["Resources"] = kept
    out["Outputs"] = _replace_refs(template.get("Outputs", {}), set(dropped), unanswered)
    # Rules are checked by CloudFormation before a change set; moto does not evaluate them.
    out.pop("Rules", None)
    left_out = sorted(dropped.items()) + sorted((name, "Fn::GetAtt attribute") for name in unanswered)
    return out, left_out


def write_copies(src: Path, dst: Path) -> dict[str, list[tuple[str, str]]]:
    """Writes the moto copies of every template to dst (JSON, which is YAML); returns what each
    leaves out."""
    models = moto_models()
    dst.mkdir(parents=True, exist_ok=True)
    report = {}
    for name in TEMPLATES:
        template, dropped = for_moto(taskdefs.load_template(src / name), models)
        (dst / name).write_text(json.dumps(template, indent=1))
        report[name] = dropped
    return report


def undeletable_types(path: Path) -> list[str]:
    """The resource types in a template that moto creates but has no deletion for."""
    models = moto_models()
    types = {res["Type"] for res in taskdefs.load_template(path).get("Resources", {}).values()}
    return sorted(
        t for t in types
        if t in models
        and getattr(models[t].delete_from_cloudformation_json, "__isabstractmethod__", False)
        and not hasattr(models[t], "delete")
    )


def describe(report: dict[str, list[tuple[str, str]]]) -> str:
    lines = []
    for name, dropped in report.items():
        if not dropped:
            lines.append(f"  {name}: moto implements every resource type")
            continue
        by_type: dict[str, list[str]] = {}
        for logical, type_name in dropped:
            by_type.setdefault(type_name, []).append(logical)
        lines.append(f"  {name}: moto's CloudFormation does not implement (left out, references -> moto-lacks-<id>):")
        for type_name, names in sorted(by_type.items()):
            lines.append(f"    {type_name}: {', '.join(names)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe(write_copies(Path(sys.argv[1]), Path(sys.argv[2]))))
