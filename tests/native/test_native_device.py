"""Without Python: kcovdf's user-space kcov_dataflow device (LD_PRELOAD) and the seed's example."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kcovdf.native import toolchain

ROOT = Path(__file__).resolve().parents[2]
KCOVDF = [sys.executable, "-m", "kcovdf"]

pytestmark = pytest.mark.usefixtures("llvm")

ERRNO_PROGRAM = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#define INIT _IOR('d', 1, unsigned long)
#define ENABLE _IO('d', 100)
#define DISABLE _IO('d', 101)
#define CHECK(call, want) printf("%s %s\n", #call, (call) == -1 ? (errno == want ? "ok" : "wrong errno") \
                                                              : (want ? "succeeded" : "ok"))
int main(void)
{
    int fd = open("/sys/kernel/debug/kcov_dataflow", O_RDWR), fd2;
    CHECK(ioctl(fd, ENABLE, 0), EINVAL);        /* no buffer yet */
    CHECK(ioctl(fd, INIT, 1), EINVAL);          /* too small */
    CHECK(ioctl(fd, INIT, 64), 0);
    CHECK(ioctl(fd, INIT, 64), EBUSY);          /* twice */
    CHECK(ioctl(fd, DISABLE, 0), EINVAL);       /* not enabled */
    CHECK(ioctl(fd, 0x1234, 0), ENOTTY);
    CHECK(ioctl(fd, ENABLE, 0), 0);
    fd2 = open("/sys/kernel/debug/kcov_dataflow", O_RDWR);
    CHECK(ioctl(fd2, INIT, 64), 0);
    CHECK(ioctl(fd2, ENABLE, 0), EBUSY);        /* this task is enabled on fd */
    CHECK(ioctl(fd, DISABLE, 0), 0);
    uint64_t *buf = mmap(NULL, 64 * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mmap %s\n", buf == MAP_FAILED ? "failed" : "ok");
    return close(fd) || close(fd2);
}
"""


def test_device_has_the_kernels_errnos(tmp_path: Path) -> None:
    (tmp_path / "errnos.c").write_text(ERRNO_PROGRAM)
    subprocess.run([toolchain.tool("clang"), "-O1", "errnos.c", "-o", "errnos"], cwd=tmp_path, check=True)
    env = dict(os.environ, LD_PRELOAD=str(toolchain.device_shim()))
    out = subprocess.run(["./errnos"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert [ln.rsplit(" ", 1)[1] for ln in out.splitlines()] == ["ok"] * 11, out


def test_the_seed_example_records_without_python(tmp_path: Path) -> None:
    examples = ROOT / "examples" / "native"
    subprocess.run([*KCOVDF, "cc", "-O2", str(examples / "collect.c"), str(examples / "collect_trigger.c"),
                    "-o", "collect"], cwd=tmp_path, check=True)
    plain = subprocess.run(["./collect"], cwd=tmp_path, capture_output=True, text=True)
    assert plain.returncode == 1 and "open: No such file or directory" in plain.stderr  # no device here
    device = subprocess.run([*KCOVDF, "cc", "--kcovdf-device"], capture_output=True, text=True,
                            check=True).stdout.strip()
    env = dict(os.environ, LD_PRELOAD=device, KCOVDF_DEVICE_DUMP=str(tmp_path / "dump.bin"))
    done = subprocess.run(["./collect"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[ENTRY] seq=1 pc=0x") and lines[0].endswith("arg_idx=0 size=8 val=0x11")
    assert lines[1].endswith("arg_idx=1 size=8 val=0x22") and lines[2].endswith("size=8 val=0x33")
    assert lines[3].endswith("arg_idx=0 size=16 val=0x11")    # the struct's first field
    assert (tmp_path / "dump.bin").stat().st_mode & 0o777 == 0o600
    view = subprocess.run([*KCOVDF, "view", "dump.bin", "--kallsyms", "dump.bin.kallsyms"], cwd=tmp_path,
                          capture_output=True, text=True, check=True).stdout
    calls = [ln for ln in view.splitlines() if ln and not ln.startswith("#")]
    assert calls == ["df_func2 [collect](0x11, 0x22)", "0x33 = df_func2 [collect]()",
                     "df_func_struct [collect]({0x11, 0x22})", "0x33 = df_func_struct [collect]()"]
