"""kcovdf.runtime.tasks: one file device per thread and per forked process, counted by summarize()."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

from kcovdf.read import decode
from kcovdf.runtime import core, tasks


def _records_by_task(trace_dir: str) -> dict[tuple[int, int, str], list[int]]:
    """(pid, tid, thread name) -> the pcs of its entry records, in order."""
    t = decode.load(trace_dir)
    out: dict[tuple[int, int, str], list[int]] = {(k.pid, k.tid, k.name): [] for k in t.tasks}
    rows = t.records.select(["task", "kind", "pc"]).to_pylist()
    for row in rows:
        k = t.tasks[row["task"]]
        if row["kind"] == "entry":
            out[(k.pid, k.tid, k.name)].append(row["pc"])
    return out


@pytest.fixture
def running(tmp_path):
    ts = tasks.Tasks(str(tmp_path), 4096)
    ts.start()
    yield ts
    ts.stop()


def test_each_thread_records_into_its_own_file(running, tmp_path):
    core.entry(0x100, 1)

    def work(pc: int) -> None:
        core.entry(pc, "in thread")

    threads = [threading.Thread(target=work, args=(0x200 + i,), name=f"worker-{i}") for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    core.entry(0x101, 2)
    running.stop()

    by_task = _records_by_task(str(tmp_path))
    me = os.getpid()
    main_tid = threading.get_native_id()
    assert by_task[(me, main_tid, "MainThread")] == [0x100, 0x101]
    workers = {name: pcs for (pid, _tid, name), pcs in by_task.items() if name.startswith("worker-")}
    assert workers == {"worker-0": [0x200], "worker-1": [0x201]}
    for th in threads:
        assert f"task-{me}-{th.native_id}.kdf" in os.listdir(tmp_path)
    for name in os.listdir(tmp_path):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_a_thread_stops_recording_when_its_run_ends(running, tmp_path):
    seen = {}

    def work() -> None:
        seen["active_inside"] = core.active()

    th = threading.Thread(target=work)
    th.start()
    th.join()
    assert seen["active_inside"] == 2     # main thread and this one
    assert core.active() == 1             # the worker disabled and closed its device
    assert "run" not in vars(th)          # the wrapper left no attribute behind


def test_subclass_overriding_run_is_followed(running, tmp_path):
    class Worker(threading.Thread):
        def run(self) -> None:
            core.entry(0x300, self.name)

    w = Worker(name="sub")
    w.start()
    w.join()
    running.stop()
    by_task = _records_by_task(str(tmp_path))
    assert [pcs for (_, _, name), pcs in by_task.items() if name == "sub"] == [[0x300]]


def test_no_threads_option_leaves_threads_unrecorded(tmp_path):
    ts = tasks.Tasks(str(tmp_path), 4096, follow_threads=False)
    ts.start()
    try:
        th = threading.Thread(target=lambda: core.entry(0x400, 1))
        th.start()
        th.join()
    finally:
        ts.stop()
    assert threading.Thread.start.__name__ == "start"
    assert len(os.listdir(tmp_path)) == 1


def test_stop_restores_thread_start(tmp_path):
    original = threading.Thread.start
    ts = tasks.Tasks(str(tmp_path), 4096)
    ts.start()
    assert threading.Thread.start is not original
    ts.stop()
    assert threading.Thread.start is original
    assert core.active() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_its_own_file(running, tmp_path):
    core.entry(0x500, "before fork")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: starts disabled, then has its own device
        os.close(r)
        core.entry(0x600, "child")
        os.write(w, str(threading.get_native_id()).encode())
        os._exit(0)
    os.close(w)
    child_tid = int(os.read(r, 100))
    os.close(r)
    os.waitpid(pid, 0)
    core.entry(0x501, "after fork")
    running.stop()
    by_task = _records_by_task(str(tmp_path))
    assert by_task[(pid, child_tid, "MainThread")] == [0x600]
    assert by_task[(os.getpid(), threading.get_native_id(), "MainThread")] == [0x500, 0x501]


def test_records_survive_sigkill(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal
        from kcovdf.runtime import core
        from kcovdf.runtime import tasks
        tasks.Tasks({str(tmp_path)!r}, 4096).start()
        core.entry(0x700, 7)
        core.entry(0x701, 8)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL
    by_task = _records_by_task(str(tmp_path))
    assert list(by_task.values()) == [[0x700, 0x701]]


def test_full_buffer_drops_are_counted(tmp_path):
    ts = tasks.Tasks(str(tmp_path), 64)
    ts.start()
    try:
        for i in range(100):
            core.entry(0x800, i)
    finally:
        ts.stop()
    s = tasks.summarize(str(tmp_path))
    t = decode.load(str(tmp_path))
    assert s.records == len(t) > 0
    assert s.drops == t.drops == 100 - s.records
    assert s.tasks == 1


def test_count_file_ignores_a_file_that_is_not_a_trace(tmp_path):
    p = tmp_path / "task-1-1.kdf"
    p.write_bytes(b"not a trace")
    assert tasks.count_file(str(p)) == (0, 0)
    assert tasks.summarize(str(tmp_path)) == tasks.Summary(0, 0, 1)
