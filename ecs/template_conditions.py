"""A CloudFormation template as CloudFormation sees it for given parameter values.

CloudFormation evaluates `Conditions` from the parameters, drops every resource and output whose
`Condition` is false, resolves `Fn::If`, and removes what `Ref: AWS::NoValue` stands for (a
property, or an element of a list). `for_parameters` does the same offline, so the invariant tests
and `taskdefs.py render` see the stack each parameter choice deploys (e.g. JwtAlgorithm=RS256
or Tracing=false) instead of both branches at once. Everything else (Ref, Fn::Sub, Fn::GetAtt,
Fn::FindInMap over parameters) is left as it is.

Source: CloudFormation User Guide, "Conditions syntax" and "Condition functions" (Fn::And,
Fn::Equals, Fn::If, Fn::Not, Fn::Or; AWS::NoValue removes the property or list element).
"""

from __future__ import annotations

from typing import Any

# What `Ref: AWS::NoValue` evaluates to before it is removed.
_NO_VALUE = object()


def parameter_values(template: dict, overrides: dict | None = None) -> dict[str, str]:
    """Parameter name -> value as a string: the template's defaults, then `overrides`."""
    values = {k: str(v["Default"]) for k, v in template.get("Parameters", {}).items() if "Default" in v}
    values.update({k: str(v) for k, v in (overrides or {}).items()})
    return values


def evaluate(expr: Any, params: dict[str, str], conditions: dict[str, Any] | None = None) -> Any:
    """The value of a condition or rule expression (Fn::Equals, Fn::Not, Fn::And, Fn::Or,
    Fn::Contains, {"Condition": name}, Ref to a parameter) for `params`. `conditions` is the
    template's Conditions section, for {"Condition": name} references."""
    if isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Ref":
            if arg not in params:
                raise KeyError(f"parameter {arg} has no value (no Default and not given)")
            return params[arg]
        if fn == "Condition":
            if conditions is None or arg not in conditions:
                raise KeyError(f"unknown condition {arg}")
            return evaluate(conditions[arg], params, conditions)
        args = [evaluate(a, params, conditions) for a in arg] if isinstance(arg, list) else arg
        if fn == "Fn::Equals":
            return str(args[0]) == str(args[1])
        if fn == "Fn::Not":
            return not args[0]
        if fn == "Fn::And":
            return all(args)
        if fn == "Fn::Or":
            return any(args)
        if fn == "Fn::Contains":
            return str(args[1]) in [str(v) for v in args[0]]
        raise ValueError(f"{fn} is not a condition function")
    if isinstance(expr, list):
        return [evaluate(v, params, conditions) for v in expr]
    return expr


def condition_values(template: dict, params: dict[str, str]) -> dict[str, bool]:
    """Condition name -> its value for `params`."""
    conditions = template.get("Conditions", {})
    return {name: bool(evaluate(expr, params, conditions)) for name, expr in conditions.items()}


def _resolve(value: Any, truth: dict[str, bool]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Fn::If":
                name, then, otherwise = arg
                return _resolve(then if truth[name] else otherwise, truth)
            if key == "Ref" and arg == "AWS::NoValue":
                return _NO_VALUE
        out = {}
        for k, v in value.items():
            resolved = _resolve(v, truth)
            if resolved is not _NO_VALUE:
                out[k] = resolved
        return out
    if isinstance(value, list):
        return [r for r in (_resolve(v, truth) for v in value) if r is not _NO_VALUE]
    return value


def for_parameters(template: dict, overrides: dict | None = None) -> dict:
    """The template for these parameter values (defaults for the others): resources and outputs
    whose Condition is false removed, Fn::If resolved, AWS::NoValue removed. The Conditions
    section stays, with each condition's value in `EvaluatedConditions`."""
    params = parameter_values(template, overrides)
    truth = condition_values(template, params)
    out = dict(template)
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, item in template.get(section, {}).items():
            if "Condition" in item and not truth[item["Condition"]]:
                continue
            kept[name] = _resolve({k: v for k, v in item.items() if k != "Condition"}, truth)
        out[section] = kept
    out["EvaluatedConditions"] = truth
    out["EvaluatedParameters"] = params
    return out
