"""``kcovdf run``: the program behaves as under plain python, and its trace says what ran where."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kcovdf import tracefile
from kcovdf.read import decode
from kcovdf.run import sealer

ROOT = Path(__file__).resolve().parents[2]
# kcovdf: 1,234 records (5.1 MB, whole run), 0 drops, 1 task -> trace/ (numbers without their commas)
SUMMARY = re.compile(r"^kcovdf: ([\d,]+) records \((?P<kept>[^)]*)\), "
                     r"([\d,]+) drops(?: \((?P<hint>[^)]*)\))?, ([\d,]+) tasks? -> (.+)/$")


def run_kcovdf(cwd: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``kcovdf run ARGS`` in ``cwd``, and then until its sealer is done (it may finish the
    compression in the background), so that a test finds the files as they stay."""
    r = subprocess.run([sys.executable, "-m", "kcovdf", "run", *args], cwd=cwd, input=input,
                       capture_output=True, text=True, timeout=120)
    out = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-o", "--output")]
    assert sealer.wait(Path(cwd) / (out[0] if out else "kcovdf-trace"), timeout=120)
    return r


def run_python(cwd: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=120)


def split_summary(stderr: str) -> tuple[str, _Summary]:
    """The program's own stderr and the parsed summary line (which must be the last line).

    kcovdf's notes on what was not instrumented (notes()) come just before the summary.
    """
    lines = stderr.splitlines(keepends=True)
    assert lines, "no summary line on stderr"
    match = SUMMARY.match(lines[-1].rstrip("\n"))
    assert match, f"last stderr line is not the summary: {lines[-1]!r}"
    return "".join(lines[:-1 - len(notes(stderr))]), _Summary(match)


class _Summary:
    """The summary line's match: group(1) records, (2) drops, (3) tasks, (4) the trace directory,
    numbers without their thousands commas; kept and hint by name."""

    def __init__(self, match: re.Match[str]) -> None:
        self._m = match

    def group(self, n: int | str) -> str | None:
        if isinstance(n, str):
            return self._m.group(n)
        got = self._m.group({1: 1, 2: 3, 3: 5, 4: 6}[n] if n else 0)
        return got.replace(",", "") if n in (1, 2, 3) else got


NOTE = "kcovdf: note: "


def notes(stderr: str) -> list[str]:
    """kcovdf's notes at exit: the ``kcovdf: note: `` lines just before the summary, without that prefix."""
    lines = stderr.splitlines()[:-1]
    out: list[str] = []
    while lines and lines[-1].startswith(NOTE):
        out.insert(0, lines.pop()[len(NOTE):])
    return out


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def calls(trace: Path) -> list[tuple[str, str, str, list[int]]]:
    """(task name, kind, qualname, value words) of every record, in order, over all tasks."""
    t = decode.load(str(trace))
    out = []
    for row in t.records.to_pylist():
        sym = t.symbols.get(row["pc"])
        out.append((t.tasks[row["task"]].name, row["kind"], sym.qualname if sym else hex(row["pc"]),
                    row["values"]))
    return out


# --- the program sees what it would see under python ---------------------------------------
def test_eight_args_example_end_to_end(tmp_path):
    plain = run_python(tmp_path, str(ROOT / "examples" / "eight_args.py"))
    traced = run_kcovdf(tmp_path, str(ROOT / "examples" / "eight_args.py"))
    assert traced.returncode == plain.returncode == 0
    assert traced.stdout == plain.stdout
    rest, summary = split_summary(traced.stderr)
    assert rest == plain.stderr
    t = decode.load(str(tmp_path / "kcovdf-trace"))
    assert int(summary.group(1)) == len(t) and summary.group(3) == "1"
    entries: dict[str, list[int]] = {}
    for _task, kind, qualname, _values in calls(tmp_path / "kcovdf-trace"):
        if kind == "entry":
            entries[qualname] = entries.get(qualname, 0) + 1
    for n in range(1, 9):
        assert entries[f"df_func{n}"] == n   # one entry record per argument
    assert entries["df_func_struct"] == entries["df_func_slots"] == 1
    kinds = {(q, k) for _, k, q, _ in calls(tmp_path / "kcovdf-trace")}
    assert ("df_func_raise", "exception") in kinds and ("df_call_raise", "return") in kinds


def test_argv_main_and_path_are_those_of_python(tmp_path):
    (tmp_path / "sub").mkdir()
    script = write(tmp_path / "sub" / "show.py", """
        import os, sys
        print(sys.argv)
        print(sys.path[0] == os.path.dirname(os.path.abspath(__file__)), __name__, __spec__)
        print(__file__, type(__loader__).__name__, sys.modules["__main__"].__dict__ is globals())
    """)
    plain = run_python(tmp_path, "sub/show.py", "-o", "x", "--flag")
    traced = run_kcovdf(tmp_path, "sub/show.py", "-o", "x", "--flag")
    assert traced.stdout == plain.stdout
    assert "['sub/show.py', '-o', 'x', '--flag']" in traced.stdout
    assert not (tmp_path / "x").exists()    # -o after the script belongs to the script
    assert script.exists()


def test_module_runs_like_python_dash_m(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    write(pkg / "__init__.py", "")
    write(pkg / "__main__.py", """
        import sys
        from . import tool
        print(__name__, __package__, __spec__.name, sys.argv[1:], tool.double(4))
    """)
    write(pkg / "tool.py", """
        import os, sys
        def double(x):
            return 2 * x
        if __name__ == "__main__":
            print(__name__, __spec__.name, sys.argv[0] == __file__, sys.path[0] == os.getcwd(),
                  double(3))
    """)
    for target in ("pkg", "pkg.tool"):
        plain = run_python(tmp_path, "-m", target, "a")
        traced = run_kcovdf(tmp_path, "--include", "pkg", "-m", target, "a")
        assert traced.returncode == plain.returncode == 0
        assert traced.stdout == plain.stdout
    # the module run as __main__ was instrumented and recorded
    assert [(k, q) for _, k, q, _ in calls(tmp_path / "kcovdf-trace") if q == "double"] == [
        ("entry", "double"), ("return", "double")]


@pytest.mark.parametrize("body, status", [
    ("sys.exit(3)", 3),
    ("sys.exit('fatal: message')", 1),
    ("sys.exit()", 0),
    ("raise ValueError('boom')", 1),
    ("import os; print('unflushed', end=''); sys.stdout.flush(); os._exit(5)", 5),
])
def test_exit_status_and_stderr_match_python(tmp_path, body, status):
    write(tmp_path / "prog.py", f"""
        import sys
        def fail():
            {body}
        print("start")
        fail()
    """)
    plain = run_python(tmp_path, "prog.py")
    traced = run_kcovdf(tmp_path, "prog.py")
    assert plain.returncode == traced.returncode == status
    assert traced.stdout == plain.stdout
    if "os._exit" in body:
        assert traced.stderr == plain.stderr == ""   # no atexit, so no summary either
    else:
        assert split_summary(traced.stderr)[0] == plain.stderr


def test_keyboard_interrupt_ends_by_sigint_like_python(tmp_path):
    write(tmp_path / "kb.py", "print('x')\nraise KeyboardInterrupt\n")
    plain = run_python(tmp_path, "kb.py")
    traced = run_kcovdf(tmp_path, "kb.py")
    assert plain.returncode == traced.returncode == -signal.SIGINT
    assert split_summary(traced.stderr)[0] == plain.stderr


def test_stdin_passes_through(tmp_path):
    write(tmp_path / "echo.py", "import sys\nprint(sys.stdin.read().upper(), end='')\n")
    traced = run_kcovdf(tmp_path, "echo.py", input="hello\nworld\n")
    assert traced.stdout == "HELLO\nWORLD\n"


# --- bad input ----------------------------------------------------------------------------
def test_missing_script_fails_as_python_does(tmp_path):
    r = run_kcovdf(tmp_path, "nope.py")
    plain = run_python(tmp_path, "nope.py")
    assert r.returncode == plain.returncode == 2
    # python: "<its path>: can't open file '/abs/nope.py': [Errno 2] No such file or directory"
    assert r.stderr == "kcovdf run: " + plain.stderr.split(": ", 1)[1]
    assert r.stderr == (f"kcovdf run: can't open file '{tmp_path / 'nope.py'}': [Errno 2] "
                        "No such file or directory\n")
    assert not (tmp_path / "kcovdf-trace").exists()


def test_missing_module_is_a_clear_error(tmp_path):
    r = run_kcovdf(tmp_path, "-m", "no_such_module_kcovdf")
    assert r.returncode == 1
    assert "no module named 'no_such_module_kcovdf'" in r.stderr


def test_unknown_option_names_itself_under_the_usage_of_run(tmp_path):
    write(tmp_path / "p.py", "print(1)\n")
    r = run_kcovdf(tmp_path, "--bogus-flag", "p.py")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("usage: kcovdf run [options] (script.py | -m module | -c code) [args ...]\n")
    assert r.stderr.endswith("kcovdf run: error: unrecognized arguments: --bogus-flag\n")


def test_an_abbreviation_is_not_taken_for_the_option_it_starts(tmp_path):
    write(tmp_path / "p.py", "print(1)\n")
    r = run_kcovdf(tmp_path, "--instrument", "mypkg", "p.py")
    assert r.returncode == 2 and r.stdout == ""
    assert "unrecognized arguments: --instrument (did you mean --instrument-all?)" in r.stderr
    assert not (tmp_path / "kcovdf-trace").exists()


def test_bad_buffer_size_names_the_option(tmp_path):
    write(tmp_path / "p.py", "print(1)\n")
    r = run_kcovdf(tmp_path, "--buffer", "1", "p.py")
    assert r.returncode == 2
    assert r.stderr.endswith("error: argument -b/--buffer: 1 = 1 words is outside 2 .. 16M words\n")


def test_buffer_size_with_a_suffix(tmp_path):
    write(tmp_path / "p.py", "def f(x):\n    return x\nfor i in range(20000):\n    f(i)\n")
    r = run_kcovdf(tmp_path, "--mode", "once", "-b", "64K", "p.py")
    assert r.returncode == 0, r.stderr
    (task,) = (tmp_path / "kcovdf-trace").glob("task-*")
    head = tracefile.read_header(tracefile.read_task_file(task)[:tracefile.FILE_HEADER_SIZE], str(task))
    assert 64 * 1000 < head.words <= 64 * 1024 and head.drops > 0  # one full buffer (cut to what it holds)
    # in the whole mode -b is the largest segment: nothing is dropped
    r = run_kcovdf(tmp_path, "-b", "64K", "p.py")
    assert r.returncode == 0, r.stderr
    assert split_summary(r.stderr)[1].group(2) == "0"
    segments = sorted((tmp_path / "kcovdf-trace").glob("task-*"))
    assert len(segments) > 1
    for seg in segments:
        head = tracefile.read_header(tracefile.read_task_file(seg)[:tracefile.FILE_HEADER_SIZE], str(seg))
        assert head.words <= 64 * 1024


def test_nothing_to_run(tmp_path):
    r = run_kcovdf(tmp_path)
    assert r.returncode == 2 and "nothing to run" in r.stderr
    r = run_kcovdf(tmp_path, "-c")
    assert r.returncode == 2 and "nothing to run: -c needs the code" in r.stderr


def test_code_runs_like_python_dash_c(tmp_path):
    code = textwrap.dedent("""
        import sys
        def double(x):
            return 2 * x
        print(sys.argv, repr(sys.path[0]), __name__, __spec__, __loader__, "__file__" in globals())
        print(double(21), sys.modules["__main__"].__dict__ is globals())
        double(None)
    """)
    plain = run_python(tmp_path, "-c", code, "-o", "x")
    traced = run_kcovdf(tmp_path, "-c", code, "-o", "x")
    assert traced.returncode == plain.returncode == 1
    assert traced.stdout == plain.stdout
    assert "['-c', '-o', 'x'] ''" in traced.stdout
    rest, _ = split_summary(traced.stderr)
    assert rest == plain.stderr and 'File "<string>", line 4, in double' in rest
    assert [(k, q) for _, k, q, _ in calls(tmp_path / "kcovdf-trace")] == [
        ("entry", "double"), ("return", "double"), ("entry", "double"), ("exception", "double")]
    assert not (tmp_path / "x").exists() and not (tmp_path / "__pycache__").exists()
    assert json.loads((tmp_path / "kcovdf-trace" / "run.json").read_text())["argv"] == ["-c", code, "-o", "x"]


@pytest.mark.parametrize("where", ["script", "module"])
def test_syntax_error_shows_the_traceback_of_python(tmp_path, where):
    """The same lines as python: no frame of kcovdf, no warning, the same status."""
    write(tmp_path / "broken.py", "def f(:\n    pass\n")
    if where == "script":
        args = ["broken.py"]
    else:
        write(tmp_path / "main.py", "print('before')\nimport broken\n")
        args = ["main.py"]
    plain = run_python(tmp_path, *args)
    traced = run_kcovdf(tmp_path, "--include", "broken", *args)
    assert traced.returncode == plain.returncode == 1
    assert traced.stdout == plain.stdout
    rest, _ = split_summary(traced.stderr)
    assert rest == plain.stderr
    assert "SyntaxError" in rest and "kcovdf" not in rest


def test_refuses_to_write_into_a_directory_that_is_not_a_trace(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("keep")
    write(tmp_path / "p.py", "print(1)\n")
    r = run_kcovdf(tmp_path, "-o", "data", "p.py")
    assert r.returncode == 1 and "not a kcovdf trace directory" in r.stderr
    assert (tmp_path / "data" / "precious.txt").read_text() == "keep"


# --- the trace ------------------------------------------------------------------------------
def test_trace_directory_layout_and_modes(tmp_path):
    write(tmp_path / "p.py", "def f(x):\n    return x\nf(1)\n")
    r = run_kcovdf(tmp_path, "-o", "out/trace", "p.py", "arg")
    assert r.returncode == 0
    trace = tmp_path / "out" / "trace"
    assert stat.S_IMODE(trace.stat().st_mode) == 0o700
    names = sorted(os.listdir(trace))
    assert names[0] == "run.json" and len(names) == 2
    assert re.fullmatch(r"task-(\d+)-(\d+)\.kdf\.gz", names[1])  # written out, then compressed
    for name in names:
        assert stat.S_IMODE((trace / name).stat().st_mode) == 0o600
    info = json.loads((trace / "run.json").read_text())
    assert info["format"] == tracefile.FORMAT_VERSION == 2 and info["argv"] == ["p.py", "arg"]
    assert split_summary(r.stderr)[1].group(4) == os.path.join("out", "trace")
    # a second run replaces the first one's task files
    r2 = run_kcovdf(tmp_path, "-o", "out/trace", "p.py")
    assert r2.returncode == 0 and len(os.listdir(trace)) == 2


def test_threads_forks_and_subprocesses_each_have_a_task(tmp_path):
    write(tmp_path / "helper.py", "def twice(x):\n    return 2 * x\n")
    write(tmp_path / "child.py", "import helper\nprint(helper.twice(21))\n")
    write(tmp_path / "prog.py", """
        import os, subprocess, sys, threading
        import helper
        t = threading.Thread(target=helper.twice, args=(3,), name="worker")
        t.start(); t.join()
        pid = os.fork()
        if pid == 0:
            helper.twice(5)
            os._exit(0)
        os.waitpid(pid, 0)
        out = subprocess.run([sys.executable, "child.py"], capture_output=True, text=True).stdout
        print(out.strip(), helper.twice(1))
    """)
    r = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert r.returncode == 0 and r.stdout == "42 2\n"
    _, summary = split_summary(r.stderr)
    assert summary.group(3) == "4"
    t = decode.load(str(tmp_path / "kcovdf-trace"))
    args_by_task: dict[tuple[int, str], list[int]] = {}
    for row in t.records.to_pylist():
        if row["kind"] == "entry":
            task = t.tasks[row["task"]]
            args_by_task.setdefault((task.pid, task.name), []).append(row["values"][-1])
    assert sorted(args_by_task.values()) == [[1], [3], [5], [21]]
    pids = {pid for pid, _ in args_by_task}
    assert len(pids) == 3      # the parent (main and worker thread), the fork child, the subprocess
    assert any(name == "worker" for _, name in args_by_task)


def test_no_follow_options(tmp_path):
    write(tmp_path / "helper.py", "def twice(x):\n    return 2 * x\n")
    write(tmp_path / "prog.py", """
        import os, subprocess, sys, threading
        import helper
        t = threading.Thread(target=helper.twice, args=(3,)); t.start(); t.join()
        pid = os.fork()
        if pid == 0:
            helper.twice(5); os._exit(0)
        os.waitpid(pid, 0)
        subprocess.run([sys.executable, "-c", "import helper; helper.twice(7)"], check=True)
        print("KCOVDF_TRACE" in os.environ)
    """)
    r = run_kcovdf(tmp_path, "--include", "helper", "--no-threads", "--no-fork", "--no-subprocess",
                   "prog.py")
    assert r.returncode == 0 and r.stdout == "False\n"
    assert split_summary(r.stderr)[1].group(3) == "1"
    assert len(decode.load(str(tmp_path / "kcovdf-trace"))) == 0   # helper was only called elsewhere


def test_records_survive_sigkill(tmp_path):
    write(tmp_path / "prog.py", """
        import os, signal
        def step(n):
            return n + 1
        step(41)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = run_kcovdf(tmp_path, "prog.py")
    assert r.returncode == -signal.SIGKILL
    assert [(k, q) for _, k, q, _ in calls(tmp_path / "kcovdf-trace")] == [
        ("entry", "step"), ("return", "step")]


def test_full_buffer_is_counted_not_fatal(tmp_path):
    write(tmp_path / "prog.py", """
        def f(x):
            return x
        for i in range(1000):
            f(i)
        print("done")
    """)
    r = run_kcovdf(tmp_path, "--mode", "once", "--buffer", "256", "prog.py")
    assert r.returncode == 0 and r.stdout == "done\n"
    _, summary = split_summary(r.stderr)
    records, drops = int(summary.group(1)), int(summary.group(2))
    assert records > 0 and drops > 0 and records + drops == 2000
    assert summary.group("kept").endswith("one buffer per task") and "--mode whole" in summary.group("hint")


@pytest.mark.parametrize("flag, kinds", [("--no-args", [("entry", []), ("return", [1])]),
                                         ("--no-ret", [("entry", [1])])])
def test_args_and_ret_switches(tmp_path, flag, kinds):
    write(tmp_path / "prog.py", "def f(x):\n    return x\nf(1)\n")
    r = run_kcovdf(tmp_path, flag, "prog.py")
    assert r.returncode == 0
    # without argument values a call still writes its entry (ARG_NONE: no value), so its exit has a call
    assert [(k, v[2:]) for _, k, _, v in calls(tmp_path / "kcovdf-trace")] == kinds


def test_exclude_main_leaves_the_script_uninstrumented(tmp_path):
    write(tmp_path / "prog.py", "def f(x):\n    return x\nf(1)\n")
    r = run_kcovdf(tmp_path, "--exclude", "__main__", "prog.py")
    assert r.returncode == 0
    assert split_summary(r.stderr)[1].group(1) == "0"


# --- what kcovdf adds to the program: only the standard library, and its messages once ---------
def test_traced_program_loads_only_the_standard_library_and_kcovdf(tmp_path):
    write(tmp_path / "mod.py", "def f(x):\n    return x\n")
    write(tmp_path / "prog.py", """
        import json, sys
        import mod
        mod.f(1)
        print(json.dumps(sorted(sys.modules)))
    """)
    plain = run_python(tmp_path, "prog.py")
    traced = run_kcovdf(tmp_path, "--include", "mod", "prog.py")
    assert traced.returncode == plain.returncode == 0
    assert int(split_summary(traced.stderr)[1].group(1)) == 2   # mod.f was recorded
    added = {m.partition(".")[0] for m in set(json.loads(traced.stdout)) - set(json.loads(plain.stdout))}
    assert added - set(sys.stdlib_module_names) == {"kcovdf"}
    assert not added & {"numpy", "pyarrow", "duckdb", "rich", "elftools", "matplotlib"}


@pytest.fixture
def zipped(tmp_path):
    """A module kcovdf cannot rewrite (zipimport loads it), and a program importing it."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "lib.zip", "w") as z:
        z.writestr("zmod.py", "def f(x):\n    return x\n")
    return tmp_path


@pytest.mark.parametrize("action", ["default", "error", "ignore"])
def test_a_warning_prints_once_in_kcovdfs_format_under_run(zipped, action):
    write(zipped / "prog.py", f"""
        import sys, warnings
        warnings.simplefilter({action!r})   # the program's filters do not apply to kcovdf's messages
        sys.path.insert(0, "lib.zip")
        import zmod
        print(zmod.f(1))
    """)
    r = run_kcovdf(zipped, "--include", "zmod", "prog.py")
    assert r.returncode == 0 and r.stdout == "1\n"
    rest, _ = split_summary(r.stderr)
    assert rest == ("kcovdf: module zmod is loaded by zipimporter, which kcovdf does not rewrite "
                    "through; imported uninstrumented\n")


def test_a_warning_of_the_api_prints_once_pointing_at_the_callers_line(zipped):
    write(zipped / "prog.py", """
        import sys
        import kcovdf
        sys.path.insert(0, "lib.zip")
        with kcovdf.instrument_imports(include=["zmod"]):
            import zmod
    """)
    r = run_python(zipped, "prog.py")
    assert r.returncode == 0
    assert r.stderr.splitlines() == [
        f"{zipped / 'prog.py'}:6: InstrumentWarning: kcovdf: module zmod is loaded by zipimporter, "
        "which kcovdf does not rewrite through; imported uninstrumented",
        "  import zmod",
        f"{zipped / 'prog.py'}:5: InstrumentWarning: kcovdf: instrument_imports() instrumented no module "
        "(include=['zmod'], instrument_all=False)",
        '  with kcovdf.instrument_imports(include=["zmod"]):']


# --- runs that record nothing say why --------------------------------------------------------
HOW = "name the modules and packages to record with --include MODULE[,MODULE]"


def test_an_include_matching_no_module_says_so(tmp_path):
    write(tmp_path / "p.py", "print(1)\n")
    write(tmp_path / "lonely.py", "def f():\n    return 1\n")
    r = run_kcovdf(tmp_path, "--include", "nosuchpkg,lonely", "p.py")
    assert r.returncode == 0 and r.stdout == "1\n"
    assert notes(r.stderr) == ["--include nosuchpkg: no module named 'nosuchpkg' can be imported",
                               "--include lonely: this process never imported lonely"]


def test_an_include_on_the_safety_list_says_why(tmp_path):
    write(tmp_path / "p.py", "import threading\nprint(threading.active_count())\n")
    r = run_kcovdf(tmp_path, "--include", "threading", "p.py")
    assert r.returncode == 0
    from kcovdf.instrument.selection import SAFETY
    assert notes(r.stderr) == [f"--include threading: not instrumented: safety list: {SAFETY['threading']}"]


@pytest.mark.parametrize("module", [False, True])
def test_no_selection_says_how_to_choose_modules(tmp_path, module):
    pkg = tmp_path / "tool"
    pkg.mkdir()
    write(pkg / "__init__.py", "def work(x):\n    return x\n")
    write(pkg / "__main__.py", "from tool import work\nprint(work(1))\n")
    write(tmp_path / "p.py", "from tool import work\nprint(work(1))\n")
    r = run_kcovdf(tmp_path, *(["-m", "tool"] if module else ["p.py"]))
    assert r.returncode == 0 and r.stdout == "1\n"
    main = "module" if module else "script"
    hint = " (here perhaps --include tool)" if module else ""
    assert notes(r.stderr) == [f"no module was selected, so only the main {main} was instrumented: "
                               f"{HOW}{hint}, or use --instrument-all"]
    assert split_summary(r.stderr)[1].group(1) == "0"


def test_compiled_modules_matching_the_selection_are_named(tmp_path):
    import _json
    import shutil

    pkg = tmp_path / "kcovdf_t_ext"
    pkg.mkdir()
    write(pkg / "__init__.py", "def pure(x):\n    return x\n")
    shutil.copy(_json.__file__, pkg)  # a compiled module of the package, as a mypyc or Cython wheel has
    write(tmp_path / "p.py", "import kcovdf_t_ext, kcovdf_t_ext._json\nprint(kcovdf_t_ext.pure(2))\n")
    r = run_kcovdf(tmp_path, "--include", "kcovdf_t_ext", "p.py")
    assert r.returncode == 0 and r.stdout == "2\n"
    assert notes(r.stderr) == [
        "1 selected module is compiled (a C, Cython or mypyc extension), so kcovdf cannot record its "
        "functions (it rewrites Python source): kcovdf_t_ext._json"]
    assert [q for _, k, q, _ in calls(tmp_path / "kcovdf-trace") if k == "entry"] == ["pure"]


def test_include_json_records_json_and_nothing_else_changes(tmp_path):
    write(tmp_path / "p.py", """
        import json
        def main():
            data = {"b": [1, 2.5, None], "a": "x"}
            text = json.dumps(data, sort_keys=True)
            print(text, json.loads(text) == data)
        main()
    """)
    plain = run_python(tmp_path, "p.py")
    traced = run_kcovdf(tmp_path, "--include", "json", "p.py")
    assert traced.returncode == plain.returncode == 0
    assert traced.stdout == plain.stdout and split_summary(traced.stderr)[0] == plain.stderr
    assert notes(traced.stderr) == []
    returned = [q for _, k, q, _ in calls(tmp_path / "kcovdf-trace") if k == "return"]
    # json's own functions, each called once by the program and never by kcovdf (its symbol lines)
    assert sorted(returned) == ["JSONDecoder.decode", "JSONDecoder.raw_decode", "JSONEncoder.__init__",
                                "JSONEncoder.encode", "JSONEncoder.iterencode", "dumps", "loads", "main"]


def test_classes_functions_and_modules_as_values_carry_their_names(tmp_path):
    # the metaclass machinery, and callables and modules passed around (#9): named, not `type()`
    write(tmp_path / "meta.py", """\
        import json

        class NodeType(type):
            def __new__(mcls, name, bases, ns):
                return super().__new__(mcls, name, bases, ns)

        class Node(metaclass=NodeType):
            pass

        def apply(fn, cls, module, items):
            return fn

        apply(len, Node, json, [Node.__init__, apply, str.upper])
        """)
    assert run_kcovdf(tmp_path, "meta.py").returncode == 0
    view = subprocess.run([sys.executable, "-m", "kcovdf", "view"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert view.returncode == 0, view.stderr
    lines = [line.strip() for line in view.stdout.splitlines() if not line.startswith("#")]
    assert "<class '__main__.Node'> = __main__.NodeType.__new__()" in lines
    assert any(line.startswith("__main__.NodeType.__new__(mcls=<class '__main__.NodeType'>, name='Node'")
               for line in lines)
    assert "__main__.apply(fn=<built-in len>, cls=<class '__main__.Node'>, module=<module 'json'>, " \
           "items=[<built-in object.__init__>, <function __main__.apply>, <built-in str.upper>])" in lines
    assert "<built-in len> = __main__.apply()" in lines
