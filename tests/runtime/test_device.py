"""kcovdf.Device: the kernel's errno rules, ownership, drops, files, threads, crash survival."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

import kcovdf
from conftest import device_records, parse_records
from kcovdf import abi, tracefile
from kcovdf.runtime import core
from kcovdf.runtime.device import Device, State
from kcovdf.runtime.encode import encode_value

PC = 0xD0D0


def _errno_of(call, *args) -> OSError:
    with pytest.raises(OSError) as e:
        call(*args)
    return e.value


# --- the kernel's errno table ---------------------------------------------------------

def test_init_trace_and_header(recorder: core.Recorder) -> None:
    with kcovdf.Device() as dev:
        assert dev.state is State.OPEN and dev.words is None and dev.path is None
        dev.init_trace(64)
        assert dev.state is State.INIT and dev.words == 64
        head = tracefile.unpack_header(os.pread(dev.fd, tracefile.FILE_HEADER_SIZE, 0))
        assert head.magic == tracefile.FILE_MAGIC and head.version == tracefile.FORMAT_VERSION
        assert (head.words, head.drops, head.owner, head.pid) == (64, 0, 0, os.getpid())
        # the table after the buffer may already hold lines replayed from earlier devices
        assert os.fstat(dev.fd).st_size >= tracefile.FILE_HEADER_SIZE + 64 * 8


@pytest.mark.parametrize("words", [-1, 0, 1, abi.MAX_WORDS + 1])
def test_init_trace_size_out_of_range_is_einval(words: int) -> None:
    with Device() as dev:
        e = _errno_of(dev.init_trace, words)
        assert e.errno == errno.EINVAL
        assert "init_trace()" in str(e) and "state OPEN" in str(e) and str(words) in str(e)
        assert dev.state is State.OPEN
        dev.init_trace(abi.MIN_WORDS)  # the smallest legal size
        assert dev.words == abi.MIN_WORDS


@pytest.mark.parametrize("words", [True, 64.0, "64", None])
def test_init_trace_size_must_be_int(words: object) -> None:
    with Device() as dev, pytest.raises(TypeError, match=r"init_trace\(\): words must be an int"):
        dev.init_trace(words)  # type: ignore[arg-type]


def test_init_trace_twice_is_ebusy() -> None:
    with Device() as dev:
        dev.init_trace(64)
        e = _errno_of(dev.init_trace, 128)
        assert e.errno == errno.EBUSY and "state INIT" in str(e)
        assert dev.words == 64


def test_init_trace_allocation_failure_is_enomem(tmp_path) -> None:
    # A file-size limit makes the allocation fail for real (in a child: the limit is per process).
    code = textwrap.dedent(f"""
        import errno, resource, signal
        from kcovdf import Device
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
        for dev in (Device(), Device(file={str(tmp_path / "big.kdf")!r})):
            try:
                dev.init_trace(1 << 20)
            except OSError as e:
                assert e.errno == errno.ENOMEM, e
                assert "init_trace()" in str(e), e
                assert dev.state.name == "OPEN"
                dev.init_trace(64)  # a size that fits still works
            else:
                raise SystemExit("no ENOMEM")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr


def test_a_table_write_failure_leaves_the_device_usable(recorder: core.Recorder, tmp_path) -> None:
    # The file-size limit leaves room for header and buffer only: table lines fail with EFBIG.
    limit = tracefile.FILE_HEADER_SIZE + 64 * 8
    code = textwrap.dedent(f"""
        import errno, resource, signal
        from kcovdf import Device
        from kcovdf.runtime import core
        core.use({core.name!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        dev = Device(file={str(tmp_path / "full.kdf")!r})
        dev.init_trace(64)
        try:
            dev.enable()
        except OSError as e:
            assert e.errno == errno.EFBIG and "enable(): cannot write the task line" in str(e), e
        else:
            raise SystemExit("enable() succeeded")
        assert core.active() == 0 and dev.state.name == "INIT", (core.active(), dev.state)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr


def test_mmap_rules() -> None:
    with Device() as dev:
        e = _errno_of(dev.mmap)
        assert e.errno == errno.EINVAL and "mmap()" in str(e) and "state OPEN" in str(e)
        dev.init_trace(32)
        assert _errno_of(dev.mmap, 31 * 8).errno == errno.EINVAL
        assert _errno_of(dev.mmap, 33 * 8).errno == errno.EINVAL
        assert _errno_of(dev.mmap, 32 * 8, 4096).errno == errno.EINVAL
        with pytest.raises(TypeError, match="length"):
            dev.mmap(True)  # type: ignore[arg-type]
        buf = dev.mmap(32 * 8, 0)
        again = dev.mmap()
        assert (buf.format, len(buf), buf[0]) == ("Q", 32, 0)
        buf[5] = 0xABC
        assert again[5] == 0xABC  # one shared buffer
        assert os.pread(dev.fd, 8, tracefile.FILE_HEADER_SIZE + 5 * 8) == (0xABC).to_bytes(8, "little")
        buf.release()
        again.release()


def test_enable_disable_errnos(recorder: core.Recorder) -> None:
    with Device() as dev, Device() as second:
        assert _errno_of(dev.enable).errno == errno.EINVAL  # no buffer
        assert _errno_of(dev.disable).errno == errno.EINVAL
        dev.init_trace(64)
        second.init_trace(64)
        e = _errno_of(dev.disable)  # disable without enable
        assert e.errno == errno.EINVAL and "disable()" in str(e) and "state INIT" in str(e)
        dev.enable()  # without mmap: legal
        assert dev.state is State.ENABLED
        e = _errno_of(dev.enable)
        assert e.errno == errno.EBUSY and "enable()" in str(e) and "state ENABLED" in str(e)
        e = _errno_of(second.enable)  # this task is enabled on another device
        assert e.errno == errno.EBUSY and "another device" in str(e)
        assert second.state is State.INIT
        core.entry(PC, 1)
        dev.disable()
        assert dev.state is State.INIT
        assert [r.values for r in device_records(dev)] == [encode_value(1).words]
        second.enable()  # free again
        second.disable()


def test_only_the_enabling_thread_may_disable(recorder: core.Recorder) -> None:
    got: list[OSError] = []
    with Device() as dev:
        dev.init_trace(64)
        dev.enable()

        def other() -> None:
            try:
                dev.disable()
            except OSError as e:
                got.append(e)
            try:
                dev.enable()
            except OSError as e:
                got.append(e)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert [e.errno for e in got] == [errno.EINVAL, errno.EBUSY]
        assert f"enabled by task {threading.get_native_id()}" in str(got[0])
        assert dev.state is State.ENABLED
        dev.disable()


def test_calls_after_close_are_ebadf() -> None:
    dev = Device()
    dev.init_trace(64)
    dev.close()
    dev.close()  # idempotent, like a file's
    assert dev.state is State.CLOSED and dev.fd == -1
    for call in (dev.mmap, dev.enable, dev.disable, dev.table_lines):
        e = _errno_of(call)
        assert e.errno == errno.EBADF and "state CLOSED" in str(e)
    assert _errno_of(dev.init_trace, 64).errno == errno.EBADF


def test_kernel_device_is_absent_here() -> None:
    assert not os.path.exists(abi.KERNEL_DEVICE_PATH)
    with pytest.raises(FileNotFoundError) as e:
        Device.kernel()
    msg = str(e.value)
    assert abi.KERNEL_DEVICE_PATH in msg and "CONFIG_KCOV_DATAFLOW" in msg and "debugfs" in msg


# --- lifecycle ---------------------------------------------------------------------------

def test_context_manager_closes_and_releases(recorder: core.Recorder) -> None:
    with Device() as dev:
        dev.init_trace(64)
        fds = (dev.fd, dev.table_fd)
        dev.enable()
        assert core.active() == 1
    assert dev.state is State.CLOSED
    assert core.active() == 0
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_close_while_enabled_disables_and_keepsdevice_records(recorder: core.Recorder, tmp_path) -> None:
    path = tmp_path / "closed.kdf"
    dev = Device(file=path)
    dev.init_trace(256)
    dev.enable()
    core.entry(PC, "kept")
    dev.close()
    assert core.active() == 0
    core.entry(PC, "after close")  # not recorded anywhere, no error
    with Device() as other:  # the task is free for another device
        other.init_trace(64)
        other.enable()
        other.disable()
    data = path.read_bytes()
    assert tracefile.unpack_header(data).owner == 0
    words = memoryview(data[tracefile.FILE_HEADER_SIZE:tracefile.FILE_HEADER_SIZE + 256 * 8]).cast("Q")
    assert [r.values for r in parse_records(words)] == [encode_value("kept").words]


def test_close_by_another_thread_leaves_the_writer_running(recorder: core.Recorder) -> None:
    """As a kcov task keeps its buffer past close(fd): the writer goes on until it ends."""
    enabled, closed = threading.Event(), threading.Event()
    got: list[object] = []
    dev = Device()
    dev.init_trace(256)

    def writer() -> None:
        dev.enable()
        enabled.set()
        closed.wait(30)
        try:
            core.entry(PC, "after close")  # still mapped: no error, no crash
            dev.disable()
        except OSError as e:
            got.append(e.errno)

    t = threading.Thread(target=writer)
    t.start()
    enabled.wait(30)
    dev.close()
    closed.set()
    t.join()
    assert got == [errno.EBADF]  # the device is closed: disable() is refused
    assert core.active() == 0  # the thread's end released it


def test_exit_while_enabled_is_clean(recorder: core.Recorder, tmp_path) -> None:
    path = tmp_path / "exit.kdf"
    code = textwrap.dedent(f"""
        import threading
        from kcovdf import Device
        from kcovdf.runtime import core
        core.use({core.name!r})
        dev = Device(file={str(path)!r})
        dev.init_trace(256)
        dev.enable()
        core.entry(1, "main")
        def daemon():
            d = Device()
            d.init_trace(64)
            d.enable()
            core.entry(2, "daemon")
            threading.Event().wait()
        threading.Thread(target=daemon, daemon=True).start()
        print("done")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "done\n", "")
    start = tracefile.FILE_HEADER_SIZE
    words = memoryview(path.read_bytes()[start:start + 256 * 8]).cast("Q")
    assert [r.values for r in parse_records(words)] == [encode_value("main").words]


def test_thread_exiting_while_enabled_frees_the_device(recorder: core.Recorder) -> None:
    """As a kcov task exit does: the owner is cleared and another task can enable."""
    with Device() as dev:
        dev.init_trace(256)

        def run() -> None:
            dev.enable()
            core.entry(PC, "from the thread")

        t = threading.Thread(target=run)
        t.start()
        t.join()
        assert core.active() == 0
        assert dev.state is State.INIT
        dev.enable()
        core.entry(PC, "from main")
        dev.disable()
        assert [r.values for r in device_records(dev)] == \
            [encode_value("from the thread").words, encode_value("from main").words]


def test_listeners_hear_when_the_last_enabled_thread_ends_enabled(recorder: core.Recorder) -> None:
    """Else the instrumented code would stay on its recording path after the last task is gone."""
    seen: list[bool] = []
    unregister = core.on_activity(seen.append)
    try:
        with Device() as dev:
            dev.init_trace(256)
            t = threading.Thread(target=dev.enable)
            t.start()
            t.join()
            assert core.active() == 0
            # the C core tells the main thread through a pending call: it runs at a bytecode
            # boundary soon after; wait for it, boundedly (an event, not a duration, is checked)
            for _ in range(10_000):
                if seen == [True, False]:
                    break
                threading.Event().wait(0.001)
            assert seen == [True, False]
    finally:
        unregister()


def test_activity_listeners_see_flips_only(recorder: core.Recorder) -> None:
    seen: list[bool] = []
    unregister = core.on_activity(seen.append)
    try:
        with Device() as a, Device() as b:
            a.init_trace(64)
            b.init_trace(64)
            a.enable()
            t = threading.Thread(target=lambda: (b.enable(), b.disable()))
            t.start()
            t.join()  # 1 -> 2 -> 1 threads enabled: no flip
            with pytest.raises(OSError):
                a.enable()  # a failed call changes nothing
            a.disable()
            a.enable()
        assert seen == [True, False, True, False]  # the last False from close()
    finally:
        unregister()


# --- beyond the kernel -----------------------------------------------------------------

def test_full_buffer_drops_whole_records_and_counts_them(recorder: core.Recorder) -> None:
    rec_words = 3 + len(encode_value(7).words)
    with Device() as dev:
        dev.init_trace(1 + 3 * rec_words + 2)  # room for 3 records and 2 spare words
        dev.enable()
        core.entry(PC, *[7] * 5)
        dev.disable()
        assert dev.drops == 2
        buf = dev.mmap()
        assert buf[0] == 3 * rec_words
        assert list(buf[1 + buf[0]:]) == [0, 0]  # nothing of a dropped record was written
        buf.release()
        assert [r.arg_idx for r in device_records(dev)] == [0, 1, 2]
        assert [r.seq for r in device_records(dev)] == [1, 2, 3]


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_files_are_created_0600(tmp_path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with Device(file=tmp_path / "a.kdf") as dev:
            dev.init_trace(64)
            dev.save(tmp_path / "copy.kdf")
        with Device() as mem:
            mem.init_trace(64)
            mem.save(tmp_path / "mem.kdf")
    finally:
        os.umask(old)
    for name in ("a.kdf", "copy.kdf", "mem.kdf"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    assert sorted(os.listdir(tmp_path)) == ["a.kdf", "copy.kdf", "mem.kdf"]  # no temporaries left


def test_existing_file_needs_overwrite(tmp_path) -> None:
    path = tmp_path / "x.kdf"
    path.write_bytes(b"precious")
    os.chmod(path, 0o644)
    with pytest.raises(FileExistsError):
        Device(file=path)
    assert path.read_bytes() == b"precious"
    with Device() as dev:
        dev.init_trace(64)
        with pytest.raises(FileExistsError, match="overwrite"):
            dev.save(path)
        assert path.read_bytes() == b"precious"
        dev.save(path, overwrite=True)
    assert path.read_bytes()[:8] == tracefile.FILE_MAGIC
    with Device(file=path, overwrite=True) as dev:
        assert os.fstat(dev.fd).st_size == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_save_and_table_lines(recorder: core.Recorder, tmp_path) -> None:
    class Saved:
        def __init__(self) -> None:
            self.v = 1

    with Device() as dev:
        dev.init_trace(128)
        dev.enable()
        core.entry(PC, Saved())
        dev.disable()
        dev.enable()  # the task line is written once per task
        dev.disable()
        lines = dev.table_lines()
        tasks = [x for x in lines if x["t"] == "task"]
        assert tasks == [{"t": "task", "pid": os.getpid(), "tid": threading.get_native_id(),
                          "name": threading.current_thread().name}]
        classes = {x["class"]: x["fields"] for x in lines if x["t"] == "type"}
        assert classes[f"{__name__}.test_save_and_table_lines.<locals>.Saved"] == ["v"]
        dev.save(tmp_path / "saved.kdf")
        with open(f"/proc/self/fd/{dev.fd}", "rb") as f:
            assert (tmp_path / "saved.kdf").read_bytes() == f.read()


def test_table_lines_ignores_an_unterminated_last_line(tmp_path) -> None:
    with Device(file=tmp_path / "t.kdf") as dev:
        dev.init_trace(16)
        os.write(dev.table_fd, b'{"t":"info","key":"a","value":1}\n{"t":"info","ke')
        # the unterminated line is left out (parsing it would raise CorruptBufferError)
        assert dev.table_lines()[-1] == {"t": "info", "key": "a", "value": 1}


# --- crash survival -------------------------------------------------------------------------

def test_records_survive_sigkill_of_the_writer(recorder: core.Recorder, tmp_path) -> None:
    path = tmp_path / "crash.kdf"
    code = textwrap.dedent(f"""
        import os, signal
        from kcovdf import Device
        from kcovdf.runtime import core
        core.use({core.name!r})
        dev = Device(file={str(path)!r})
        dev.init_trace(1024)
        dev.enable()
        for i in range(10):
            core.entry(0xC0DE, i, "arg")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    data = path.read_bytes()
    head = tracefile.unpack_header(data)
    assert head.words == 1024 and head.pid != os.getpid()
    words = memoryview(data[tracefile.FILE_HEADER_SIZE:tracefile.FILE_HEADER_SIZE + 1024 * 8]).cast("Q")
    recs = parse_records(words)
    assert [r.values for r in recs[::2]] == [encode_value(i).words for i in range(10)]
    assert {r.pc for r in recs} == {0xC0DE}
    table = [json.loads(x) for x in data[tracefile.FILE_HEADER_SIZE + 1024 * 8:].split(b"\n") if x]
    assert {"builtins.int", "builtins.str"} <= {x["class"] for x in table if x["t"] == "type"}
    assert [x["pid"] for x in table if x["t"] == "task"] == [head.pid]
