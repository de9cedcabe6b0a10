"""The contract file: TOML that people read, review and edit.

::

    [meta]
    format = 1
    traces = ["train-trace"]

    [functions."shapes:Box.area"]
    calls = 400                        # calls seen in training
    constants = { unit = "cm" }        # parameters that never varied (novelty only)
    ranges = { width = [0, 12] }       # what numeric inputs took (novelty only)

    [[functions."shapes:Box.area".contract]]
    expr = "ret >= 0"
    kind = "post"                      # pre, post, exception (object: under [classes."..."])
    enforce = "violation"              # violation, conditional (a violation when the call's
                                       # inputs are all within training), novelty (a warning)
    status = "inferred"                # inferred (infer may replace it), require, ignore
    family = "bound"
    samples = 400
    distinct = 37
    confidence = 0.99999

A contract a person writes has no ``family`` and ``status = "require"`` by default; one
marked ``require`` is always a violation when broken, ``ignore`` is never checked. ``infer``
run again on the same file keeps every contract that is not plain ``inferred``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcovdf import tracefile
from kcovdf.contracts.expr import ContractError, parse

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

FORMAT = 1
KINDS = ("pre", "post", "object", "exception")
ENFORCE = ("violation", "conditional", "novelty")
STATUS = ("inferred", "require", "ignore")


def is_sign(expr: str) -> bool:
    """Whether a bound is a sign: against 0, 1 or -1 (``x >= 0``, ``len(s) > 0``)."""
    return expr.rsplit(" ", 1)[-1] in ("0", "1", "-1")


@dataclass
class Contract:
    """One contract: an expression over a call's (or an object's) variables, and its evidence."""

    expr: str
    kind: str
    enforce: str = "violation"
    status: str = "require"
    family: str = "manual"
    samples: int = 0
    distinct: int = 0
    confidence: float = 1.0

    @property
    def inferred(self) -> bool:
        """Learned by ``infer`` and not edited into ``require``/``ignore``."""
        return self.status == "inferred"

    def effective(self) -> str:
        """How a broken contract is reported: violation, conditional, novelty, or ignore."""
        if self.status == "ignore":
            return "ignore"
        return "violation" if self.status == "require" else self.enforce


@dataclass
class Spec:
    """The contracts of one function (``module:qualname``) or one class (``module.Class``)."""

    name: str
    calls: int = 0
    constants: dict[str, Any] = field(default_factory=dict)
    contracts: list[Contract] = field(default_factory=list)
    #: the range each numeric input took in training: outside it, a call's input is new
    ranges: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class ContractSet:
    """A contract file's content."""

    functions: dict[str, Spec] = field(default_factory=dict)
    classes: dict[str, Spec] = field(default_factory=dict)
    traces: list[str] = field(default_factory=list)

    def count(self) -> int:
        """How many contracts there are."""
        return sum(len(s.contracts) for s in (*self.functions.values(), *self.classes.values()))


def _string(s: str) -> str:
    # a JSON string with only ASCII is a valid TOML basic string
    return json.dumps(s, ensure_ascii=True)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def dumps(cs: ContractSet) -> str:
    """The TOML text of a contract set."""
    out = ["# kcovdf contracts: learned by `kcovdf contracts infer`, checked by `kcovdf contracts check`.",
           "# Edit freely: mark a contract status = \"require\" (always enforced) or \"ignore\"; add your",
           "# own [[...contract]] entries. docs/contracts.md explains every field.",
           "", "[meta]", f"format = {FORMAT}", f"traces = {_value(cs.traces)}"]
    for table, specs in (("functions", cs.functions), ("classes", cs.classes)):
        for name in sorted(specs):
            spec = specs[name]
            key = f"{table}.{_string(name)}"
            out += ["", f"[{key}]", f"calls = {spec.calls}"]
            if spec.constants:
                inner = ", ".join(f"{_string(k)} = {_value(v)}" for k, v in sorted(spec.constants.items()))
                out.append(f"constants = {{ {inner} }}")
            if spec.ranges:
                inner = ", ".join(f"{_string(k)} = {_value(v)}" for k, v in sorted(spec.ranges.items()))
                out.append(f"ranges = {{ {inner} }}")
            for c in spec.contracts:
                out += ["", f"[[{key}.contract]]", f"expr = {_string(c.expr)}", f"kind = {_string(c.kind)}",
                        f"enforce = {_string(c.enforce)}", f"status = {_string(c.status)}",
                        f"family = {_string(c.family)}"]
                if c.family != "manual":
                    out += [f"samples = {c.samples}", f"distinct = {c.distinct}",
                            f"confidence = {round(c.confidence, 6)!r}"]
    return "\n".join(out) + "\n"


def write(cs: ContractSet, path: str | Path) -> None:
    """Write ``cs`` to ``path`` (0600, replaced atomically: contracts quote captured values)."""
    with tracefile.private_file(str(path)) as f:
        f.write(dumps(cs).encode())


def _field(d: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    v = d.get(key, default)
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise ContractError(f"{where}: {key} must be {kind.__name__}, not {v!r}")
    return v


def loads(text: str, where: str = "contracts") -> ContractSet:
    """A contract set from TOML text; ContractError naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"{where}: not valid TOML: {exc}") from None
    meta = data.get("meta", {})
    if meta.get("format", FORMAT) != FORMAT:
        raise ContractError(f"{where}: format {meta.get('format')!r} (this kcovdf reads format {FORMAT})")
    cs = ContractSet(traces=[str(t) for t in meta.get("traces", [])])
    for table, target in (("functions", cs.functions), ("classes", cs.classes)):
        for name, body in (data.get(table) or {}).items():
            at = f"{where}: [{table}.{_string(name)}]"
            if not isinstance(body, dict):
                raise ContractError(f"{at} must be a table")
            spec = Spec(name, _field(body, "calls", int, 0, at),
                        dict(_field(body, "constants", dict, {}, at)))
            for key, span in _field(body, "ranges", dict, {}, at).items():
                if not (isinstance(span, list) and len(span) == 2 and
                        all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in span)):
                    raise ContractError(f"{at}: ranges.{key} must be [low, high], not {span!r}")
                spec.ranges[key] = span
            for i, c in enumerate(_field(body, "contract", list, [], at)):
                cat = f"{at} contract {i + 1}"
                if not isinstance(c, dict) or "expr" not in c:
                    raise ContractError(f"{cat}: needs expr = \"...\"")
                contract = Contract(
                    expr=_field(c, "expr", str, "", cat),
                    kind=_field(c, "kind", str, "object" if table == "classes" else "post", cat),
                    enforce=_field(c, "enforce", str, "violation", cat),
                    status=_field(c, "status", str, "require", cat),
                    family=_field(c, "family", str, "manual", cat),
                    samples=_field(c, "samples", int, 0, cat),
                    distinct=_field(c, "distinct", int, 0, cat),
                    confidence=float(_field(c, "confidence", (int, float), 1.0, cat)))  # type: ignore[arg-type]
                for key, allowed in (("kind", KINDS), ("enforce", ENFORCE), ("status", STATUS)):
                    if getattr(contract, key) not in allowed:
                        raise ContractError(f"{cat}: {key} {getattr(contract, key)!r} is not one of "
                                            f"{', '.join(allowed)}")
                try:
                    parse(contract.expr)
                except ContractError as exc:
                    raise ContractError(f"{cat}: {exc}") from None
                spec.contracts.append(contract)
            target[name] = spec
    return cs


def read(path: str | Path) -> ContractSet:
    """The contract file at ``path``; ContractError when it is missing or wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"cannot read contracts {path}: {exc.strerror or exc}") from None
    return loads(text, str(path))


def merge(old: ContractSet, new: ContractSet) -> ContractSet:
    """``new`` (just inferred) with every edit of ``old`` kept: contracts marked require or
    ignore, and hand-written ones, stay (with the new evidence when inferred again)."""
    for table in ("functions", "classes"):
        olds, news = getattr(old, table), getattr(new, table)
        for name, spec in olds.items():
            kept = [c for c in spec.contracts if not c.inferred]
            if not kept:
                continue
            target = news.setdefault(name, Spec(name, spec.calls, dict(spec.constants)))
            fresh = {c.expr: c for c in target.contracts}
            for c in kept:
                if c.expr in fresh:  # learned again: the person's status, the new evidence
                    fresh[c.expr].status = c.status
                else:
                    target.contracts.append(c)
    return new
