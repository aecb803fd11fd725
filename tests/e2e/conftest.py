"""One local deployment (moto + one warehouse server) for the whole e2e session, stopped at the
end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_data" / "online_retail"


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

    work = tmp_path_factory.mktemp("local")
    started = LocalDeployment(work_dir=work).start()
    yield started
    started.stop(stop_warehouse=True)
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
