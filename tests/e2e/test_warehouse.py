"""The embedded warehouse: free ports, leftover servers, missing prerequisites."""

import socket

import pytest

from local_runtime.warehouse import missing_prerequisites, postgres_binaries, start_warehouse

pytestmark = pytest.mark.e2e


def test_missing_java_and_postgres_say_what_to_install(tmp_path):
    problems = missing_prerequisites(str(tmp_path), allow_pgserver=False, java_home="")
    text = " ".join(problems)
    assert "openjdk-17-jre-headless" in text
    assert "pgserver" in text and "postgresql" in text


def test_nothing_missing_here():
    assert missing_prerequisites() == []


@pytest.mark.skipif(not postgres_binaries(), reason="no PostgreSQL binaries")
def test_port_in_use_and_leftover_server(tmp_path):
    from local_runtime.warehouse import free_port

    busy = free_port(55400)
    with socket.socket() as s:
        s.bind(("127.0.0.1", busy))
        s.listen()
        from local_runtime import warehouse as w

        wh = w.start_binaries(tmp_path / "wh", postgres_binaries(), port=busy)
        try:
            assert wh.port != busy
            again = start_warehouse(tmp_path / "wh")
            assert again.reused and again.port == wh.port
        finally:
            wh.stop()
    # a stale pid file (server gone) is cleaned and the server starts again
    pid_file = tmp_path / "wh" / "data" / "postmaster.pid"
    pid_file.write_text("999999\n/x\n0\n5999\n")
    wh2 = start_warehouse(tmp_path / "wh")
    try:
        assert not wh2.reused
        import psycopg

        with psycopg.connect(wh2.url) as c:
            assert c.execute("select 1").fetchone() == (1,)
    finally:
        wh2.stop()


@pytest.mark.skipif(not postgres_binaries(), reason="no PostgreSQL binaries")
def test_a_port_taken_after_it_was_found_free_starts_the_server_on_another(tmp_path,
                                                                           monkeypatch):
    """Two local runs starting at once can both find one port free: the one whose PostgreSQL
    then cannot bind it starts again on another port, it does not fail."""
    from local_runtime import warehouse as w

    real_free_port = w.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        handed = []

        def racing_free_port(preferred: int = 54329) -> int:
            handed.append(preferred)
            return busy if len(handed) == 1 else real_free_port(preferred)

        monkeypatch.setattr(w, "free_port", racing_free_port)
        wh = w.start_binaries(tmp_path / "wh", postgres_binaries())
        try:
            assert len(handed) == 2 and wh.port != busy
            import psycopg

            with psycopg.connect(wh.url) as c:
                assert c.execute("select 1").fetchone() == (1,)
        finally:
            wh.stop()


@pytest.mark.skipif(not postgres_binaries(), reason="no PostgreSQL binaries")
def test_a_deep_work_directory_starts_the_server(tmp_path):
    """PostgreSQL refuses a Unix-domain socket path over 107 bytes; the warehouse listens on
    TCP only, so a work directory however deep still starts (a test worker's, a user's)."""
    from local_runtime import warehouse as w

    deep = tmp_path / ("d" * 60) / ("e" * 60) / "warehouse"
    assert len(str(deep / "data" / ".s.PGSQL.54329")) > 107
    wh = w.start_binaries(deep, postgres_binaries())
    try:
        import psycopg

        with psycopg.connect(wh.url) as c:
            assert c.execute("select 1").fetchone() == (1,)
    finally:
        wh.stop()


def test_saved_warehouse_is_the_server_of_its_data_dir(tmp_path, deployment):
    # server.json names a port another server answers on now (its own server is gone)
    import json

    from local_runtime.warehouse import saved_warehouse

    other = deployment.warehouse
    base = tmp_path / "wh"
    (base / "data").mkdir(parents=True)
    (base / "server.json").write_text(json.dumps({"url": other.url, "port": other.port,
                                                  "kind": "binaries"}))
    assert saved_warehouse(base) is None
    # the session's own warehouse is found as running
    if other.kind == "binaries" and other.data_dir is not None:
        assert saved_warehouse(other.data_dir.parent) is not None
