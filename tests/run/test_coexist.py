"""``kcovdf run`` alongside other tools: coverage.py in both orders, pytest, a sys.settrace tool, pdb."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kcovdf.read import decode

HELPER = """
def twice(x):
    return 2 * x
"""

PROG = """
import helper

def main():
    print(helper.twice(21))

main()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "helper.py").write_text(textwrap.dedent(HELPER))
    (tmp_path / "prog.py").write_text(textwrap.dedent(PROG))
    return tmp_path


def py(cwd: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, input=input,
                          timeout=60)


def helper_calls(trace: Path) -> list[tuple[str, str, list[int]]]:
    """(kind, function, value words) of every record of helper.twice."""
    t = decode.load(str(trace))
    out = []
    for row in t.records.to_pylist():
        sym = t.symbols.get(row["pc"])
        if sym is not None and sym.module == "helper":
            out.append((row["kind"], sym.qualname, row["values"]))
    return out


def assert_twice_recorded(trace: Path, arg: int) -> None:
    calls = helper_calls(trace)
    assert [(k, n) for k, n, _ in calls] == [("entry", "twice"), ("return", "twice")]
    assert calls[0][2][-1] == arg and calls[1][2][-1] == 2 * arg


def covered_lines(cwd: Path) -> dict[str, list[int]]:
    r = py(cwd, "-m", "coverage", "json", "-q", "-o", "cov.json")
    assert r.returncode == 0, r.stderr
    files = json.loads((cwd / "cov.json").read_text())["files"]
    return {Path(name).name: data["executed_lines"] for name, data in files.items()
            if Path(name).name in ("prog.py", "helper.py")}


def test_coverage_outside_kcovdf(project):
    r = py(project, "-m", "coverage", "run", "-m", "kcovdf", "run", "--include", "helper", "prog.py")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "42\n"
    assert_twice_recorded(project / "kcovdf-trace", 21)
    # coverage saw every line of the program, instrumented or not
    assert covered_lines(project) == {"prog.py": [2, 4, 5, 7], "helper.py": [2, 3]}


def test_coverage_inside_kcovdf(project):
    r = py(project, "-m", "kcovdf", "run", "--include", "helper", "-m", "coverage", "run", "prog.py")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "42\n"
    assert_twice_recorded(project / "kcovdf-trace", 21)
    assert covered_lines(project) == {"prog.py": [2, 4, 5, 7], "helper.py": [2, 3]}


def test_pytest_inside_kcovdf_same_outcomes(project):
    (project / "test_helper.py").write_text(textwrap.dedent("""
        import pytest
        import helper

        def test_twice():
            assert helper.twice(4) == 8

        def test_fails():
            assert helper.twice(1) == 3

        @pytest.mark.skip(reason="shown as skipped")
        def test_skipped():
            pass
    """))
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_helper.py"]
    plain = py(project, *args)
    traced = py(project, "-m", "kcovdf", "run", "--include", "helper", *args)
    assert plain.returncode == traced.returncode == 1
    summary = [ln for ln in plain.stdout.splitlines() if " passed" in ln][-1]
    assert "1 failed, 1 passed, 1 skipped" in summary
    assert summary.split(" in ")[0] in traced.stdout
    # pytest's assertion rewriting still explains the failure
    assert "assert 2 == 3" in traced.stdout
    kinds = [(k, v[-1]) for k, _, v in helper_calls(project / "kcovdf-trace")]
    assert kinds == [("entry", 4), ("return", 8), ("entry", 1), ("return", 2)]


TRACER = """
import runpy, sys
events = []
def tracer(frame, event, arg):
    if frame.f_code.co_filename.endswith(("prog.py", "helper.py")):
        events.append((event, frame.f_code.co_name, frame.f_lineno))
    return tracer
sys.settrace(tracer)
runpy.run_path("prog.py", run_name="__main__")
sys.settrace(None)
print([e for e in events if e[0] in EVENTS])
"""


def run_tracer(project: Path, events: tuple[str, ...]) -> tuple[str, str]:
    """The events a sys.settrace tool prints, without and with kcovdf."""
    (project / "tracer.py").write_text(f"EVENTS = {events!r}\n" + TRACER)
    plain = py(project, "tracer.py")
    # The tracer script itself stays out: instrumented, its tracer function would record at
    # every trace event and, on 3.10's longer runpy, fill the buffer before helper runs.
    traced = py(project, "-m", "kcovdf", "run", "--include", "helper", "--exclude", "__main__", "tracer.py")
    assert plain.returncode == traced.returncode == 0
    assert_twice_recorded(project / "kcovdf-trace", 21)
    return plain.stdout, traced.stdout


def test_settrace_tool_sees_the_same_calls_and_returns(project):
    plain, traced = run_tracer(project, ("call", "return", "exception"))
    assert traced == plain
    assert "('call', 'twice', 2)" in traced and "('return', 'twice', 3)" in traced


def test_settrace_tool_sees_the_same_lines(project):
    plain, traced = run_tracer(project, ("call", "line", "return", "exception"))
    assert traced == plain


def test_pdb_inside_kcovdf(project):
    commands = "break helper.twice\ncontinue\np x\ncontinue\n"
    plain = py(project, "-m", "pdb", "prog.py", input=commands)
    traced = py(project, "-m", "kcovdf", "run", "--include", "helper", "-m", "pdb", "prog.py", input=commands)
    assert plain.returncode == traced.returncode == 0
    assert "(Pdb) 21\n" in plain.stdout
    assert "(Pdb) 21\n" in traced.stdout and "42\n" in traced.stdout
    assert_twice_recorded(project / "kcovdf-trace", 21)
