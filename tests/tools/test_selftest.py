"""``kcovdf selftest``: every case passes in-process and as a command; a broken device fails it."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from kcovdf.runtime import core
from kcovdf.runtime.device import Device
from kcovdf.tools import selftest

NAMES = [name for name, _ in selftest.CASES]


def _check_all_ok(tap: str) -> dict[str, str]:
    """name -> directive ("" if none) of a TAP stream in which every case is ok."""
    lines = [x for x in tap.splitlines() if not x.startswith("#")]
    assert lines[:2] == ["TAP version 13", f"1..{len(NAMES)}"]
    results = {}
    for n, (line, name) in enumerate(zip(lines[2:], NAMES, strict=True), 1):
        m = re.fullmatch(rf"ok {n} - {name}(?: # (.*))?", line)
        assert m, line
        results[name] = m.group(1) or ""
    return results


def test_cases_mirror_the_kernel_selftest() -> None:
    assert NAMES[:9] == ["init_track", "init_track_too_small", "init_track_double", "mmap_before_init",
                         "enable_disable", "enable_without_mmap", "disable_without_enable",
                         "double_enable", "records_captured"]


def test_in_process(recorder: core.Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    status = selftest.main(argparse.Namespace(core=core.name))
    out = capsys.readouterr().out
    assert status == 0, out
    results = _check_all_ok(out)
    if core.name == "py":  # the twin runs Python code during a record: the guard must be exercised
        assert results["reentrancy_guard"] == ""
    assert all(d in ("", "SKIP the C core runs no Python code while it makes a record",
                     "SKIP native code records through the C core only (this is the Python twin)")
               for d in results.values()), results


def test_as_a_command(recorder: core.Recorder) -> None:
    proc = subprocess.run([sys.executable, "-m", "kcovdf", "selftest", "--core", core.name],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_all_ok(proc.stdout)


def test_a_broken_device_fails_the_run(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    real = Device.init_trace

    def accepts_any_size(self: Device, words: int) -> None:
        real(self, max(words, 2))  # a device that forgot the EINVAL rule

    monkeypatch.setattr(Device, "init_trace", accepts_any_size)
    status = selftest.main(argparse.Namespace(core="py"))
    out = capsys.readouterr().out
    assert status == 1
    assert "not ok 2 - init_track_too_small" in out
    assert re.search(r"^# AssertionError: \w+\(\): succeeded, expected EINVAL$", out, re.M)
    assert out.count("not ok") == 1


def test_an_unavailable_core_bails_out(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(core._MODULES, "c", "kcovdf._no_such_module")
    monkeypatch.delitem(core._loaded, "c", raising=False)
    before = core.name
    assert selftest.main(argparse.Namespace(core="c")) == 2
    assert capsys.readouterr().out.startswith("Bail out! --core c:")
    assert core.name == before
