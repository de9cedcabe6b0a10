"""Inference: Daikon's invariant families over observations, each statistically justified.

Families, per function over its variables (``observe``) and per class over its objects'
fields: one-of (at most 3 values), type, lower and upper bounds, non-zero, modulus,
comparisons between two values (``<``, ``<=``, ``==``, ``!=``), linear relations
(``y == k*x + c``, ``ret == a + b``), ``len`` relations (``len(x)`` is a variable like any
other) and the set of exceptions raised.

Justification follows Daikon's defaults: an invariant is kept when the chance that it holds
on the samples by accident is below ``1 - CONFIDENCE`` (0.99): ``a < b`` at ``1 - 0.5^n``
(7 samples), a bound needs more than 5 samples and 3 at the bound, one-of at most 3 values,
a linear relation 4 distinct pairs. A value that never varied gets no invariant (it is kept
in ``constants``, only to tell new inputs), and invariants implied by a stronger one are
left out.

Each contract says how a check treats it (``enforce``): what holds of a result or an object
whatever the input (an exact relation: ``ret == a + b``, ``len(ret) == len(s) + n``,
``self.size == len(self.items)``; the result's type) is a ``violation`` when broken; other
facts about results and objects (orders, bounds, sets, the exceptions raised: what the
inputs' range allowed, ``ret >= 0`` of positive inputs) are ``conditional``, a violation
only for a call whose inputs are all within the ranges training saw; what training
happened to pass in (preconditions) is ``novelty``, a warning. So is a bound of a result
other than a sign (``len(ret) <= 4``, ``ret <= 255``): it says what training's inputs were
like more than what the code guarantees (json.loads of a list of 5, when training's had
at most 4, is no regression), and the relations beside it are what is checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from kcovdf.contracts.model import Contract, ContractSet, Spec, is_sign
from kcovdf.contracts.observe import Function, Observations, Variable

CONFIDENCE = 0.99
MIN_SAMPLES = 10      #: samples below which nothing is said about a variable
BOUND_SAMPLES = 6     #: more than 5 samples ...
BOUND_AT = 3          #: ... and 3 of them at the bound
ONE_OF = 3            #: at most this many values
LINEAR_PAIRS = 4      #: distinct pairs a linear relation needs
_NUMERIC = {"builtins.int", "builtins.float", "builtins.bool", "u64"}  # u64: a kernel word
# the scalars of native code (kcovdf.native, docs/native.md): C and Rust ints, floats, pointers
_NUMERIC |= {f"native.{k}{b}" for k in "ui" for b in (8, 16, 32, 64)} | {
    "native.bool", "native.f32", "native.f64", "native.ptr"}
_KERNEL = {"u64", "struct", "FAULT"}


@dataclass
class _Num:
    """A numeric variable: its values where known."""

    name: str
    v: np.ndarray       #: float64, NaN where unknown
    known: np.ndarray
    integral: bool


def _side(name: str) -> str:
    root = name[4:-1] if name.startswith("len(") else name
    root = root.split(".", 1)[0]
    return {"ret": "post", "exc": "exception"}.get(root, "pre")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2 ** 53 else repr(float(x))


def _class_expr(names: Iterable[str]) -> str:
    shown = [n[len("builtins."):] if n.startswith("builtins.") else n for n in sorted(names)]
    return shown[0] if len(shown) == 1 else "(" + ", ".join(shown) + ")"


def _confident(p_by_chance: float) -> bool:
    return p_by_chance <= 1 - CONFIDENCE


class _Learner:
    """The invariants of one set of rows (a function's calls, or a class's objects)."""

    def __init__(self, kind_of: Callable[[list[str]], str], objects: bool = False) -> None:
        self.objects = objects
        self.kind_of = kind_of
        self.out: list[Contract] = []
        self.constants: dict[str, object] = {}
        self.nums: list[_Num] = []
        self._exprs: set[str] = set()

    def add(self, expr: str, names: list[str], family: str, samples: int, distinct: int,
            p_chance: float, distributional: bool = False) -> None:
        """Keep one invariant; how a check enforces it follows from what it is about."""
        if expr in self._exprs:
            return
        self._exprs.add(expr)
        kind = self.kind_of(names)
        exact = family in ("type", "linear") or (family == "compare" and " == " in expr)
        if kind == "pre" or (family == "bound" and not is_sign(expr)):
            enforce = "novelty"
        elif exact and not distributional and kind != "exception":
            enforce = "violation"  # an exact relation or a type holds whatever the input
        else:
            enforce = "conditional"  # orders, bounds, sets: what the inputs' range allowed
        self.out.append(Contract(expr, kind, enforce, "inferred", family, samples, distinct,
                                 1.0 - p_chance))

    def unary(self, name: str, var: Variable, types: bool) -> None:
        seen = var.seen
        n = int(seen.sum())
        if n < MIN_SAMPLES:
            return
        classes = set(var.cls[seen].tolist())
        if types and len(classes) <= 2 and not classes & _KERNEL:  # a kernel word's type is fixed
            self.add(f"type({name}) is {_class_expr(classes)}" if len(classes) == 1 else
                     f"type({name}) in {_class_expr(classes)}", [name], "type", n, len(classes),
                     0.5 ** n)
        known = ~np.isnan(var.num)
        texts = var.text != None  # noqa: E711
        if known.sum() >= MIN_SAMPLES and classes <= _NUMERIC | {"builtins.NoneType", "FAULT"}:
            self._numeric(name, var.num, known)
        elif texts.sum() >= MIN_SAMPLES and classes == {"builtins.str"}:
            values = var.text[texts]
            distinct = sorted(set(values.tolist()))
            if len(distinct) == 1:
                self.constants[name] = distinct[0]
            elif len(distinct) <= ONE_OF and len(values) >= MIN_SAMPLES:
                self.add(f"{name} in {{{', '.join(repr(s) for s in distinct)}}}", [name], "one-of",
                         len(values), len(distinct), (len(distinct) / (len(distinct) + 1)) ** len(values))
            else:  # a prefix or suffix every value shares (a recorded string is its prefix)
                n = len(values)
                suffix = os.path.commonprefix([t[::-1] for t in distinct])[::-1]
                for family, affix, method in (("prefix", os.path.commonprefix(distinct), "startswith"),
                                              ("suffix", suffix, "endswith")):
                    if affix:
                        self.add(f"{name}.{method}({affix!r})", [name], family, n, len(distinct), 0.5 ** n)

    def _numeric(self, name: str, num: np.ndarray, known: np.ndarray) -> None:
        values = num[known]
        n = len(values)
        distinct = np.unique(values)
        d = len(distinct)
        with np.errstate(invalid="ignore"):  # inf and nan: not integral
            integral = bool(np.all(np.mod(values, 1) == 0))
        if d == 1:
            self.constants[name] = int(values[0]) if integral else float(values[0])
            return
        self.nums.append(_Num(name, num, known, integral))
        if d <= ONE_OF:
            self.add(f"{name} in {{{', '.join(_fmt(x) for x in distinct)}}}", [name], "one-of", n, d,
                     (d / (d + 1)) ** n)
            return
        lo, hi = float(distinct[0]), float(distinct[-1])
        at_lo, at_hi = int((values == lo).sum()), int((values == hi).sum())
        if n >= BOUND_SAMPLES and at_lo >= BOUND_AT:
            if lo == 1.0 and integral:
                self.add(f"{name} > 0", [name], "bound", n, d, 0.5 ** n)
            else:
                self.add(f"{name} >= {_fmt(lo)}", [name], "bound", n, d, 0.5 ** n)
        if n >= BOUND_SAMPLES and at_hi >= BOUND_AT:
            if hi == -1.0 and integral:
                self.add(f"{name} < 0", [name], "bound", n, d, 0.5 ** n)
            else:
                self.add(f"{name} <= {_fmt(hi)}", [name], "bound", n, d, 0.5 ** n)
        if lo < 0 < hi and not np.any(values == 0) and integral:
            p = (1 - 1 / (hi - lo + 1)) ** n
            if _confident(p):
                self.add(f"{name} != 0", [name], "non-zero", n, d, p)
        if integral and d >= 4:
            diffs = (values - values[0]).astype(np.int64)
            g = int(np.gcd.reduce(np.abs(diffs)))
            if g >= 2:
                p = (1 / g) ** (n - 1)
                if _confident(p):
                    r = int(values[0]) % g
                    self.add(f"{name} % {g} == {r}", [name], "modulus", n, d, p)

    def pairs(self) -> None:
        # the result (or the field) on the left: `ret <= hi`, `len(ret) == len(s) + 3`
        nums = sorted(self.nums, key=lambda x: (_side(x.name) != "post", x.name))
        # a sum found first implies the orders of its terms, given their signs (preconditions):
        # those orders would only repeat what training passed in
        self._summed: set[frozenset[str]] = set()
        self._sums(nums)
        for i, a in enumerate(nums):
            for b in nums[i + 1:]:
                self._pair(a, b)

    def _pair(self, a: _Num, b: _Num) -> None:
        both = a.known & b.known
        n = int(both.sum())
        if n < 7:
            return
        x, y = a.v[both], b.v[both]
        pairs = len(set(zip(x.tolist(), y.tolist(), strict=True)))
        names = [a.name, b.name]
        if np.all(x == y):
            self.add(f"{a.name} == {b.name}", names, "compare", n, pairs, 0.5 ** n)
            return
        integral = a.integral and b.integral
        if pairs >= LINEAR_PAIRS and integral and self._linear(a.name, x, b.name, y, n, pairs):
            return
        overlap = max(x.min(), y.min()) <= min(x.max(), y.max())
        if not overlap or frozenset(names) in self._summed:
            return  # implied by the bounds of each, or by a sum: no relation of its own
        p = 0.5 ** n
        if not _confident(p):
            return
        # an order is a bound of the difference, and justified like one: 3 samples at it
        gap = y - x
        tight = 1.0 if a.integral and b.integral else 0.0
        if np.all(gap > 0) and (gap == tight).sum() >= BOUND_AT:
            self.add(f"{a.name} < {b.name}", names, "compare", n, pairs, p)
        elif np.all(gap < 0) and (gap == -tight).sum() >= BOUND_AT:
            self.add(f"{a.name} > {b.name}", names, "compare", n, pairs, p)
        elif np.all(gap >= 0) and (gap == 0).sum() >= BOUND_AT:
            self.add(f"{a.name} <= {b.name}", names, "compare", n, pairs, p)
        elif np.all(gap <= 0) and (gap == 0).sum() >= BOUND_AT:
            self.add(f"{a.name} >= {b.name}", names, "compare", n, pairs, p)
        elif np.all(gap != 0):
            d = max(len(np.unique(x)), len(np.unique(y)))
            p_ne = (1 - 1 / d) ** n
            if _confident(p_ne):
                self.add(f"{a.name} != {b.name}", names, "compare", n, pairs, p_ne)

    def _linear(self, xn: str, x: np.ndarray, yn: str, y: np.ndarray, n: int, pairs: int) -> bool:
        """``y == k*x + c`` (or x in terms of y, the result on the left) exactly on every sample."""
        for (ln, lv), (rn, rv) in (((xn, x), (yn, y)), ((yn, y), (xn, x))):
            j = np.flatnonzero(rv != rv[0])
            if not len(j):
                continue
            k = (lv[j[0]] - lv[0]) / (rv[j[0]] - rv[0])
            c = lv[0] - k * rv[0]
            if k == 0 or not float(k).is_integer() or not float(c).is_integer():
                continue
            if np.all(lv == k * rv + c):
                term = rn if k == 1 else f"-{rn}" if k == -1 else f"{_fmt(k)} * {rn}"
                rhs = term if c == 0 else f"{term} + {_fmt(c)}" if c > 0 else f"{term} - {_fmt(-c)}"
                # a field's fixed offset from another is often what its callers built
                self.add(f"{ln} == {rhs}", [ln, rn], "linear", n, pairs, 0.5 ** pairs,
                         self.objects and rhs != rn)
                return True
        return False

    def _sums(self, nums: list[_Num]) -> None:
        """``ret == a + b``, ``ret == a - b + c`` over the result and two other values."""
        rets = [v for v in nums if _side(v.name) == "post" and v.integral]
        others = [v for v in nums if _side(v.name) == "pre" and v.integral]
        for r in rets:
            for i, a in enumerate(others):
                for b in others[i + 1:]:
                    both = r.known & a.known & b.known
                    n = int(both.sum())
                    if n < 7:
                        continue
                    rv, av, bv = r.v[both], a.v[both], b.v[both]
                    triples = len(set(zip(av.tolist(), bv.tolist(), strict=True)))
                    if triples < LINEAR_PAIRS:
                        continue
                    for sa, sb in ((1, 1), (1, -1), (-1, 1)):
                        rest = rv - sa * av - sb * bv  # constant: ret == ±a ± b + c
                        if not np.all(rest == rest[0]):
                            continue
                        first, second = (a, b) if sa > 0 else (b, a)
                        op = "+" if sa * sb > 0 else "-"
                        c = float(rest[0])
                        tail = "" if c == 0 else f" + {_fmt(c)}" if c > 0 else f" - {_fmt(-c)}"
                        self.add(f"{r.name} == {first.name} {op} {second.name}{tail}",
                                 [r.name, a.name, b.name], "linear", n, triples, 0.5 ** triples)
                        self._summed |= {frozenset((r.name, a.name)), frozenset((r.name, b.name))}
                        break


def _function_kind(names: list[str]) -> str:
    sides = {_side(n) for n in names}
    return "exception" if "exception" in sides else "post" if "post" in sides else "pre"


def _types_of(name: str) -> bool:
    # the type of a top-level parameter or result; a field's belongs to its class, self's is trivial
    return "." not in name and not name.startswith("len(") and name not in ("self", "cls", "exc")


def infer_function(fn: Function) -> Spec:
    """The contracts of one function."""
    learner = _Learner(_function_kind)
    for name, var in sorted(fn.variables.items()):
        if name == "exc":
            continue
        learner.unary(name, var, _types_of(name))
    learner.pairs()
    if len(fn) >= MIN_SAMPLES:
        exc = fn.variables.get("exc")
        raised = sorted(set(exc.cls[exc.seen].tolist())) if exc is not None else []
        n = len(fn)
        allowed = f"exc is None or type(exc) in ({_class_expr(raised).strip('()')},)"
        learner.add(allowed if raised else "exc is None", ["exc"], "exceptions", n, len(raised), 0.5 ** n)
    return Spec(fn.name, len(fn), learner.constants, learner.out,
                _ranges({n: v for n, v in fn.variables.items() if _side(n) == "pre"}))


def _ranges(variables: dict[str, Variable]) -> dict[str, list[float]]:
    """The range each numeric variable took: outside it, a value is new."""
    out = {}
    for name, var in variables.items():
        known = ~np.isnan(var.num)
        if known.any():
            lo, hi = float(var.num[known].min()), float(var.num[known].max())
            out[name] = [int(lo) if lo.is_integer() else lo, int(hi) if hi.is_integer() else hi]
    return out


def _object_rows(obs: Observations) -> dict[str, list[tuple[int, dict[str, Variable]]]]:
    """Per class: chunks of rows (how many, and their fields' values), one per place its
    objects were recorded with fields (``self`` at a method's entry, an argument, a result)."""
    out: dict[str, list[tuple[int, dict[str, Variable]]]] = {}
    for fn in obs:
        # an object passed in or returned holds what its callers built; self, what the class keeps
        for top in ("self",):
            fields = {n[len(top) + 1:]: v for n, v in fn.variables.items() if n.startswith(top + ".")}
            if not fields or top not in fn.variables:
                continue
            cls = fn.variables[top].cls
            for name in set(cls[fn.variables[top].seen].tolist()):
                rows = cls == name
                out.setdefault(name, []).append((int(rows.sum()), {
                    f: Variable(v.num[rows], v.text[rows], v.cls[rows]) for f, v in fields.items()}))
    return out


def infer_classes(obs: Observations) -> dict[str, Spec]:
    """Object invariants: what holds of a class's fields at every point its objects were seen."""
    specs: dict[str, Spec] = {}
    for cls, chunks in _object_rows(obs).items():
        names = sorted({f for _, fields in chunks for f in fields})
        rows = sum(k for k, _ in chunks)
        variables = {}
        for f in names:
            parts = [fields.get(f) or Variable.empty(k) for k, fields in chunks]
            variables[f"self.{f}"] = Variable(np.concatenate([v.num for v in parts]),
                                              np.concatenate([v.text for v in parts]),
                                              np.concatenate([v.cls for v in parts]))
        learner = _Learner(lambda names: "object", objects=True)
        for name, var in variables.items():
            learner.unary(name, var, False)
        learner.pairs()
        if learner.out:
            specs[cls] = Spec(cls, rows, learner.constants, learner.out, _ranges(variables))
    return specs


def infer(observations: Iterable[Observations], traces: list[str]) -> ContractSet:
    """The contracts learned from the observations of one or more traces."""
    merged = _merge(list(observations))
    cs = ContractSet(traces=traces)
    for fn in merged:
        spec = infer_function(fn)
        if spec.contracts or spec.constants or spec.ranges:
            cs.functions[fn.name] = spec
    cs.classes = infer_classes(merged)
    return cs


def _merge(all_obs: list[Observations]) -> Observations:
    """One set of observations from several traces (a function's calls concatenated)."""
    if len(all_obs) == 1:
        return all_obs[0]
    functions: dict[str, Function] = {}
    for obs in all_obs:
        for fn in obs:
            if fn.name not in functions:
                functions[fn.name] = fn
                continue
            old = functions[fn.name]
            n_old, n_new = len(old), len(fn)
            names = set(old.variables) | set(fn.variables)
            variables = {}
            for name in names:
                a = old.variables.get(name) or Variable.empty(n_old)
                b = fn.variables.get(name) or Variable.empty(n_new)
                variables[name] = Variable(np.concatenate([a.num, b.num]), np.concatenate([a.text, b.text]),
                                           np.concatenate([a.cls, b.cls]))
            functions[fn.name] = Function(fn.name, np.concatenate([old.calls, fn.calls]),
                                          np.concatenate([old.ordinal, fn.ordinal]),
                                          np.concatenate([old.exit, fn.exit]), variables)
    return Observations(functions, all_obs[0].calls, sum(o.drops for o in all_obs),
                        {k: v for o in all_obs for k, v in o.files.items()})


def describe(c: Contract) -> str:
    """One line of evidence for ``show``."""
    return (f"{c.family}, {c.samples} samples, {c.distinct} distinct, confidence "
            f"{'>0.999999' if c.confidence > 0.999999 else f'{c.confidence:.6f}'.rstrip('0')}")
