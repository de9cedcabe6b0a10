"""Checking: every call of a trace that breaks a contract, found column by column.

A broken contract is reported by its ``effective`` enforcement (``model.Contract``):

- ``violation``: always a violation;
- ``novelty``: a warning (an input training never passed: a learned precondition, or a
  parameter that was constant in training and is not now);
- ``conditional``: a violation when the call's inputs were all within training (no
  novelty for that call), else a warning: a result outside the trained range is expected
  of an input outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcovdf.contracts import expr
from kcovdf.contracts.expr import Ref
from kcovdf.contracts.model import Contract, ContractSet, Spec, is_sign
from kcovdf.contracts.observe import Function, Observations, Variable

#: Callers named in a finding's context, innermost first.
CONTEXT_DEPTH = 16


@dataclass
class Finding:
    """One call that broke one contract."""

    function: str
    ordinal: int
    call: int
    task: int
    seq: int | None
    invariant: str
    kind: str
    severity: str  #: violation or novelty
    values: dict[str, str]
    context: list[str]
    owner: str     #: the function, or the class of an object invariant

    def json(self) -> dict[str, Any]:
        """The JSON object of ``check --format json``."""
        return {"function": self.function, "ordinal": self.ordinal, "task": self.task, "seq": self.seq,
                "invariant": self.invariant, "kind": self.kind, "values": self.values,
                "context": self.context, "severity": self.severity}


@dataclass
class Result:
    """What a check found."""

    findings: list[Finding] = field(default_factory=list)
    checked: int = 0              #: contracts checked
    calls: int = 0                #: calls of functions with contracts
    drops: int = 0
    broken: dict[tuple[str, str], int] = field(default_factory=dict)  #: (owner, expr) -> violations
    novel: dict[tuple[str, str], int] = field(default_factory=dict)   #: (owner, expr) -> warnings

    @property
    def violations(self) -> list[Finding]:
        """The findings that are violations."""
        return [f for f in self.findings if f.severity == "violation"]

    @property
    def novelties(self) -> list[Finding]:
        """The findings that are warnings: inputs training never saw."""
        return [f for f in self.findings if f.severity == "novelty"]


def _lookup(fn: Function, rows: np.ndarray | None = None) -> expr.Lookup:
    n = len(fn) if rows is None else int(rows.sum())

    def lookup(name: str) -> Ref:
        v = fn.variables.get(name)
        if v is None:  # a variable these calls do not have: no verdict
            v = Variable.empty(n)
        elif rows is not None:
            v = Variable(v.num[rows], v.text[rows], v.cls[rows])
        return Ref(name, v.num, v.text, v.cls)
    return lookup


def _new_inputs(fn: Function, spec: Spec, novel: dict[str, np.ndarray],
                rows: np.ndarray | None = None) -> None:
    """Mark, per variable, the calls where it is an input training never saw: a value
    constant in training that differs, a number outside the range it took. ``rows``: the
    calls an object spec is about (its variables are ``self.…`` of those calls)."""
    mask = np.ones(len(fn), bool) if rows is None else rows
    for name, (lo, hi) in spec.ranges.items():
        v = fn.variables.get(name)
        if v is not None:
            with np.errstate(invalid="ignore"):
                _mark(novel, name, mask & ((v.num < lo) | (v.num > hi)))
    for name, value in spec.constants.items():
        v = fn.variables.get(name)
        if v is None:
            continue
        if isinstance(value, str):
            _mark(novel, name, mask & v.seen & (v.text != value))
        else:
            _mark(novel, name, mask & v.seen & ~(v.num == float(value)))


def _mark(novel: dict[str, np.ndarray], name: str, rows: np.ndarray) -> None:
    novel[name] = novel[name] | rows if name in novel else rows


def _judged_on_others(c: Contract) -> bool:
    """Whether only *other* new inputs excuse a conditional contract: for a relation and a
    sign (``self.count >= 0``) an out-of-range value of its own is what it checks; for a
    bound elsewhere (``self.capacity <= 11``), a set or a modulus it is a new input."""
    if c.family == "bound":
        return is_sign(c.expr)
    return c.family not in ("one-of", "modulus")


def _novel_besides(novel: dict[str, np.ndarray], names: list[str], n: int) -> np.ndarray:
    """The calls with a new input other than ``names``: a contract's own variables being out
    of range is what it checks, not a reason to excuse it."""
    out = np.zeros(n, bool)
    for name, rows in novel.items():
        if name not in names:
            out |= rows
    return out


def _shown(v: Variable | None, i: int) -> str:
    if v is None or v.cls[i] is None:
        return "<not recorded>"
    if v.text[i] is not None:
        return repr(v.text[i])
    num = v.num[i]
    if not np.isnan(num):
        if v.cls[i] == "builtins.bool":
            return "True" if num else "False"
        return str(int(num)) if float(num).is_integer() and v.cls[i] != "builtins.float" else repr(float(num))
    if v.cls[i] == expr.NONE_CLASS:
        return "None"
    return f"<{v.cls[i]}>"


class _Calls:
    """The calls table, indexed by call: tasks, seqs, parents and names for the context."""

    def __init__(self, obs: Observations) -> None:
        t = obs.calls
        calls = t.column("call").to_numpy()
        size = int(calls.max()) + 1 if len(calls) else 0
        self.task = np.zeros(size, np.int64)
        self.seq = np.full(size, -1, np.int64)
        self.parent = np.full(size, -1, np.int64)
        self.name = np.full(size, None, object)
        self.task[calls] = t.column("task").to_numpy()
        self.seq[calls] = t.column("entry_seq").cast("int64").fill_null(-1).to_numpy()
        self.parent[calls] = t.column("parent").fill_null(-1).to_numpy()
        self.name[calls] = t.column("display").to_numpy(zero_copy_only=False)

    def ancestors(self, call: int, limit: int | None = CONTEXT_DEPTH) -> list[int]:
        """The calls above ``call``, innermost first (at most ``limit`` of them)."""
        out: list[int] = []
        p = int(self.parent[call]) if call < len(self.parent) else -1
        while p >= 0 and (limit is None or len(out) < limit):
            out.append(p)
            p = int(self.parent[p])
        return out

    def context(self, call: int) -> list[str]:
        """The names of the callers of ``call``, innermost first."""
        return [str(self.name[p]) for p in self.ancestors(call)]


def _evaluate(c: Contract, lookup: expr.Lookup, n: int) -> np.ndarray:
    """The rows that break ``c``: where it is known and does not hold."""
    col = expr.evaluate(c.expr, lookup, n)
    return col.known & ~col.v


def check(obs: Observations, cs: ContractSet) -> Result:
    """Every call in ``obs`` that breaks a contract of ``cs``."""
    result = Result(drops=obs.drops)
    calls = _Calls(obs)
    for fn in obs:
        spec = cs.functions.get(fn.name)
        classes = _classes_of(fn, cs)
        if spec is None and not classes:
            continue
        n = len(fn)
        result.calls += n
        # first the calls whose inputs are new: they turn conditional breaks into warnings
        novel: dict[str, np.ndarray] = {}
        if spec is None:  # a function training never called has only new inputs
            novel["*"] = np.ones(n, bool)
        else:
            _new_inputs(fn, spec, novel)
        for _, rows, cspec in classes:
            _new_inputs(fn, cspec, novel, rows)
        plan: list[tuple[Contract, str, np.ndarray]] = []
        for c in spec.contracts if spec is not None else ():
            if c.effective() == "ignore":
                continue
            broken = _evaluate(c, _lookup(fn), n)
            plan.append((c, fn.name, broken))
            if c.effective() == "novelty" and c.kind == "pre":  # new inputs; a new result excuses nothing
                for name in expr.variables(c.expr):
                    _mark(novel, name, broken)
        for cls, rows, cspec in classes:
            for c in cspec.contracts:
                if c.effective() == "ignore":
                    continue
                broken = np.zeros(n, bool)
                broken[rows] = _evaluate(c, _lookup(fn, rows), int(rows.sum()))
                plan.append((c, cls, broken))
        for c, owner, broken in plan:
            result.checked += 1
            how = c.effective()
            excused = None
            if how == "conditional":
                excused = _novel_besides(novel, expr.variables(c.expr) if _judged_on_others(c) else [], n)
            for i in np.flatnonzero(broken).tolist():
                warn = how == "novelty" or (excused is not None and excused[i])
                severity = "novelty" if warn else "violation"
                key = (owner, c.expr)
                counts = result.broken if severity == "violation" else result.novel
                counts[key] = counts.get(key, 0) + 1
                call = int(fn.calls[i])
                result.findings.append(Finding(
                    function=fn.name, ordinal=int(fn.ordinal[i]), call=call,
                    task=int(calls.task[call]), seq=int(calls.seq[call]) if calls.seq[call] >= 0 else None,
                    invariant=c.expr, kind=c.kind, severity=severity,
                    values={name: _shown(fn.variables.get(name), i) for name in expr.variables(c.expr)},
                    context=calls.context(call), owner=owner))
    result.findings.sort(key=lambda f: (f.severity != "violation", f.function, f.ordinal, f.invariant))
    return result


def _classes_of(fn: Function, cs: ContractSet) -> list[tuple[str, np.ndarray, Spec]]:
    """The object invariants that apply to ``fn``'s calls: those of the class of its ``self``."""
    me = fn.variables.get("self")
    if me is None or not cs.classes:
        return []
    out = []
    for cls in set(me.cls[me.seen].tolist()):
        spec = cs.classes.get(cls)
        if spec is not None:
            out.append((cls, me.cls == cls, spec))
    return out
