"""CloudWatch alarms beyond the guide's set, and ECS deployment alarms that roll back a release
answering 5xx while its health checks pass."""

import json

import pytest

from test_invariants import of_type, ref

LB = {"Name": "LoadBalancer", "Value": {"Fn::GetAtt": ["LoadBalancer", "LoadBalancerFullName"]}}
DB = {"Name": "DBInstanceIdentifier", "Value": {"Ref": "Database"}}


def alarm(resources, name):
    return resources[name]["Properties"]


def target_group(tg):
    return {"Name": "TargetGroup", "Value": {"Fn::GetAtt": [tg, "TargetGroupFullName"]}}


@pytest.mark.parametrize("name,namespace,metric,dimensions,operator", [
    ("AlbElb5xxAlarm", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", [LB], "GreaterThanThreshold"),
    ("TargetP99Alarm", "AWS/ApplicationELB", "TargetResponseTime", [LB], "GreaterThanThreshold"),
    ("AuthTarget5xxAlarm", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", [LB, target_group("AuthTargetGroup")], "GreaterThanThreshold"),
    ("TaskTarget5xxAlarm", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", [LB, target_group("TaskTargetGroup")], "GreaterThanThreshold"),
    ("RdsCpuAlarm", "AWS/RDS", "CPUUtilization", [DB], "GreaterThanThreshold"),
    ("RdsConnectionsAlarm", "AWS/RDS", "DatabaseConnections", [DB], "GreaterThanThreshold"),
    ("RdsFreeStorageAlarm", "AWS/RDS", "FreeStorageSpace", [DB], "LessThanThreshold"),
])
def test_alarm_watches_the_right_metric(resources, name, namespace, metric, dimensions, operator):
    a = alarm(resources, name)
    assert (a["Namespace"], a["MetricName"], a["ComparisonOperator"]) == (namespace, metric, operator)
    assert sorted(a["Dimensions"], key=str) == sorted(dimensions, key=str)
    assert a["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert a["DatapointsToAlarm"] <= a["EvaluationPeriods"]


def test_p99_uses_the_extended_statistic(resources):
    a = alarm(resources, "TargetP99Alarm")
    assert a["ExtendedStatistic"] == "p99" and "Statistic" not in a
    assert 0 < a["Threshold"] <= 2, "seconds; the services answer in milliseconds"


def test_free_storage_threshold_is_a_share_of_the_volume(resources):
    allocated_gb = int(resources["Database"]["Properties"]["AllocatedStorage"])
    threshold = alarm(resources, "RdsFreeStorageAlarm")["Threshold"]
    assert 0.05 * allocated_gb * 1e9 <= threshold <= 0.25 * allocated_gb * 1e9


@pytest.mark.parametrize("service,target_group_id", [("AuthService", "AuthTargetGroup"), ("TaskService", "TaskTargetGroup")])
def test_deployments_roll_back_on_their_own_5xx(resources, service, target_group_id):
    config = resources[service]["Properties"]["DeploymentConfiguration"]
    alarms = config["Alarms"]
    assert alarms["Enable"] is True and alarms["Rollback"] is True
    assert config["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    (name,) = alarms["AlarmNames"]
    watched = alarm(resources, ref(name))
    (lb,) = resources[service]["Properties"]["LoadBalancers"]
    assert ref(lb["TargetGroupArn"]) == target_group_id
    assert watched["MetricName"] == "HTTPCode_Target_5XX_Count"
    assert target_group(target_group_id) in watched["Dimensions"], "the service's own target group, not the whole ALB"
    # Short periods, so a bad release is caught within the deployment's bake time.
    assert watched["Period"] * watched["EvaluationPeriods"] <= 300
    assert watched["TreatMissingData"] == "notBreaching", "no traffic is not a failure"


def test_every_alarm_has_a_unique_name(resources):
    names = [json.dumps(a["Properties"]["AlarmName"], sort_keys=True) for a in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    assert len(names) == len(set(names))
