"""The local runtime's ledger file (local_runtime.state): writers never share a temporary file,
and a reader sees a whole ledger, the old one or the new one."""

from __future__ import annotations

import threading
from pathlib import Path

from local_runtime.state import read_ledger, write_ledger


def _items(writer: int, n: int) -> list[dict]:
    return [{"run_id": {"S": f"w{writer}-{i}"}, "status": {"S": "SUCCEEDED"}}
            for i in range(n)]


def test_concurrent_writers_in_one_process_leave_one_whole_ledger(tmp_path: Path):
    path = tmp_path / "ledger.json"
    write_ledger(path, "t", _items(0, 1))
    seen: list[int] = []
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for n in range(1, 40):
                write_ledger(path, "t", _items(w, n))
                seen.append(len(read_ledger(path)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert all(1 <= n < 40 for n in seen)
    final = read_ledger(path)
    assert len({item["run_id"]["S"][:2] for item in final}) == 1  # one writer's whole ledger
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]  # no temporary file left
