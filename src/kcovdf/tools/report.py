"""``kcovdf report``: one self-contained HTML page about a trace.

Calls per function, value distributions of every argument and return (histograms for
numbers, top-k bars for strings, booleans and classes), exceptions, FAULTs, redactions,
drops and tasks. The page references nothing outside itself: CSS is inline and plots are
base64 PNG ``data:`` images, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import argparse
import base64
import collections
import html
import io
import json
import string
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kcovdf import abi, tracefile
from kcovdf.cli import add_trace_argument
from kcovdf.errors import KcovdfError
from kcovdf.read.decode import Trace
from kcovdf.symbols import add_symbol_arguments, kernel_symbols_from_args
from kcovdf.tools.sql import Database, connect

#: bars shown in a top-k plot; the rest is summed into one "(other)" bar
TOP_K = 10
#: functions given value plots, most called first (the call table lists them all)
MAX_PLOTTED_FUNCTIONS = 60
_NUMERIC = {"builtins.int", "builtins.float"}


@dataclass
class Slot:
    """The values one parameter (or the return) of one function took: counted by SQL, so
    the report holds its counts, not its records."""

    label: str
    classes: collections.Counter = field(default_factory=collections.Counter)
    #: the top values (by count) of a slot of strs, bools and Nones, and the count of the rest
    texts: collections.Counter = field(default_factory=collections.Counter)
    other: int = 0
    #: a histogram of the numbers: bin edges and the count in each bin
    edges: list[float] = field(default_factory=list)
    bins: list[int] = field(default_factory=list)


def _marks(value: Any, found: set[str]) -> set[str]:
    """Add "FAULT" / "redacted" to ``found`` when a structured value is or holds one."""
    if isinstance(value, dict):
        if value.get("fault") or "FAULT" in value.get("words", ()):
            found.add("FAULT")
        if value.get("redacted") or value.get("form") == "redacted":
            found.add("redacted")
        for v in value.values():
            _marks(v, found)
    elif isinstance(value, list):
        for v in value:
            _marks(v, found)
    return found


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]], numeric: frozenset[int] = frozenset()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_esc(v)}</td>' if i in numeric else f"<td>{_esc(v)}</td>"
        for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img class="plot" alt="plot" src="data:image/png;base64,{data}">'


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _top(counter: collections.Counter, other: int = 0) -> tuple[list[str], list[int]]:
    common = counter.most_common(TOP_K)
    labels = [_short(k) for k, _ in common]
    counts = [n for _, n in common]
    rest = sum(counter.values()) - sum(counts) + other
    if rest:
        labels.append("(other)")
        counts.append(rest)
    return labels[::-1], counts[::-1]


def _plot_slot(ax: Any, slot: Slot) -> None:
    """A histogram when every value is a number, otherwise top-k bars of values or classes."""
    total = sum(slot.classes.values())
    if slot.bins and set(slot.classes) <= _NUMERIC:
        centers = [(a + b) / 2 for a, b in zip(slot.edges, slot.edges[1:], strict=False)]
        ax.hist(centers, bins=slot.edges, weights=slot.bins, color="#0969da", edgecolor="white")
        ax.set_ylabel("count")
        ax.set_title(f"{slot.label}  (n={total}, numeric)", fontsize=9)
        return
    only_simple = set(slot.classes) <= {"builtins.str", "builtins.bool", "builtins.NoneType"}
    counter = slot.texts if only_simple else collections.Counter(
        {c.rsplit(".", 1)[-1]: n for c, n in slot.classes.items()})
    labels, counts = _top(counter, slot.other if only_simple else 0)
    ax.barh(range(len(labels)), counts, color="#8250df" if only_simple else "#1a7f37")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("count")
    ax.set_title(f"{slot.label}  (n={total}, {'values' if only_simple else 'classes'})", fontsize=9)


def _figure(slots: list[Slot]) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit: the report is built headless
    import matplotlib.pyplot as plt

    per_row = 4
    rows = (len(slots) + per_row - 1) // per_row
    cols = min(per_row, len(slots))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, slot in zip(axes.flat, slots, strict=False):
        _plot_slot(ax, slot)
    for ax in list(axes.flat)[len(slots):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _png(fig)


def _calls_plot(names: list[str], counts: list[int]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(zip(names, counts, strict=True))[:30][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(shown) + 0.9))
    ax.barh(range(len(shown)), [n for _, n in shown], color="#0969da")
    ax.set_yticks(range(len(shown)), [_short(f, 48) for f, _ in shown], fontsize=8, family="monospace")
    ax.set_xlabel("calls")
    fig.tight_layout()
    return _png(fig)


#: The slots of the value plots: a parameter's entry records, or a function's returns.
_SLOT = """kind IN ('entry', 'return') AND NOT (kind = 'entry' AND arg_idx = 253)"""
_SIMPLE = ("builtins.str", "builtins.bool", "builtins.NoneType")
#: Records that may hold a FAULT or a redaction: a FAULT or REDACTED word, a FAULT or
#: REDACTED field kind in the layout word, or the REDACTED form (docs/abi.md §2).
_MAY_BE_MARKED = (f"list_has_any(\"values\", [{abi.FAULT}::UBIGINT, {abi.REDACTED}::UBIGINT]) OR "
                  f"(len(\"values\") >= 2 AND (((\"values\"[2] >> 52) & 15) = {int(abi.Form.REDACTED)} OR "
                  + " OR ".join(f"((\"values\"[2] >> {4 * j}) & 15) IN ({int(abi.Kind.FAULT)}, "
                                f"{int(abi.Kind.REDACTED)})" for j in range(abi.MAX_FIELDS)) + "))")


def _slots(con: Any) -> dict[str, dict[tuple[int, int], Slot]]:
    """The value distribution of every parameter and return, aggregated by DuckDB."""
    slots: dict[str, dict[tuple[int, int], Slot]] = collections.defaultdict(dict)

    def slot(function: str, kind: str, arg_idx: int, param: str | None) -> Slot:
        key = (0, arg_idx) if kind == "entry" else (1, 0)
        return slots[function].setdefault(key, Slot(param if kind == "entry" else "return"))

    simple = ", ".join(f"'{c}'" for c in _SIMPLE)
    numeric = ", ".join(f"'{c}'" for c in sorted(_NUMERIC))
    # one pass over the records: each class read once, each text only where it is plotted
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _slots AS
        SELECT function, kind, arg_idx, param, coalesce(class, '?') AS class,
               CASE WHEN class IN ({numeric}) AND isfinite(number) THEN number END AS number,
               CASE WHEN class IN ({simple}) THEN rendered END AS text
        FROM records WHERE {_SLOT}""")
    for function, kind, arg_idx, param, cls, n in con.sql("""
            SELECT function, kind, arg_idx, any_value(param), class, count(*)
            FROM _slots GROUP BY ALL""").fetchall():
        slot(function, kind, arg_idx, param).classes[cls] += n
    for function, kind, arg_idx, param, text, n in con.sql(f"""
            WITH v AS (SELECT function, kind, arg_idx, any_value(param) AS param, text, count(*) AS n
                       FROM _slots WHERE text IS NOT NULL GROUP BY ALL)
            SELECT * FROM v QUALIFY row_number() OVER (PARTITION BY function, kind, arg_idx
                                                       ORDER BY n DESC, text) <= {TOP_K}
            """).fetchall():
        slot(function, kind, arg_idx, param).texts[text] += n
    for per in slots.values():
        for s in per.values():
            s.other = sum(n for c, n in s.classes.items() if c in _SIMPLE) - sum(s.texts.values())
    for function, kind, arg_idx, param, lo, hi, nbins, counts in con.sql("""
            WITH d AS (SELECT function, kind, arg_idx, number FROM _slots
                       WHERE number IS NOT NULL GROUP BY ALL),
            r AS (SELECT function, kind, arg_idx, min(number) AS lo, max(number) AS hi,
                         least(20, count(*)) AS nbins
                  FROM d GROUP BY ALL),
            b AS (SELECT v.function, v.kind, v.arg_idx, any_value(v.param) AS param,
                         any_value(lo) AS lo, any_value(hi) AS hi, any_value(nbins) AS nbins,
                         CASE WHEN hi = lo THEN 0 ELSE least(CAST(floor((number - lo) / (hi - lo) * nbins)
                              AS BIGINT), nbins - 1) END AS bin, count(*) AS n
                  FROM _slots v JOIN r USING (function, kind, arg_idx) WHERE v.number IS NOT NULL
                  GROUP BY v.function, v.kind, v.arg_idx, bin)
            SELECT function, kind, arg_idx, any_value(param), any_value(lo), any_value(hi),
                   any_value(nbins), list((bin, n))
            FROM b GROUP BY ALL""").fetchall():
        s = slot(function, kind, arg_idx, param)
        # numpy's edges: one bin of width 1 around a value that never varied
        lo, hi = (lo - 0.5, hi + 0.5) if hi == lo else (lo, hi)
        s.edges = [lo + (hi - lo) * i / nbins for i in range(nbins + 1)]
        s.bins = [0] * nbins
        for pair in counts:
            b, n = (pair["bin"], pair["n"]) if isinstance(pair, dict) else pair
            s.bins[b] += n
    con.execute("DROP TABLE _slots")
    return slots


def _sections(trace: Trace, con: Any | None = None) -> str:
    con = con if con is not None else connect(trace)
    counts = con.sql("""
        SELECT function, count(*) AS calls, count(*) FILTER (WHERE exit = 'return') AS returned,
               count(*) FILTER (WHERE exit = 'exception') AS raised,
               count(*) FILTER (WHERE exit IS NULL) AS unfinished, sum(yields) AS yields,
               sum(resumes) AS resumes
        FROM calls_light GROUP BY function ORDER BY calls DESC, function""").fetchall()
    # from the exception records themselves: the calls view would gather every call's values
    exceptions = con.sql("""
        SELECT c.function, r.class AS result_class, count(*) AS n, any_value(r.rendered) AS example
        FROM calls_light c JOIN records r ON r.call = c.call
        WHERE c.exit = 'exception' AND r.kind = 'exception' GROUP BY ALL ORDER BY n DESC""").fetchall()
    tasks = con.sql("""
        WITH r AS (SELECT task, count(*) AS n FROM records GROUP BY task),
             c AS (SELECT task, count(*) AS n FROM calls_light GROUP BY task)
        SELECT t.task, t.pid, t.tid, t.name, t.encoding, t.words, t.drops,
               coalesce(r.n, 0) AS records, coalesce(c.n, 0) AS calls, t.source
        FROM tasks t LEFT JOIN r USING (task) LEFT JOIN c USING (task) ORDER BY t.task""").fetchall()
    records = sum(row[7] for row in tasks)
    slots = _slots(con)
    marked: collections.Counter = collections.Counter()
    for function, kind, param, value in con.sql(f"""
            SELECT function, kind, param, value FROM records WHERE {_MAY_BE_MARKED}""").fetchall():
        where = f"{function} {param if kind == 'entry' else kind}"
        for mark in _marks(json.loads(value), set()):
            marked[where, mark] += 1

    total_calls = sum(row[1] for row in counts)
    skipped = sum(s.count for s in trace.skipped)
    cards = [("records", records, False), ("calls", total_calls, False),
             ("functions", len(counts), False), ("tasks", len(trace.tasks), False),
             ("exceptions", sum(row[2] for row in exceptions), False),
             ("drops", trace.drops, trace.drops > 0), ("skipped words", skipped, skipped > 0),
             ("FAULT values", sum(n for (_, m), n in marked.items() if m == "FAULT"), False)]
    out = ['<div class="cards">' + "".join(
        f'<div class="card{" bad" if bad else ""}"><b>{n}</b>{_esc(label)}</div>'
        for label, n, bad in cards) + "</div>"]
    notes = [*trace.missing, *trace.notes]
    if notes:
        out.append('<ul class="notes warn">' + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")

    out.append('<h2 id="calls">Calls per function</h2>')
    if counts:
        out.append(_calls_plot([r[0] for r in counts], [r[1] for r in counts]))
    out.append(_table(["function", "calls", "returned", "raised", "unfinished", "yields", "resumes"],
                      [list(r) for r in counts], numeric=frozenset({1, 2, 3, 4, 5, 6})))

    out.append('<h2 id="problems">Exceptions, FAULTs and drops</h2>')
    out.append("<h3>Exceptions</h3>")
    out.append(_table(["function", "exception", "count", "example"], [list(r) for r in exceptions],
                      numeric=frozenset({2})) if exceptions else '<p class="muted">No function raised.</p>')
    out.append("<h3>FAULT and redacted values</h3>")
    rows = [[where, mark, n] for (where, mark), n in sorted(marked.items())]
    out.append(_table(["where", "mark", "records"], rows, numeric=frozenset({2})) if rows else
               '<p class="muted">No value was FAULT or redacted.</p>')
    out.append("<h3>Drops and skipped words</h3>")
    drop_rows = [[r[0], r[1], r[2], r[3], "unknown" if r[6] is None else r[6]] for r in tasks]
    out.append(_table(["task", "pid", "tid", "name", "records dropped (buffer full)"], drop_rows,
                      numeric=frozenset({0, 1, 2, 4})))
    if trace.skipped:
        out.append(_table(["task", "word offset", "words", "reason"],
                          [[s.task, s.offset, s.count, s.reason] for s in trace.skipped],
                          numeric=frozenset({0, 1, 2})))

    out.append('<h2 id="tasks">Tasks</h2>')
    out.append(_table(["task", "pid", "tid", "name", "encoding", "words", "drops", "records", "calls",
                       "source"], [list(r) for r in tasks], numeric=frozenset({0, 1, 2, 5, 6, 7, 8})))

    out.append('<h2 id="values">Value distributions</h2>')
    plotted = [row[0] for row in counts if row[0] in slots][:MAX_PLOTTED_FUNCTIONS]
    if len(slots) > len(plotted):
        out.append(f'<p class="muted">Plots for the {len(plotted)} most called functions of '
                   f"{len(slots)}.</p>")
    for function in plotted:
        out.append(f"<h3>{_esc(function)}</h3>")
        out.append(_figure([slots[function][k] for k in sorted(slots[function])]))
    return "\n".join(out)


def render(trace: Trace, source: str, con: Any | None = None) -> str:
    """The report page of ``trace`` (read from ``source``) as HTML text.

    ``con``: a connection with kcovdf sql's views of the trace (``kcovdf.tools.sql.Database``
    for a trace streamed from disk); by default one over ``trace`` in memory.
    """
    page = string.Template((resources.files("kcovdf.tools") / "templates" / "report.html").read_text("utf-8"))
    return page.substitute(title=_esc(source), body=_sections(trace, con))


def write(trace: Trace, source: str, out: Path, con: Any | None = None) -> Path:
    """Write the report of ``trace`` to ``out``, created 0600."""
    text = render(trace, source, con)
    with tracefile.private_file(out) as f:
        f.write(text.encode("utf-8"))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``kcovdf report``."""
    add_trace_argument(parser)
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"),
                        help="HTML file to write (default: report.html)")
    add_symbol_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``kcovdf report``; 1 when the trace cannot be read or the file written."""
    from kcovdf.read import decode

    try:
        with Database(decode.batches(args.trace, kernel=kernel_symbols_from_args(args))) as db:
            path = write(db.trace, str(args.trace), args.output, db.con)
    except (KcovdfError, OSError) as exc:
        print(f"kcovdf report: {exc}", file=sys.stderr)
        return 1
    print(f"kcovdf report: {path}", file=sys.stderr)
    return 0
