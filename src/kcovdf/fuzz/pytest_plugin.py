"""Fuzz tests in a pytest suite: replayed as ordinary tests by default, fuzzed on request.

The convention of Go's ``testdata/fuzz`` and Jazzer: a test marked ``kcovdf_fuzz`` has a
corpus directory ``testdata/fuzz/<test name>/`` beside its file.

    @pytest.mark.kcovdf_fuzz
    def test_parse(data: bytes):          # one test per corpus input (or b"" when there is none)
        mypkg.parse(data)

    @pytest.mark.kcovdf_fuzz(include=["mypkg"])
    @hypothesis.given(st.text())
    def test_roundtrip(s):               # Hypothesis runs it as usual, then the corpus
        ...                              # replays through its fuzz_one_input

``pytest --kcovdf-fuzz=SECONDS`` (or ``KCOVDF_FUZZ=SECONDS``) fuzzes each marked test for
that long instead, with ``include``'s modules instrumented; new inputs go into the
corpus directory, and a crash fails the test and is saved there as ``crash-<sha1>``,
so the default replay keeps it as a regression test. The seed is fixed per test (a hash of
its node id), so a fuzzing run of the suite is repeatable.
"""

from __future__ import annotations

import io
import os
import zlib
from typing import Any

import pytest

MARK = "kcovdf_fuzz"
ENV = "KCOVDF_FUZZ"


def pytest_addoption(parser: Any) -> None:
    """``--kcovdf-fuzz=SECONDS``."""
    group = parser.getgroup("kcovdf-fuzz", "kcovdf fuzz tests")
    group.addoption("--kcovdf-fuzz", type=float, metavar="SECONDS", default=None,
                    help=f"fuzz each @pytest.mark.{MARK} test for SECONDS instead of replaying its corpus "
                         f"(also ${ENV}=SECONDS)")


def pytest_configure(config: Any) -> None:
    """Register the marker."""
    config.addinivalue_line("markers", f"{MARK}(include=()): a fuzz test: replays testdata/fuzz/<name>/, "
                                       "fuzzed with --kcovdf-fuzz=SECONDS")


def _seconds(config: Any) -> float:
    value = config.getoption("--kcovdf-fuzz")
    if value is None and os.environ.get(ENV):
        try:
            value = float(os.environ[ENV])
        except ValueError:
            raise pytest.UsageError(f"${ENV}={os.environ[ENV]!r}: expected a number of seconds") from None
    return float(value or 0)


def corpus_dir(item_path: str, name: str) -> str:
    """``testdata/fuzz/<name>`` beside the test file."""
    return os.path.join(os.path.dirname(item_path), "testdata", "fuzz", name)


def _inputs(directory: str) -> list[tuple[str, bytes]]:
    if not os.path.isdir(directory):
        return []
    out = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and not name.startswith(".") and not name.endswith(".kdf"):
            with open(path, "rb") as f:
                out.append((name, f.read()))
    return out


def _hypothesis_target(func: Any) -> Any:
    return getattr(getattr(func, "hypothesis", None), "fuzz_one_input", None)


def pytest_generate_tests(metafunc: Any) -> None:
    """One case per corpus input of a marked test taking ``data`` (one 'fuzz' case when fuzzing)."""
    if metafunc.definition.get_closest_marker(MARK) is None or "data" not in metafunc.fixturenames:
        return
    if _seconds(metafunc.config):
        metafunc.parametrize("data", [b""], ids=["fuzz"])
        return
    found = _inputs(corpus_dir(str(metafunc.definition.path), metafunc.definition.originalname))
    metafunc.parametrize("data", [data for _, data in found] or [b""],
                         ids=[name for name, _ in found] or ["empty"])


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> bool | None:
    """Fuzz a marked test (with --kcovdf-fuzz), or replay a Hypothesis test's corpus after it ran."""
    marker = pyfuncitem.get_closest_marker(MARK)
    if marker is None:
        return None
    func = pyfuncitem.obj
    hypothesis_target = _hypothesis_target(func)
    directory = corpus_dir(str(pyfuncitem.path), pyfuncitem.originalname)
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames
            if name in pyfuncitem.funcargs}
    if hypothesis_target is not None:
        target = hypothesis_target
    else:
        def target(data: bytes) -> None:
            func(**{**args, "data": data})
    seconds = _seconds(pyfuncitem.config)
    if not seconds:
        if hypothesis_target is None:
            return None  # the parametrized test runs as it is
        func(**args)
        for _, data in _inputs(directory):
            hypothesis_target(data)
        return True
    # a seed per test, so that a fuzzing run of the suite is repeatable
    _fuzz(target, directory, seconds, tuple(marker.kwargs.get("include", ())),
          zlib.crc32(pyfuncitem.nodeid.encode()) or 1)
    return True


def _fuzz(target: Any, directory: str, seconds: float, include: tuple[str, ...], seed: int) -> None:
    from kcovdf.fuzz.engine import Engine
    from kcovdf.fuzz.harness import instrument
    from kcovdf.fuzz.options import Options
    from kcovdf.instrument.hook import uninstall

    os.makedirs(directory, exist_ok=True)
    if include:
        uninstall(instrument(include))  # rewrites the imported modules in place
    out = io.StringIO()
    status = Engine(target, Options(max_total_time=seconds, paths=[directory], seed=seed,
                                    artifact_prefix=directory + os.sep, verbosity=0), out).fuzz()
    if status != 0:
        pytest.fail(f"kcovdf fuzz found a crash (saved in {directory}):\n{out.getvalue()}", pytrace=False)
