"""Writer probe for `csms serve` under a benchmark (issue 17): loaded through PYTHONPATH,

    PYTHONPATH=benchmarks/probes/writer .venv/bin/python benchmarks/bench_csms.py --scenario mix ...

it records every group commit of the database writer (wall time, writes, statements and their
wall time by statement) and, when the server exits, writes a summary of the last
WRITER_PROBE_WINDOW_S seconds (default 55) to WRITER_PROBE_OUT (default
/tmp/writer_probe.json); `python benchmarks/probes/writer/summary.py` prints it. Only the
process whose argv holds "serve" is probed; nothing is imported by the CSMS itself.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import sys
import threading
import time

if "serve" in sys.argv:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from csms.persistence import database

    _batches: list[tuple[float, int, float, int, float]] = []  # end, writes, wall, stmts, stmt s
    _current: dict[str, float] = {"count": 0, "seconds": 0.0}
    _by_statement: list[tuple[float, str, float]] = []
    _original_commit = database.GroupCommitWriter._commit

    async def _probed_commit(self: database.GroupCommitWriter, batch: list) -> None:  # type: ignore[type-arg]
        _current["count"], _current["seconds"] = 0, 0.0
        started = time.perf_counter()
        await _original_commit(self, batch)
        ended = time.perf_counter()
        _batches.append(
            (ended, len(batch), ended - started, int(_current["count"]), _current["seconds"])
        )

    database.GroupCommitWriter._commit = _probed_commit  # type: ignore[method-assign]

    def _in_writer() -> bool:
        if threading.current_thread().name.startswith("csms-sqlite-writer"):
            return True
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return False
        return task is not None and task.get_name() == "csms-group-commit"

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        conn.info["writer_probe_t"] = time.perf_counter()

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not _in_writer():
            return
        now = time.perf_counter()
        took = now - conn.info.get("writer_probe_t", now)
        _current["count"] += 1
        _current["seconds"] += took
        _by_statement.append((now, " ".join(statement.split())[:70], took))

    def _dump() -> None:
        window = float(os.environ.get("WRITER_PROBE_WINDOW_S", "55"))
        if not _batches:
            return
        since = _batches[-1][0] - window
        statements: dict[str, list[float]] = {}
        for at, head, took in _by_statement:
            if at >= since:
                statements.setdefault(head, []).append(took)
        out = {
            "window_s": window,
            "batches": [b for b in _batches if b[0] >= since],
            "statements": {h: [len(v), sum(v)] for h, v in statements.items()},
        }
        with open(os.environ.get("WRITER_PROBE_OUT", "/tmp/writer_probe.json"), "w") as f:
            json.dump(out, f)

    atexit.register(_dump)

    def _every_10_s() -> None:  # the bench may stop the server with a signal: dump as we go
        while True:
            time.sleep(10)
            _dump()

    threading.Thread(target=_every_10_s, name="writer-probe", daemon=True).start()
