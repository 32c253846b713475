"""moto_server with fixes for the moto bugs ecs/deploy.sh runs into, each named below.

Run like moto_server: `python ecs/deploy_test/moto_server.py -H 127.0.0.1 -p PORT`. The fixes make
moto do what CloudFormation documents; none adds a resource type or an API moto lacks (those the
deploy test reports as not implemented instead, see moto_templates.py).
"""

import sys

from moto.cloudformation.models import CloudFormationBackend
from moto.rds.models import DBParameterGroup
from moto.server import main

FIXES = []


def fix(description):
    def register(function):
        FIXES.append(description)
        function()
        return function

    return register


@fix("ExecuteChangeSet stores the change set's parameters and recomputes the stack's outputs "
     "(moto 5.2.5 keeps the REVIEW_IN_PROGRESS stack's: no outputs after a create, and the next "
     "identical change set is not recognised as empty)")
def _execute_change_set_updates_the_stack():
    original = CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        original(self, change_set_name, stack_name)
        change_set = self.change_sets.get(change_set_name) or next(
            cs for cs in self.change_sets.values()
            if cs.change_set_name == change_set_name and stack_name in (None, cs.stack_name, cs.stack_id)
        )
        stack = self.stacks[change_set.stack_id]
        stack.parameters = change_set.parameters
        stack._parse_template()
        stack.output_map = stack._create_output_map()

    CloudFormationBackend.execute_change_set = execute_change_set


@fix("Ref of an AWS::RDS::DBParameterGroup is its name (moto 5.2.5 returns the Python object, "
     "and creating the DB instance that names it fails with AttributeError)")
def _parameter_group_ref_is_its_name():
    DBParameterGroup.physical_resource_id = property(lambda self: self.name)


@fix("A resource whose type moto cannot update (AWS::RDS::DBInstance: no "
     "update_from_cloudformation_json) stays as created instead of vanishing from the stack "
     "(moto 5.2.5 stores None, and every later Fn::GetAtt of it fails); each such update is "
     "logged as 'moto cannot update ...' so the test reports it")
def _unupdatable_resources_stay():
    from moto.cloudformation import parsing

    original = parsing.parse_and_update_resource

    def parse_and_update_resource(logical_id, resource_json, resources_map, account_id, region_name):
        updated = original(logical_id, resource_json, resources_map, account_id, region_name)
        if updated is None and parsing.resource_class_from_type(resource_json["Type"]) is not None:
            print(f"moto cannot update {resource_json['Type']} {logical_id} in place: kept as created",
                  file=sys.stderr, flush=True)
            return resources_map[logical_id]
        return updated

    parsing.parse_and_update_resource = parse_and_update_resource


@fix("Ref: AWS::NoValue as an element of a list removes the element, as CloudFormation documents "
     "(moto 5.2.5 keeps a None there: a conditional container definition, environment entry or "
     "policy then breaks the resource)")
def _no_value_list_elements_are_removed():
    from moto.cloudformation import parsing

    original = parsing.clean_json

    def clean_json(resource_json, resources_map):
        if isinstance(resource_json, list):
            return [v for v in (clean_json(item, resources_map) for item in resource_json) if v is not None]
        return original(resource_json, resources_map)

    # parsing.clean_json recurses through the module attribute, so nested lists get this too.
    parsing.clean_json = clean_json


@fix("An AWS::ECS::TaskDefinition update registers the new revision from the template's "
     "properties converted like a create's (moto 5.2.5 stores them unconverted: containers "
     "without a name)")
def _task_definition_update_converts_like_create():
    from moto.core.utils import pascal_to_camelcase, remap_nested_keys
    from moto.ecs.models import TaskDefinition

    original = TaskDefinition.update_from_cloudformation_json.__func__

    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                        account_id, region_name):
        properties = dict(cloudformation_json["Properties"])
        properties["ContainerDefinitions"] = remap_nested_keys(properties.get("ContainerDefinitions", []), pascal_to_camelcase)
        if "Volumes" in properties:
            properties["Volumes"] = remap_nested_keys(properties["Volumes"], pascal_to_camelcase)
        return original(cls, original_resource, new_resource_name, {**cloudformation_json, "Properties": properties},
                        account_id, region_name)

    TaskDefinition.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)


@fix("An AWS::IAM::Role update applies the template's inline Policies, adding, changing and "
     "removing them (moto 5.2.5 keeps the created role's policies, so a changed grant never shows)")
def _role_update_applies_inline_policies():
    from moto.iam.models import Role

    original = Role.update_from_cloudformation_json.__func__

    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                        account_id, region_name):
        role = original(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        wanted = {p["PolicyName"]: p["PolicyDocument"] for p in cloudformation_json["Properties"].get("Policies", [])}
        for name in list(role.policies):
            if name not in wanted:
                role.delete_policy(name)
        for name, document in wanted.items():
            role.put_policy(name, document)
        return role

    Role.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)


@fix("A stack update also updates the existing resources whose Fn::If conditions depend on a "
     "changed parameter (moto 5.2.5 updates a resource for a parameter change only when it Refs "
     "the parameter itself, so JwtAlgorithm or Tracing would change nothing behind a condition)")
def _condition_dependent_resources_are_updated():
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap.build_resource_diff

    def refs(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "Ref":
                    yield item
                else:
                    yield from refs(item)
        elif isinstance(value, list):
            for item in value:
                yield from refs(item)

    def condition_names(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "Fn::If":
                    yield item[0]
                    yield from condition_names(item[1:])
                elif key == "Condition" and isinstance(item, str):
                    yield item
                else:
                    yield from condition_names(item)
        elif isinstance(value, list):
            for item in value:
                yield from condition_names(item)

    def build_resource_diff(self, other_template, parameters=None):
        diff = original(self, other_template, parameters)
        if not parameters:
            return diff
        changed = {p for p in parameters if self.input_parameters.get(p) != parameters[p]}
        conditions = other_template.get("Conditions", {})

        def parameters_of(condition, seen=frozenset()):
            expr = conditions.get(condition, {})
            found = set(refs(expr))
            for inner in set(condition_names(expr)) - seen - {condition}:
                found |= parameters_of(inner, seen | {condition})
            return found

        for name, resource in other_template["Resources"].items():
            # Existing resources only: one whose own Condition flips would be created or
            # deleted, which moto does not do on an update either (not needed here).
            if name in diff["Modify"] or self._parsed_resources.get(name) is None:
                continue
            if any(parameters_of(c) & changed for c in set(condition_names(resource.get("Properties", {})))):
                diff["Modify"].append(name)
        return diff

    ResourceMap.build_resource_diff = build_resource_diff


if __name__ == "__main__":
    for description in FIXES:
        print(f"moto fix: {description}", file=sys.stderr)
    sys.exit(main(sys.argv[1:]))
