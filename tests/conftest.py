"""Shared fixtures: the ``recorder`` parametrization (C core and Python twin) and a record parser."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import pytest

from kcovdf import abi
from kcovdf.runtime import core


@pytest.fixture(params=["c", "py"])
def recorder(request: pytest.FixtureRequest) -> Iterator[core.Recorder]:
    """Run the test once on the C core and once on the Python twin (core.use fails loudly if absent)."""
    before = core.name
    core.use(request.param)
    try:
        yield core.implementation
    finally:
        core.use(before)


class Rec(NamedTuple):
    """One record of a buffer, split into its fields."""

    type: int
    seq: int
    pc: int
    arg_idx: int
    size: int
    ptr: int
    values: list[int]


def parse_records(buf: Sequence[int]) -> list[Rec]:
    """Every record of a buffer (buf[0] = count); fails on a word that is not a record header.

    kcovdf writers never leave a gap or a torn record, so unlike a kernel dump
    reader this does not skip unknown words.
    """
    count = buf[0]
    assert count <= len(buf) - 1, f"buf[0]={count} beyond the buffer ({len(buf)} words)"
    out, i = [], 1
    while i <= count:
        head = abi.split_type_seq(buf[i])
        assert head is not None, f"word {i} ({buf[i]:#x}) is not a record header"
        rtype, nvals, seq = head
        assert nvals >= 2, f"record at word {i} has {nvals} value words; kcovdf writes shape and layout first"
        assert i + 2 + nvals <= count, f"record at word {i} runs past buf[0]={count}"
        arg_idx, size, ptr = abi.split_meta(buf[i + 2])
        out.append(Rec(rtype, seq, buf[i + 1], arg_idx, size, ptr, list(buf[i + 3:i + 3 + nvals])))
        i += 3 + nvals
    return out


def device_records(dev) -> list[Rec]:
    """The records in a device's buffer, releasing the view so the device can close."""
    buf = dev.mmap()
    try:
        return parse_records(buf)
    finally:
        buf.release()


@pytest.fixture
def rec(monkeypatch, tmp_path):
    """A fake recorder behind the import hook, with tmp_path importable."""
    from instr_samples.helpers import recording

    monkeypatch.syspath_prepend(str(tmp_path))
    yield from recording(monkeypatch, tmp_path)
