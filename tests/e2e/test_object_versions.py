"""The event's object version is what runs, end to end on the local deployment (versioned raw
bucket as in template.yaml, the job heading its input in moto's S3 through moto's server).

"EventBridge event message structure", Amazon S3 user guide
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html): an "Object Created"
event from a versioned bucket carries detail.object.version-id and etag; the local runtime
builds its events that way (local_runtime.runner.s3_object_created_event).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from local_runtime.runner import check_event, put_raw_object, run_execution
from local_runtime.stack import LocalRuntimeError

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "sample_data" / "online_retail"
DAY = "2011-01-04"  # a day no other e2e test loads
KEY = f"online_retail/{DAY}.csv"


def _day_file(extra_lines: int = 0) -> bytes:
    """The first sample day moved to DAY; `extra_lines` repeats its last lines (a re-export
    with more rows), so the two uploads differ."""
    text = (SAMPLES / "2010-12-01.csv").read_text().replace("2010-12-01", DAY)
    lines = text.splitlines(keepends=True)
    return "".join(lines + lines[-extra_lines:] if extra_lines else lines).encode()


def test_two_quick_uploads_run_each_version_the_older_one_fails_clearly(deployment,
                                                                        warehouse_db):
    older = put_raw_object(deployment, KEY, _day_file())
    newer = put_raw_object(deployment, KEY, _day_file(extra_lines=3))
    assert older.version_id and newer.version_id and older.version_id != newer.version_id
    for put in (older, newer):
        check_event(deployment, put.event())

    first = run_execution(deployment, older.event())
    second = run_execution(deployment, newer.event())

    runs = [first.output["run"], second.output["run"]]
    assert runs[0]["run_id"] != runs[1]["run_id"]
    assert [(r["input"]["version_id"], r["input"]["etag"]) for r in runs] == [
        (older.version_id, older.etag), (newer.version_id, newer.etag)]

    # The older event's job finds the key holding the newer upload and refuses, saying so.
    assert first.status == "FAILED", first.summary
    cause = str(first.ledger["failure"])
    for fragment in (f"s3://{older.bucket}/{KEY} changed since the event",
                     f"expected version {older.version_id}, ETag {older.etag}",
                     f"found version {newer.version_id}, ETag {newer.etag}"):
        assert fragment in cause, cause
    assert first.ledger["status"] == "FAILED"
    assert any("changed since the event" in str(a["message"]) for a in first.alerts)

    # The newer upload is its own run and loads.
    assert second.status == "SUCCEEDED", second.summary
    assert second.ledger["input"]["version_id"] == newer.version_id
    loaded = warehouse_db("select count(*) from analytics.sales_line_items "
                          "where order_date = %s", (DAY,))[0][0]
    assert loaded == second.summary["lines"]["out"]

    # The same event delivered again is a duplicate of the newer run.
    again = run_execution(deployment, newer.event())
    assert again.status == "SUCCEEDED" and again.summary["duplicate"] is True
    assert again.output["run"]["run_id"] == runs[1]["run_id"]


def test_a_folder_marker_starts_nothing_and_is_ignored_if_delivered(deployment):
    marker = put_raw_object(deployment, "online_retail/2011-01/", b"")
    with pytest.raises(LocalRuntimeError, match="no EventBridge rule of the template matches"):
        check_event(deployment, marker.event())
    # Were it delivered anyway, ResolveRun ignores it: no run, no ledger item, no alert.
    res = run_execution(deployment, marker.event())
    assert res.status == "SUCCEEDED"
    assert res.output["run"]["ignored"] is True and "folder marker" in res.output["run"]["reason"]
    assert [row["state"] for row in res.timeline][-1] == "Ignored"
    assert res.ledger is None and res.alerts == []
