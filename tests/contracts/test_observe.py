"""kcovdf.contracts.observe: the observations read by plans, column-wise, equal those of the
reference, which reads every value one by one (``_value_rows``)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracegen as tg
from kcovdf import abi
from kcovdf.contracts import observe as obs


@dataclasses.dataclass
class Pair:
    a: object
    b: object


@dataclasses.dataclass
class Box:
    inner: object


for _cls in (Pair, Box):
    _cls.__module__ = "app"

short = st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-3, 3), st.booleans(), st.none(),
                  st.floats(), st.text(max_size=9), st.text("ab", min_size=8, max_size=20),
                  st.integers(2**64, 2**80), st.binary(max_size=4))
value = st.one_of(
    short, st.text(max_size=30), st.text("xyz", min_size=80, max_size=100), st.binary(max_size=12),
    st.lists(short, max_size=3), st.dictionaries(st.text(max_size=3), short, max_size=2),
    st.frozensets(st.integers(0, 9), max_size=3), st.builds(Pair, short, short),
    st.builds(Box, st.builds(Pair, short, short)), st.builds(ValueError, short),
)


def _plain(o: obs.Observations) -> dict[str, Any]:
    """Observations as comparable data (NaN as None)."""
    out: dict[str, Any] = {}
    for f in o:
        out[f.name] = (f.calls.tolist(), f.ordinal.tolist(), list(f.exit), {
            name: ([None if math.isnan(n) else n for n in v.num.tolist()], list(v.text), list(v.cls))
            for name, v in f.variables.items()})
    return out


def _both(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[dict, dict, obs.Observations]:
    """(observations by plans, by the reference alone, the first Observations)."""
    made: list[obs._Rows] = []

    class Rows(obs._Rows):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    with monkeypatch.context() as m:
        m.setattr(obs, "_Rows", Rows)
        fast = obs.observe(str(path), **kw)
    assert made and all(r.rejected == 0 for r in made)  # every plan agreed with the reference
    with monkeypatch.context() as m:
        m.setattr(obs._Rows, "_groups", lambda *a: iter(()))  # no plan: every value one by one
        slow = obs.observe(str(path), **kw)
    return _plain(fast), _plain(slow), fast


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(value, value, value), min_size=1, max_size=12))
def test_plans_give_what_the_reference_gives(tmp_path_factory: pytest.TempPathFactory,
                                            monkeypatch: pytest.MonkeyPatch, calls: list) -> None:
    b = tg.TraceBuilder()
    f = b.func("app", "f", 3, ("x", "*rest"))
    g = b.func("app", "g", 9, ("y",))
    for cid, (x, y, r) in enumerate(calls, 1):
        pc = f if cid % 2 else g
        b.call(pc, x, y, cid=cid) if pc == f else b.call(pc, x, cid=cid)
        b.exc(pc, r, cid=cid) if isinstance(r, BaseException) else b.ret(pc, r, cid=cid)
    path = tmp_path_factory.mktemp("obs") / "t.kdf"
    tg.write_kdf(path, b.buffer(len(b.words) + 8), b.table_lines((7, 8, "MainThread")), version=2, pid=7)
    fast, slow, o = _both(path, monkeypatch)
    assert fast == slow
    assert sum(len(fn) for fn in o) == len(calls)
    if len(calls) > 1:  # rest: the second argument of f, by its name without the star
        assert "rest" in o.functions["app:f"].variables


def test_objects_decompose_and_strs_keep_their_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = tg.TraceBuilder()
    f = b.func("app", "f", 3, ("p",))
    for cid, p in enumerate([Pair(1, "ok"), Pair(2.5, "é"), Pair(None, "a" * 30), Pair(0, "b" * 300)], 1):
        b.call(f, p, cid=cid).ret(f, "x" * cid, cid=cid)
    path = tmp_path / "t.kdf"
    tg.write_kdf(path, b.buffer(len(b.words) + 8), b.table_lines((7, 8, "MainThread")), version=2, pid=7)
    fast, slow, o = _both(path, monkeypatch)
    assert fast == slow
    v = o.functions["app:f"].variables
    assert v["p.a"].num[:2].tolist() == [1.0, 2.5] and v["p.a"].cls.tolist() == [
        "builtins.int", "builtins.float", "builtins.NoneType", "builtins.int"]
    # a str field continued in CHUNK words is whole; one cut short holds no text, only its class
    assert v["p.b"].text.tolist() == ["ok", "é", "a" * 30, None]
    assert v["p.b"].cls.tolist() == ["builtins.str"] * 4
    assert v["ret"].text.tolist() == ["x", "xx", "xxx", "xxxx"] and v["len(ret)"].num.tolist() == [1, 2, 3, 4]
    assert v["p"].cls.tolist() == ["app.Pair"] * 4


def test_kernel_words_are_signed_and_struct_fields_numbered(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pc = 0xFFFFFFFFC0001040
    words: list[int] = []
    seq = 0
    for i, (a, s) in enumerate([(1, [5, 6]), ((1 << 64) - 2, [abi.FAULT, 7]), (abi.FAULT, [8, 9])]):
        for arg, v in enumerate(([a], s)):
            seq += 1
            words += tg.record(abi.TYPE_ENTRY, seq, pc, arg, v)
        seq += 1
        words += tg.record(abi.TYPE_RETURN, seq, pc, 0, [i])
    dump = tmp_path / "dump.bin"
    dump.write_bytes(tg.words_bytes([len(words)] + words + [0] * 16))
    fast, slow, o = _both(dump, monkeypatch)
    assert fast == slow
    (fn,) = o
    v = fn.variables
    assert v["arg0"].num[:2].tolist() == [1.0, -2.0] and np.isnan(v["arg0"].num[2])
    assert v["arg0"].cls.tolist() == ["u64"] * 3 and v["arg1"].cls.tolist() == ["struct"] * 3
    assert v["arg1.field0"].cls.tolist() == ["u64", "FAULT", "u64"]
    assert v["arg1.field1"].num.tolist() == [6.0, 7.0, 9.0]
