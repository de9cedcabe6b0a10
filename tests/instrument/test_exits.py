"""Faithful records (format 2): every call has one entry, one exit at its real end, and an id.

Each test records a small module with the real recorder (both cores, the ``recorder``
fixture) in each code shape (``shape``), pairs the records with ``kcovdf sql``'s calls view,
and compares them with the truth the test computes by running the same code plainly.
"""

from __future__ import annotations

import itertools
import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instr_samples.helpers import forget, load, write_module
from kcovdf.instrument import switch
from kcovdf.instrument.config import Config
from kcovdf.read import decode
from kcovdf.runtime.device import Device
from kcovdf.tools import sql

MOD = "kcovdf_t_exits"


_names = itertools.count()


@pytest.fixture
def record(recorder, shape, tmp_path, monkeypatch):
    """record(source, yields=False) -> (plain module, run) where run(expr) evaluates ``expr``
    on the instrumented module while recording and returns (its value or the ValueError it
    raised, the calls rows with ``name``: the function's qualname)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(switch, "_switch", None)  # a Switch over the real kcovdf.runtime.core
    made: list[str] = []

    def prepare(source: str, yields: bool = False) -> tuple[Any, Any]:
        # a new name each time: no bytecode cache can hand back an earlier source
        name = f"{MOD}_{next(_names)}"
        made.append(name)
        write_module(tmp_path, name, textwrap.dedent(source))
        plain = load(name, False)
        forget(name)
        inst = load(name, Config(include=(name,), yields=yields))

        def run(expr: str) -> tuple[Any, list[dict[str, Any]]]:
            dev = Device()
            dev.init_trace(1 << 16)
            dev.enable()
            try:
                value = eval(expr, vars(inst))
            except ValueError as e:
                value = e
            finally:
                dev.disable()
            trace = decode.load(dev)
            rows = sql.query(trace, "SELECT * FROM calls ORDER BY exit_seq NULLS LAST").to_pylist()
            dev.close()
            for row in rows:
                row["name"] = row["function"].removeprefix(name + ".")
            return value, rows
        return plain, run
    yield prepare
    for name in made:
        forget(name)


def short(row: dict[str, Any]) -> str:
    """A call as ``function -> result`` (``!Class`` for an exception, ``…`` unfinished)."""
    name = row["name"]
    if row["exit"] == "exception":
        return f"{name} -> !{row['result_class'].rsplit('.', 1)[-1]}"
    return f"{name} -> {row['result'] if row['exit'] else '…'}"


def by_name(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["name"] == name]


def test_return_in_finally_is_recorded_after_the_finally_runs(record):
    plain, run = record("""
        def helper(x):
            return x * 2

        def f():
            try:
                return 5
            finally:
                helper(10)
    """)
    value, rows = run("f()")
    assert value == plain.f() == 5
    # the helper of the finally ends first, then f, with the value it really returned
    assert [short(r) for r in rows] == ["helper -> 20", "f -> 5"]
    helper, f = rows
    assert helper["parent"] == f["call"] and f["entry_seq"] < helper["entry_seq"]


def test_finally_that_returns_or_raises_gives_one_exit(record):
    plain, run = record("""
        def replaced():
            try:
                return 1
            finally:
                return 2

        def raised():
            try:
                return 1
            finally:
                raise ValueError("boom")

        def both():
            out = [replaced()]
            try:
                raised()
            except ValueError:
                out.append("caught")
            return out
    """)
    value, rows = run("both()")
    assert value == plain.both() == [2, "caught"]
    assert [short(r) for r in rows] == ["replaced -> 2", "raised -> !ValueError", "both -> [2, 'caught']"]


def test_with_exits_run_before_the_return(record):
    plain, run = record("""
        import contextlib

        class Tracked:
            def __enter__(self):
                return 3
            def __exit__(self, *exc):
                note("exit")
                return False

        def note(what):
            return what

        @contextlib.contextmanager
        def managed(n):
            yield n

        def use_class():
            with Tracked() as v:
                return v + 1

        def use_generator():
            with managed(7) as v:
                return v * 2
    """)
    value, rows = run("(use_class(), use_generator())")
    assert value == (plain.use_class(), plain.use_generator()) == (4, 14)
    names = [short(r) for r in rows]
    assert names.index("Tracked.__exit__ -> False") < names.index("use_class -> 4")
    # the @contextmanager generator finishes (it is not left unfinished) and only once
    (managed,) = by_name(rows, "managed")
    assert managed["exit"] == "return" and managed["parent"] == by_name(rows, "use_generator")[0]["call"]
    assert all(r["exit"] for r in rows), [short(r) for r in rows if not r["exit"]]


def test_interleaved_generators_are_paired_by_identity(record):
    plain, run = record("""
        def leaf(v):
            return v

        def gen(a, n):
            for i in range(n):
                yield leaf(a * 10 + i)
            return a
    """, yields=True)
    value, rows = run("list(zip(gen(1, 2), gen(2, 2)))")
    assert value == list(zip(plain.gen(1, 2), plain.gen(2, 2), strict=False)) == [(10, 20), (11, 21)]
    gens = by_name(rows, "gen")
    assert sorted((g["args"], g["yields"]) for g in gens) == [(["1", "2"], 2), (["2", "2"], 2)]
    first = next(g for g in gens if g["args"] == ["1", "2"])
    # zip stops at the first generator's end: it returns 1; the second is closed later
    assert first["exit"] == "return" and first["result"] == "1"
    for leaf in by_name(rows, "leaf"):
        parent = next(r for r in rows if r["call"] == leaf["parent"])
        assert parent["name"] == "gen" and str(int(leaf["result"]) // 10) == parent["args"][0]


def test_gathered_coroutines_get_their_own_results(record):
    plain, run = record("""
        import asyncio

        async def acoro(i):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return i * 100

        async def gather():
            return await asyncio.gather(acoro(0), acoro(1), acoro(2))

        def main():
            return asyncio.run(gather())
    """)
    value, rows = run("main()")
    assert value == plain.main() == [0, 100, 200]
    coros = by_name(rows, "acoro")
    assert sorted((c["args"][0], c["result"]) for c in coros) == [("0", "0"), ("1", "100"), ("2", "200")]
    assert all(c["suspends"] >= 2 and c["resumes"] >= 2 for c in coros)
    # none is drawn inside another coroutine
    ids = {c["call"] for c in coros}
    assert not any(c["parent"] in ids for c in coros)


def test_a_call_without_parameters_has_an_entry_and_its_callees(record):
    plain, run = record("""
        def add(a, b):
            return a + b

        def main():
            return add(1, 2)
    """)
    value, rows = run("main()")
    assert value == plain.main() == 3
    add, main = rows
    assert (main["nargs"], main["entry_seq"], main["result"]) == (0, 1, "3")
    assert add["parent"] == main["call"] and add["depth"] == main["depth"] + 1
    assert main["params"] is None  # its ARG_NONE entry holds no value


def test_recursion_pairs_each_level_with_its_own_result(record):
    plain, run = record("""
        def fact(n):
            if n <= 1:
                return 1
            try:
                return n * fact(n - 1)
            finally:
                pass
    """)
    value, rows = run("fact(5)")
    assert value == plain.fact(5) == 120
    assert [(r["args"], r["result"], r["depth"]) for r in rows] == [
        (["1"], "1", 4), (["2"], "2", 3), (["3"], "6", 2), (["4"], "24", 1), (["5"], "120", 0)]
    assert len({r["call_id"] for r in rows}) == 5


def test_generator_closed_early_ends_once_with_generatorexit(record):
    plain, run = record("""
        def numbers():
            try:
                yield 1
                yield 2
            finally:
                cleanup()

        def cleanup():
            return "clean"

        def first():
            g = numbers()
            v = next(g)
            g.close()
            return v
    """)
    value, rows = run("first()")
    assert value == plain.first() == 1
    (numbers,) = by_name(rows, "numbers")
    assert numbers["exit"] == "exception" and numbers["result_class"] == "builtins.GeneratorExit"
    (cleanup,) = by_name(rows, "cleanup")
    assert cleanup["parent"] == numbers["call"] and cleanup["exit_seq"] < numbers["exit_seq"]


# --- random programs: every recorded result is the real one ---------------------------------

_CM = '''
import contextlib

class Quiet:
    """Suppresses ValueError when built with True."""
    def __init__(self, swallow):
        self.swallow = swallow
    def __enter__(self):
        return self
    def __exit__(self, kind, value, tb):
        return self.swallow and kind is ValueError

@contextlib.contextmanager
def managed(n):
    yield n
'''


@st.composite
def _blocks(draw: Any, depth: int, callees: tuple[str, ...], gens: tuple[str, ...]) -> list[str]:
    """Statements of a function body (lines, indented by 4 per level) that end in a return or raise."""
    out: list[str] = []
    for _ in range(draw(st.integers(0, 2))):
        choice = draw(st.sampled_from(["assign", "call", "gen", "try_finally", "try_finally", "try_except",
                                       "with", "cm", "if"] if depth < 2 else ["assign", "call", "gen"]))
        if choice == "assign":
            out.append(f"n = n + {draw(st.integers(1, 3))}")
        elif choice == "call" and callees:
            out += ["try:", f"    n = n + ({draw(st.sampled_from(callees))}(n) or 0)", "except ValueError:",
                    "    n = n - 1"]
        elif choice == "gen" and gens:
            out.append(f"n = n + sum({draw(st.sampled_from(gens))}(n))")
        elif choice == "try_finally":
            body = draw(_blocks(depth + 1, callees, gens)) or ["pass"]
            final = draw(_blocks(depth + 1, callees, gens)) or ["n = n * 2"]
            out += ["try:", *("    " + s for s in body), "finally:", *("    " + s for s in final)]
        elif choice == "try_except":
            body = draw(_blocks(depth + 1, callees, gens)) or ["pass"]
            out += ["try:", *("    " + s for s in body), "except ValueError:", "    n = n + 100"]
        elif choice == "with":
            body = draw(_blocks(depth + 1, callees, gens)) or ["pass"]
            out += [f"with Quiet({draw(st.booleans())}):", *("    " + s for s in body)]
        elif choice == "cm":
            body = draw(_blocks(depth + 1, callees, gens)) or ["pass"]
            out += ["with managed(n) as m:", *("    " + s for s in body)]
        elif choice == "if":
            body = draw(_blocks(depth + 1, callees, gens)) or ["pass"]
            out += [f"if n % {draw(st.integers(2, 3))} == 0:", *("    " + s for s in body)]
    end = draw(st.sampled_from(["return", "return", "raise", "fall"]))
    if end == "return":
        out.append(f"return n + {draw(st.integers(0, 5))}")
    elif end == "raise":
        out.append("raise ValueError(n)")
    return out


@st.composite
def _programs(draw: Any) -> str:
    """A module of a few functions, each calling only earlier ones, plus generators."""
    lines = [_CM]
    gens: list[str] = []
    for i in range(draw(st.integers(0, 2))):
        body = ["for i in range(n % 3 + 1):", "    yield i + n"]
        if draw(st.booleans()):
            body = ["try:", *("    " + s for s in body), "finally:", "    n = n + 1"]
        lines += [f"def g{i}(n):", *("    " + s for s in body), f"    return {i}", ""]
        gens.append(f"g{i}")
    funcs: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        body = draw(_blocks(0, tuple(funcs), tuple(gens))) or ["pass"]
        lines += [f"def f{i}(n):", *("    " + s for s in body), ""]
        funcs.append(f"f{i}")
    return "\n".join(lines) + f"\nMAIN = {funcs[-1]!r}\n"


def _truth(module: Any) -> list[tuple[str, str]]:
    """(function, result) of every call of the plain module's f*/g* functions, in exit order."""
    log: list[tuple[str, str]] = []

    def wrap(name: str, func: Any) -> Any:
        if name.startswith("g"):
            def gen_wrapper(n):
                try:
                    result = yield from func(n)
                except BaseException as e:
                    log.append((name, f"!{type(e).__name__}"))
                    raise
                log.append((name, repr(result)))
                return result
            return gen_wrapper

        def wrapper(n):
            try:
                result = func(n)
            except BaseException as e:
                log.append((name, f"!{type(e).__name__}"))
                raise
            log.append((name, repr(result)))
            return result
        return wrapper

    for name in [n for n in vars(module) if n[:1] in "fg" and n[1:].isdigit()]:
        setattr(module, name, wrap(name, getattr(module, name)))
    try:
        getattr(module, module.MAIN)(1)  # the wrapper: looked up by name, as calls inside do
    except ValueError:
        pass
    return log


@pytest.mark.parametrize("shape", ["patched", "guarded"], indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=_programs())
def test_random_programs_record_the_real_result_of_every_call(record, source):
    plain, run = record(source)
    truth = _truth(plain)
    _, rows = run(f"{plain.MAIN}(1)")
    got = [tuple(short(r).split(" -> ", 1)) for r in rows
           if r["name"][:1] in "fg" and r["name"][1:].isdigit()]
    assert got == truth, source
    assert all(r["exit"] for r in rows), source


def test_return_in_async_with_survives_a_suspension_in_aexit(record):
    # the held return waits with its suspended call while __aexit__ awaits, and is written at the end
    plain, run = record("""
        import asyncio

        class Session:
            async def __aenter__(self):
                return self
            async def __aexit__(self, *exc):
                await asyncio.sleep(0)
                return False

        async def fetch(i):
            async with Session():
                return i * 10

        def main():
            async def both():
                return await asyncio.gather(fetch(1), fetch(2))
            return asyncio.run(both())
    """)
    value, rows = run("main()")
    assert value == plain.main() == [10, 20]
    fetches = by_name(rows, "fetch")
    assert sorted((f["args"][0], f["exit"], f["result"]) for f in fetches) == [
        ("1", "return", "10"), ("2", "return", "20")]
    assert all(f["suspends"] >= 1 for f in fetches)
