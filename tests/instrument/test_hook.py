"""The import hook: which loader runs, what happens on failure, coexistence with other hooks."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import traceback
import warnings

import pytest

from instr_samples.helpers import forget, instrumented, load, recording, write_module
from kcovdf.errors import InstrumentWarning
from kcovdf.instrument import hook, rewrite, switch
from kcovdf.instrument.config import Config

SRC = "def f(x):\n    return x + 1\n"


def test_selected_module_is_instrumented_and_announced(rec, tmp_path, caplog):
    write_module(tmp_path, "kcovdf_t_a", SRC)
    write_module(tmp_path, "kcovdf_t_b", SRC)
    with caplog.at_level(logging.DEBUG, logger="kcovdf"):
        a = load("kcovdf_t_a")
        forget("kcovdf_t_b")
        b = importlib.import_module("kcovdf_t_b")
    assert instrumented(a.f) and not instrumented(b.f)
    assert isinstance(a.__loader__, hook.Loader) and a.__spec__.loader is a.__loader__
    assert "instrumented module kcovdf_t_a (1 functions)" in caplog.text
    assert "kcovdf_t_a: selected (include 'kcovdf_t_a')" in caplog.text
    rec.set_active(True)
    assert a.f(1) == 2 and [r[0] for r in rec.records] == ["entry", "ret"]


def test_package_include_covers_submodules_and_exclude_wins(rec, tmp_path):
    pkg = tmp_path / "kcovdf_t_pkg"
    (pkg / "sub").mkdir(parents=True)
    for rel in ("__init__.py", "a.py", "sub/__init__.py", "sub/b.py", "test_things.py"):
        (pkg / rel).write_text(SRC)
    config = Config(include=("kcovdf_t_pkg",), exclude=("kcovdf_t_pkg.sub",))
    h = hook.install(config)
    try:
        mods = {n: importlib.import_module(n) for n in (
            "kcovdf_t_pkg", "kcovdf_t_pkg.a", "kcovdf_t_pkg.sub.b", "kcovdf_t_pkg.test_things")}
    finally:
        hook.uninstall(h)
    assert {n: instrumented(m.f) for n, m in mods.items()} == {
        "kcovdf_t_pkg": True, "kcovdf_t_pkg.a": True, "kcovdf_t_pkg.sub.b": False,
        "kcovdf_t_pkg.test_things": False}


def test_rewrite_failure_imports_uninstrumented_with_warning(rec, tmp_path, monkeypatch):
    write_module(tmp_path, "kcovdf_t_fail", SRC)

    def broken(*args, **kwargs):
        raise RecursionError("too deep")
    monkeypatch.setattr(rewrite, "rewrite", broken)
    with pytest.warns(InstrumentWarning, match=r"cannot rewrite module kcovdf_t_fail .*RecursionError"):
        m = load("kcovdf_t_fail")
    assert m.f(1) == 2 and not instrumented(m.f) and rewrite.RESERVED not in vars(m)


def test_warning_as_error_still_never_breaks_the_import(rec, tmp_path, monkeypatch):
    write_module(tmp_path, "kcovdf_t_fail2", SRC)
    monkeypatch.setattr(rewrite, "rewrite", lambda *a, **k: 1 / 0)
    with pytest.warns(InstrumentWarning):  # pytest.warns records even under -W error
        m = load("kcovdf_t_fail2")
    assert m.f(2) == 3


def test_unparseable_module_fails_exactly_as_without_kcovdf(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_syntax", "def f(:\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InstrumentWarning)  # the SyntaxError says it all
        with pytest.raises(SyntaxError) as caught:
            load("kcovdf_t_syntax")
    # no frame of kcovdf between the import and the error (tests/run: the whole traceback)
    assert not [f for f in traceback.extract_tb(caught.value.__traceback__) if f.filename == hook.__file__]


def test_already_imported_module_is_rewritten_in_place(rec):
    m = load("instr_samples.semantics", False)
    kinds, child_greet, doubled = m.kinds, m.Child.greet, m.doubled
    h = hook.install(Config(include=("instr_samples.semantics",)))
    hook.uninstall(h)
    assert m.kinds is kinds and instrumented(kinds) and instrumented(child_greet)
    assert instrumented(m.Child.make.__func__) and instrumented(m.Child.prop.fget)
    assert instrumented(doubled) and instrumented(doubled.__wrapped__)
    rec.set_active(True)
    assert m.doubled(1) == 4 and m.Child().greet("x") == "child base x"
    assert len([r for r in rec.records if r[0] == "ret"]) == 4
    assert m.counter()() == 1  # nested functions created from now on are instrumented too


REGISTERED = """\
import sys

REGISTRY = set()


def internal(f):
    REGISTRY.add(f.__code__)
    return f


@internal
def held(x):
    return sys._getframe().f_code in REGISTRY, x


def free(x):
    return x
"""


def test_already_imported_functions_whose_code_is_held_keep_it(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_held", REGISTERED)
    m = load("kcovdf_t_held", False)
    with pytest.warns(InstrumentWarning) as caught:
        h = hook.install(Config(include=("kcovdf_t_held",)))
    hook.uninstall(h)
    assert [str(w.message) for w in caught] == [
        "kcovdf: module kcovdf_t_held was imported before the hook: kcovdf_t_held.held keeps its "
        "uninstrumented code, which is held elsewhere (by a set); its calls are not recorded"]
    assert not instrumented(m.held) and instrumented(m.free) and instrumented(m.internal)
    rec.set_active(True)
    assert m.held(1) == (True, 1) and m.free(2) == 2
    assert [r[0] for r in rec.records] == ["entry", "ret"]  # free's


def test_already_imported_without_source_warns(rec):
    import math  # noqa: F401 - imported before the hook, builtin or extension
    with pytest.warns(InstrumentWarning, match="math"):
        h = hook.install(Config(include=("math",)))
    hook.uninstall(h)


def test_uninstall_stops_instrumenting_new_imports(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_un", SRC)
    h = hook.install(Config(include=("kcovdf_t_un",)))
    hook.uninstall()
    assert h not in sys.meta_path
    forget("kcovdf_t_un")
    assert not instrumented(importlib.import_module("kcovdf_t_un").f)


def test_reload_keeps_instrumentation(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_reload", SRC)
    h = hook.install(Config(include=("kcovdf_t_reload",)))
    try:
        m = importlib.import_module("kcovdf_t_reload")
        m = importlib.reload(m)
    finally:
        hook.uninstall(h)
    assert instrumented(m.f) and m.f(1) == 2
    assert switch.get().patched(m.f)  # the reloaded function is patched too


def test_symbols_emitted_again_on_cache_hit(rec, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    write_module(tmp_path, "kcovdf_t_cached", SRC)
    load("kcovdf_t_cached")
    first = list(rec.lines)
    assert len(first) == 1 and b'"qualname":"f"' in first[0]
    fresh = next(recording(monkeypatch, tmp_path))  # a new process's recorder and symbol table
    with caplog.at_level(logging.DEBUG, logger="kcovdf"):
        m = load("kcovdf_t_cached")
    assert "rewritten code from cache" in caplog.text
    assert fresh.lines == first and instrumented(m.f)


def test_pc_collision_across_modules_is_reported_not_merged(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_coll", SRC)
    load("kcovdf_t_coll")
    (tmp_path / "other").mkdir()
    write_module(tmp_path / "other", "kcovdf_t_coll", SRC + "# another file, same name\n")
    sys.path.insert(0, str(tmp_path / "other"))
    try:
        with pytest.warns(InstrumentWarning, match=r"kcovdf_t_coll\.f left uninstrumented: pc 0x"):
            m = load("kcovdf_t_coll")
    finally:
        sys.path.remove(str(tmp_path / "other"))
    assert m.__file__.endswith("other/kcovdf_t_coll.py") and not instrumented(m.f)
    assert len(rec.lines) == 1


# --- coexistence with other import hooks --------------------------------------------------
class ForeignRewriter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Like pytest's assertion rewriter: finds some modules itself and executes its own code."""

    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        return importlib.util.spec_from_file_location(name, spec.origin, loader=self)

    def exec_module(self, module):
        with open(module.__spec__.origin) as f:
            exec(compile(f.read() + "\nREWRITTEN = True\n", module.__spec__.origin, "exec"), vars(module))


def test_module_claimed_by_another_rewriter_stays_its(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_foreign", SRC)
    sys.meta_path.insert(0, ForeignRewriter({"kcovdf_t_foreign"}))
    with pytest.warns(InstrumentWarning, match="loaded by ForeignRewriter"):
        m = load("kcovdf_t_foreign")
    assert m.REWRITTEN and not instrumented(m.f)


def test_pytest_rewriter_keeps_test_modules(rec, tmp_path, pytestconfig):
    from _pytest.assertion.rewrite import AssertionRewritingHook
    pkg = tmp_path / "kcovdf_t_tests"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text(SRC)
    (pkg / "test_it.py").write_text("def test_x():\n    x = 1\n    assert x == 2\n")
    rewriter = AssertionRewritingHook(pytestconfig)
    rewriter.fnpats = ["test_*.py"]
    rewriter.session = None
    sys.meta_path.insert(0, rewriter)
    m = load("kcovdf_t_tests.test_it", Config(include=("kcovdf_t_tests",)))
    helper = sys.modules.get("kcovdf_t_tests.helper") or importlib.import_module("kcovdf_t_tests.helper")
    assert not instrumented(m.test_x)
    with pytest.raises(AssertionError, match="assert 1 == 2"):  # pytest's rewriting is intact
        m.test_x()
    assert helper is not None


class SixMovesImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Like six's _SixMetaPathImporter: synthesizes modules that have no file."""

    def find_spec(self, name, path=None, target=None):
        if name in ("kcovdf_t_six", "kcovdf_t_six.moves"):
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__path__ = []
        module.answer = lambda: 42


def test_six_moves_style_importer_keeps_working(rec):
    finder = SixMovesImporter()
    sys.meta_path.append(finder)
    h = hook.install(Config(include=("kcovdf_t_six",)))
    try:
        forget("kcovdf_t_six")
        moves = importlib.import_module("kcovdf_t_six.moves")
    finally:
        hook.uninstall(h)
    assert moves.answer() == 42 and moves.__spec__.loader is finder


class PostImportFinder(importlib.abc.MetaPathFinder):
    """Like wrapt's ImportHookFinder: wraps whatever loader the rest of meta_path finds."""

    def __init__(self, names):
        self.names, self.busy, self.loaded = names, set(), []

    def find_spec(self, name, path=None, target=None):
        if name not in self.names or name in self.busy:
            return None
        self.busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy.discard(name)
        if spec is not None:
            spec.loader = ChainedLoader(spec.loader, self.loaded)
        return spec


class ChainedLoader:
    def __init__(self, loader, loaded):
        self.loader, self.loaded = loader, loaded

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.loaded.append(module.__name__)


@pytest.mark.parametrize("post_first", [True, False])
def test_post_import_hook_wrapping_loaders(rec, tmp_path, post_first):
    name = f"kcovdf_t_post{int(post_first)}"
    write_module(tmp_path, name, SRC)
    post = PostImportFinder({name})
    if not post_first:
        sys.meta_path.insert(0, post)
    h = hook.install(Config(include=(name,)))
    if post_first:
        sys.meta_path.insert(0, post)
    try:
        forget(name)
        m = importlib.import_module(name)
    finally:
        hook.uninstall(h)
    assert post.loaded == [name]  # the other hook still ran
    assert instrumented(m.f) and m.f(1) == 2


def test_reentrant_lookup_does_not_recurse(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_re", SRC)
    h = hook.Hook(Config(include=("kcovdf_t_re",)))
    calls = []
    real = h._next_spec

    def spy(*args):
        calls.append(args[0])
        return importlib.util.find_spec("kcovdf_t_re") if len(calls) == 1 else real(*args)
    h._next_spec = spy
    sys.meta_path.insert(0, h)
    spec = importlib.util.find_spec("kcovdf_t_re")
    assert spec is not None and calls == ["kcovdf_t_re"]
    assert isinstance(spec.loader, hook.Loader)


def test_a_hook_is_installed_until_removed(rec, tmp_path):
    h = hook.install(Config(include=("kcovdf_t_state",)))
    assert h.state is hook.State.INSTALLED
    hook.uninstall(h)
    assert h.state is hook.State.REMOVED
    hook.uninstall(h)  # removing it again does nothing, as close() does
    with pytest.raises(RuntimeError, match=r"install\(\): with: the hook was taken off sys.meta_path "
                                           r"already \(state REMOVED\)"):
        with h:
            pass


def test_the_switch_names_the_state_of_a_function(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_sw", SRC)
    m = load("kcovdf_t_sw")
    sw = switch.get()
    assert sw.state(m.f) is switch.State.ORIGINAL
    rec.set_active(True)
    assert sw.state(m.f) is switch.State.RECORDED
    with pytest.raises(TypeError, match=r"Switch.state\(\): expected a function, not int"):
        sw.state(3)
