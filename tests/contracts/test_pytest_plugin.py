"""The pytest plugin: a suite recorded in-process, contracts learned, then checked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from kcovdf.contracts import model

SHAPES = """\
    def add(a, b):
        return a + b
    """

TESTS = """\
    import pytest
    import shapes

    @pytest.mark.parametrize("a", range(30))
    def test_add(a):
        assert shapes.add(a, 3) > -100

    def test_more():
        for i in range(20):
            shapes.add(i, -i)
    """


def pytest_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_learn_then_check_names_the_test_and_fails_the_session(tmp_path):
    (tmp_path / "shapes.py").write_text(textwrap.dedent(SHAPES))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_shapes.py").write_text(textwrap.dedent(TESTS))
    r = pytest_run(tmp_path, "--kcovdf-include", "shapes", "--kcovdf-learn", "c.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "contracts for 1 functions" in r.stdout
    learned = {c.expr for c in model.read(tmp_path / "c.toml").functions["shapes:add"].contracts}
    assert "ret == a + b" in learned
    # the suite still passes with the regression; the check fails it, naming both tests
    (tmp_path / "shapes.py").write_text(textwrap.dedent(SHAPES).replace("a + b", "a + b + (a == 7)"))
    r = pytest_run(tmp_path, "--kcovdf-include", "shapes", "--kcovdf-contracts", "c.toml",
                   "--kcovdf-trace", "kept")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "31 passed" in r.stdout
    assert "VIOLATION tests/test_shapes.py::test_add[7]: shapes:add call #7: ret == a + b" in r.stdout
    assert "VIOLATION tests/test_shapes.py::test_more: shapes:add" in r.stdout
    assert (tmp_path / "kept" / "run.json").exists()
    # each test is one call of the runner module, which --include can name (underscores too)
    from kcovdf.contracts.observe import observe

    runner = observe(str(tmp_path / "kept"), ("_kcovdf_pytest",))
    assert list(runner.functions) == ["_kcovdf_pytest:run"]
    assert len(runner.functions["_kcovdf_pytest:run"]) == 31
    # the correct module checks clean
    (tmp_path / "shapes.py").write_text(textwrap.dedent(SHAPES))
    r = pytest_run(tmp_path, "--kcovdf-include", "shapes", "--kcovdf-contracts", "c.toml")
    assert r.returncode == 0 and "0 violations" in r.stdout, r.stdout


def test_the_plugin_is_inert_without_its_options_and_names_bad_ones(tmp_path):
    (tmp_path / "shapes.py").write_text(textwrap.dedent(SHAPES))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_shapes.py").write_text(textwrap.dedent(TESTS))
    r = pytest_run(tmp_path)
    assert r.returncode == 0 and "kcovdf" not in r.stdout
    r = pytest_run(tmp_path, "--kcovdf-learn", "c.toml")
    assert r.returncode == 4 and "need --kcovdf-include" in r.stderr
    r = pytest_run(tmp_path, "--kcovdf-include", "shapes", "--kcovdf-contracts", "missing.toml")
    assert r.returncode == 4 and "no file missing.toml" in r.stderr
