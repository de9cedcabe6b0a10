"""Lowering rustc's LLVM IR (LLVM 20-22 syntax) to what LLVM 19's parser accepts.

rustc 1.9x carries a newer LLVM than Debian's llvm-19: its textual IR uses attributes, flags
and debug-info fields that llc-19 rejects (``captures(none)``, ``samesign``,
``keyInstructions:``). Each rule below rewrites one such construct into the LLVM 19 form
that means the same or less: ``captures(none)`` is ``nocapture``, a dropped ``samesign`` or
``captures(address)`` only forgets a fact the optimizer may use (the code stays correct,
never miscompiled: a dropped poison flag or a weaker capture guarantee is always sound).

The rules are not applied blindly: LLVM 19's own parser (``llvm-as-19``) reads the IR, and
the construct at the line and column it refuses picks the rule; the loop ends when the IR
parses, or with a LoweringError naming the line and the construct no rule knows.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kcovdf.errors import KcovdfError
from kcovdf.native import toolchain


class LoweringError(KcovdfError):
    """IR with a construct LLVM 19 does not read and no rule lowers; the message names its line."""

    slug = "lowering"


@dataclass(frozen=True)
class Rule:
    """One construct of newer LLVM: where the parser stops on it, and its LLVM 19 form."""

    name: str
    at: re.Pattern[str]                 # matches the text where llvm-as-19 reports the error
    rewrite: Callable[[str], str]       # the whole module, lowered for this construct


def _sub(pattern: str, repl: str | Callable[[re.Match[str]], str]) -> Callable[[str], str]:
    rx = re.compile(pattern)
    return lambda text: rx.sub(repl, text)


def _memory(text: str) -> str:
    """memory(...) effects: drop the locations LLVM 19 does not know (errnomem, target_mem*)."""
    def one(m: re.Match[str]) -> str:
        parts = [p.strip() for p in m.group(1).split(",")]
        kept = [p for p in parts if not re.match(r"(errnomem|target_mem\d*)\s*:", p)]
        return f"memory({', '.join(kept) or 'none'})" if kept != parts else m.group(0)
    return re.sub(r"memory\(([^()]*)\)", one, text)


def _lifetime(text: str) -> str:
    """llvm.lifetime.start/end lost their size operand (LLVM 22): LLVM 19's i64 -1 (the whole object)."""
    fn = r"@llvm\.lifetime\.(?:start|end)\.p0"
    text = re.sub(rf"(declare void {fn})\((ptr[^)]*)\)", r"\1(i64 immarg, \2)", text)
    return re.sub(rf"(call void {fn})\((ptr [^)]*)\)", r"\1(i64 -1, \2)", text)


RULES: tuple[Rule, ...] = (
    Rule("llvm.lifetime.start/end without a size: size -1", re.compile(r"llvm\.lifetime\.(start|end)"),
         _lifetime),
    Rule("captures(none) is nocapture", re.compile(r"captures\(none\)"),
         _sub(r"\bcaptures\(none\)", "nocapture")),
    Rule("captures(...) other than none: dropped (a weaker guarantee)", re.compile(r"captures\("),
         _sub(r"\s*\bcaptures\([a-z_, ]*\)", "")),
    Rule("icmp samesign: dropped (a poison flag)", re.compile(r"samesign"), _sub(r"\bsamesign ", "")),
    Rule("dead_on_return: dropped", re.compile(r"dead_on_return"),
         _sub(r"\s*\bdead_on_return\b(\(\d+\))?", "")),
    Rule("debug info key instructions: dropped", re.compile(r"(keyInstructions|atomGroup|atomRank):"),
         _sub(r",\s*(keyInstructions|atomGroup|atomRank):\s*\w+", "")),
    Rule("ptrtoaddr is ptrtoint", re.compile(r"ptrtoaddr"), _sub(r"\bptrtoaddr\b", "ptrtoint")),
    Rule("memory(...) locations of newer LLVM: dropped", re.compile(r"(errnomem|target_mem\d*)"), _memory),
    Rule("nocreateundeforpoison: dropped", re.compile(r"nocreateundeforpoison"),
         _sub(r"\s*\bnocreateundeforpoison\b", "")),
    Rule("denormal_fpenv: dropped", re.compile(r"denormal_fpenv"), _sub(r"\s*\bdenormal_fpenv\([^)]*\)", "")),
)

_ERROR = re.compile(r":(\d+):(\d+): error: (.*)$", re.M)


def _parse_error(path: Path) -> tuple[int, int, str] | None:
    """(line, column, message) of llvm-as-19's first error on path, or None if it parses.

    The verifier's errors have no position: line 0, and the message is all it printed.
    """
    done = subprocess.run([toolchain.tool("llvm-as"), str(path), "-o", "/dev/null"],
                          capture_output=True, text=True)
    if done.returncode == 0:
        return None
    m = _ERROR.search(done.stderr)
    if not m:
        return 0, 0, done.stderr.split("LLVM ERROR")[0].strip()
    return int(m.group(1)), int(m.group(2)), m.group(3)


def lower(src: str | Path, out: str | Path, max_rounds: int = 64) -> list[str]:
    """Write src's IR, lowered for LLVM 19, to out; the names of the rules applied."""
    src, out = Path(src), Path(out)
    text = src.read_text()
    out.write_text(text)
    applied: list[str] = []
    for _ in range(max_rounds):
        err = _parse_error(out)
        if err is None:
            return applied
        line, col, message = err
        source = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        # the construct the parser stopped at, or the nearest one before it on that line;
        # the verifier's own words (with the instructions it quotes) when it has no position
        window = source[max(0, col - 60):col + 40] if line else message
        rule = next((r for r in RULES if r.name not in applied and r.at.search(window)), None)
        if rule is None:
            where = f"{src}:{line}:{col}" if line else f"{src} (the verifier)"
            raise LoweringError(f"{where}: LLVM 19 cannot read this construct and kcovdf knows no "
                                f"lowering for it: {message[:400]}\n  {source.strip()[:200]}")
        lowered = rule.rewrite(text)
        if lowered == text:
            raise LoweringError(f"{src}:{line}:{col}: the rule '{rule.name}' changed nothing: {message}")
        text = lowered
        applied.append(rule.name)
        out.write_text(text)
    raise LoweringError(f"{src}: still not readable by LLVM 19 after {max_rounds} rewrites")
