"""The end-of-run page of ``-report=FILE``: a summary and plots of coverage, features and exec/s.

One self-contained HTML file (inline SVG, no script, no library), written 0600, from the
series the engine keeps at each status line: (seconds, runs, cov, ft, corpus size).
"""

from __future__ import annotations

import html
import os
from typing import Any

from kcovdf import tracefile

_W, _H, _PAD = 640, 180, 40


def _plot(title: str, points: list[tuple[float, float]], colour: str) -> str:
    if not points:
        return f"<h2>{html.escape(title)}</h2><p>no data</p>"
    t_max = max(t for t, _ in points) or 1.0
    v_max = max(v for _, v in points) or 1.0
    coords = " ".join(f"{_PAD + (_W - 2 * _PAD) * t / t_max:.1f},"
                      f"{_H - _PAD - (_H - 2 * _PAD) * v / v_max:.1f}" for t, v in points)
    return (f"<h2>{html.escape(title)}</h2>"
            f'<svg width="{_W}" height="{_H}" role="img" aria-label="{html.escape(title)}">'
            f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#888"/>'
            f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#888"/>'
            f'<text x="{_PAD}" y="{_PAD - 8}" font-size="12">{v_max:,.0f}</text>'
            f'<text x="{_W - _PAD}" y="{_H - _PAD + 16}" font-size="12" text-anchor="end">'
            f'{t_max:.1f} s</text>'
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/></svg>')


def render(engine: Any) -> str:
    """The page for the run of ``engine`` (a kcovdf.fuzz.engine.Engine)."""
    st = engine.stats
    series = list(st.series)
    cov, ft = engine.counts()
    series.append((st.elapsed(), st.runs, cov, ft, len(engine.corpus)))
    speed = [(t, runs / t if t > 0 else 0.0) for t, runs, *_ in series]
    rows = [("runs", f"{st.runs:,}"), ("seconds", f"{st.elapsed():.1f}"), ("exec/s", f"{st.exec_per_s():,}"),
            ("branches covered (cov)", f"{cov:,}"), ("features (ft)", f"{ft:,}"),
            ("corpus inputs", f"{len(engine.corpus):,}"), ("dictionary words", f"{len(engine.words):,}"),
            ("seed", str(engine.seed)), ("outcome", html.escape(engine.outcome))]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>kcovdf fuzz report</title>"
            "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}</style>"
            "</head><body><h1>kcovdf fuzz</h1><table>" + table + "</table>"
            + _plot("coverage (cov) over time", [(t, c) for t, _, c, _, _ in series], "#1f77b4")
            + _plot("features (ft) over time", [(t, f) for t, _, _, f, _ in series], "#2ca02c")
            + _plot("exec/s over time", speed, "#d62728") + "</body></html>\n")


def write(path: str, engine: Any) -> None:
    """Write the page to ``path`` (0600), creating its directory."""
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with tracefile.private_file(path) as f:
        f.write(render(engine).encode("utf-8"))
