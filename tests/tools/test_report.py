"""kcovdf report: a self-contained page naming every function; and the tools on a live Device trace."""

from __future__ import annotations

import argparse
import json
import re
import stat
from pathlib import Path

import pytest

import exportgen
import tracegen as tg
from kcovdf import abi
from kcovdf.read import decode
from kcovdf.runtime import core
from kcovdf.runtime.device import Device
from kcovdf.tools import report, sql
from kcovdf.tools.export.daikon import DaikonExporter


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    return report.main(parser.parse_args(argv))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("report")
    task = exportgen.sample_task()
    odd = task.function("app", "<lambda>", ["x"], line=80)  # a name that is also HTML
    task.call(odd, "<b>", ret=None)
    worker = exportgen.TaskTrace(4242, 4250, "worker-1")
    worker.call(worker.function("geo", "add", ["a", "b"], line=3), 1, 2, ret=3)
    worker.drops = 3
    trace = exportgen.write_dir(base / "trace", [task, worker])
    out = base / "report.html"
    assert _run([str(trace), "-o", str(out)]) == 0
    return out, out.read_text("utf-8")


def test_report_is_self_contained_and_private(page: tuple[Path, str]) -> None:
    path, text = page
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text and "@import" not in text
    images = re.findall(r"<img [^>]*src=\"([^\"]+)\"", text)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)


def test_report_lists_every_function_with_its_count(page: tuple[Path, str]) -> None:
    _, text = page
    counts = {"geo.add": 8, "geo.Point.norm": 4, "app.parse": 3, "app.greet": 2, "app.login": 1,
              "app.numbers": 1, "app.tick": 1, "app.&lt;lambda&gt;": 1}
    for function, n in counts.items():
        assert re.search(rf"<tr><td>{re.escape(function)}</td><td class=\"num\">{n}</td>", text), function
    assert "app.<lambda>" not in text  # names are escaped, never markup


def test_report_shows_exceptions_faults_drops_and_tasks(page: tuple[Path, str]) -> None:
    _, text = page
    assert "<td>app.parse</td><td>builtins.ValueError</td>" in text
    assert "<td>geo.Point.norm self</td><td>FAULT</td>" in text
    assert "<td>app.login password</td><td>redacted</td>" in text
    assert '<td>worker-1</td><td class="num">3</td>' in text  # drops of the worker task
    assert text.count('<h3>geo.add</h3>') == 1  # its value plots


def test_unreadable_trace_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([str(tmp_path / "none"), "-o", str(tmp_path / "r.html")]) == 1
    assert "none" in capsys.readouterr().err and not (tmp_path / "r.html").exists()


def test_tools_on_a_trace_recorded_through_a_device(recorder: core.Recorder, tmp_path: Path) -> None:
    path = tmp_path / "live.kdf"
    pc = abi.fnv1a64(b"e2e:scale:1")
    sym = {"t": "sym", "pc": hex(pc), "module": "e2e", "qualname": "scale", "file": "e2e.py",
           "line": 1, "params": [["p", "POSITIONAL_OR_KEYWORD"], ["k", "POSITIONAL_OR_KEYWORD"]]}
    with Device(file=path, task_line=True) as dev:
        dev.init_trace(4096)
        core.emit(json.dumps(sym).encode(), remember=False)
        dev.enable()
        for k in range(4):
            core.entry(pc, exportgen.Point(k, 2 * k), k)
            core.ret(pc, k * 10)
        dev.disable()
    trace = decode.load(path)
    rows = sql.query(trace, "SELECT args, result FROM calls ORDER BY call").to_pylist()
    assert rows == [{"args": [f"Point(x={k}, y={2 * k})", str(k)], "result": str(k * 10)} for k in range(4)]
    html = report.render(trace, str(path))
    assert re.search(r"<tr><td>e2e.scale</td><td class=\"num\">4</td>", html)
    decls, dtrace = DaikonExporter().write(trace, tmp_path / "live")
    assert "variable p.y\n  var-kind field y\n  enclosing-var p\n" in decls.read_text()
    assert dtrace.read_text().count("e2e.scale(p,k):::EXIT1\n") == 4


def test_report_of_a_format_2_trace_counts_each_call_once(tmp_path: Path) -> None:
    b = tg.zip_generators()
    trace = tg.write_dir(tmp_path / "trace", {(7, 8, "MainThread"): b}, version=2)
    out = tmp_path / "report.html"
    assert _run([str(trace), "-o", str(out)]) == 0
    text = out.read_text("utf-8")
    cells = "".join(f'<td class="num">{n}</td>' for n in (2, 1, 1, 0, 4, 4))
    assert f"<tr><td>m.gen</td>{cells}</tr>" in text  # 2 calls: returned, raised, 4 yields, 4 resumes
    cells = "".join(f'<td class="num">{n}</td>' for n in (1, 1, 0, 0, 0, 0))
    assert f"<tr><td>m.main</td>{cells}</tr>" in text
    assert "m.main None" not in text  # main()'s ARG_NONE entry is no parameter
