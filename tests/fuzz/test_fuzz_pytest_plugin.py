"""The pytest plugin: corpus replay by default, fuzzing with --kcovdf-fuzz, Hypothesis tests too."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = """
import pytest
from hypothesis import given, settings, strategies as st


class Bug(Exception):
    pass


def parse(data: bytes) -> int:
    if data[:3] == b"k!v":
        raise Bug(data)
    return len(data)


@pytest.mark.kcovdf_fuzz(include=["test_target"])
def test_parse(data):
    parse(data)


def check_blob(blob: bytes) -> None:
    if blob.startswith(b"\\xfe\\xedz"):
        raise Bug(blob)


@pytest.mark.kcovdf_fuzz(include=["test_target"])
@settings(max_examples=20, database=None)
@given(st.binary())
def test_hypothesis(blob):
    check_blob(blob)
"""


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("KCOVDF_FUZZ", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_target.py",
                           *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
                          check=False)


def test_corpus_replays_by_default_and_fuzzing_saves_crashes_into_it(tmp_path: Path) -> None:
    (tmp_path / "test_target.py").write_text(textwrap.dedent(TESTS))
    corpus = tmp_path / "testdata" / "fuzz" / "test_parse"
    corpus.mkdir(parents=True)
    (corpus / "plain").write_bytes(b"hello")
    (corpus / "bad").write_bytes(b"k!v and more")
    proc = _pytest(tmp_path, "-k", "test_parse", "-v")
    assert "test_target.py::test_parse[plain] PASSED" in proc.stdout, proc.stdout
    assert "test_target.py::test_parse[bad] FAILED" in proc.stdout
    (corpus / "bad").unlink()

    proc = _pytest(tmp_path, "-k", "test_parse", "--kcovdf-fuzz=30")
    assert proc.returncode == 1, proc.stdout
    assert "kcovdf fuzz found a crash" in proc.stdout and "test_target.Bug" in proc.stdout
    crashes = [p for p in os.listdir(corpus) if p.startswith("crash-") and not p.endswith(".kdf")]
    assert len(crashes) == 1
    assert (corpus / crashes[0]).read_bytes().startswith(b"k!v")
    assert len(os.listdir(corpus)) > 2  # inputs with new features were kept too

    proc = _pytest(tmp_path, "-k", "test_parse", "-v")
    assert f"test_target.py::test_parse[{crashes[0]}] FAILED" in proc.stdout


def test_hypothesis_tests_are_fuzzed_through_fuzz_one_input(tmp_path: Path) -> None:
    (tmp_path / "test_target.py").write_text(textwrap.dedent(TESTS))
    proc = _pytest(tmp_path, "-k", "test_hypothesis")
    assert proc.returncode == 0, proc.stdout  # Hypothesis alone does not reach the bug
    proc = _pytest(tmp_path, "-k", "test_hypothesis", "--kcovdf-fuzz=30")
    assert proc.returncode == 1, proc.stdout
    assert "kcovdf fuzz found a crash" in proc.stdout and "Bug" in proc.stdout
    corpus = tmp_path / "testdata" / "fuzz" / "test_hypothesis"
    assert [p for p in os.listdir(corpus) if p.startswith("crash-")]
    # the default run now replays the crash after Hypothesis's own examples
    proc = _pytest(tmp_path, "-k", "test_hypothesis")
    assert proc.returncode == 1 and "Bug" in proc.stdout
