"""One local deployment (moto + one warehouse server + the warm local Spark of its work
directory) for the whole e2e session, all stopped at the end. No warm Spark server outlives the
session: also those that `python -m local_runtime` processes of the tests started in their own
work directories are stopped; each session (its own --basetemp) has its own servers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_data" / "online_retail"


@pytest.fixture(scope="session", autouse=True)
def _no_warm_spark_outlives_the_session(tmp_path_factory):
    yield
    from local_runtime.spark_server import STATE_FILE
    from local_runtime.warm_spark import stop_server

    for state in Path(tmp_path_factory.getbasetemp()).rglob(f"spark-server/{STATE_FILE}"):
        stop_server(state.parent)


def _ready() -> str | None:
    from local_runtime.warehouse import missing_prerequisites

    problems = missing_prerequisites()
    return "; ".join(problems) if problems else None


@pytest.fixture(scope="session")
def deployment(tmp_path_factory):
    reason = _ready()
    if reason:  # never a skip: a missing Java or PostgreSQL must not pass as a green run
        pytest.fail(f"the end-to-end tests need: {reason}")
    from local_runtime.stack import LocalDeployment
    from local_runtime.warm_spark import stop_server

    work = tmp_path_factory.mktemp("local")
    started = LocalDeployment(work_dir=work).start()
    started.derived_triggers = False  # on only where a test asks: `derived_triggers`
    try:
        yield started
    finally:
        started.stop(stop_warehouse=True)
        stop_server(started.spark_runner.warm_dir)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def warehouse_db(deployment):
    import psycopg

    def query(sql: str, params=None):
        db = next((f.env["REDSHIFT_DATABASE"] for f in deployment.functions.values()
                   if f.env.get("REDSHIFT_DATABASE")), "dev")
        with psycopg.connect(deployment.warehouse.database_url(db)) as conn:
            return conn.execute(sql, params).fetchall()

    return query


@pytest.fixture
def derived_triggers(deployment):
    """Upstream loads start their derived datasets' runs, as the template's rule does."""
    deployment.derived_triggers = True
    try:
        yield deployment
    finally:
        deployment.derived_triggers = False
