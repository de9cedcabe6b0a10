"""Device.kernel(): ioctl numbers, arguments, call order and errnos against a fake kernel."""

from __future__ import annotations

import errno
import mmap
import os

import pytest

from kcovdf import abi, tracefile
from kcovdf.runtime.device import Device, KernelOps, State

FD = 77


class FakeKernel:
    """Records every OS call; ``fail`` maps an ioctl request (or "mmap"/"open") to an errno."""

    def __init__(self, fail: dict[object, int] | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail = fail or {}

    def _maybe_fail(self, what: object) -> None:
        if what in self.fail:
            raise OSError(self.fail[what], os.strerror(self.fail[what]))

    def open(self, path: str) -> int:
        self.calls.append(("open", path))
        self._maybe_fail("open")
        return FD

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        self.calls.append(("ioctl", fd, request, arg))
        self._maybe_fail(request)
        return 0

    def mmap(self, fd: int, length: int, offset: int) -> memoryview:
        self.calls.append(("mmap", fd, length, offset))
        self._maybe_fail("mmap")
        return memoryview(bytearray(length))

    def close(self, fd: int) -> None:
        self.calls.append(("close", fd))


def test_ioctl_numbers_match_the_kernel_headers() -> None:
    # _IOR('d', 1, unsigned long) and _IO('d', 100/101), computed from the asm-generic layout.
    ior = (2 << 30) | (8 << 16) | (ord("d") << 8) | 1
    assert (abi.KCOV_DF_INIT_TRACE, abi.KCOV_DF_ENABLE, abi.KCOV_DF_DISABLE) == \
        (ior, (ord("d") << 8) | 100, (ord("d") << 8) | 101) == (0x80086401, 0x6464, 0x6465)


def test_call_sequence_and_arguments() -> None:
    fake = FakeKernel()
    with Device.kernel(ops=fake) as dev:
        assert dev.state is State.OPEN and dev.path == abi.KERNEL_DEVICE_PATH
        dev.init_trace(1024)
        buf = dev.mmap()
        assert (buf.format, len(buf)) == ("Q", 1024)
        dev.enable()
        assert dev.state is State.ENABLED
        dev.disable()
        assert dev.drops is None and dev.table_lines() == [] and dev.table_fd is None
    assert fake.calls == [
        ("open", abi.KERNEL_DEVICE_PATH),
        ("ioctl", FD, 0x80086401, 1024),
        ("mmap", FD, 1024 * 8, 0),
        ("ioctl", FD, 0x6464, 0),
        ("ioctl", FD, 0x6465, 0),
        ("close", FD),
    ]
    assert dev.state is State.CLOSED


@pytest.mark.parametrize("call, cmd, err", [
    ("init_trace", abi.KCOV_DF_INIT_TRACE, errno.EBUSY),
    ("init_trace", abi.KCOV_DF_INIT_TRACE, errno.ENOMEM),
    ("enable", abi.KCOV_DF_ENABLE, errno.EBUSY),
    ("disable", abi.KCOV_DF_DISABLE, errno.EINVAL),
    ("enable", abi.KCOV_DF_ENABLE, errno.ENOTTY),
])
def test_kernel_errnos_propagate_naming_the_call(call: str, cmd: int, err: int) -> None:
    fake = FakeKernel(fail={cmd: err})
    with Device.kernel(ops=fake) as dev:
        if call != "init_trace":
            dev.init_trace(64)
        with pytest.raises(OSError) as e:
            getattr(dev, call)(*([64] if call == "init_trace" else []))
        assert e.value.errno == err
        assert str(e.value).startswith(f"[Errno {err}] {call}(): {os.strerror(err)} (state ")
    assert fake.calls[-2][2] == cmd


def test_mmap_errno_propagates_with_the_callers_arguments() -> None:
    fake = FakeKernel(fail={"mmap": errno.EINVAL})
    with Device.kernel(ops=fake) as dev:
        dev.init_trace(64)
        with pytest.raises(OSError) as e:
            dev.mmap(100, 4096)
        assert e.value.errno == errno.EINVAL and "mmap()" in str(e.value)
    assert ("mmap", FD, 100, 4096) in fake.calls  # the kernel judges length and offset


def test_checks_that_need_no_kernel_call() -> None:
    fake = FakeKernel()
    dev = Device.kernel(ops=fake)
    with pytest.raises(TypeError, match="words"):
        dev.init_trace(True)  # would be the ioctl argument 1
    assert _errno(dev.mmap) == errno.EINVAL  # no buffer yet
    dev.close()
    assert _errno(dev.enable) == errno.EBADF
    assert fake.calls == [("open", abi.KERNEL_DEVICE_PATH), ("close", FD)]


def _errno(call) -> int:
    with pytest.raises(OSError) as e:
        call()
    return e.value.errno


def test_open_errors_other_than_a_missing_device_pass_through() -> None:
    with pytest.raises(PermissionError):
        Device.kernel(ops=FakeKernel(fail={"open": errno.EACCES}))


def test_real_ops_map_a_descriptor_with_libc(tmp_path) -> None:
    """KernelOps.mmap goes through libc (Python's mmap refuses size-0 debugfs files)."""
    ops = KernelOps()
    (tmp_path / "f").write_bytes(bytes(mmap.PAGESIZE))
    fd = ops.open(str(tmp_path / "f"))
    try:
        view = ops.mmap(fd, mmap.PAGESIZE, 0)
        view[8:16] = b"kcov-dfl"
        assert os.pread(fd, 8, 8) == b"kcov-dfl"
        view.release()
        with pytest.raises(OSError) as e:
            ops.mmap(fd, mmap.PAGESIZE, 1)  # an unaligned offset
        assert e.value.errno == errno.EINVAL
    finally:
        ops.close(fd)


def test_save_writes_a_kdf_of_the_kernel_buffer(tmp_path) -> None:
    class Filled(FakeKernel):
        def mmap(self, fd: int, length: int, offset: int) -> memoryview:
            view = super().mmap(fd, length, offset)
            view[:16] = (1).to_bytes(8, "little") + (0xE1000001).to_bytes(8, "little")
            return view

    with Device.kernel(ops=Filled()) as dev:
        dev.init_trace(8)
        dev.save(tmp_path / "k.kdf")
    data = (tmp_path / "k.kdf").read_bytes()
    head = tracefile.unpack_header(data)
    assert (head.magic, head.words, head.drops) == (tracefile.FILE_MAGIC, 8, 0)
    assert data[tracefile.FILE_HEADER_SIZE:] == (1).to_bytes(8, "little") \
        + (0xE1000001).to_bytes(8, "little") + bytes(6 * 8)
    assert os.stat(tmp_path / "k.kdf").st_mode & 0o777 == 0o600
