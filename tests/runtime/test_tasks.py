"""kcovdf.runtime.tasks: one file device per thread and per forked process, counted by summarize()."""

from __future__ import annotations

import _thread
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

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
    originals = [threading.Thread.start, _thread.start_new_thread, _thread.start_new,
                 getattr(_thread, "start_joinable_thread", None)]
    ts = tasks.Tasks(str(tmp_path), 4096)
    ts.start()
    assert threading.Thread.start is not originals[0]
    assert _thread.start_new_thread is not originals[1] and _thread.start_new is not originals[2]
    assert _thread.start_new_thread.__name__ == "start_new_thread"
    ts.stop()
    assert [threading.Thread.start, _thread.start_new_thread, _thread.start_new,
            getattr(_thread, "start_joinable_thread", None)] == originals
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
    s = tasks.summarize(str(tmp_path))
    assert (s.records, s.drops, s.tasks, s.segments) == (0, 0, 1, 1)


# --- threads started through _thread ---------------------------------------------------------
def _wait_for(started: list, n: int) -> None:
    while len(started) < n:
        time.sleep(0.005)
    time.sleep(0.05)  # the thread's wrapper closes its device after the function returned


def test_raw_thread_records_into_its_own_file(running, tmp_path):
    seen: list = []
    dummies_before = [t for t in threading.enumerate() if isinstance(t, threading._DummyThread)]

    def work(pc: int, *, tag: str) -> int:
        core.entry(pc, tag)
        seen.append((_thread.get_ident(), threading.get_native_id(), core.active(),
                     [t for t in threading.enumerate() if isinstance(t, threading._DummyThread)]))
        return 99

    ident = _thread.start_new_thread(work, (0x900,), {"tag": "raw"})
    _wait_for(seen, 1)
    assert core.active() == 1                      # the thread disabled and closed its device
    running.stop()
    thread_ident, native_id, active_inside, dummies = seen[0]
    assert ident == thread_ident                   # start_new_thread still returns the new ident
    assert active_inside == 2
    assert dummies == dummies_before               # threading was never asked about the thread
    by_task = _records_by_task(str(tmp_path))
    assert by_task[(os.getpid(), native_id, "work (_thread)")] == [0x900]
    assert f"task-{os.getpid()}-{native_id}.kdf" in os.listdir(tmp_path)


def _unraisable_reports(monkeypatch, start) -> list:
    """What sys.unraisablehook receives from threads started by ``start``, in a comparable form."""
    import traceback

    reports: list = []

    def hook(args):
        reports.append((args.exc_type, str(args.exc_value), args.err_msg, args.object,
                        [f.name for f in traceback.extract_tb(args.exc_traceback)],
                        args.exc_value.__traceback__ is args.exc_traceback))

    monkeypatch.setattr(sys, "unraisablehook", hook)
    done: list = []

    def fails() -> None:
        done.append(1)
        raise KeyError("lost")

    def exits() -> None:
        done.append(1)
        sys.exit(4)

    start(fails, ())
    start(exits, ())
    _wait_for(done, 2)
    return [(t, v, (m or "").replace(repr(fails), "<fails>"), o is fails, frames, same)
            for t, v, m, o, frames, same in reports]


def test_raw_thread_exceptions_reach_unraisablehook_as_without_kcovdf(tmp_path, monkeypatch):
    plain = _unraisable_reports(monkeypatch, _thread.start_new_thread)
    ts = tasks.Tasks(str(tmp_path), 4096)
    ts.start()
    try:
        traced = _unraisable_reports(monkeypatch, _thread.start_new_thread)
    finally:
        ts.stop()
    assert traced == plain
    assert len(plain) == 1 and plain[0][0] is KeyError and plain[0][4] == ["fails"]  # SystemExit is quiet


@pytest.mark.parametrize("args, kwargs", [
    ((1, ()), {}), ((print, [1]), {}), ((print, (), None), {}), ((print,), {}),
    ((print, (), {}, 1), {}), ((), {"function": print, "args": ()}),
])
def test_bad_start_new_thread_calls_raise_what_they_raise_without_kcovdf(running, args, kwargs):
    original = tasks._patches.original(_thread, "start_new_thread")
    with pytest.raises(TypeError) as plain:
        original(*args, **kwargs)
    with pytest.raises(TypeError) as traced:
        _thread.start_new_thread(*args, **kwargs)
    assert str(traced.value) == str(plain.value)


@pytest.mark.skipif(not hasattr(_thread, "start_joinable_thread"),
                    reason="_thread.start_joinable_thread is new in 3.13")
def test_start_joinable_thread_is_followed(running, tmp_path):
    seen: list = []

    def work() -> None:
        core.entry(0xA00, 1)
        seen.append(threading.get_native_id())

    handle = _thread.start_joinable_thread(work)
    handle.join()
    handle2 = _thread.start_joinable_thread(function=lambda: seen.append(core.entry(0xA01, 2)), daemon=True)
    handle2.join()
    running.stop()
    by_task = _records_by_task(str(tmp_path))
    assert by_task[(os.getpid(), seen[0], "work (_thread)")] == [0xA00]
    assert [pcs for (_, _, name), pcs in by_task.items() if name == "<lambda> (_thread)"] == [[0xA01]]


def test_a_kept_wrapper_passes_through_after_stop(tmp_path):
    ts = tasks.Tasks(str(tmp_path), 4096)
    ts.start()
    kept = _thread.start_new_thread
    ts.stop()
    seen: list = []
    kept(lambda: seen.append(core.active()), ())
    _wait_for(seen, 1)
    assert seen == [0]
    assert len(os.listdir(tmp_path)) == 1


# --- the life of a Tasks -------------------------------------------------------------------
def test_state_follows_the_diagram_and_misuse_names_the_call(tmp_path):
    ts = tasks.Tasks(str(tmp_path), 4096)
    assert ts.state is tasks.State.NEW
    with pytest.raises(RuntimeError, match=r"^Tasks\.stop\(\): not started \(state NEW\)$"):
        ts.stop()
    ts.start()
    assert ts.state is tasks.State.FOLLOWING
    with pytest.raises(RuntimeError, match=r"^Tasks\.start\(\): already following \(state FOLLOWING\)$"):
        ts.start()
    other = tasks.Tasks(str(tmp_path), 4096)
    with pytest.raises(RuntimeError, match=r"^Tasks\.start\(\): <kcovdf Tasks .* state=FOLLOWING> already "
                                           r"follows the threads of this process \(state NEW\)$"):
        other.start()
    assert other.state is tasks.State.NEW
    ts.stop()
    assert ts.state is tasks.State.STOPPED and core.active() == 0
    ts.stop()                                   # a second stop does nothing
    ts.start()                                  # and a stopped Tasks can start again
    assert ts.state is tasks.State.FOLLOWING and core.active() == 1
    ts.stop()
    assert core.active() == 0
