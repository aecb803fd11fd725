"""template.yaml's resources in moto, one row per CloudFormation type.

A row says how a resource of that type is named (the property that names it, the default name,
and what !Ref and !GetAtt give), and which function creates it in moto, if any: a row without
one is only named (IAM roles, rules, log groups). A type without a row (policies, alarms...) gets
a generic name and ARN. Functions and the state machine are set up by LocalDeployment itself,
after everything else.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local_runtime import cfn

if TYPE_CHECKING:
    from local_runtime.stack import LocalDeployment

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
# moto's EMR Serverless knows only older release labels
MOTO_EMR_RELEASE = "emr-7.0.0"
# Secrets Manager ends a secret's ARN with "-" and 6 random characters
ARN_RANDOM_TAIL = "-AbCdEf"


@dataclass(frozen=True)
class Naming:
    """How one type is named. The templates are str.format strings over: name (the resource's
    name), lid (its logical id), LID and lid_low (the logical id upper- and lower-cased), low
    (`<stack>-<lid>` lower-cased), stack, region, account and service (e.g. `iam`)."""

    name_properties: tuple[str, ...]  # the first one present names the resource
    default: str = "{stack}-{lid}"  # the name when none is present (or resolvable)
    ref: str = "{name}"
    attrs: Mapping[str, str] = field(default_factory=dict)


Creator = Callable[["LocalDeployment", str, dict[str, Any]], None]


@dataclass(frozen=True)
class ResourceType:
    naming: Naming
    create: Creator | None = None


def name_resource(r: cfn.Resolver, lid: str, resource: dict[str, Any], *,
                  use_properties: bool = True) -> None:
    """Set what !Ref and !GetAtt give for one resource. With `use_properties` a naming property
    that cannot be resolved yet raises cfn.TemplateError; without it the default name is used."""
    typ = resource.get("Type", "")
    naming = resource_type(typ).naming
    context = {"lid": lid, "LID": lid.upper(), "lid_low": lid.lower(), "stack": r.stack_name,
               "region": r.region, "account": r.account, "low": f"{r.stack_name}-{lid}".lower(),
               "service": typ.split("::")[1].lower() if typ.count("::") >= 2 else "local"}
    context["name"] = naming.default.format(**context)
    props = resource.get("Properties") or {}
    if use_properties:
        key = next((k for k in naming.name_properties if k in props), None)
        if key is not None:
            context["name"] = str(r.resolve(props[key]))
    r.refs[lid] = naming.ref.format(**context)
    for attr, template in naming.attrs.items():
        r.attrs[(lid, attr)] = template.format(**context)


def resource_type(typ: str) -> ResourceType:
    return RESOURCE_TYPES.get(typ, _OTHER)


# -- creators: one per type that exists in moto ---------------------------------------------------

def create_bucket(d: LocalDeployment, lid: str, props: dict[str, Any]) -> None:
    # S3 -> EventBridge notifications need no set-up: the runtime builds the events itself
    s3, name = d.client("s3"), d.resolver.refs[lid]
    s3.create_bucket(Bucket=name)
    status = (props.get("VersioningConfiguration") or {}).get("Status")
    if status:  # the raw bucket is versioned: its events carry version-id
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
    d.buckets[lid] = name


def create_table(d: LocalDeployment, lid: str, props: dict[str, Any]) -> None:
    p = d.resolver.resolve(props)
    kwargs: dict[str, Any] = {
        "TableName": d.resolver.refs[lid], "KeySchema": p["KeySchema"],
        "AttributeDefinitions": p["AttributeDefinitions"],
        "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if p.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = [
            {k: v for k, v in g.items() if k in (
                "IndexName", "KeySchema", "Projection", "ProvisionedThroughput")}
            for g in p["GlobalSecondaryIndexes"]]
    if p.get("LocalSecondaryIndexes"):
        kwargs["LocalSecondaryIndexes"] = p["LocalSecondaryIndexes"]
    if kwargs["BillingMode"] == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = p.get("ProvisionedThroughput") or {
            "ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    d.client("dynamodb").create_table(**kwargs)
    d.tables[lid] = d.resolver.refs[lid]


def create_simple_table(d: LocalDeployment, lid: str, props: dict[str, Any]) -> None:
    pk = d.resolver.resolve(props.get("PrimaryKey") or {"Name": "id", "Type": "String"})
    attribute_type = {"String": "S", "Number": "N", "Binary": "B"}[pk.get("Type", "String")]
    d.client("dynamodb").create_table(
        TableName=d.resolver.refs[lid],
        KeySchema=[{"AttributeName": pk["Name"], "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": pk["Name"], "AttributeType": attribute_type}],
        BillingMode="PAY_PER_REQUEST")
    d.tables[lid] = d.resolver.refs[lid]


def create_topic(d: LocalDeployment, lid: str, props: dict[str, Any]) -> None:
    """The topic, and an SQS inbox subscribed to it where the runtime reads the alerts."""
    sns, sqs = d.client("sns"), d.client("sqs")
    topic_name = d.resolver.attrs[(lid, "TopicName")]
    arn = sns.create_topic(Name=topic_name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{topic_name}-local-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    d.topics[lid] = arn
    d.alert_queues[arn] = queue_url


# Queue properties moto applies as SQS attributes (the burst queue's redrive policy among them)
_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy",
                     "DelaySeconds", "ReceiveMessageWaitTimeSeconds")


def create_queue(d: LocalDeployment, lid: str, props: dict[str, Any]) -> None:
    p = d.resolver.resolve({k: v for k, v in props.items() if k in _QUEUE_ATTRIBUTES})
    attributes = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in p.items()}
    d.client("sqs").create_queue(QueueName=d.resolver.attrs[(lid, "QueueName")],
                                 Attributes=attributes)


def create_parameter(d: LocalDeployment, lid: str, props: dict[str, Any]) -> None:
    p = d.resolver.resolve(props)
    value = str(p.get("Value", ""))
    d.client("ssm").put_parameter(Name=d.resolver.refs[lid], Value=value,
                                  Type=p.get("Type", "String"), Overwrite=True)
    d.resolver.attrs[(lid, "Value")] = value


def _application_request(d: LocalDeployment, lid: str, p: dict[str, Any]) -> dict[str, Any]:
    kwargs = {"name": p.get("Name", f"{d.stack_name}-{lid}"),
              "releaseLabel": p.get("ReleaseLabel", MOTO_EMR_RELEASE),
              "type": p.get("Type", "SPARK")}
    if p.get("Architecture"):
        kwargs["architecture"] = p["Architecture"]
    if p.get("Tags"):
        tags = p["Tags"]
        kwargs["tags"] = ({t["Key"]: t["Value"] for t in tags} if isinstance(tags, list)
                          else tags)
    cap = p.get("MaximumCapacity")
    if cap:  # the stand-in holds job runs to it (moto_patches)
        kwargs["maximumCapacity"] = {k.lower(): str(v) for k, v in cap.items()}
    return kwargs


def create_application(d: LocalDeployment, lid: str, props: dict[str, Any]) -> None:
    r = d.resolver
    kwargs = _application_request(d, lid, r.resolve(props))
    emrs = d.client("emr-serverless")
    try:
        resp = emrs.create_application(**kwargs)
    except emrs.exceptions.ValidationException:
        # a release label moto does not know: create with one it knows, then set the template's
        resp = emrs.create_application(**{**kwargs, "releaseLabel": MOTO_EMR_RELEASE})
        from moto.emrserverless.models import emrserverless_backends

        backend = emrserverless_backends[r.account][r.region]
        backend.applications[resp["applicationId"]].release_label = kwargs["releaseLabel"]
    app_id = resp["applicationId"]
    r.refs[lid] = app_id
    r.attrs[(lid, "ApplicationId")] = app_id
    r.attrs[(lid, "Arn")] = resp["arn"]
    d.application_ids[lid] = app_id


def create_secret(d: LocalDeployment, lid: str, props: dict[str, Any]) -> None:
    secret_name = d.resolver.refs[lid].rsplit(":", 1)[-1][:-len(ARN_RANDOM_TAIL)]
    with contextlib.suppress(Exception):
        d.client("secretsmanager").create_secret(Name=secret_name, SecretString="{}")


# -- the table -------------------------------------------------------------------------------------

_TABLE_ATTRS = {"Arn": "arn:aws:dynamodb:{region}:{account}:table/{name}",
                "StreamArn": "arn:aws:dynamodb:{region}:{account}:table/{name}/stream/x"}
_TOPIC_ARN = "arn:aws:sns:{region}:{account}:{name}"
_STATE_MACHINE_ARN = "arn:aws:states:{region}:{account}:stateMachine:{name}"
_SECRET_ARN = "arn:aws:secretsmanager:{region}:{account}:secret:{name}" + ARN_RANDOM_TAIL
_FUNCTION = ResourceType(Naming(
    ("FunctionName",), attrs={"Arn": "arn:aws:lambda:{region}:{account}:function:{name}"}))
_STATE_MACHINE = ResourceType(Naming(
    ("Name", "StateMachineName"), ref=_STATE_MACHINE_ARN,
    attrs={"Arn": _STATE_MACHINE_ARN, "Name": "{name}"}))

RESOURCE_TYPES: dict[str, ResourceType] = {
    "AWS::S3::Bucket": ResourceType(Naming(
        ("BucketName",), default="{low}",
        attrs={"Arn": "arn:aws:s3:::{name}", "DomainName": "{name}.s3.amazonaws.com",
               "RegionalDomainName": "{name}.s3.{region}.amazonaws.com"}),
        create_bucket),
    "AWS::DynamoDB::Table": ResourceType(Naming(("TableName",), attrs=_TABLE_ATTRS),
                                         create_table),
    "AWS::Serverless::SimpleTable": ResourceType(Naming(("TableName",), attrs=_TABLE_ATTRS),
                                                 create_simple_table),
    "AWS::SNS::Topic": ResourceType(Naming(
        ("TopicName",), ref=_TOPIC_ARN, attrs={"TopicArn": _TOPIC_ARN, "TopicName": "{name}"}),
        create_topic),
    "AWS::SQS::Queue": ResourceType(Naming(
        ("QueueName",), ref="https://sqs.{region}.amazonaws.com/{account}/{name}",
        attrs={"Arn": "arn:aws:sqs:{region}:{account}:{name}", "QueueName": "{name}"}),
        create_queue),
    "AWS::SSM::Parameter": ResourceType(Naming(
        ("Name",), default="/{stack}/{lid}", attrs={"Value": ""}),
        create_parameter),
    "AWS::EMRServerless::Application": ResourceType(Naming(
        (), default="00local{lid_low:.9}",  # 16 characters, like a real application id
        attrs={"ApplicationId": "{name}",
               "Arn": "arn:aws:emr-serverless:{region}:{account}:/applications/{name}"}),
        create_application),
    "AWS::SecretsManager::Secret": ResourceType(Naming(
        ("Name",), ref=_SECRET_ARN, attrs={"Id": _SECRET_ARN}),
        create_secret),
    "AWS::IAM::Role": ResourceType(Naming(
        ("RoleName",),
        attrs={"Arn": "arn:aws:iam::{account}:role/{name}", "RoleId": "AROA{LID:.16}"})),
    "AWS::IAM::InstanceProfile": ResourceType(Naming(
        ("InstanceProfileName",),
        attrs={"Arn": "arn:aws:iam::{account}:instance-profile/{name}"})),
    "AWS::Events::Rule": ResourceType(Naming(
        ("Name",), attrs={"Arn": "arn:aws:events:{region}:{account}:rule/{name}"})),
    "AWS::Logs::LogGroup": ResourceType(Naming(
        ("LogGroupName",), default="/aws/{stack}/{lid}",
        attrs={"Arn": "arn:aws:logs:{region}:{account}:log-group:{name}:*"})),
    **dict.fromkeys(FUNCTION_TYPES, _FUNCTION),
    **dict.fromkeys(STATE_MACHINE_TYPES, _STATE_MACHINE),
}
# any other type (IAM policies, alarms...): a generic name and ARN, nothing created
_OTHER = ResourceType(Naming(
    (), attrs={"Arn": "arn:aws:{service}:{region}:{account}:{lid}", "Id": "{name}",
               "Name": "{name}"}))
