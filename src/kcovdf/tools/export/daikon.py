"""Daikon export: ``.decls`` and ``.dtrace`` files for the Daikon invariant detector.

Follows the Daikon developer manual, chapter "File formats" (declaration version 2.0).
Each function is one program point pair: ``module.qualname(params):::ENTER`` and
``:::EXIT1`` (returned) / ``:::EXIT2`` (raised). Python values are dynamically typed, so a
variable's rep-type is chosen from every value it takes in the trace: all int → ``int``, ints
and floats → ``double``, all bool → ``int`` (0/1, dec-type ``boolean``), all str →
``java.lang.String``; anything else is the object's identity (``hashcode``, the recorded
pointer; format 2 records hold the call id there instead, so their identities are ``nonsensical``)
with its class as the field ``p.__class__``. Named fields decompose into ``p.x``.
Values that are unknown — FAULT, UNSET, REDACTED, a truncated string or int, a ``None`` of a
non-reference variable — are written ``nonsensical`` (modified flag 2, as the manual requires).
Yields are not program-point exits and are left out.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa

from kcovdf import abi, tracefile
from kcovdf.read.decode import Trace
from kcovdf.read.resolve import Resolved, function_name
from kcovdf.tools.export.base import Batches, Exporter, register

INT, DOUBLE, BOOL, STRING, HASHCODE = "int", "double", "boolean", "java.lang.String", "hashcode"
NULL, NONSENSICAL, OBJECT = "null", "nonsensical", "object"
EXIT_RETURN, EXIT_RAISE = "EXIT1", "EXIT2"
#: comparability keys: numbers compare with numbers, never with strings, flags or identities
_COMPARABILITY = {INT: 1, DOUBLE: 1, BOOL: 2, STRING: 3, HASHCODE: 4}
_JAVA_NAMES = {"builtins.int": "int", "builtins.float": "double", "builtins.bool": "boolean",
               "builtins.str": "java.lang.String"}


class Leaf(NamedTuple):
    """One observed value of one Daikon variable: its kind, its value, the class it had."""

    rep: str
    value: Any = None
    cls: str | None = None


def _top(value: dict, ptr: int | None) -> tuple[Leaf, dict[str, Leaf]]:
    """The leaf of a record's value (``kcovdf.read.values.structured``) and the leaves of its fields."""
    form, cls = value.get("form"), value.get("class")
    if form == "redacted":
        return Leaf(NONSENSICAL), {}
    if form == "object":
        return Leaf(HASHCODE, ptr, cls), {name or f"field{i}": _nested(v)
                                          for i, (name, v) in enumerate(value["fields"])}
    if form == "scalar":
        return _nested(value["value"])._replace(cls=cls), {}
    if form == "str":
        return Leaf(NONSENSICAL if value["truncated"] else STRING, value["value"], cls), {}
    if form == "raw":  # kernel records: one raw word per scalar, or one per struct field
        leaves = [Leaf(NONSENSICAL) if w == "FAULT" else Leaf(INT, _signed(int(w, 16)), "u64")
                  for w in value["words"]]
        if len(leaves) == 1:
            return leaves[0], {}
        return Leaf(HASHCODE, ptr, "struct"), {f"field{i}": leaf for i, leaf in enumerate(leaves)}
    return Leaf(HASHCODE, ptr, cls), {}  # containers, bytes, big ints, exceptions: identity only


def _signed(word: int) -> int:
    return word - (1 << 64) if word >> 63 else word


def _nested(v: Any) -> Leaf:
    """The leaf of one nested value (a field, or a scalar's only word)."""
    if isinstance(v, dict):
        if "float" in v:
            return Leaf(DOUBLE, float(v["float"]), "builtins.float")  # nan, inf
        if "id" in v:
            return Leaf(OBJECT, v["class"] or v["id"], v["class"])  # a nested object: only its class
        return Leaf(NONSENSICAL)  # FAULT, UNSET, REDACTED, truncated int or string
    if v is None:
        return Leaf(NULL, None, "builtins.NoneType")
    if isinstance(v, bool):
        return Leaf(BOOL, int(v), "builtins.bool")
    if isinstance(v, int):
        return Leaf(INT, v, "builtins.int")
    if isinstance(v, float):
        return Leaf(DOUBLE, v, "builtins.float")
    return Leaf(STRING, v, "builtins.str")


def _escape_name(name: str) -> str:
    return name.replace("\\", "\\\\").replace(" ", "\\_")


def _quote(s: str) -> str:
    body = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{body}"'


def _double(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(float(v))


@dataclass
class Variable:
    """One Daikon variable of a program point: the representations and classes of the values
    it took (what its declaration needs; not the values, so memory stays bounded)."""

    name: str
    kind: str                      # variable | return | field
    enclosing: str | None = None
    is_param: bool = False
    reps: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    _rep: str | None = field(default=None, repr=False, compare=False)

    def add(self, leaf: Leaf) -> None:
        """One more value of this variable."""
        if leaf.rep not in self.reps:
            self.reps.add(leaf.rep)
            self._rep = None
        if leaf.cls:
            self.classes.add(leaf.cls)

    def rep_type(self) -> str:
        """The representation type that fits every value seen (computed once per value added,
        not once per sample written: the .dtrace asks it for every sample)."""
        if self._rep is None:
            self._rep = self._rep_type()
        return self._rep

    def _rep_type(self) -> str:
        reps = self.reps - {NULL, NONSENSICAL}
        if not reps and self.kind != "field":
            return HASHCODE
        for wanted, allowed in ((INT, {INT, BOOL}), (BOOL, {BOOL}), (DOUBLE, {INT, DOUBLE, BOOL}),
                                (STRING, {STRING, OBJECT})):
            if reps <= allowed:
                return BOOL if reps == {BOOL} else wanted
        return HASHCODE if self.kind != "field" else STRING

    def dec_type(self) -> str:
        """The declared type: the class(es) of the values seen, Java names for the builtins."""
        classes = sorted(self.classes - {"builtins.NoneType"})
        if not classes:
            return "java.lang.Object"
        return "|".join(_JAVA_NAMES.get(c, c) for c in classes)

    def declaration(self) -> list[str]:
        """The ``variable`` block of the .decls file."""
        rep = self.rep_type()
        lines = [f"variable {_escape_name(self.name)}"]
        if self.kind == "field":
            rel = self.name[len(self.enclosing) + 1:] if self.enclosing else self.name
            lines += [f"  var-kind field {_escape_name(rel)}",
                      f"  enclosing-var {_escape_name(self.enclosing or '')}"]
        else:
            lines.append(f"  var-kind {self.kind}")
        lines += [f"  dec-type {_escape_name(self.dec_type())}",
                  f"  rep-type {INT if rep == BOOL else rep}"]
        if self.is_param:
            lines.append("  flags is_param")
        lines.append(f"  comparability {_COMPARABILITY[rep]}")
        return lines

    def sample(self, leaf: Leaf | None) -> tuple[str, int]:
        """(value text, modified flag) of one value of this variable in a .dtrace record."""
        rep = self.rep_type()
        if leaf is None or leaf.rep == NONSENSICAL:
            return NONSENSICAL, 2
        if leaf.rep == NULL:
            return (NULL, 1) if rep == HASHCODE else (NONSENSICAL, 2)
        if rep == HASHCODE:
            known = leaf.rep == HASHCODE and leaf.value is not None  # format 2: no identity
            return (str(leaf.value), 1) if known else (NONSENSICAL, 2)
        if rep in (INT, BOOL):
            return str(int(leaf.value)), 1
        if rep == DOUBLE:
            return _double(float(leaf.value)), 1
        if leaf.rep in (STRING, OBJECT):
            return _quote(leaf.value), 1
        return _quote(json.dumps(leaf.value)), 1  # a field of mixed types: its value as text


@dataclass
class Point:
    """A program point (ENTER or one EXIT) and its variables, in declaration order."""

    name: str
    ppt_type: str
    variables: dict[str, Variable] = field(default_factory=dict)
    _order: tuple[tuple[tuple[str, ...], int], list[Variable]] | None = field(default=None, repr=False,
                                                                               compare=False)

    def var(self, name: str, kind: str, enclosing: str | None = None, is_param: bool = False) -> Variable:
        """The variable ``name``, declared on first use."""
        if name not in self.variables:
            self.variables[name] = Variable(name, kind, enclosing, is_param)
        return self.variables[name]

    def ordered(self, params: list[str]) -> list[Variable]:
        """Variables in file order: each parameter then its fields, then return, then exception.

        Kept until a variable is added: every sample of the point asks for it."""
        key = (tuple(params), len(self.variables))
        if self._order is None or self._order[0] != key:
            bases = {name: i for i, name in enumerate([*params, "return", "exception"])}
            seen = list(self.variables.values())
            order = sorted(range(len(seen)), key=lambda i: (
                bases.get(seen[i].enclosing or seen[i].name, len(bases)),
                seen[i].enclosing or seen[i].name, seen[i].kind == "field", i))
            self._order = (key, [seen[i] for i in order])
        return self._order[1]

    def declaration(self, params: list[str]) -> str:
        """The ``ppt`` record of the .decls file."""
        lines = [f"ppt {_escape_name(self.name)}", f"ppt-type {self.ppt_type}"]
        for v in self.ordered(params):
            lines += v.declaration()
        return "\n".join(lines) + "\n"


#: the leaves of one sample: (variable, field or None) -> leaf
Leaves = dict[tuple[str, "str | None"], Leaf]


def _observe(leaves: Leaves, name: str, value: str, ptr: int | None) -> None:
    """Record the leaves of one value under the variable ``name`` and its fields."""
    top, fields = _top(json.loads(value), ptr)
    leaves[name, None] = top
    if top.rep == HASHCODE:
        leaves[name, "__class__"] = Leaf(STRING, top.cls, "builtins.str")
    for fname, leaf in fields.items():
        leaves[name, fname] = leaf


def _var_name(key: tuple[str, str | None]) -> str:
    return key[0] if key[1] is None else f"{key[0]}.{key[1]}"


class _Function:
    """The ENTER and EXIT points of one function and the samples taken at them."""

    def __init__(self, name: str, params: list[str]) -> None:
        sig = ",".join(params)
        self.enter = Point(f"{name}({sig}):::ENTER", "enter")
        self.exits = {EXIT_RETURN: Point(f"{name}({sig}):::{EXIT_RETURN}", "subexit"),
                      EXIT_RAISE: Point(f"{name}({sig}):::{EXIT_RAISE}", "subexit")}
        self.params = params
        self.raised = False

    def declare(self, leaves: Leaves, on_exit: bool) -> None:
        """Declare the variables of one sample: at ENTER and both EXITs, or at the EXITs only."""
        points = list(self.exits.values()) if on_exit else [self.enter, *self.exits.values()]
        for (base, fname), leaf in leaves.items():
            if fname is not None:
                kind = "field"
            else:
                kind = base if base == "return" else "variable"
            for point in points:
                v = point.var(_var_name((base, fname)), kind, base if fname is not None else None,
                              is_param=kind == "variable" and not on_exit)
                v.add(leaf)

    def points(self) -> list[Point]:
        """The program points this function's samples use."""
        used = [self.enter, self.exits[EXIT_RETURN]]
        return used + [self.exits[EXIT_RAISE]] if self.raised else used


def _sample(point: Point, params: list[str], nonce: int, leaves: Leaves, after_call: bool) -> str:
    lines = [_escape_name(point.name), "this_invocation_nonce", str(nonce)]
    by_name = {_var_name(key): leaf for key, leaf in leaves.items()}
    for var in point.ordered(params):
        name = var.name
        leaf = by_name.get(name)
        if after_call and var.kind == "field" and var.enclosing not in ("return", "exception"):
            leaf = None  # a parameter's fields after the call were not recorded: unknown
        text, modified = var.sample(leaf)
        lines += [_escape_name(name), text, str(modified)]
    return "\n".join(lines) + "\n"


@register
class DaikonExporter(Exporter):
    """Daikon .decls/.dtrace (declaration format 2.0)."""

    name = "daikon"
    description = "Daikon invariant detector input: OUT.decls and OUT.dtrace"

    def write(self, trace: Trace, out: Path) -> list[Path]:
        """Write ``out.decls`` and ``out.dtrace`` (a .decls/.dtrace suffix on ``out`` is dropped)."""
        return self.write_batches(lambda: iter([(trace, trace.records)]), out)[0]

    def write_batches(self, batches: Batches, out: Path) -> tuple[list[Path], Trace]:
        """Two passes over the batches: the first declares every program point and its
        variables (a sample lists them all), the second writes the samples as they come.
        Memory holds one batch, the declarations and the arguments of the open calls."""
        stem = out.with_suffix("") if out.suffix in (".decls", ".dtrace") else out
        functions: dict[int, _Function] = {}
        trace = None
        for trace, _call, pc, kind, param, ptr, value in self._records(batches()):
            fn = functions.get(pc)
            if fn is None:
                sym = trace.names.lookup(pc)
                fn = functions[pc] = _Function(function_name(trace, pc),
                                               [sym.param(i) or "" for i in range(len(sym.params))]
                                               if sym else [])
            if value is None:
                continue
            leaves: Leaves = {}
            if kind == "entry":
                _observe(leaves, param, value, ptr)
            else:
                _observe(leaves, "return" if kind == "return" else "exception", value, ptr)
                fn.raised |= kind == "exception"
            fn.declare(leaves, on_exit=kind != "entry")
        if trace is None:
            raise ValueError("no trace was read")
        decls = ["decl-version 2.0\n", "var-comparability implicit\n", "input-language python\n"]
        for fn in functions.values():
            decls += [p.declaration(fn.params) for p in fn.points()]
        paths = [stem.with_name(stem.name + ".decls"), stem.with_name(stem.name + ".dtrace")]
        with tracefile.private_file(paths[0]) as f:
            f.write("\n".join(decls).encode())
        with tracefile.private_file(paths[1]) as f:
            f.write(b"decl-version 2.0\n")
            self._samples(batches(), functions, f)
        return paths, trace

    @staticmethod
    def _records(batches: Iterator[tuple[Trace, pa.Table]]) -> Iterator[tuple[Any, ...]]:
        """(trace, call, pc, kind, param, ptr, value) of every record that belongs to a call,
        in program order; value None for records without a value to sample."""
        resolved = Resolved(batches)
        for table in resolved:
            trace = resolved.trace
            assert trace is not None
            # Format 2 records carry the call id in meta's pointer, no object identity.
            by_id = [t.format >= 2 for t in trace.tasks]
            for batch in table.select(_COLUMNS).to_batches(1 << 16):
                for call, task, pc, kind, arg_idx, param, ptr, value in zip(
                        *(batch.column(c).to_pylist() for c in _COLUMNS), strict=True):
                    if call is None:
                        continue
                    if kind in ("yield", "resume", "suspend", "event") or arg_idx == abi.ARG_NONE:
                        value = None  # not exits, and no value: a call without parameters has its ENTER only
                    yield trace, call, pc, kind, param, None if by_id[task] else ptr, value

    def _samples(self, batches: Iterator[tuple[Trace, pa.Table]], functions: dict[int, _Function],
                 f: Any) -> None:
        """Write the ENTER and EXIT samples in program order. A call's ENTER is written once
        its arguments are all read (they are consecutive records): at its next record."""
        entries: dict[int, Leaves] = {}          # open calls: leaves of their arguments
        ended: collections.OrderedDict[int, Leaves] = collections.OrderedDict()  # recent exits
        pending: tuple[int, int] | None = None    # (call, pc) whose ENTER is not written yet
        def enter(call: int, pc: int) -> None:
            fn = functions[pc]
            f.write(b"\n" + _sample(fn.enter, fn.params, call, entries[call], after_call=False).encode())

        for _, call, pc, kind, param, ptr, value in self._records(batches):
            if pending is not None and pending[0] != call:
                enter(*pending)
                pending = None
            if call not in entries and call not in ended:
                entries[call] = {}
                pending = (call, pc)
            if pending is not None and kind != "entry":
                enter(*pending)
                pending = None
            if value is None:
                continue
            leaves: Leaves = {}
            if kind == "entry":
                _observe(leaves, param, value, ptr)
                entries.setdefault(call, {}).update(leaves)
                continue
            _observe(leaves, "return" if kind == "return" else "exception", value, ptr)
            args = entries.pop(call, None)
            if args is None:  # a second exit of one call
                args = ended.get(call, {})
            ended[call] = args
            if len(ended) > _ENDED:
                ended.popitem(last=False)
            fn = functions[pc]
            f.write(b"\n" + _sample(fn.exits[EXIT_RETURN if kind == "return" else EXIT_RAISE], fn.params,
                                     call, {**args, **leaves}, after_call=True).encode())
        if pending is not None:
            enter(*pending)


#: The record columns the samples read.
_COLUMNS = ["call", "task", "pc", "kind", "arg_idx", "param", "ptr", "value"]
#: Ended calls remembered (a call may exit twice when records were lost).
_ENDED = 4096
