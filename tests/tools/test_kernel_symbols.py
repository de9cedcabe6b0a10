"""One resolver for every tool: view, export, sql and report name kernel functions through --kallsyms/--ko."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tracegen as tg
from kcovdf import abi, cli

F1, F2 = 0xFFFFFFFFC0001000, 0xFFFFFFFFC0001040


@pytest.fixture
def kernel_dump(tmp_path: Path) -> tuple[Path, Path]:
    """A raw kernel buffer dump (df_func2 calls df_func1) and a kallsyms file naming both."""
    words = (tg.record(abi.TYPE_ENTRY, 1, F2, 0, [0x11]) + tg.record(abi.TYPE_ENTRY, 2, F2, 1, [0x22])
             + tg.record(abi.TYPE_ENTRY, 3, F1 + 4, 0, [0x5])
             + tg.record(abi.TYPE_RETURN, 4, F1 + 4, 0, [0x6])
             + tg.record(abi.TYPE_RETURN, 5, F2, 0, [0x33]))
    dump = tmp_path / "dump.bin"
    dump.write_bytes(tg.words_bytes([len(words)] + words + [0] * 16))
    kall = tmp_path / "kallsyms"
    kall.write_text(f"{F1:x} t df_func1\t[eight_args_c]\n{F2:x} t df_func2\t[eight_args_c]\n")
    return dump, kall


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_view_export_sql_and_report_name_kernel_functions(kernel_dump, tmp_path, capsys) -> None:
    dump, kall = kernel_dump
    names = ["df_func2 [eight_args_c]", "df_func1+0x4 [eight_args_c]"]

    rc, out, _ = run(capsys, "view", dump, "--kallsyms", kall)
    assert rc == 0 and all(n in out for n in names)

    jsonl = tmp_path / "out.jsonl"
    rc, _, err = run(capsys, "export", dump, "--format", "jsonl", "-o", jsonl, "--kallsyms", kall)
    assert rc == 0 and "--kallsyms" not in err  # no hint to pass the flag just passed
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["function"] for r in rows] == [names[0], names[0], names[1], names[1], names[0]]
    assert [r["param"] for r in rows[:3]] == ["arg0", "arg1", "arg0"]

    rc, out, _ = run(capsys, "sql", dump, "SELECT function, depth FROM calls ORDER BY entry_seq",
                     "--json", "--kallsyms", kall)
    assert rc == 0 and json.loads(out) == [{"function": names[0], "depth": 0},
                                           {"function": names[1], "depth": 1}]
    rc, out, _ = run(capsys, "sql", dump, "SELECT qualname, module, function FROM symbols ORDER BY pc",
                     "--json", "--kallsyms", kall)
    assert json.loads(out) == [{"qualname": "df_func1", "module": "eight_args_c", "function": names[1]},
                               {"qualname": "df_func2", "module": "eight_args_c", "function": names[0]}]

    page = tmp_path / "report.html"
    rc, _, _ = run(capsys, "report", dump, "-o", page, "--kallsyms", kall)
    assert rc == 0 and all(n in page.read_text("utf-8") for n in names)


def test_without_kernel_symbols_every_tool_shows_pcs_and_names_the_flag(kernel_dump, tmp_path,
                                                                        capsys) -> None:
    dump, _ = kernel_dump
    rc, _, err = run(capsys, "export", dump, "--format", "jsonl", "-o", tmp_path / "o.jsonl")
    assert rc == 0 and "(use --kallsyms/--ko)" in err
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rows[0]["function"] == f"{F2:#x}"
    rc, out, _ = run(capsys, "sql", dump, "SELECT DISTINCT function FROM records ORDER BY 1", "--json")
    assert json.loads(out) == [{"function": f"{F1 + 4:#x}"}, {"function": f"{F2:#x}"}]


@pytest.mark.parametrize("tool", ["view", "export", "sql", "report"])
def test_a_bad_symbol_argument_is_a_clear_error(tool: str, kernel_dump, tmp_path, capsys) -> None:
    dump, kall = kernel_dump
    extra = {"view": [], "export": ["--format", "jsonl", "-o", tmp_path / "o"],
             "sql": ["SELECT 1"], "report": ["-o", tmp_path / "r.html"]}[tool]
    rc, _, err = run(capsys, tool, dump, *extra, "--ko", f"{kall}@zz")
    assert rc != 0 and "--ko" in err and "'zz' is not a hex address" in err
    rc, _, err = run(capsys, tool, dump, *extra, "--kallsyms", tmp_path / "absent")
    assert rc != 0 and "absent: cannot read kallsyms file" in err
