"""The local EMR stand-in stages a derived job's model folders as EMR would see them: the
current model (--current-model, a Spark ML writer's directory in S3) is an input, downloaded
whole before the job starts; the model root (--model-root) is an output, uploaded after."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
from moto import mock_aws

from local_runtime.spark import SparkRunner, report_in_s3_terms

BUCKET = "curated"
MODEL = f"s3://{BUCKET}/models/customer_segments/customer_segments-2010-12-03-abc/"


def test_the_current_model_is_downloaded_whole_and_the_model_root_is_an_output(tmp_path: Path):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        keys = ["model/metadata/part-00000", "model/stages/0_KMeans/data/x.parquet",
                "model.json"]
        for key in keys:
            s3.put_object(Bucket=BUCKET, Key=MODEL[len(f"s3://{BUCKET}/"):] + key, Body=key)
        entry = tmp_path / "main.py"
        entry.write_text("def main(argv):\n    return 0\n")
        staged = SparkRunner(s3, tmp_path / "jobs", mode="cold").stage(
            "j1", str(entry), ["--current-model", MODEL, "--model-root",
                               f"s3://{BUCKET}/models/customer_segments/"], [])
    args = dict(zip(staged.args[::2], staged.args[1::2], strict=True))
    current = Path(args["--current-model"])
    assert current == staged.work / "in" / "current-model"
    assert sorted(p.relative_to(current).as_posix() for p in current.rglob("*")
                  if p.is_file()) == sorted(keys)
    assert (current / "model.json").read_text() == "model.json"
    assert (staged.work / "out" / "model-root",
            f"s3://{BUCKET}/models/customer_segments/") in staged.uploads
    assert all(uri != MODEL for _, uri in staged.uploads), "the current model is no output"


def test_the_jobs_report_names_the_s3_folders_not_the_local_copies(tmp_path: Path):
    """What the job wrote in metrics.json about its folders is what EMR's job would have
    written: the model it saved under --model-root and the --current-model as s3:// URIs
    (the ledger's model path is a later run's --current-model), each table's output too."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=MODEL[len(f"s3://{BUCKET}/"):] + "model.json",
                      Body=b"{}")
        entry = tmp_path / "main.py"
        entry.write_text("def main(argv):\n    return 0\n")
        root = f"s3://{BUCKET}/models/customer_segments/"
        out = f"s3://{BUCKET}/customer_segments/{{table}}/partition=2010-12-10/run_id=r2/"
        staged = SparkRunner(s3, tmp_path / "jobs", mode="cold").stage(
            "j2", str(entry), ["--current-model", MODEL, "--model-root", root,
                               "--output-root", out,
                               "--metrics", f"s3://{BUCKET}/_runs/customer_segments/r2/"
                                            "metrics.json"], [])
    args = dict(zip(staged.args[::2], staged.args[1::2], strict=True))
    report = Path(args["--metrics"])
    report.write_text(json.dumps({
        "model": {"path": args["--model-root"] + "r2/", "current_model": args["--current-model"],
                  "scored_with": args["--current-model"]},
        "tables": {"customer_segments": {
            "uri": args["--output-root"].replace("{table}", "customer_segments")}}}))
    report_in_s3_terms(staged)
    written = json.loads(report.read_text())
    assert written["model"] == {"path": root + "r2/", "current_model": MODEL,
                                "scored_with": MODEL}
    assert written["tables"]["customer_segments"]["uri"] == out.replace(
        "{table}", "customer_segments")
