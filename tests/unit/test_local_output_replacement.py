"""The local EMR stand-in leaves in S3 what Spark's overwrite leaves on EMR: a rerun of a job
into the same folders replaces them, so no part file of an earlier attempt stays beside the new
ones (a COPY of the folder would load both), and the quarantine an earlier attempt left is seen
by the job, as `FileSystem.exists` sees it in S3, so the job can replace it."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from local_runtime.spark import JobResult, SparkRunner

BUCKET = "curated"
RUN = "online_retail-2010-12-01-abc"
OUTPUT = f"s3://{BUCKET}/online_retail/{{table}}/partition=2010-12-01/run_id={RUN}/"
QUARANTINE = f"s3://{BUCKET}/quarantine/online_retail/partition=2010-12-01/run_id={RUN}/"
MODELS = f"s3://{BUCKET}/models/online_retail/"

# A job as Spark writes: each folder it writes is emptied first (mode overwrite), part files
# get a new name each time; it writes a quarantine when it has refused lines or when one
# exists already (an empty one then), as the raw job framework does.
ENTRY = '''
import os, shutil, sys, uuid

def overwrite(folder, rows):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    with open(os.path.join(folder, f"part-00000-{uuid.uuid4()}.parquet"), "w") as f:
        f.write(rows)

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
refused = os.environ.get("TOY_REFUSED", "")
print("quarantine seen:", os.path.exists(args["--quarantine"]))
overwrite(args["--output-root"].replace("{table}", "sales"), "rows")
if refused or os.path.exists(args["--quarantine"]):
    overwrite(args["--quarantine"], refused)
overwrite(os.path.join(args["--model-root"], "RUN"), "model")
'''.replace("RUN", RUN)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _run(s3, tmp_path: Path, refused: str) -> JobResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    entry = tmp_path / "main.py"
    entry.write_text(ENTRY)
    runner = SparkRunner(s3, tmp_path / "jobs", mode="cold",
                         base_env={"PATH": "/usr/bin:/bin", "TOY_REFUSED": refused})
    result = runner.run(f"job-{uuid.uuid4().hex[:8]}", str(entry),
                        ["--output-root", OUTPUT, "--quarantine", QUARANTINE,
                         "--model-root", MODELS], py_files=[], conf={}, result=JobResult())
    assert result.state == "SUCCESS", (result.details, result.log_tail)
    return result


def _objects(s3, uri: str) -> dict[str, str]:
    prefix = uri[len(f"s3://{BUCKET}/"):]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix):]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            .decode() for o in listed}


def _stdout(result: JobResult) -> str:
    assert result.work_dir is not None
    return (result.work_dir / "stdout.log").read_text()


def test_a_rerun_into_the_same_folders_leaves_only_its_own_files(s3, tmp_path: Path):
    neighbours = {f"online_retail/sales/partition=2010-12-01/run_id={RUN}-r2/part-0.parquet",
                  f"models/online_retail/{RUN}-older/model.json"}
    for key in neighbours:  # another attempt's folder and another run's model: never touched
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"keep")
    _run(s3, tmp_path / "first", refused="line 7")
    second = _run(s3, tmp_path / "second", refused="")

    tables = _objects(s3, OUTPUT.replace("{table}", "sales"))
    assert list(tables.values()) == ["rows"], "the first attempt's part file is gone"
    assert "quarantine seen: True" in _stdout(second)
    assert list(_objects(s3, QUARANTINE).values()) == [""], "replaced by an empty quarantine"
    models = _objects(s3, MODELS)
    assert [v for k, v in models.items() if k.startswith(RUN + "/")] == ["model"]
    for key in neighbours:
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"keep"


def test_a_quarantine_that_does_not_exist_is_not_a_folder_the_job_sees(s3, tmp_path: Path):
    result = _run(s3, tmp_path, refused="")
    assert "quarantine seen: False" in _stdout(result)
    assert _objects(s3, QUARANTINE) == {}, "nothing refused, nothing there: no quarantine"
