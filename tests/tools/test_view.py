"""``kcovdf view``: call trees, --raw, filters and context, --json, errors, kernel dumps."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracegen as tg
from kcovdf import abi, cli


@dataclasses.dataclass
class Point:
    x: int
    y: int


Point.__module__ = "app"


@pytest.fixture
def trace_file(tmp_path):
    b = tg.TraceBuilder()
    f = b.func("app", "f", 3, ("a", "p"))
    g = b.func("app.sub", "g", 9, ("s",))
    h = b.func("app", "h", 20)
    gen = b.func("app", "gen", 30, ("n",))
    b.call(f, 1, Point(1, 2)).call(g, "héllo").ret(g, 3).ret(h, None).exc(f, ValueError("bad"))
    b.call(gen, 2).yld(gen, [1, "x"]).ret(gen, None)
    b.call(f, 5, {"k": 1}).ret(f, 6)
    return tg.write_kdf(tmp_path / "t.kdf", b.buffer(200), b.table_lines((7, 8, "MainThread")), drops=2)


def view(capsys, *args):
    rc = cli.main(["view", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def body(out: str) -> list[str]:
    """The output without the header lines (task lines ``## task ...`` stay)."""
    return [line for line in out.splitlines() if not line.startswith("# ")]


def test_call_tree(capsys, trace_file):
    rc, out, err = view(capsys, trace_file)
    assert rc == 0 and err == ""
    assert out.splitlines()[:3] == ["# Captured 80 words", "# 12 records",
                                    "# Dropped 2 records that did not fit in a full buffer"]
    assert body(out) == [
        f"## task 0: pid 7 tid 8 MainThread ({trace_file})",
        "app.f(a=1, p=Point(x=1, y=2))",
        "  app.sub.g(s='héllo')",
        "  3 = app.sub.g()",
        "  None = app.h()",
        "app.f() raised ValueError('bad')",
        "app.gen(n=2)",
        "app.gen() yielded [1, 'x']",
        "None = app.gen()",
        "app.f(a=5, p={'k': 1})",
        "6 = app.f()",
    ]


def test_raw_format(capsys, trace_file):
    rc, out, _ = view(capsys, trace_file, "--raw")
    lines = body(out)
    assert lines[:3] == ["[ENTRY] seq=  1 app.f arg[0](8) = 1",
                         "[ENTRY] seq=  2 app.f arg[1](8) = Point(x=1, y=2)",
                         "[ENTRY] seq=  3 app.sub.g arg[0](8) = 'héllo'"]
    assert "[RET] seq=  4 app.sub.g ret(8) = 3" in lines
    assert "[EXC] seq=  6 app.f exc(8) = ValueError('bad')" in lines
    assert "[YIELD] seq=  8 app.gen yield(8) = [1, 'x']" in lines


def test_function_module_filters_and_context(capsys, trace_file):
    _, out, _ = view(capsys, trace_file, "--function", "g")
    assert body(out)[1:] == ["  app.sub.g(s='héllo')", "  3 = app.sub.g()"]
    _, out, _ = view(capsys, trace_file, "--module", "app.sub", "-C", "1")
    assert body(out)[1:] == ["app.f(a=1, p=Point(x=1, y=2))", "  app.sub.g(s='héllo')",
                             "  3 = app.sub.g()", "  None = app.h()"]
    _, out, _ = view(capsys, trace_file, "--function", "app.gen", "--function", "h", "-C", "0")
    assert body(out)[1:] == ["  None = app.h()", "--", "app.gen(n=2)", "app.gen() yielded [1, 'x']",
                             "None = app.gen()"]
    _, out, _ = view(capsys, trace_file, "--function", "h", "-C", "1")
    assert "--" not in body(out)
    _, out, _ = view(capsys, trace_file, "--function", "g", "--function", "gen", "-C", "0", "--raw")
    assert "--" in body(out)


def test_value_filters(capsys, trace_file):
    _, out, _ = view(capsys, trace_file, "--value", "a=5")
    assert body(out)[1:] == ["app.f(a=5, p={'k': 1})"]
    _, out, _ = view(capsys, trace_file, "--value", "0x3")
    assert body(out)[1:] == ["  3 = app.sub.g()"]
    _, out, _ = view(capsys, trace_file, "--value", "s=héllo")
    assert body(out)[1:] == ["  app.sub.g(s='héllo')"]
    _, out, _ = view(capsys, trace_file, "--value", "return=6")
    assert body(out)[1:] == ["6 = app.f()"]


def test_filter_matching_nothing_exits_1(capsys, trace_file):
    rc, out, err = view(capsys, trace_file, "--function", "nope")
    assert rc == 1 and "no record matches --function nope" in err
    assert body(out) == []
    rc, _, err = view(capsys, trace_file, "--task", "99")
    assert rc == 1 and "no task matches --task 99" in err


def test_task_filter_in_a_trace_directory(capsys, tmp_path):
    a, b = tg.TraceBuilder(), tg.TraceBuilder()
    pa_, pb = a.func("m", "fa", 1, ("x",)), b.func("m", "fb", 1, ("y",))
    a.call(pa_, 1)
    b.call(pb, 2)
    d = tg.write_dir(tmp_path / "run", {(5, 5, "MainThread"): a, (5, 6, "worker"): b})
    rc, out, _ = view(capsys, d)
    assert "# 2 tasks" in out and "m.fa(x=1)" in out and "m.fb(y=2)" in out
    _, out, _ = view(capsys, d, "--task", "worker")
    assert body(out) == [f"## task 1: pid 5 tid 6 worker ({d / 'task-5-6.kdf'})", "m.fb(y=2)"]


def test_json_output(capsys, trace_file):
    rc, out, err = view(capsys, trace_file, "--json", "--function", "f")
    objs = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and err.startswith("# Captured")
    assert [o["kind"] for o in objs] == ["entry", "entry", "exception", "entry", "entry", "return"]
    first = objs[1]
    assert first["param"] == "p" and first["rendered"] == "Point(x=1, y=2)" and first["function"] == "app.f"
    assert first["value"]["fields"] == [["x", 1], ["y", 2]]
    assert first["pc"] == hex(tg.pc_of("app", "f", 3)) and first["tid"] == 8


def test_colour_only_when_asked_or_on_a_terminal(capsys, trace_file):
    _, out, _ = view(capsys, trace_file)
    assert "\x1b[" not in out
    _, out, _ = view(capsys, trace_file, "--color", "always")
    assert "\x1b[" in out and "app.f" in out


def test_not_a_trace_exits_2_naming_the_file(capsys, tmp_path):
    p = tmp_path / "readme.txt"
    p.write_text("just some text that is not a trace\n")
    rc, out, err = view(capsys, p)
    assert rc == 2 and out == ""
    assert err.startswith(f"kcovdf view: error: {p}: not a trace: expected") and "Traceback" not in err
    rc, _, err = view(capsys, tmp_path / "absent")
    assert rc == 2 and "no such file" in err


def test_missing_tables_still_show_records(capsys, tmp_path):
    b = tg.TraceBuilder()
    pc = b.func("app", "f", 3, ("a",))
    b.call(pc, 41).ret(pc, 42)
    p = tg.write_kdf(tmp_path / "bare.kdf", b.buffer())
    rc, out, _ = view(capsys, p)
    assert rc == 0
    assert "# Missing: " + str(p) + ": no type table (class and field names unknown)" in out
    assert body(out)[1:] == [f"{pc:#x}(41)", f"42 = {pc:#x}()"]


def test_corrupt_buffer_reports_what_was_skipped(capsys, tmp_path):
    b = tg.TraceBuilder()
    pc = b.func("app", "f", 3, ("a",))
    b.call(pc, 1).call(pc, 2)
    words = b.buffer()
    words[1] = 0xDEAD << 32  # the first record's header
    words[0] += 10           # and a counter past the end
    rc, out, _ = view(capsys, tg.write_kdf(tmp_path / "c.kdf", words, b.table_lines()))
    assert rc == 0 and body(out)[1:] == ["app.f(a=2)"]
    assert "# Skipped task 0: words 1..6 (6 words): not a valid record header" in out
    assert "counter says" in out


def test_kernel_dump_with_kallsyms(capsys, tmp_path):
    f1, f2 = 0xFFFFFFFFC0001000, 0xFFFFFFFFC0001040
    words = (tg.record(abi.TYPE_ENTRY, 1, f2, 0, [0x11]) + tg.record(abi.TYPE_ENTRY, 2, f2, 1, [0x22])
             + tg.record(abi.TYPE_ENTRY, 3, f1, 0, [abi.FAULT], size=8)
             + tg.record(abi.TYPE_RETURN, 4, f1, 0, [0x1], size=4)
             + tg.record(abi.TYPE_RETURN, 5, f2, 0, [0x33]))
    dump = tmp_path / "dump.bin"
    dump.write_bytes(tg.words_bytes([len(words)] + words + [0] * 16))
    kall = tmp_path / "kallsyms"
    kall.write_text(f"{f1:x} t df_func1\t[eight_args_c]\n{f2:x} t df_func2\t[eight_args_c]\n")
    rc, out, _ = view(capsys, dump, "--kallsyms", kall)
    assert rc == 0
    assert "# Drops unknown for raw kernel buffers (no header)" in out
    assert body(out)[1:] == ["df_func2 [eight_args_c](0x11, 0x22)", "  df_func1 [eight_args_c](FAULT)",
                             "  0x1 = df_func1 [eight_args_c]()", "0x33 = df_func2 [eight_args_c]()"]
    _, out, _ = view(capsys, dump, "--kallsyms", kall, "--raw", "--module", "eight_args_c")
    assert body(out)[0] == "[ENTRY] seq=  1 df_func2 [eight_args_c] arg[0](8) = 0x11"
    rc, _, err = view(capsys, dump, "--ko", tmp_path / "absent.ko")
    assert rc == 2 and "absent.ko: cannot read" in err


def test_end_to_end_device_and_recorder(capsys, tmp_path, recorder):
    from kcovdf import Device
    from kcovdf.runtime import core

    pc = tg.pc_of("e2e", "area", 1)
    core.emit(json.dumps({"t": "sym", "pc": hex(pc), "module": "e2e", "qualname": "area", "file": "e2e.py",
                          "line": 1, "params": [["p", "POSITIONAL_OR_KEYWORD"]]}).encode())
    path = tmp_path / "dev.kdf"
    dev = Device(file=path)
    dev.init_trace(4096)
    dev.enable()
    try:
        core.entry(pc, Point(3, 4))
        core.ret(pc, 12)
    finally:
        dev.disable()
        dev.close()
    rc, out, _ = view(capsys, path)
    assert rc == 0 and body(out)[1:] == ["e2e.area(p=Point(x=3, y=4))", "12 = e2e.area()"]


def test_end_to_end_kcovdf_run(tmp_path):
    (tmp_path / "prog.py").write_text(textwrap.dedent("""
        def add(a, b):
            return a + b

        def main():
            add(1, 2)

        main()
    """))
    run = subprocess.run([sys.executable, "-m", "kcovdf", "run", "-o", "tr", "--include", "__main__",
                          "prog.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    shown = subprocess.run([sys.executable, "-m", "kcovdf", "view", "tr"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    # main() has no parameters: its entry is an ARG_NONE record, and add() is drawn inside it
    assert body(shown.stdout)[1:] == ["__main__.main()", "  __main__.add(a=1, b=2)", "  3 = __main__.add()",
                                      "None = __main__.main()"]


# --- format 2: pairing by call id, resumptions drawn under their resumer ------------------
def _v2(tmp_path, b):
    return tg.write_kdf(tmp_path / "v2.kdf", b.buffer(len(b.words) + 8),
                        b.table_lines((7, 8, "MainThread")), version=2)


def test_resumed_generators_are_drawn_under_their_resumer_and_named_by_their_call(capsys, tmp_path):
    rc, out, _ = view(capsys, _v2(tmp_path, tg.zip_generators()))
    assert rc == 0
    assert body(out)[1:] == [
        "m.main()",
        "  m.gen(a=1, n=2)",
        "    m.helper(x=1)",
        "    1 = m.helper()",
        "  m.gen() yielded 1",
        "  m.gen(a=2, n=2)",
        "    m.helper(x=2)",
        "    2 = m.helper()",
        "  m.gen() yielded 2",
        "  ↻ m.gen(a=1, n=2)  created by m.main()",
        "    m.helper(x=2)",
        "    2 = m.helper()",
        "  m.gen() yielded 2",
        "  ↻ m.gen(a=2, n=2)  created by m.main()",
        "    m.helper(x=3)",
        "    3 = m.helper()",
        "  m.gen() yielded 3",
        "  ↻ m.gen(a=1, n=2)  created by m.main()",
        "  'done1' = m.gen()",
        "  ↻ m.gen(a=2, n=2)  created by m.main()",
        "  m.gen() raised GeneratorExit()",
        "2 = m.main()",
    ]


def test_gathered_coroutines_are_not_drawn_inside_each_other(capsys, tmp_path):
    rc, out, _ = view(capsys, _v2(tmp_path, tg.gather_coroutines()))
    lines = body(out)[1:]
    assert rc == 0 and all(not line.startswith(" ") for line in lines)
    assert [ln for ln in lines if "acoro" in ln and "suspended" not in ln] == [
        "m.acoro(i=0)", "m.acoro(i=1)", "m.acoro(i=2)",
        "↻ m.acoro(i=0)", "0 = m.acoro()", "↻ m.acoro(i=1)", "10 = m.acoro()",
        "↻ m.acoro(i=2)", "20 = m.acoro()"]
    assert lines.count("m.acoro() suspended") == 3


def test_a_function_without_parameters_holds_its_callees(capsys, tmp_path):
    p = _v2(tmp_path, tg.no_parameters())
    _, out, _ = view(capsys, p)
    assert body(out)[1:] == ["m.main()", "  m.add(a=1, b=2)", "  3 = m.add()", "3 = m.main()"]
    _, out, _ = view(capsys, p, "--raw")
    assert body(out)[0] == "[ENTRY] seq=  1 m.main none(8) = 0x0"


def test_raw_view_names_events_with_their_word(capsys, tmp_path):
    _, out, _ = view(capsys, _v2(tmp_path, tg.zip_generators()), "--raw")
    raw = body(out)
    assert "[RESUME] seq= 12 m.gen resume(8) = 0x1" in raw
    b = tg.TraceBuilder()
    f = b.func("m", "f", 1)
    b.call(f, cid=5).suspend(f, 5).word(abi.TYPE_EVENT, f, 9, 0, 5).resume(f, 5).ret(f, 1, cid=5)
    _, out, _ = view(capsys, _v2(tmp_path, b), "--raw")
    assert body(out)[1:4] == ["[SUSPEND] seq=  2 m.f suspend(8) = 0x0", "[EVENT] seq=  3 m.f event(8) = 0x0",
                              "[RESUME] seq=  4 m.f resume(8) = 0x0"]
    _, out, _ = view(capsys, _v2(tmp_path, b))
    assert body(out)[1:] == ["m.f()", "m.f() suspended", "m.f() event 9", "↻ m.f()", "1 = m.f()"]


def _grep(lines, context):
    """Reference: grep's context over whole tasks (what ``_Select`` must give as lines stream)."""
    out = []
    for task in dict.fromkeys(ln.task for ln in lines):
        own = [ln for ln in lines if ln.task == task]
        keep = [any(m.call and abs(i - j) <= (context or 0) for j, m in enumerate(own))
                for i in range(len(own))]
        prev = None
        for i, line in enumerate(own):
            if keep[i]:
                if context is not None and prev is not None and prev != i - 1:
                    out.append(None)
                out.append(line)
                prev = i
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=40),
       st.none() | st.integers(0, 3), st.lists(st.integers(0, 40), max_size=4))
def test_context_of_streamed_lines_is_greps(marks, context, cuts):
    from kcovdf.tools.view import Line, _Select

    # a task's lines are contiguous; ``call`` stands for "the filter matches this line"
    lines = [Line(task, "call", 0, [i], call=match) for i, (task, match) in
             enumerate(sorted(marks, key=lambda m: m[0]))]

    class Matching:
        matching = True

        @staticmethod
        def match(line):
            return line.call

    pick = _Select(Matching(), context)
    got = []
    bounds = sorted({0, len(lines), *(c for c in cuts if c <= len(lines))})
    for a, b in zip(bounds, bounds[1:], strict=False):
        got += list(pick.feed(lines[a:b]))
    assert got == _grep(lines, context)
