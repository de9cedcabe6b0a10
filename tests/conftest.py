"""Shared fixtures and hooks: the cores a test runs on, and a record parser.

The suite runs once per core: plainly on the C core, and with ``KCOVDF_CORE=py``
on the Python twin (scripts/test.sh runs both). A test that takes the ``recorder``
fixture is also run on each core in the same session: on both in the C session,
on the twin only in the twin's (so that a twin session touches no C code). A test
that exercises what only the C core has carries ``@pytest.mark.c_core(reason=...)``
(optionally ``c_core(condition, reason=...)``, as for ``skipif``): it runs on the C
core only, and a twin session skips it, printing the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import pytest

from kcovdf import abi
from kcovdf.runtime import core

#: The core this session runs on: what ``KCOVDF_CORE`` asked for (c unless set), as core picked it.
SESSION_CORE = core.name


def c_only(node: pytest.Item) -> str | None:
    """The reason a test runs on the C core only, or None if it runs on both."""
    mark = node.get_closest_marker("c_core")
    if mark is None:
        return None
    reason = mark.kwargs.get("reason")
    if not reason or len(mark.args) > 1 or set(mark.kwargs) - {"reason"}:
        raise pytest.UsageError(f"{node.nodeid}: use c_core([condition], reason='why only the C core')")
    return reason if not mark.args or mark.args[0] else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``recorder`` over the cores this session tests (see the module docstring)."""
    if "recorder" in metafunc.fixturenames:
        if c_only(metafunc.definition):
            cores = ["c"]
        else:
            cores = ["c", "py"] if SESSION_CORE == "c" else [SESSION_CORE]
        metafunc.parametrize("recorder", cores, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In a twin session, skip the C-only tests, saying why each one is C-only."""
    for item in items:
        reason = c_only(item)
        if reason and SESSION_CORE != "c":
            item.add_marker(pytest.mark.skip(reason=f"C core only, KCOVDF_CORE={SESSION_CORE}: {reason}"))


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Iterator[core.Recorder]:
    """Run the test on the core ``request.param`` (core.use fails loudly if it is absent)."""
    before = core.name
    core.use(request.param)
    try:
        yield core.implementation
    finally:
        core.use(before)


class _InUse:
    def __getattr__(self, name: str) -> object:
        return getattr(core.implementation, name)


#: The recorder module in use (``core.implementation``, read at every access), test seams
#: included: tests that take the ``recorder`` fixture call the core they run on through it.
R = _InUse()


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
        assert i + 2 + nvals <= count, f"record at word {i} runs past buf[0]={count}"
        arg_idx, size, ptr = abi.split_meta(buf[i + 2])
        marker = rtype == abi.TYPE_EVENT or (rtype == abi.TYPE_ENTRY and arg_idx == abi.ARG_NONE)
        assert nvals == 1 if marker else nvals >= 2, \
            f"record at word {i} has {nvals} value words; kcovdf writes shape and layout first " \
            "(one word 0 for events and ARG_NONE entries)"
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


@pytest.fixture(params=["patched", "split", "guarded"])
def shape(request, monkeypatch):
    """Every shape code can run in: static functions patched to single-copy code, the split
    code (two copies behind one test) that closures and unfound functions keep, and one copy
    with a test per call (bodies over SPLIT_LIMIT)."""
    from kcovdf.instrument import rewrite, switch

    if request.param == "split":
        monkeypatch.setattr(switch.Switch, "settle", lambda self: None)
    elif request.param == "guarded":
        monkeypatch.setattr(rewrite, "SPLIT_LIMIT", -1)
    return request.param


@pytest.fixture
def rec(monkeypatch, tmp_path):
    """A fake recorder behind the import hook, with tmp_path importable."""
    from instr_samples.helpers import recording

    monkeypatch.syspath_prepend(str(tmp_path))
    yield from recording(monkeypatch, tmp_path)
