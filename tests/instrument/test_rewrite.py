"""The AST pass: what is recorded, and that the program cannot tell it was instrumented."""

from __future__ import annotations

import ast
import asyncio
import gc
import importlib
import inspect
import json
import os
import subprocess
import sys
import traceback
import weakref

import pytest

from instr_samples.helpers import load, recording, write_module
from kcovdf.errors import InstrumentWarning
from kcovdf.instrument import hook, rewrite, switch
from kcovdf.instrument.config import Config
from kcovdf.symbols import pc_of

NAME = "instr_samples.semantics"


@pytest.fixture
def rec(monkeypatch, tmp_path):
    yield from recording(monkeypatch, tmp_path)


@pytest.fixture
def mods(rec, shape):
    """(plain, instrumented) copies of the sample module, recording on, in each shape."""
    plain = load(NAME, False)
    inst = load(NAME)
    rec.set_active(True)
    return plain, inst


def pc(qualname: str, module=None) -> int:
    func = module
    for part in qualname.replace(".<locals>", "").split("."):
        func = getattr(func, part)
    return pc_of(NAME, qualname, func.__code__.co_firstlineno)


def of(rec, pcv):
    return [(kind, idx, value) for kind, p, idx, value in rec.records if p == pcv]


# --- what is recorded -------------------------------------------------------------------
def test_entry_records_every_parameter_kind_in_signature_order(rec, mods):
    _, m = mods
    assert m.kinds(1, d=4, z=9) == (1, 2, 3, (), 4, 5, {"z": 9})
    m.kinds(1, 2, 3, 7, 8, d=4)
    pcv = pc("kinds", m)
    assert of(rec, pcv)[:8] == [("entry", 0, 1), ("entry", 1, 2), ("entry", 2, 3), ("entry", 3, ()),
                                ("entry", 4, 4), ("entry", 5, 5), ("entry", 6, {"z": 9}),
                                ("ret", 0, (1, 2, 3, (), 4, 5, {"z": 9}))]
    assert of(rec, pcv)[11] == ("entry", 3, (7, 8))


def test_self_and_cls_are_parameters(rec, mods):
    _, m = mods
    obj = m.Child()
    obj.greet("x")
    assert of(rec, pc("Child.greet", m))[0] == ("entry", 0, obj)
    m.Child.make(1)
    assert of(rec, pc("Child.make", m))[:2] == [("entry", 0, m.Child), ("entry", 1, (1,))]


def test_implicit_and_bare_returns_record_none(rec, mods):
    _, m = mods
    assert m.implicit(1) is None
    assert m.early(True) == "early" and m.early(None) is None and m.early(0) is None
    assert of(rec, pc("implicit", m)) == [("entry", 0, 1), ("ret", 0, None)]
    rets = [r for r in of(rec, pc("early", m)) if r[0] == "ret"]
    assert rets == [("ret", 0, "early"), ("ret", 0, None), ("ret", 0, None)]


def test_exception_is_recorded_and_reraised_unchanged(rec, mods):
    _, m = mods
    with pytest.raises(ValueError) as info:
        m.raises_deep(21)
    assert of(rec, pc("raises", m))[-1] == ("exc", 0xFF, info.value)
    assert of(rec, pc("raises_deep", m))[-1] == ("exc", 0xFF, info.value)
    assert m.catches(2) == (4,)
    assert of(rec, pc("catches", m))[-1] == ("ret", 0, (4,))


def test_generators_record_entry_at_first_resume_and_return(rec, mods):
    _, m = mods
    g = m.gen(2)
    assert of(rec, pc("gen", m)) == []
    assert next(g) == 0 and g.send("s") == ("got", "s") and list(g) == [1]
    assert of(rec, pc("gen", m)) == [("entry", 0, 2), ("ret", 0, "done")]
    assert list(m.delegating(1)) == [0]
    assert of(rec, pc("delegating", m))[-1] == ("ret", 0, "done")


def test_generator_close_records_generator_exit(rec, mods):
    _, m = mods
    g = m.gen(3)
    next(g)
    g.close()
    kind, idx, value = of(rec, pc("gen", m))[-1]
    assert (kind, idx, type(value)) == ("exc", 0xFF, GeneratorExit)


def test_yields_recorded_only_behind_the_switch(rec):
    m = load(NAME, Config(include=(NAME,), yields=True))
    rec.set_active(True)
    g = m.gen(2)
    assert next(g) == 0 and g.send("s") == ("got", "s")
    yields = [r for r in of(rec, pc("gen", m)) if r[0] == "yld"]
    assert yields == [("yld", 0xFE, 0), ("yld", 0xFE, ("got", "s"))]
    assert asyncio.run(_collect(m.agen(2))) == [0, 1]
    assert [r for r in of(rec, pc("agen", m)) if r[0] == "yld"] == [("yld", 0xFE, 0), ("yld", 0xFE, 1)]


def test_yields_off_by_default(rec, mods):
    _, m = mods
    list(m.gen(2))
    assert not [r for r in rec.records if r[0] == "yld"]


async def _collect(agen):
    return [v async for v in agen]


def test_coroutines_and_async_generators(rec, mods):
    plain, m = mods
    assert asyncio.run(m.awaiting(2)) == asyncio.run(plain.awaiting(2)) == 7
    assert of(rec, pc("coro", m)) == [("entry", 0, 2), ("ret", 0, 6)]
    assert of(rec, pc("awaiting", m)) == [("entry", 0, 2), ("ret", 0, 7)]
    assert asyncio.run(_collect(m.agen(3))) == [0, 1, 2]
    assert of(rec, pc("agen", m)) == [("entry", 0, 3), ("ret", 0, None)]


def test_closures_nonlocal_and_nested_qualnames(rec, mods):
    plain, m = mods
    bump = m.counter()
    assert (bump(), bump(5)) == (1, 6)
    assert bump.__qualname__ == plain.counter().__qualname__ == "counter.<locals>.bump"
    bump_pc = pc_of(NAME, "counter.<locals>.bump", bump.__code__.co_firstlineno)
    assert of(rec, bump_pc) == [("entry", 0, 1), ("ret", 0, 1), ("entry", 0, 5), ("ret", 0, 6)]
    assert m.make_closures()() == "cell"
    assert m.outer_global().__qualname__ == "declared_global"
    declared = m.outer_global()
    assert declared() == "global qualname"
    assert of(rec, pc_of(NAME, "declared_global", declared.__code__.co_firstlineno))[-1] == (
        "ret", 0, "global qualname")


def test_super_class_cell_property_and_private_names(rec, mods):
    plain, m = mods
    c = m.Child()
    assert c.greet("w") == "child base w"
    assert c.klass() is m.Child
    assert c.prop == 42 and m.Child.static(3) == 3 and c.call_private() == "private"
    private = m.Child._Child__private
    assert private.__qualname__ == plain.Child._Child__private.__qualname__
    assert of(rec, pc_of(NAME, private.__qualname__, private.__code__.co_firstlineno))[-1] == (
        "ret", 0, "private")


def test_decorators_wraps_signature_and_names(rec, mods):
    plain, m = mods
    assert m.doubled(1) == plain.doubled(1) == 4
    assert m.doubled.__name__ == "doubled" and m.doubled.__doc__ == "Doubled by a decorator."
    assert m.doubled.__wrapped__.__qualname__ == "doubled"
    for name in ("kinds", "defaults", "shadow_builtins", "doubled", "current_locals"):
        assert m.signature_of(getattr(m, name)) == plain.signature_of(getattr(plain, name))
        f, g = getattr(m, name), getattr(plain, name)
        assert (f.__name__, f.__qualname__, f.__doc__, f.__defaults__, f.__kwdefaults__) == \
            (g.__name__, g.__qualname__, g.__doc__, g.__defaults__, g.__kwdefaults__)
        assert (f.__code__.co_name, f.__code__.co_firstlineno, f.__code__.co_argcount,
                f.__code__.co_kwonlyargcount, f.__code__.co_posonlyargcount, f.__code__.co_flags) == \
            (g.__code__.co_name, g.__code__.co_firstlineno, g.__code__.co_argcount,
             g.__code__.co_kwonlyargcount, g.__code__.co_posonlyargcount, g.__code__.co_flags)
    assert m.kinds.__doc__ == "Every parameter kind."
    first = m.doubled.__wrapped__.__code__.co_firstlineno  # the decorator line
    assert of(rec, pc_of(NAME, "doubled", first)) == [("entry", 0, 1), ("ret", 0, 2)]


def test_default_arguments_are_shared_as_before(rec, mods):
    _, m = mods
    assert m.defaults(1) == ([1], {"k": 1})
    assert m.defaults(2) == ([1, 2], {"k": 1})


def test_recursion(rec, mods):
    _, m = mods
    assert m.fact(5) == 120
    rets = [v for kind, _, v in of(rec, pc("fact", m)) if kind == "ret"]
    assert rets == [1, 2, 6, 24, 120]


def test_lambdas_class_bodies_and_comprehensions_are_not_functions(rec, mods):
    _, m = mods
    assert m.square(3) == 9 and m.comprehension == [0, 1, 2] and m.Child.label == [0, 2, 4]
    assert "__kcovdf__" not in m.square.__code__.co_names
    names = {line for line in rec.lines}
    assert not any(b'"qualname":"<lambda>"' in line or b'"qualname":"Child"' in line for line in names)


def test_skip_comment_leaves_function_alone(rec, mods):
    _, m = mods
    assert m.skipped(1) == 1
    assert "__kcovdf__" not in m.skipped.__code__.co_names
    assert "__kcovdf__" in m.kinds.__code__.co_names


def test_args_and_ret_switch_off_separately(rec):
    m = load(NAME, Config(include=(NAME,), args=False))
    rec.set_active(True)
    m.implicit(1)
    # without argument values, the call still has its entry: its exit belongs to it
    assert of(rec, pc("implicit", m)) == [("entry", 0xFD, None), ("ret", 0, None)]
    rec.records.clear()
    m = load(NAME, Config(include=(NAME,), ret=False))
    with pytest.raises(ValueError):
        m.raises(1)
    assert of(rec, pc("raises", m)) == [("entry", 0, 1)]


# --- the flag -----------------------------------------------------------------------------
def test_idle_flag_makes_no_recorder_call(rec):
    m = load(NAME)
    assert m.__dict__[rewrite.FLAG] is False and m.__dict__[rewrite.RESERVED] is rec
    m.kinds(1, d=2)
    assert rec.records == []
    rec.set_active(True)
    assert m.__dict__[rewrite.FLAG] is True
    rec.set_active(False)
    assert m.__dict__[rewrite.FLAG] is False
    m.kinds(1, d=2)
    assert rec.records == []


def test_recorder_stays_bound_while_idle(rec):
    # A thread that read the flag just before it went off must still find a recorder.
    m = load(NAME)
    rec.set_active(True)
    rec.set_active(False)
    assert m.__dict__[rewrite.RESERVED] is rec


def test_only_the_two_reserved_globals_are_referenced(rec, mods):
    plain, m = mods
    for name in ("kinds", "gen", "agen", "coro", "raises"):
        added = set(getattr(m, name).__code__.co_names) - set(getattr(plain, name).__code__.co_names)
        assert added <= {rewrite.RESERVED, rewrite.FLAG, "entry", "ret", "exc", "yld", "resumed",
                         "hold", "done", "REDACTED"}
    assert set(vars(m)) - set(vars(plain)) == {rewrite.RESERVED, rewrite.FLAG}


# --- nothing observable --------------------------------------------------------------------
def test_no_extra_frames_and_same_caller(rec, mods):
    plain, m = mods
    assert m.frame_depth() == plain.frame_depth()
    assert m.call_caller_name() == plain.call_caller_name() == "call_caller_name"


def test_traceback_lines_unchanged(rec, mods):
    plain, m = mods

    def frames(mod):
        try:
            mod.raises_deep(1)
        except ValueError as exc:
            return [(f.name, f.lineno, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    assert frames(m) == frames(plain)
    assert frames(m)[-1] == ("raises", inspect.getsourcelines(plain.raises)[1] + 2, "raise ValueError(y)")


def test_low_recursion_limit_reaches_the_same_depth(rec):
    plain = load(NAME, False)
    m = load(NAME)  # flag idle: the instrumented function adds nothing to the stack

    def max_depth(mod):
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(200)
        try:
            n = 1
            while True:
                try:
                    mod.deep(n)
                except RecursionError:
                    return n
                n += 1
        finally:
            sys.setrecursionlimit(limit)
    assert max_depth(m) == max_depth(plain)


def test_locals_hold_no_new_names(rec, mods):
    plain, m = mods
    assert m.current_locals(1, 2, 3, k=4) == plain.current_locals(1, 2, 3, k=4) == {
        "a": 1, "b": 2, "args": (3,), "kw": {"k": 4}}


def test_parameters_shadowing_builtins(rec, mods):
    _, m = mods
    vals = ("t", "i", "h", "l", "n", "p", "B")
    assert m.shadow_builtins(*vals) == vals
    assert [v for kind, _, v in of(rec, pc("shadow_builtins", m)) if kind == "entry"][:7] == list(vals)


def test_code_shape_unchanged(rec, mods):
    plain, m = mods
    for name in ("counter", "make_closures", "kinds"):
        f, g = getattr(m, name).__code__, getattr(plain, name).__code__
        assert (f.co_freevars, f.co_cellvars, f.co_varnames) == (g.co_freevars, g.co_cellvars, g.co_varnames)
    assert len(m.counter().__closure__) == len(plain.counter().__closure__) == 1
    klass = m.Child.klass
    assert klass.__code__.co_freevars == ("__class__",) and klass.__closure__[0].cell_contents is m.Child


def test_no_references_kept_after_the_call(monkeypatch, tmp_path):
    gen = recording(monkeypatch, tmp_path, keep_values=False)
    rec = next(gen)
    try:
        m = load(NAME)
        rec.set_active(True)

        class Payload:
            pass
        obj = Payload()
        ref = weakref.ref(obj)
        m.kinds(obj, d=obj)
        with pytest.raises(TypeError):
            m.catches(obj)  # the exception and its frames die inside the call
        del obj
        gc.collect()
        assert ref() is None
        assert ("entry", 0, "Payload") in [(k, i, v) for k, _, i, v in rec.records]
    finally:
        gen.close()


def test_rewrite_is_idempotent_and_reports_reserved_name():
    import ast
    src = "def f(x):\n    return x\n"
    tree = rewrite.rewrite(ast.parse(src), src, "m", "m.py", Config()).tree
    again = ast.unparse(tree)
    assert rewrite.opt_out(ast.parse(again), again) is not None
    assert "KCOVDF_DONT_INSTRUMENT" in rewrite.opt_out(
        ast.parse('"""KCOVDF_DONT_INSTRUMENT"""\n'), '"""KCOVDF_DONT_INSTRUMENT"""\n')
    assert rewrite.opt_out(ast.parse(src), src) is None


def test_duplicate_pc_in_one_module_is_left_uninstrumented():
    import ast
    # Two definitions of h on one line have one pc: the second stays uninstrumented.
    dup = ast.parse("def h(): return 1")
    dup.body.append(ast.parse("def h(): return 2").body[0])
    result = rewrite.rewrite(dup, "", "m", "m.py", Config())
    assert [s.qualname for s in result.symbols] == ["h"]
    assert result.skipped == [("h", f"pc 0x{pc_of('m', 'h', 1):x} already names another function")]
    assert "__kcovdf__" not in ast.unparse(dup.body[1])


def test_line_tracer_sees_the_same_lines_on_normal_paths(rec, shape):
    plain = load(NAME, False)
    m = load(NAME)

    def lines(mod):
        events = []

        def tracer(frame, event, arg):
            if frame.f_code.co_filename == mod.__file__:
                events.append((event, frame.f_code.co_name, frame.f_lineno))
            return tracer
        sys.settrace(tracer)
        try:
            mod.kinds(1, d=2), mod.early(None), list(mod.gen(2)), mod.fact(3), mod.Child().greet("x")
        finally:
            sys.settrace(None)
        return events
    assert lines(m) == lines(plain)


# --- the two shapes -------------------------------------------------------------------------
def _function(source: str, config: Config | None = None) -> ast.FunctionDef:
    tree = ast.parse(source)
    rewrite.rewrite(tree, source, "m", "m.py", config or Config())
    compile(tree, "m.py", "exec")
    return tree.body[0]


def test_one_test_at_entry_guards_a_recorded_copy_and_the_original_body():
    fn = _function("def f(a):\n    'doc'\n    return a\n")
    assert len(fn.body) == 2 and isinstance(fn.body[1], ast.If)
    test = fn.body[1]
    assert isinstance(test.test, ast.Name) and test.test.id == rewrite.FLAG
    assert ast.unparse(test.orelse) == "return a"  # the original, untouched
    recorded = ast.unparse(test.body)
    assert recorded.count(rewrite.FLAG) == 0 and "entry" in recorded and "ret" in recorded


def test_a_body_over_the_split_limit_gets_one_copy_with_a_test_per_call():
    body = "".join(f"    x{i} = a + {i}\n" for i in range(rewrite.SPLIT_LIMIT // 4))
    fn = _function(f"def f(a):\n{body}    return a\n")
    text = ast.unparse(fn)
    assert text.count(f"if {rewrite.FLAG}:") == 2  # the entry call and the handler
    assert f"if {rewrite.FLAG} else a" in text and text.count("x1 = a + 1") == 1


def test_a_call_is_recorded_whole_or_not_at_all(rec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "kcovdf_t_flip", "def f(flip):\n    flip()\n    return 1\n")
    m = load("kcovdf_t_flip")
    assert m.f(lambda: rec.set_active(True)) == 1
    assert rec.records == []  # the flag went on mid-call: no return without its entry
    assert m.f(lambda: rec.set_active(False)) == 1
    assert [r[0] for r in rec.records] == ["entry", "ret"]  # went off: the call still ends


DECLARATIONS = """\
G = 0


def outer(n):
    total = 0

    def add(v):
        nonlocal total
        if v:
            nonlocal total
        total += v
        return total
    for i in range(n):
        if i % 2:
            global G
        G += i
        add(i)
    return total, G
"""


def test_global_and_nonlocal_declarations_hold_in_both_copies(rec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "kcovdf_t_decl", DECLARATIONS)
    m = load("kcovdf_t_decl")
    assert m.outer(4) == (6, 6)  # idle: the original copy
    rec.set_active(True)
    assert m.outer(4) == (6, 12)  # enabled: the recorded copy, same globals and cells
    assert ("ret", pc_of("kcovdf_t_decl", "outer", 4), 0, (6, 12)) in rec.records


def test_a_misplaced_declaration_is_the_same_syntax_error(rec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    source = "def f():\n    x = 1\n    global x\n"
    with pytest.raises(SyntaxError) as plain:
        compile(source, "m.py", "exec")
    write_module(tmp_path, "kcovdf_t_misplaced", source)
    with pytest.warns(InstrumentWarning, match="kcovdf_t_misplaced"):
        with pytest.raises(SyntaxError) as under:
            load("kcovdf_t_misplaced")
    assert (under.value.msg, under.value.lineno) == (plain.value.msg, plain.value.lineno)


# --- patching static functions ----------------------------------------------------------------
def test_static_functions_run_the_original_code_while_idle_and_the_recorded_while_enabled(rec):
    plain, m = load(NAME, False), load(NAME)
    method, static = m.Child.greet, m.Child.make.__func__
    twins = ((m.kinds, plain.kinds), (method, plain.Child.greet), (static, plain.Child.make.__func__))
    for func, twin in twins:
        assert func.__code__.co_code == twin.__code__.co_code  # no test, no call: the original
        assert switch.get().patched(func)
    m.kinds(1, d=2)
    assert rec.records == []
    rec.set_active(True)
    names = m.kinds.__code__.co_names
    assert rewrite.RESERVED in names and rewrite.FLAG not in names  # recorded, no test
    assert m.Child().greet("x") == "child base x"  # super() through the __class__ cell, recorded code
    assert ("ret", pc("Child.greet", m), 0, "child base x") in rec.records
    rec.set_active(False)
    assert m.kinds.__code__.co_code == plain.kinds.__code__.co_code


def test_closures_keep_the_split_code_and_record_once_enabled(rec):
    m = load(NAME)
    bump = m.counter()  # made while idle, from the original copy of counter
    assert not switch.get().patched(bump) and rewrite.FLAG in bump.__code__.co_names
    rec.set_active(True)
    assert bump() == 1
    assert [r[0] for r in of(rec, pc_of(NAME, "counter.<locals>.bump", bump.__code__.co_firstlineno))] == [
        "entry", "ret"]


def test_a_function_only_a_registry_holds_keeps_the_split_code(rec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "kcovdf_t_reg", "REGISTRY = []\n\n\ndef register(f):\n    REGISTRY.append(f)\n\n\n"
                 "@register\ndef hidden(x):\n    return x * 2\n\n\ndel hidden\n")
    m = load("kcovdf_t_reg")
    (hidden,) = m.REGISTRY
    assert not switch.get().patched(hidden) and rewrite.FLAG in hidden.__code__.co_names
    rec.set_active(True)
    assert hidden(2) == 4 and [r[0] for r in rec.records if r[1] != pc_of("kcovdf_t_reg", "register", 4)] == [
        "entry", "ret"]


def test_code_replaced_by_someone_else_is_left_alone(rec):
    plain, m = load(NAME, False), load(NAME)
    m.kinds.__code__ = plain.kinds.__code__  # e.g. a hot-reloader
    rec.set_active(True)
    assert m.kinds.__code__ is plain.kinds.__code__ and not switch.get().patched(m.kinds)
    m.kinds(1, d=2)
    assert not [r for r in rec.records if r[1] == pc("kinds", m)]


def test_functions_are_patched_once_their_module_has_run(rec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    # while the module runs (it imports another one meanwhile) its functions keep the split code
    write_module(tmp_path, "kcovdf_t_dep", "def g():\n    return 1\n")
    write_module(tmp_path, "kcovdf_t_run", "from kcovdf.instrument import switch\n\n\n"
                 "def f():\n    return 2\n\n\nimport kcovdf_t_dep\nDURING = switch.get().patched(f)\n")
    h = hook.install(Config(include=("kcovdf_t_run", "kcovdf_t_dep")))
    try:
        m = importlib.import_module("kcovdf_t_run")
    finally:
        hook.uninstall(h)
    assert m.DURING is False
    assert switch.get().patched(m.f) and switch.get().patched(m.kcovdf_t_dep.g)


def test_patched_code_comes_from_the_cache_too(rec, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    first = load(NAME)
    assert switch.get().patched(first.kinds)
    second = load(NAME)  # the same rewritten source again: now read from the cache
    assert second is not first and switch.get().patched(second.kinds)
    rec.set_active(True)
    second.kinds(1, d=2)
    assert of(rec, pc("kinds", second))


# --- code identity: a program sees the same code object for as long as it holds one -------------
REGISTRY = """\
import sys

REGISTRY = set()


def internal(f):
    REGISTRY.add(f.__code__)  # as a template engine marks its own frames for traceback rewriting
    return f


@internal
def f(x):
    return sys._getframe().f_code in REGISTRY, x + 1


class C:
    @internal
    def m(self, x):
        return sys._getframe().f_code in REGISTRY, x * 2


def plain(x):
    return x
"""


def test_a_code_object_registered_at_definition_stays_the_one_running(rec, shape, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "kcovdf_t_registry", REGISTRY)
    m = load("kcovdf_t_registry")
    obj, funcs = m.C(), (m.f, m.C.m)
    registered = {id(code) for code in m.REGISTRY}
    assert {id(func.__code__) for func in funcs} == registered
    for on in (False, True, False, True, True, False, True):
        rec.set_active(on)
        rec.records.clear()
        assert m.f(1) == (True, 2) and obj.m(2) == (True, 4)
        assert {id(func.__code__) for func in funcs} == registered
        assert [r[0] for r in rec.records] == (["entry", "ret", "entry", "entry", "ret"] if on else [])
    assert [switch.get().state(func) for func in funcs] == [switch.State.UNPATCHED] * 2
    # the module's other functions are patched as usual
    assert switch.get().patched(m.plain) == (shape == "patched")


def test_a_holder_the_garbage_collector_cannot_see_counts_as_one(rec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    # a dict holding only code objects and strings is not tracked: gc.get_referrers cannot find it
    write_module(tmp_path, "kcovdf_t_untracked", "NAMES = {}\n\n\ndef f(x):\n    return x\n\n\n"
                 "NAMES[f.__code__] = 'f'\n")
    m = load("kcovdf_t_untracked")
    assert not gc.is_tracked(m.NAMES)
    assert switch.get().state(m.f) is switch.State.UNPATCHED and next(iter(m.NAMES)) is m.f.__code__
    assert switch.holders([(m.f, 0)]) == {id(m.f): "a reference the garbage collector cannot see (C code, "
                                                    "or an untracked dict or tuple)"}


LATE = """\
import sys

SEEN = []


def f(x):
    SEEN.append(sys._getframe().f_code)  # held from the first call on
    return x + 1
"""


@pytest.mark.parametrize("first_call_enabled", [False, True])
def test_a_code_object_held_after_the_patch_is_never_swapped_away(rec, shape, tmp_path, monkeypatch, recwarn,
                                                                    first_call_enabled):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "kcovdf_t_late", LATE)
    m = load("kcovdf_t_late")
    pc_f = pc_of("kcovdf_t_late", "f", 6)
    rec.set_active(first_call_enabled)
    assert m.f(1) == 2
    held = m.SEEN[0]
    for on in (not first_call_enabled, first_call_enabled, not first_call_enabled, True):
        rec.set_active(on)
        rec.records.clear()
        assert m.f(2) == 3
        assert m.f.__code__ is held and {id(code) for code in m.SEEN} == {id(held)}
        recorded = [r[0] for r in rec.records if r[1] == pc_f]
        if shape != "patched" or first_call_enabled:
            # the code that runs has the recorder calls: while enabled the call is recorded (the
            # recorded variant calls a real recorder while idle too, which records nothing)
            assert recorded == (["entry", "ret"] if on or shape == "patched" else [])
        else:
            assert recorded == []  # held while it ran the original code: said below
    warned = [str(w.message) for w in recwarn if w.category is InstrumentWarning]
    if shape == "patched" and not first_call_enabled:
        assert switch.get().state(m.f) is switch.State.PINNED
        assert warned == ["kcovdf: calls to kcovdf_t_late.f are not recorded from now on: it runs the "
                          "uninstrumented code and its code is held elsewhere (by a list), so kcovdf no "
                          "longer swaps it"]
    else:
        assert warned == []


BENIGN = """\
import types


def running(flip):
    flip()
    return 1


def gen():
    yield 1
    yield 2


def shared(x):
    return x


copy = types.FunctionType(shared.__code__, globals(), "copy")


def outer():
    def inner():
        return 3
    return inner
"""


def test_frames_generators_shared_code_and_closures_do_not_hold_code(rec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "kcovdf_t_benign", BENIGN)
    m = load("kcovdf_t_benign")
    sw = switch.get()
    suspended = m.gen()
    assert next(suspended) == 1  # started on the original code
    inner = m.outer()
    assert m.running(lambda: rec.set_active(True)) == 1  # flipped while running
    for func in (m.running, m.gen, m.shared, m.copy, m.outer):
        assert sw.state(func) is switch.State.RECORDED, func
    assert next(suspended) == 2 and inner() == 3  # the suspended call goes on as it started
    rec.set_active(False)
    for func in (m.running, m.gen, m.shared, m.copy, m.outer):
        assert sw.state(func) is switch.State.ORIGINAL, func


AUDIT = """\
import json, sys, warnings
import kcovdf
from instr_samples.fake_recorder import FakeRecorder
from kcovdf.errors import InstrumentWarning
from kcovdf.instrument import switch
rec = FakeRecorder()
switch._switch = switch.Switch(rec)
veto = [False]
def audit(event, args):
    if veto[0] and event == "object.__setattr__" and args[1] == "__code__":
        raise RuntimeError("no code changes here")
sys.addaudithook(audit)
path = sys.argv[1]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if path == "import":  # through the hook's loader: the patch at settle is refused
        veto[0] = True
        with kcovdf.instrument_imports(include=["kcovdf_t_audit"]):
            import kcovdf_t_audit as m
    elif path == "flip":  # patched, then the swap to the recorded code is refused
        with kcovdf.instrument_imports(include=["kcovdf_t_audit"]):
            import kcovdf_t_audit as m
        veto[0] = True
    elif path == "in_place":  # imported before the hook: rewritten in place
        import kcovdf_t_audit as m
        veto[0] = True
        with kcovdf.instrument_imports(include=["kcovdf_t_audit"]):
            pass
    else:  # @instrument_func
        import kcovdf_t_audit as m
        veto[0] = True
        kcovdf.instrument_func(m.f)
    rec.set_active(True)
    out = [switch.get().state(m.f).name, m.f(3), len(rec.records)]
print(json.dumps([out, [str(w.message) for w in caught if w.category is InstrumentWarning]]))
"""

REFUSED = "setting __code__ was refused (an audit hook?)"


@pytest.mark.parametrize("path, out, warned", [
    ("import", ["UNPATCHED", 4, 2],  # never patched: the split code records
     f"kcovdf: {REFUSED} for kcovdf_t_audit.f: it keeps the split code, and its calls are recorded "
     "as usual"),
    ("flip", ["PINNED", 4, 0],
     f"kcovdf: calls to kcovdf_t_audit.f are not recorded from now on: it runs the uninstrumented code and "
     f"{REFUSED}, so kcovdf no longer swaps it"),
    ("in_place", ["UNPATCHED", 4, 0],
     f"kcovdf: module kcovdf_t_audit was imported before the hook: {REFUSED} for kcovdf_t_audit.f; it "
     "stays uninstrumented, and its calls are not recorded"),
    ("func", ["UNPATCHED", 4, 0],
     f"kcovdf: instrument_func(): kcovdf_t_audit.f: {REFUSED}; it stays uninstrumented, and its calls are "
     "not recorded"),
])
def test_an_audit_hook_refusing_code_swaps_is_said_once_on_every_path(tmp_path, path, out, warned):
    (tmp_path / "kcovdf_t_audit.py").write_text("def f(x):\n    return x + 1\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]),
               PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run([sys.executable, "-c", AUDIT, path], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr  # never raised into the program
    assert json.loads(run.stdout) == [out, [warned]]


PROXY = """\
class Proxy:
    @property
    def __class__(self):
        raise RuntimeError("working outside of a context")


current = Proxy()


def f(x):
    return x
"""


def test_a_namespace_holding_a_raising_proxy_still_gets_patched(rec, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "kcovdf_t_proxy", PROXY)
    m = load("kcovdf_t_proxy")
    assert switch.get().patched(m.f)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="call sites specialize from 3.11 on")
@pytest.mark.c_core(sys.version_info >= (3, 13),
                    reason="on 3.13 only the C core's _set_code keeps a patched function's call sites "
                           "specializable; the twin's plain __code__ setter does not")
def test_call_sites_specialize_for_patched_functions_as_for_plain_ones(rec):
    import dis
    import types

    plain, m = load(NAME, False), load(NAME)
    assert switch.get().patched(m.fact)

    def calls(func):
        def site(n):
            for _ in range(200):
                func(n)
        site = types.FunctionType(site.__code__.replace(), {}, "site", None, site.__closure__)
        site(3)
        site(3)
        return [i.opname for i in dis.get_instructions(site, adaptive=True) if "CALL" in i.opname]
    assert calls(m.fact) == calls(plain.fact)  # e.g. CALL_PY_EXACT_ARGS, not a generic CALL
    rec.set_active(True)  # swapped to the recorded code: its call sites specialize again
    assert calls(m.fact) == calls(plain.fact)
