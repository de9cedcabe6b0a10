"""The ``kcovdf`` command line: help for users, no abbreviations, missing libraries, defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tracegen as tg
from kcovdf import cli
from kcovdf.errors import ConfigError, CorruptBufferError, KcovdfError, RunError
from kcovdf.run import command
from kcovdf.tools import sql

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("view", "sql", "export", "report")


def kcovdf(*args: str, cwd: Path | None = None, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``kcovdf ARGS`` in a fresh interpreter, after running ``prelude`` there."""
    code = f"{prelude}\nimport sys\nfrom kcovdf.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def cli_main(capsys, *args: str) -> tuple[int, str, str]:
    """``kcovdf ARGS`` in this process: exit status, stdout, stderr."""
    try:
        rc = cli.main(list(args))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def trace(tmp_path, monkeypatch):
    """A kcovdf-trace directory in the current directory, as `kcovdf run` leaves it."""
    b = tg.TraceBuilder()
    f = b.func("app", "f", 3, ("a",))
    b.call(f, 1).ret(f, 2)
    tg.write_dir(tmp_path / "kcovdf-trace", {(7, 7, "MainThread"): b})
    monkeypatch.chdir(tmp_path)
    return tmp_path / "kcovdf-trace"


# --- help ---------------------------------------------------------------------------------
def test_top_help_is_for_users(capsys):
    rc, out, _ = cli_main(capsys, "--help")
    assert rc == 0
    assert "add_arguments" not in out and "one subcommand per module" not in out
    assert out.splitlines()[2].startswith("kcovdf records the arguments and return values")
    for name, command_ in cli.COMMANDS.items():
        assert re.search(rf"^    {name} +{re.escape(command_.summary[:30])}", out, re.M), name
    examples = out.split("examples:\n", 1)[1]
    for name in ("run", "view", "sql", "export", "report"):
        assert f"  kcovdf {name}" in examples


@pytest.mark.parametrize("name", cli.COMMANDS)
def test_every_command_has_a_description_and_examples(capsys, name):
    rc, out, _ = cli_main(capsys, name, "--help")
    assert rc == 0
    assert out.startswith(f"usage: kcovdf {name} ")
    assert cli.COMMANDS[name].description.splitlines()[0] in out
    examples = out.split("examples:\n", 1)[1]
    assert examples.lstrip().startswith(f"kcovdf {name}")


def test_no_command_prints_help_and_fails(capsys):
    rc, _, err = cli_main(capsys)
    assert rc == 2 and err.startswith("usage: kcovdf ")


def test_unknown_command_names_the_choices(capsys):
    rc, _, err = cli_main(capsys, "vieww")
    assert rc == 2 and "invalid choice: 'vieww'" in err and "'view'" in err


def test_sql_help_lists_every_view_with_its_real_columns(capsys, tmp_path):
    rc, out, _ = cli_main(capsys, "sql", "--help")
    assert rc == 0
    listed = out.split("views and their columns:\n", 1)[1]
    b = tg.TraceBuilder()
    f = b.func("app", "f", 3, ("a",))
    b.call(f, 1).ret(f, 2)
    from kcovdf.read import decode

    t = decode.load(tg.write_kdf(tmp_path / "t.kdf", b.buffer(), b.table_lines((1, 1, "Main"))))
    for view in sql.VIEWS:
        block = re.search(rf"^  {view} +.*\n((?:           .*\n)+)", listed, re.M)
        assert block, view
        columns = re.findall(r"(\w+) [\w\[\]]+,?", block.group(1))
        assert columns == sql.query(t, f"SELECT * FROM {view}").column_names, view


# --- abbreviations and unknown options ----------------------------------------------------
@pytest.mark.parametrize("name", cli.COMMANDS)
def test_no_parser_takes_abbreviations(name):
    parser, _ = cli.command_parser(name)
    assert parser.allow_abbrev is False
    assert cli.build_parser().allow_abbrev is False


def test_abbreviated_flag_is_refused_with_close_options(tmp_path):
    (tmp_path / "script.py").write_text("print('ran')\n")
    r = kcovdf("run", "--instrument", "mypkg", "script.py", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("usage: kcovdf run ")
    assert "error: unrecognized arguments: --instrument (did you mean --instrument-all?)" in r.stderr
    assert not (tmp_path / "kcovdf-trace").exists()


def test_abbreviations_refused_in_the_tools_too(capsys, trace):
    rc, out, err = cli_main(capsys, "view", "--ra")
    assert rc == 2 and out == ""
    assert "unrecognized arguments: --ra (did you mean --raw?)" in err


@pytest.mark.parametrize("name", ["run", "view", "selftest"])
def test_unknown_option_prints_the_usage_of_its_command(capsys, name):
    rc, _, err = cli_main(capsys, name, "--bogus-flag")
    assert rc == 2
    assert err.startswith(f"usage: kcovdf {name} ")
    assert err.rstrip().endswith(f"kcovdf {name}: error: unrecognized arguments: --bogus-flag")


# --- kcovdf run -b ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, words", [
    ("65536", 65536), ("64K", 64 << 10), ("64k", 64 << 10), ("16M", 16 << 20), ("0x100", 256),
    ("2", 2),
])
def test_buffer_sizes_take_suffixes(text, words):
    assert command.words(text) == words


@pytest.mark.parametrize("text, why", [
    ("16Q", "'16Q' is not a number of u64 words"), ("M", "'M' is not a number"),
    ("1", "1 = 1 words is outside 2 .. 16M words"), ("17M", "17M = 17825792 words is outside"),
    ("1G", "is outside"),
])
def test_bad_buffer_size_names_the_option_once(capsys, text, why):
    rc, _, err = cli_main(capsys, "run", "-b", text, "-c", "pass")
    assert rc == 2 and why in err
    assert err.count("--buffer") == 1 and "argument -b/--buffer: " in err


def test_buffer_help_says_what_it_counts(capsys):
    _, out, _ = cli_main(capsys, "run", "--help")
    text = " ".join(out.split())
    assert "buffer size of each task, in u64 words (8 bytes each)" in text
    assert "-b 16M (the most: 128 MiB) (default: 1M words = 8 MiB per task)" in text


# --- TRACE defaults to kcovdf-trace -----------------------------------------------------------
@pytest.mark.parametrize("name, args", [("view", []), ("sql", ["SELECT 1"]), ("report", []),
                                        ("export", ["-f", "jsonl", "-o", "x.jsonl"])])
def test_tools_without_trace_say_what_they_looked_for(capsys, tmp_path, monkeypatch, name, args):
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli_main(capsys, name, *args)
    assert rc == 2 and out == ""
    assert err == (f"kcovdf {name}: no TRACE given, and no kcovdf-trace here (the directory kcovdf run "
                   "writes by default)\n")


def test_tools_read_kcovdf_trace_by_default(capsys, trace):
    rc, out, _ = cli_main(capsys, "view")
    assert rc == 0 and out.splitlines()[-2:] == ["app.f(a=1)", "2 = app.f()"]
    rc, out, _ = cli_main(capsys, "sql", "SELECT function, result FROM calls")
    assert rc == 0 and out.splitlines() == ["function,result", "app.f,2"]
    rc, _, _ = cli_main(capsys, "export", "-f", "jsonl", "-o", "out.jsonl")
    assert rc == 0 and len(Path("out.jsonl").read_text().splitlines()) == 2
    rc, _, err = cli_main(capsys, "report")
    assert rc == 0 and Path("report.html").exists()


def test_an_explicit_trace_still_wins(capsys, trace, tmp_path):
    rc, _, err = cli_main(capsys, "view", str(tmp_path / "other"))
    assert rc == 2 and "other: no such file or directory" in err


# --- view's header ---------------------------------------------------------------------------
def header(capsys, path: Path) -> list[str]:
    rc, out, _ = cli_main(capsys, "view", str(path))
    assert rc == 0
    return [line for line in out.splitlines() if line.startswith("# ")]


def test_no_drop_line_without_drops(capsys, tmp_path):
    b = tg.TraceBuilder()
    f = b.func("app", "f", 3, ("a",))
    b.call(f, 1).ret(f, 2)
    lines = header(capsys, tg.write_kdf(tmp_path / "t.kdf", b.buffer(), b.table_lines((1, 1, "M"))))
    assert lines == ["# Captured 12 words", "# 2 records"]
    lines = header(capsys, tg.write_kdf(tmp_path / "d.kdf", b.buffer(), b.table_lines((1, 1, "M")),
                                        drops=3))
    assert lines[2] == "# Dropped 3 records that did not fit in a full buffer"


def test_idle_tasks_are_not_missing_anything(capsys, tmp_path):
    busy = tg.TraceBuilder()
    f = busy.func("app", "f", 3, ("a",))
    busy.call(f, 1).ret(f, 2)
    d = tg.write_dir(tmp_path / "trace", {(1, 1, "MainThread"): busy})
    for pid in (2, 3):  # spawned pool workers that never ran a task: no records, no table
        tg.write_kdf(d / f"task-{pid}-{pid}.kdf", [0] * 64, [{"t": "task", "pid": pid, "tid": pid,
                                                            "name": "MainThread"}])
    lines = header(capsys, d)
    assert lines == ["# Captured 12 words", "# 2 records", "# 3 tasks (2 recorded nothing)"]


# --- libraries: dependencies, and what a command says when one does not import ---------------
def test_libraries_are_the_dependencies_of_the_package():
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(project["dependencies"]) == sorted(cli.LIBRARIES.values())
    assert project["optional-dependencies"]["tools"] == []  # the old extra, kept as an alias


def test_help_works_without_numpy():
    blocked = "import sys; sys.modules['numpy'] = None"
    r = kcovdf("--help", prelude=blocked)
    assert r.returncode == 0 and "commands:" in r.stdout and r.stderr == ""
    r = kcovdf("view", "--help", prelude=blocked)
    assert r.returncode == 0 and r.stdout.startswith("usage: kcovdf view")
    assert "examples:\n  kcovdf view" in r.stdout
    assert "this command needs numpy" in r.stdout and "-m pip install 'numpy>=1.24'" in r.stdout


@pytest.mark.parametrize("name", TOOLS)
def test_a_tool_whose_library_is_missing_says_what_to_install(tmp_path, name):
    r = kcovdf(name, str(tmp_path), prelude="import sys; sys.modules['numpy'] = None")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"kcovdf {name}: this command needs numpy, which does not import here "
                        "(ModuleNotFoundError: import of numpy halted; None in sys.modules); "
                        f"install it with: {sys.executable} -m pip install 'numpy>=1.24'\n")


def test_a_broken_library_is_named_too(tmp_path):
    fake = tmp_path / "site" / "duckdb"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('built for another Python')\n")
    r = kcovdf("sql", "SELECT 1", prelude=f"import sys; sys.path.insert(0, {str(fake.parent)!r})")
    assert r.returncode == 1
    assert r.stderr.startswith("kcovdf sql: this command needs duckdb, which does not import here "
                               "(RuntimeError: built for another Python); install it with: ")
    assert r.stderr.endswith("-m pip install 'duckdb>=1.0'\n")


def test_run_needs_none_of_the_libraries(tmp_path):
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in cli.LIBRARIES)
    r = kcovdf("run", "-c", "print('ran')", cwd=tmp_path, prelude=f"import sys; {blocked}")
    assert r.returncode == 0 and r.stdout == "ran\n"
    assert r.stderr.splitlines()[-1].startswith("kcovdf: 0 records")


def test_a_bug_in_kcovdf_is_not_taken_for_a_missing_library(monkeypatch):
    def broken(name):
        raise ImportError("cannot import name 'x' from 'kcovdf.read.decode'", name="kcovdf.read.decode")
    monkeypatch.setattr(cli.importlib, "import_module", broken)
    with pytest.raises(ImportError, match="cannot import name 'x'"):
        cli.command_parser("view")


def test_runtime_path_imports_only_the_standard_library():
    """kcovdf, the hook, the pass, the runtime and kcovdf run load no third-party module."""
    code = textwrap.dedent("""
        import importlib, json, pkgutil, sys
        before = set(sys.modules)
        import kcovdf, kcovdf.cli
        for pkg in ("kcovdf.instrument", "kcovdf.runtime", "kcovdf.run"):
            for info in pkgutil.iter_modules(importlib.import_module(pkg).__path__, pkg + "."):
                importlib.import_module(info.name)
        with kcovdf.instrument_imports(include=["json"]):
            pass
        new = {m.partition(".")[0] for m in set(sys.modules) - before}
        print(json.dumps(sorted(m for m in new if m not in sys.stdlib_module_names)))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["kcovdf"]


# --- errors ----------------------------------------------------------------------------------
def test_every_error_is_a_kcovdf_error_with_a_slug():
    import kcovdf

    errors = [ConfigError, CorruptBufferError, RunError, cli.Unavailable]
    assert all(issubclass(e, KcovdfError) for e in errors)
    slugs = [e.slug for e in (KcovdfError, *errors)]
    assert len(set(slugs)) == len(slugs) and all(re.fullmatch(r"[a-z]+(-[a-z]+)*", s) for s in slugs)
    assert "InstrumentError" not in kcovdf.__all__  # never raised: uninstrumentable code only warns
    assert kcovdf.InstrumentWarning.__module__ == "kcovdf.errors"


def test_run_error_carries_pythons_exit_status(tmp_path):
    with pytest.raises(RunError) as caught:
        command.Program.find(str(tmp_path / "nope.py"), False, [])
    assert caught.value.status == 2 and isinstance(caught.value, KcovdfError)



def test_sql_checks_the_statement_before_decoding_the_trace(capsys, tmp_path):
    # a wrong column is named at once, even over a trace that is not one
    bad = tmp_path / "not-a-trace.kdf"
    bad.write_bytes(b"KCOVDF\x00\x09" + b"\x00" * 100)
    rc, _, err = cli_main(capsys, "sql", str(bad), "SELECT nme FROM calls")
    assert rc == 1 and '"nme" not found' in err and "not a .kdf trace file" not in err
    rc, _, err = cli_main(capsys, "sql", str(bad), "SELECT count(*) FROM tasks")
    assert rc == 1 and "not a .kdf trace file" in err


def test_sql_pairs_and_renders_only_what_a_statement_reads(monkeypatch, trace):
    from kcovdf.read import decode as dec
    from kcovdf.read import render
    from kcovdf.tools import sql

    trace = dec.load(str(trace))
    paired: list[int] = []
    rendered: list[int] = []
    real_pairing, real_columns = sql.pairing, render.columns
    monkeypatch.setattr(sql, "pairing", lambda t: paired.append(len(t)) or real_pairing(t))
    def columns(*a, **k):
        want = a[6] if len(a) > 6 else k.get("want", render.ALL)
        if {2, 3} & set(want):  # rendered or value: the costly columns
            rendered.append(len(a[1]))
        return real_columns(*a, **k)

    monkeypatch.setattr(render, "columns", columns)
    assert sql.query(trace, "SELECT count(*) FROM tasks").column(0).to_pylist() == [len(trace.tasks)]
    assert set(paired) == {0}  # the empty trace's views only (to plan the statement, to run it)
    paired.clear()
    assert sql.query(trace, "SELECT count(*) FROM records").column(0).to_pylist() == [len(trace)]
    assert len(trace) in paired and set(paired) <= {0, len(trace)}
    by_function = sql.query(trace, "SELECT function, count(*) FROM calls GROUP BY function")
    assert by_function.num_rows > 0 and rendered == []  # no value was rendered for them
    one = sql.query(trace, "SELECT rendered FROM records WHERE kind = 'return' LIMIT 1")
    assert one.num_rows == 1 and 0 < sum(rendered) < len(trace)
