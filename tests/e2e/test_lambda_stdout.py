"""Two local deployments, one after the other, in one process (as bench/bench_demo.py's rounds
are): the second deployment's handlers log into its own lambda.log, never into the file the
first one closed (it printed "--- Logging error ---" and lost the line: powertools' Logger keeps
the stdout it found at import for the life of the process). Its own process: the e2e session's
deployment holds this one's moto and hooks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from local_cli import REPO, cli_env

TWO_DEPLOYMENTS = textwrap.dedent("""
    import sys
    from pathlib import Path

    from local_runtime.runner import put_raw_object, run_execution
    from local_runtime.stack import LocalDeployment

    for n, work in enumerate(sys.argv[1:]):
        deployment = LocalDeployment(work_dir=Path(work)).start()
        try:
            # a folder marker: ResolveRun logs "event ignored" at INFO, no Spark job runs
            put = put_raw_object(deployment, "online_retail/", b"")
            res = run_execution(deployment, put.event())
            print(n, res.status, (res.output.get("run") or {}).get("ignored"))
        finally:
            deployment.stop(stop_warehouse=True)
""")


def test_a_later_deployment_logs_into_its_own_lambda_log(tmp_path):
    works = [tmp_path / "first", tmp_path / "second"]
    done = subprocess.run([sys.executable, "-c", TWO_DEPLOYMENTS, *map(str, works)], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0", "SUCCEEDED", "True", "1", "SUCCEEDED", "True"]
    assert "Logging error" not in done.stderr, done.stderr[-3000:]
    for work in works:
        log = (work / "lambda.log").read_text()
        assert log.count('"message":"event ignored"') == 1, log[-2000:]
