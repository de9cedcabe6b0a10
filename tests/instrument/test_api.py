"""The API verbs: instrument_imports, instrument_func, instrument_all."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

import kcovdf
from instr_samples.helpers import forget, instrumented, write_module
from kcovdf.errors import ConfigError, InstrumentWarning
from kcovdf.instrument import hook

SRC = "def f(x):\n    return x + 1\n"


def test_instrument_imports_as_context_manager(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_api", SRC)
    with kcovdf.instrument_imports(include=["kcovdf_t_api"]) as h:
        assert h in sys.meta_path
        m = importlib.import_module("kcovdf_t_api")
    assert h not in sys.meta_path and instrumented(m.f)
    assert h.instrumented == ["kcovdf_t_api"]


@pytest.mark.parametrize("kwargs, message", [
    ({"include": "pkg"}, r"instrument_imports\(\): include must be a list of module names, not 'pkg'"),
    ({"include": ["ok", "bad-name"]}, r"instrument_imports\(\): include: 'bad-name' is not a dotted"),
    ({"include": ["ok"], "exclude": [3]}, r"instrument_imports\(\): exclude: 3 is not a dotted"),
    ({"include": []}, r"instrument_imports\(\): include is empty"),
    ({"include": ["ok"], "args": "yes"}, r"instrument_imports\(\): args must be True or False"),
    ({"include": ["ok"], "redact": "pw"}, r"instrument_imports\(\): redact must be a list of patterns"),
])
def test_instrument_imports_validates_up_front(rec, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        kcovdf.instrument_imports(**kwargs)
    assert not any(isinstance(f, hook.Hook) for f in sys.meta_path)


def test_selection_matching_nothing_warns(rec):
    with pytest.warns(InstrumentWarning) as caught:
        with kcovdf.instrument_imports(include=["kcovdf_t_no_such_module", "importlib"]):
            pass
    text = "\n".join(str(w.message) for w in caught)
    assert "include 'kcovdf_t_no_such_module' matches no importable module" in text
    assert "include 'importlib' stays uninstrumented (safety list: the import system" in text
    assert "instrument_imports() instrumented no module" in text


def test_compiled_modules_of_the_selection_are_named_at_the_end_of_the_block(rec, tmp_path):
    import _json
    import shutil

    pkg = tmp_path / "kcovdf_t_apiext"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(SRC)
    shutil.copy(_json.__file__, pkg)  # a compiled submodule, as in a mypyc or Cython wheel
    with pytest.warns(InstrumentWarning) as caught:
        with kcovdf.instrument_imports(include=["kcovdf_t_apiext"]):
            importlib.import_module("kcovdf_t_apiext._json")
    assert [str(w.message) for w in caught] == [
        "kcovdf: instrument_imports(): 1 selected module is compiled (a C, Cython or mypyc extension), so "
        "kcovdf cannot record its functions (it rewrites Python source): kcovdf_t_apiext._json"]


def test_instrument_func(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_func", textwrap.dedent("""
        import kcovdf

        @kcovdf.instrument_func
        def traced(a, secret_token=None):
            def inner(b):
                return b * 2
            return inner(a)

        def untouched(a):
            return a
    """))
    forget("kcovdf_t_func")
    m = importlib.import_module("kcovdf_t_func")
    assert instrumented(m.traced) and not instrumented(m.untouched)
    rec.set_active(True)
    assert m.traced(3) == 6
    assert [r[0] for r in rec.records] == ["entry", "entry", "entry", "ret", "ret"]
    assert rec.records[1][3] is rec.REDACTED
    assert [b'"qualname":"traced"' in line or b'traced.<locals>.inner' in line for line in rec.lines] == [
        True, True]
    assert kcovdf.instrument_func(m.traced) is m.traced  # idempotent


def test_instrument_func_leaves_a_function_whose_code_is_held(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_func_held", textwrap.dedent("""
        import sys
        import kcovdf

        REGISTRY = set()

        def internal(f):
            REGISTRY.add(f.__code__)
            return f

        @kcovdf.instrument_func
        @internal
        def traced(a):
            return sys._getframe().f_code in REGISTRY
    """))
    forget("kcovdf_t_func_held")
    with pytest.warns(InstrumentWarning) as caught:
        m = importlib.import_module("kcovdf_t_func_held")
    assert [str(w.message) for w in caught] == [
        "kcovdf: instrument_func(): kcovdf_t_func_held.traced: it keeps its uninstrumented code, which is "
        "held elsewhere (by a set); its calls are not recorded"]
    rec.set_active(True)
    assert m.traced(1) is True and not instrumented(m.traced) and rec.records == []


def test_instrument_func_on_a_nested_function_made_again_and_again(rec, tmp_path):
    write_module(tmp_path, "kcovdf_t_func_nested", textwrap.dedent("""
        import kcovdf

        def outer(n):
            @kcovdf.instrument_func
            def inner(x):
                return x + n
            return inner(1)
    """))
    forget("kcovdf_t_func_nested")
    m = importlib.import_module("kcovdf_t_func_nested")
    rec.set_active(True)
    assert [m.outer(n) for n in range(3)] == [1, 2, 3]
    # each new inner was instrumented (from the second on without parsing again)
    assert [(r[0], r[3]) for r in rec.records] == [("entry", 1), ("ret", 1), ("entry", 1), ("ret", 2),
                                                   ("entry", 1), ("ret", 3)]


def test_instrument_func_rejects_non_functions(rec):
    with pytest.raises(ConfigError, match=r"instrument_func\(\): expected a function, got int"):
        kcovdf.instrument_func(3)


def test_instrument_func_without_source_warns(rec):
    namespace = {"__name__": "kcovdf_t_exec"}
    exec("def g(x):\n    return x\n", namespace)
    with pytest.warns(InstrumentWarning, match="no source for kcovdf_t_exec.g"):
        assert kcovdf.instrument_func(namespace["g"]) is namespace["g"]
    assert namespace["g"](1) == 1


def test_instrument_all_smoke(tmp_path):
    # In a child process: instrument_all rewrites every loaded module, which this test process must not do.
    write_module(tmp_path, "kcovdf_t_all", SRC)
    script = textwrap.dedent("""
        import sys, json, csv, email.utils
        import kcovdf
        from kcovdf.instrument import rewrite
        from kcovdf.instrument import switch
        h = kcovdf.instrument_all(exclude=["email"])
        import kcovdf_t_all, fractions
        def inst(f):
            return rewrite.RESERVED in f.__code__.co_names or switch.get().patched(f)
        print(json.dumps({
            "new": inst(kcovdf_t_all.f), "new_stdlib": inst(fractions.Fraction.limit_denominator),
            "loaded_before": inst(csv.Sniffer.sniff), "excluded": inst(email.utils.formataddr),
            "safety": inst(json.dumps), "hooks": sum(isinstance(f, type(h)) for f in sys.meta_path),
            "works": kcovdf_t_all.f(1),
        }))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    out = subprocess.run([sys.executable, "-W", "error", "-c", _with_fake_core(script)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        '{"new": true, "new_stdlib": true, "loaded_before": true, "excluded": false, "safety": false, '
        '"hooks": 1, "works": 2}')


def _with_fake_core(script: str) -> str:
    # kcovdf.runtime.core may be missing or differ; bind instrumented code to the fake recorder instead.
    return ("from instr_samples.fake_recorder import FakeRecorder\n"
            "from kcovdf.instrument import switch\n"
            "switch._switch = switch.Switch(FakeRecorder())\n" + script)
