"""End to end with the real recorder: instrumented code writes kernel-format records into a Device."""

from __future__ import annotations

import pytest

from conftest import parse_records
from instr_samples.helpers import load, write_module
from kcovdf import abi
from kcovdf.instrument import rewrite, switch
from kcovdf.instrument.config import Config
from kcovdf.runtime import core
from kcovdf.runtime.device import Device
from kcovdf.symbols import pc_of

SRC = "def add(a, b, password):\n    return a + b\n\ndef boom():\n    raise KeyError('k')\n"


def records(mapping) -> list[tuple[int, int, int, int]]:
    """(type, pc, arg_idx, value form) of every record in a buffer as Device.mmap() returns it;
    the form is None for an ARG_NONE entry (its one word is no encoded value)."""
    return [(r.type, r.pc, r.arg_idx, abi.split_layout(r.values[1], 0)[1] if len(r.values) > 1 else None)
            for r in parse_records(mapping)]


@pytest.fixture
def module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(switch, "_switch", None)  # a Switch over the real kcovdf.runtime.core
    write_module(tmp_path, "kcovdf_t_core", SRC)
    return load("kcovdf_t_core", Config(include=("kcovdf_t_core",), cache=False))


def test_records_and_symbols_reach_the_device(module):
    assert module.__dict__[rewrite.FLAG] is False
    dev = Device()
    dev.init_trace(4096)
    mapping = dev.mmap()
    dev.enable()
    try:
        assert module.__dict__[rewrite.FLAG] is True and module.__dict__[rewrite.RESERVED] is core
        assert module.add(2, 3, "hunter2") == 5
        with pytest.raises(KeyError):
            module.boom()
    finally:
        dev.disable()
    assert module.__dict__[rewrite.FLAG] is False
    add, boom = pc_of("kcovdf_t_core", "add", 1), pc_of("kcovdf_t_core", "boom", 4)
    assert records(mapping) == [
        (abi.TYPE_ENTRY, add, 0, abi.Form.SCALAR), (abi.TYPE_ENTRY, add, 1, abi.Form.SCALAR),
        (abi.TYPE_ENTRY, add, 2, abi.Form.REDACTED), (abi.TYPE_RETURN, add, 0, abi.Form.SCALAR),
        (abi.TYPE_ENTRY, boom, abi.ARG_NONE, None),
        (abi.TYPE_RETURN, boom, abi.ARG_EXCEPTION, abi.Form.EXCEPTION)]
    syms = {line["qualname"]: line for line in dev.table_lines() if line.get("t") == "sym"}
    assert syms["add"]["pc"] == f"0x{add:x}" and syms["add"]["params"] == [
        ["a", "POSITIONAL_OR_KEYWORD"], ["b", "POSITIONAL_OR_KEYWORD"], ["password", "POSITIONAL_OR_KEYWORD"]]
    dev.close()
