"""The rewritten-code cache: keyed, atomic, and never a reason for an import to fail."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kcovdf
from kcovdf import __version__
from kcovdf.instrument import cache
from kcovdf.instrument.config import Config
from kcovdf.symbols import Symbol

SYM = Symbol(0x1234, "m", "f", "/p/m.py", 1, (("x", "POSITIONAL_OR_KEYWORD"),))
SOURCE = b"def f(x):\n    return x\n"
DIGEST = hashlib.sha256(SOURCE).digest()


@pytest.fixture
def writable(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "pycache_prefix", None)
    return tmp_path


def store(path, config=None, module="m"):
    codes = (compile(SOURCE, "/p/m.py", "exec"), compile("x = 1", "/p/m.py", "exec"))
    cache.write(path, DIGEST, module, config or Config(), codes, [SYM])
    return codes


def test_path_names_interpreter_version_and_config(writable):
    path = cache.path_for(str(writable / "m.py"), Config())
    assert path == str(writable / "__pycache__" / (
        f"m.{sys.implementation.cache_tag}.kcovdf-{__version__}-{cache.pass_key()}{Config().rewrite_key()}.pyc"))
    assert cache.path_for(str(writable / "m.py"), Config(ret=False)) != path


def test_an_unreadable_pass_source_means_no_cache(writable, monkeypatch):
    monkeypatch.setattr(cache, "pass_key", lambda: None)
    assert cache.path_for(str(writable / "m.py"), Config()) is None


def test_a_changed_pass_misses_the_cache(writable, monkeypatch):
    path = cache.path_for(str(writable / "m.py"), Config())
    monkeypatch.setattr(cache, "pass_key", lambda: "0" * 12)
    assert cache.path_for(str(writable / "m.py"), Config()) != path


def test_pycache_prefix_is_honoured(writable, monkeypatch):
    monkeypatch.setattr(sys, "pycache_prefix", str(writable / "prefix"))
    assert cache.path_for(str(writable / "src" / "m.py"), Config()).startswith(str(writable / "prefix"))


def test_round_trip(writable):
    path = str(writable / "__pycache__" / "m.pyc")
    codes = store(path)
    got = cache.read(path, DIGEST, "m", Config())
    assert got is not None and got[0] == codes and got[1] == [SYM]
    assert os.listdir(writable / "__pycache__") == ["m.pyc"]  # the .<pid> temp file is gone


@pytest.mark.parametrize("change", ["source", "module", "config", "truncated", "magic", "garbage"])
def test_any_mismatch_is_a_miss(writable, change):
    path = str(writable / "c.pyc")
    store(path)
    digest, module, config = DIGEST, "m", Config()
    if change == "source":
        digest = hashlib.sha256(SOURCE + b"#").digest()
    elif change == "module":
        module = "pkg.m"
    elif change == "config":
        config = Config(redact=("x",))
    else:
        with open(path, "rb") as f:
            data = f.read()
        data = {"truncated": data[:-7], "magic": b"X" + data[1:],
                "garbage": data[:60] + b"\xff" * (len(data) - 60)}[change]
        with open(path, "wb") as f:
            f.write(data)
    assert cache.read(path, digest, module, config) is None


def test_missing_file_is_a_miss(tmp_path):
    assert cache.read(str(tmp_path / "none.pyc"), DIGEST, "m", Config()) is None


def test_dont_write_bytecode_writes_nothing(writable, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    path = writable / "__pycache__" / "m.pyc"
    store(str(path))
    assert not path.parent.exists()


def test_unwritable_location_never_raises(writable):
    blocker = writable / "file"
    blocker.write_text("not a directory")
    store(str(blocker / "__pycache__" / "m.pyc"))
    assert cache.read(str(blocker / "__pycache__" / "m.pyc"), DIGEST, "m", Config()) is None


def test_the_pass_key_hashes_the_pass_and_not_the_code_that_uses_it():
    here = Path(kcovdf.__file__).parent
    assert sorted(Path(p).relative_to(here).as_posix() for p in cache.pass_sources()) == [
        "instrument/redact.py", "instrument/rewrite.py", "symbols.py"]


@pytest.mark.parametrize("edited, changes", [
    ("instrument/switch.py", False), ("instrument/install.py", False), ("instrument/hook.py", False),
    ("instrument/rewrite.py", True), ("symbols.py", True)])
def test_editing_a_module_changes_the_pass_key_only_for_the_pass(tmp_path, edited, changes):
    tree = tmp_path / "kcovdf"
    shutil.copytree(Path(kcovdf.__file__).parent, tree, ignore=shutil.ignore_patterns("__pycache__", "*.so"))

    def key():
        script = "import kcovdf, kcovdf.instrument.cache as c\nprint(kcovdf.__file__, c.pass_key())"
        out = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(tmp_path)),
                             capture_output=True, text=True, timeout=60, check=True)
        where, value = out.stdout.split()
        assert where == str(tree / "__init__.py")  # the copy, not the installed tree
        return value
    before = key()
    with open(tree / edited, "a") as f:
        f.write("\n# an edit\n")
    assert (key() != before) == changes
