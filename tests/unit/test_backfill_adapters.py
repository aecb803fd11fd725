"""pipeline_aws.backfill_aws against moto: the latest version of each key (delete markers,
overwritten keys, unversioned buckets, more than one page), the JSON store, the executions."""

from __future__ import annotations

import pytest

from pipeline_aws.backfill_aws import S3JsonStore, S3RawLister, SfnExecutions
from pipeline_core.errors import ConfigurationError, InvalidInput
from tests.support.aws import REGION, moto_account

RAW, PLAIN = "raw-bucket", "plain-bucket"


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with moto_account((RAW, PLAIN), versioned=RAW) as account:
        yield account


def test_only_each_key_s_latest_version_is_listed(aws):
    s3 = aws.s3
    first = s3.put_object(Bucket=RAW, Key="online_retail/2011-01-01.csv", Body=b"a")
    latest = s3.put_object(Bucket=RAW, Key="online_retail/2011-01-01.csv", Body=b"bbb")
    s3.put_object(Bucket=RAW, Key="online_retail/2011-01-02.csv", Body=b"c")
    s3.delete_object(Bucket=RAW, Key="online_retail/2011-01-02.csv")  # a delete marker
    s3.put_object(Bucket=RAW, Key="web_logs/2011-01-01.log", Body=b"d")
    listed = list(S3RawLister(s3).list_latest(RAW, "online_retail/"))
    assert [(o.key, o.version_id, o.size) for o in listed] == [
        ("online_retail/2011-01-01.csv", latest["VersionId"], 3)]
    assert latest["VersionId"] != first["VersionId"] and listed[0].last_modified


def test_an_unversioned_bucket_lists_version_none(aws):
    aws.s3.put_object(Bucket=PLAIN, Key="online_retail/2011-01-01.csv", Body=b"a")
    [listed] = S3RawLister(aws.s3).list_latest(PLAIN, "online_retail/")
    assert listed.version_id is None


def test_every_page_is_read(aws):
    for day in range(1, 29):
        for month in range(1, 5):
            aws.s3.put_object(Bucket=RAW, Key=f"online_retail/2011-{month:02d}-{day:02d}.csv",
                              Body=b"x")
    lister = S3RawLister(aws.s3)
    real = aws.s3.get_paginator

    def small_pages(name):
        paginator = real(name)
        original = paginator.paginate
        paginator.paginate = lambda **kw: original(**kw, PaginationConfig={"PageSize": 10})
        return paginator

    aws.s3.get_paginator = small_pages
    assert len(list(lister.list_latest(RAW, "online_retail/"))) == 112


def test_a_missing_bucket_is_a_configuration_error(aws):
    with pytest.raises(ConfigurationError, match="NoSuchBucket"):
        list(S3RawLister(aws.s3).list_latest("no-such-bucket", "online_retail/"))


def test_the_json_store_round_trips_and_refuses_a_bad_uri(aws):
    store = S3JsonStore(aws.s3)
    store.put_json(f"s3://{PLAIN}/_backfills/d/e/plan.json", {"a": [1, 2]})
    assert store.get_json(f"s3://{PLAIN}/_backfills/d/e/plan.json") == {"a": [1, 2]}
    with pytest.raises(InvalidInput):
        store.get_json("/tmp/plan.json")


def test_an_execution_that_does_not_exist_is_none(aws):
    import boto3

    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name="m", definition='{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}',
        roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    missing = arn.replace(":stateMachine:", ":execution:") + ":nope"
    assert SfnExecutions(sfn).describe(missing) is None
    started = sfn.start_execution(stateMachineArn=arn, name="yes")["executionArn"]
    assert SfnExecutions(sfn).describe(started)["executionArn"] == started
