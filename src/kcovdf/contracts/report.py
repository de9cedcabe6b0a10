"""How a check's findings are written: text (rich on a terminal), JSON, SARIF 2.1.0, JUnit XML."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import TextIO
from xml.sax.saxutils import quoteattr

from kcovdf import __version__
from kcovdf.contracts.check import Finding, Result

FORMATS = ("text", "json", "sarif", "junit")


def fingerprint(owner: str, invariant: str) -> str:
    """A contract's stable identity: it survives line moves (SARIF partialFingerprints)."""
    return hashlib.sha1(f"{owner}\0{invariant}".encode()).hexdigest()


def rule_id(owner: str, invariant: str) -> str:
    """A contract's SARIF ruleId."""
    return "KDF-" + fingerprint(owner, invariant)[:10]


def baseline_keys(path: str) -> set[str]:
    """The fingerprints of the violations in a previous ``--format json`` or ``sarif`` output."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict) and "runs" in data:
        return {r.get("partialFingerprints", {}).get("kcovdfContract/v1", "")
                for run in data["runs"] for r in run.get("results", [])}
    if isinstance(data, list):
        return {fingerprint(d.get("owner", d["function"]), d["invariant"]) for d in data}
    raise ValueError("neither a kcovdf JSON list nor a SARIF log")


def _line(f: Finding) -> str:
    values = ", ".join(f"{k}={v}" for k, v in f.values.items())
    where = f"task {f.task}" + (f", seq {f.seq}" if f.seq is not None else "")
    chain = (" <- " + " <- ".join(f.context[:4]) + (" …" if len(f.context) > 4 else "")) if f.context else ""
    return f"{f.function} call #{f.ordinal} ({where}): {f.invariant}  [{values}]{chain}"


def text(result: Result, out: TextIO, *, pretty: bool | None = None, novelty: bool = True) -> None:
    """The human report: each violation, a count per contract, the warnings' counts."""
    if pretty is None:
        pretty = out.isatty()
    lines: list[tuple[str, str]] = []
    for f in result.violations:
        lines.append(("bold red", f"VIOLATION [{f.kind}] {_line(f)}"))
    if novelty:  # one line per contract: a new input breaks many calls alike
        first: dict[tuple[str, str], Finding] = {}
        for f in result.novelties:
            first.setdefault((f.owner, f.invariant), f)
        for key, f in sorted(first.items()):
            lines.append(("yellow", f"novelty ×{result.novel[key]} [{f.kind}] {f.owner}: {f.invariant}  "
                                    f"(first: {_line(f)})"))
    summary = [f"{n:>6} × {owner}: {inv}" for (owner, inv), n in sorted(result.broken.items())]
    head = (f"kcovdf contracts: {len(result.violations)} violations of {len(result.broken)} contracts, "
            f"{len(result.novelties)} novelty warnings; {result.checked} contract checks over "
            f"{result.calls} calls")
    if pretty:
        from rich.console import Console
        console = Console(file=out, highlight=False)
        for style, line in lines:
            console.print(line, style=style, markup=False)
        for line in summary:
            console.print(line, markup=False)
        console.print(head, style="bold", markup=False)
        return
    for _, line in lines:
        out.write(line + "\n")
    for line in summary:
        out.write(line + "\n")
    out.write(head + "\n")


def as_json(findings: Iterable[Finding], out: TextIO) -> None:
    """One object per violation (README of ``check``)."""
    rows = []
    for f in findings:
        row = f.json()
        row["owner"] = f.owner
        rows.append(row)
    json.dump(rows, out, indent=1, ensure_ascii=False)
    out.write("\n")


def sarif(result: Result, files: dict[str, tuple[str, int]], out: TextIO, root: str | None = None) -> None:
    """A SARIF 2.1.0 log: one rule per broken contract, one result per violating call."""
    root = os.path.abspath(root or os.getcwd())
    rules: dict[str, dict] = {}
    results = []
    for f in result.violations:
        rid = rule_id(f.owner, f.invariant)
        rules.setdefault(rid, {"id": rid, "name": f"{f.kind} contract of {f.owner}",
                               "shortDescription": {"text": f"{f.owner}: {f.invariant}"},
                               "properties": {"kind": f.kind, "owner": f.owner}})
        path, line = files.get(f.function, ("", 0))
        if path and os.path.isabs(path):
            rel = os.path.relpath(path, root)
            path = rel if not rel.startswith("..") else path
        location = {"physicalLocation": {"artifactLocation": {"uri": path.replace(os.sep, "/") or f.function},
                                         "region": {"startLine": max(int(line), 1)}}}
        results.append({
            "ruleId": rid, "level": "error",
            "message": {"text": f"{f.function} call #{f.ordinal} breaks {f.invariant} "
                                f"({', '.join(f'{k}={v}' for k, v in f.values.items())})"},
            "locations": [location],
            "partialFingerprints": {"kcovdfContract/v1": fingerprint(f.owner, f.invariant)},
            "properties": {"ordinal": f.ordinal, "task": f.task, "seq": f.seq, "context": f.context},
        })
    log = {"version": "2.1.0",
           "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
           "runs": [{"tool": {"driver": {"name": "kcovdf", "version": __version__,
                                         "informationUri": "https://github.com/kcovdf/kcovdf",
                                         "rules": list(rules.values())}},
                     "results": results}]}
    json.dump(log, out, indent=1)
    out.write("\n")


def junit(result: Result, out: TextIO) -> None:
    """JUnit XML: one test case per broken contract (failing) and one passing case for the rest."""
    by: dict[tuple[str, str], list[Finding]] = {}
    for f in result.violations:
        by.setdefault((f.owner, f.invariant), []).append(f)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f'<testsuite name="kcovdf contracts" tests="{max(result.checked, len(by))}" '
              f'failures="{len(by)}" errors="0">\n')
    for (owner, inv), fs in sorted(by.items()):
        out.write(f'  <testcase classname={quoteattr(owner)} name={quoteattr(inv)}>\n')
        body = "\n".join(_line(f) for f in fs)
        out.write(f'    <failure message={quoteattr(f"{len(fs)} violating calls")}>'
                  f'{_escape(body)}</failure>\n  </testcase>\n')
    passed = result.checked - len(by)
    if passed > 0:
        out.write(f'  <testcase classname="kcovdf" name={quoteattr(f"{passed} contract checks held")}/>\n')
    out.write("</testsuite>\n")


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
