"""Passwords are never shown: every path by which the local runtime prints or writes text goes
through local_runtime.redaction. (A real run with a password in --warehouse-url is checked in
test_local_state; the unreachable-warehouse messages in test_cli.)"""

from __future__ import annotations

import io
import json
import logging

import pytest
from local_cli import SECRET

from local_runtime import cli
from local_runtime.redaction import redact, redact_obj
from local_runtime.runner import print_summary

pytestmark = pytest.mark.e2e
URL = f"postgresql://loader:{SECRET}@db.example.com:5432/dev"


@pytest.mark.parametrize(("text", "shown"), [
    (URL, "postgresql://loader:***@db.example.com:5432/dev"),
    (f"psql '{URL}' -c x", "psql 'postgresql://loader:***@db.example.com:5432/dev' -c x"),
    (f"at {URL}: refused", "at postgresql://loader:***@db.example.com:5432/dev: refused"),
    (f"postgresql://u:{SECRET}@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
    (f"host=h password={SECRET} user=u", "host=h password=*** user=u"),
    (f"host=h password='{SECRET} x' user=u", "host=h password=*** user=u"),
    (f"postgresql://h/db?password={SECRET}&x=1", "postgresql://h/db?password=***&x=1"),
    (f"redis://:{SECRET}@h:6379", "redis://:***@h:6379"),
    ("postgresql://postgres@127.0.0.1:5432/dev", "postgresql://postgres@127.0.0.1:5432/dev"),
    ("s3://bucket/key@v1", "s3://bucket/key@v1"),
])
def test_redact(text, shown):
    assert redact(text) == shown


def test_redact_without_mask_leaves_a_url_psql_asks_the_password_for():
    assert redact(URL, mask="") == "postgresql://loader@db.example.com:5432/dev"


def _summary(cause: str) -> dict:
    return {"status": "FAILED", "execution_arn": "arn", "run_id": "r", "compute": "serverless",
            "attempt": 1, "duplicate": False,
            "lines": {"in": None, "out": None, "quarantined": None, "duplicates": None},
            "rows_loaded": {}, "failure": {"state": "Load", "cause": cause},
            "state_transitions": 3, "seconds": 1, "job_seconds": 0, "sql_seconds": 0,
            "orchestration_seconds": 1}


def test_run_summary_and_alerts_never_show_a_password():
    # a cause long enough that the printed failure is cut: redaction comes before the cut
    cause = "x" * 530 + f" could not reach {URL}"
    alerts = [{"subject": f"failed: {URL}", "message": f"the load at {URL} failed"}]
    out = io.StringIO()
    print_summary(_summary(cause), alerts, out)
    assert SECRET not in out.getvalue() and "loader:***@db.example.com" in out.getvalue()
    assert SECRET[:5] not in out.getvalue()  # not even the start of a cut one


def test_summary_json_never_shows_a_password(tmp_path):
    path = tmp_path / "s.json"
    cli.write_json(path, {**_summary(f"at {URL}"), "alerts": [{"message": URL}],
                          "rows": [(1, URL)]})
    text = path.read_text()
    assert SECRET not in text and "loader:***@" in text
    assert json.loads(text)["alerts"][0]["message"].endswith("@db.example.com:5432/dev")


def test_redact_obj_covers_nested_alerts():
    alert = {"topic": "t", "message": json.dumps({"Cause": f"connect {URL}"}),
             "attributes": {"url": {"Value": URL}}, "list": [URL, 3, None]}
    assert SECRET not in json.dumps(redact_obj(alert))


_DEMO = cli.DemoDataset("online_retail", (), "Customers per day",
                        "-- Customers per day\nselect order_date, count(*)\nfrom t group by 1")


def test_the_psql_hint_of_demo_never_shows_a_password():
    out = io.StringIO()
    cli.print_query_hint(URL, [(_DEMO, ["order_date", "customers"], [("2010-12-01", 3)])], out)
    text = out.getvalue()
    assert SECRET not in text
    assert "psql 'postgresql://loader@db.example.com:5432/dev'" in text
    assert "psql asks for it" in text


def test_the_psql_hint_of_the_embedded_warehouse_is_unchanged():
    out = io.StringIO()
    cli.print_query_hint("postgresql://postgres@127.0.0.1:5432/dev", [(_DEMO, [], [])], out)
    assert "psql 'postgresql://postgres@127.0.0.1:5432/dev'" in out.getvalue()
    assert "asks for it" not in out.getvalue()


@pytest.fixture
def cli_logging():
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = cli.configure_logging(True, stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_log_lines_never_show_a_password(cli_logging):
    log = logging.getLogger("local_runtime.test")
    log.info("connecting to %s", URL)
    try:
        raise RuntimeError(f"refused: {URL}")
    except RuntimeError:
        log.exception("failed")
    text = cli_logging.getvalue()
    assert SECRET not in text
    assert "connecting to postgresql://loader:***@" in text and "RuntimeError" in text


def test_an_unexpected_error_shows_a_redacted_traceback(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError(f"unexpected, with {URL}")

    monkeypatch.setattr(cli, "cmd_check", boom)
    try:
        assert cli.main(["check"]) == 1
    finally:
        root = logging.getLogger()
        for h in [h for h in root.handlers if getattr(h, "_local_runtime", False)]:
            root.removeHandler(h)
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: unexpected, with" in err
    assert SECRET not in err


def test_the_warehouse_error_never_shows_a_password(tmp_path):
    from local_runtime.stack import LocalRuntimeError
    from local_runtime.warehouse import start_warehouse

    with pytest.raises(LocalRuntimeError) as e:
        start_warehouse(tmp_path, f"postgresql://user:{SECRET}@127.0.0.1:1/db")
    assert SECRET not in str(e.value) and "user:***@127.0.0.1:1/db" in str(e.value)


def test_a_data_api_error_never_shows_a_password():
    from local_runtime.redshift import _pg_error

    assert SECRET not in _pg_error(RuntimeError(f"could not connect: {URL}\nmore"))
