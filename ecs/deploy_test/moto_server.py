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


if __name__ == "__main__":
    for description in FIXES:
        print(f"moto fix: {description}", file=sys.stderr)
    sys.exit(main(sys.argv[1:]))
