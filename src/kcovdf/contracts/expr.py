"""Contract expressions: a small, safe subset of Python evaluated over columns of calls.

A contract is a Python expression over a call's variables (``kcovdf.contracts.observe``):
parameters by name, ``ret``, ``exc``, fields (``self.size``), ``len(x)``, ``type(x)``,
``old(x)`` (the entry value: what a record holds), ``abs()``, ``x.startswith('…')`` and
``x.endswith('…')``, number and string constants, ``None``/``True``/``False``, comparisons
(chained too), ``in``/``not in`` over a literal set, tuple or list, ``is``/``is not``,
``+ - * // %``, ``and``/``or``/``not``.

It is evaluated for all the calls of a function at once: every value is a numpy column with
a *known* mask, and logic is three-valued, so a contract over a value the record could not
hold (a truncated string, an unrecorded field) is neither kept nor broken for that call.
Anything outside the subset is a ``ContractError`` naming the construct, when the file is
read, not when a trace is checked.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kcovdf.errors import KcovdfError

NONE_CLASS = "builtins.NoneType"


class ContractError(KcovdfError):
    """A contract that does not parse, or uses what a contract cannot."""

    slug = "contract"


@dataclass
class Column:
    """A value per call: ``v`` (float64 numbers, object strings/classes, or bool), ``known``."""

    v: np.ndarray
    known: np.ndarray


@dataclass
class Ref:
    """A variable: its columns, resolved by the operation that uses it."""

    name: str
    num: np.ndarray
    text: np.ndarray
    cls: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return self.cls != None  # noqa: E711 - elementwise

    def as_num(self) -> Column:
        return Column(self.num, ~np.isnan(self.num))

    def as_text(self) -> Column:
        return Column(self.text, self.text != None)  # noqa: E711

    def as_value(self) -> Column:
        """Its value for ``==``: a number where it is one, else its string, else its class."""
        num, text = self.as_num(), self.as_text()
        v = np.where(num.known, num.v.astype(object), np.where(text.known, text.v, None))
        return Column(v, num.known | text.known | (self.cls == NONE_CLASS))


@dataclass
class TypeOf:
    """``type(x)``: the class names of a variable."""

    cls: np.ndarray


@dataclass
class Const:
    """A constant, or a literal set of them (``values``)."""

    value: Any
    values: tuple[Any, ...] | None = None


Lookup = Callable[[str], Ref]


def class_name(node: ast.expr) -> str:
    """The class a name in ``type(x) is NAME`` means: bare names are builtins."""
    dotted = _dotted(node)
    if dotted is None:
        raise ContractError(f"{ast.unparse(node)!r} is not a class name")
    return dotted if "." in dotted else f"builtins.{dotted}"


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def variables(expr: str) -> list[str]:
    """The variables ``expr`` reads, in order (``self.size``, ``len(x)``, ``ret``)."""
    tree = parse(expr)
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        name = _variable(node)
        if name is not None:
            out.append(name)
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type":
            for arg in node.args:
                visit(arg)
            return
        if _is_affix(node):
            visit(node.func.value)  # type: ignore[attr-defined]
            return
        if isinstance(node, ast.Compare) and _is_type_call(node.left):
            visit(node.left)  # the right side names classes
            return
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            visit(node.left)
            for c in node.comparators:
                if not isinstance(c, (ast.Tuple, ast.Set, ast.List)):
                    visit(c)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree.body)
    return list(dict.fromkeys(out))


def _is_affix(node: ast.AST) -> bool:
    """``x.startswith('…')`` or ``x.endswith('…')``."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith") and len(node.args) == 1
            and not node.keywords and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str))


def _is_type_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type"


def _variable(node: ast.AST) -> str | None:
    """The variable a node names: ``x``, ``self.size``, ``len(x)`` (``old(x)`` is ``x``)."""
    if isinstance(node, ast.Name) and node.id not in ("None", "True", "False"):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _variable(node.value)
        return None if base is None or base.startswith("len(") else f"{base}.{node.attr}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1 \
            and not node.keywords:
        inner = _variable(node.args[0])
        if inner is None:
            return None
        if node.func.id == "len":
            return f"len({inner})"
        if node.func.id == "old":
            return inner
    return None


def parse(expr: str) -> ast.Expression:
    """``expr`` parsed and checked against the subset; ContractError otherwise."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ContractError(f"contract {expr!r} does not parse: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom,
                             ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
                             ast.Subscript, ast.Starred, ast.JoinedStr, ast.Dict, ast.IfExp)):
            raise ContractError(f"contract {expr!r}: {type(node).__name__} is not allowed in a contract")
        if isinstance(node, ast.Call) and not (_is_affix(node) or (
                isinstance(node.func, ast.Name) and node.func.id in ("len", "type", "old", "abs")
                and len(node.args) == 1 and not node.keywords)):
            raise ContractError(f"contract {expr!r}: only len(x), type(x), old(x), abs(x) and "
                                f"x.startswith/endswith('...') may be called, not {ast.unparse(node)!r}")
    return tree


def evaluate(expr: str, lookup: Lookup, n: int) -> Column:
    """``expr`` over ``n`` calls: (holds, known) per call. ``lookup(name)`` gives a variable."""
    return _truth(_eval(parse(expr).body, lookup, n), n)


def _truth(value: Any, n: int) -> Column:
    if isinstance(value, Column) and value.v.dtype == bool:
        return value
    if isinstance(value, Ref):
        c = value.as_value()
        return Column(np.array([bool(x) for x in c.v], bool), c.known)
    if isinstance(value, Column):
        return Column(value.v.astype(bool), value.known)
    if isinstance(value, Const) and value.values is None:
        return Column(np.full(n, bool(value.value)), np.ones(n, bool))
    raise ContractError("a contract must be a condition")


def _eval(node: ast.expr, lookup: Lookup, n: int) -> Any:
    name = _variable(node)
    if name is not None:
        return lookup(name)
    if isinstance(node, ast.Constant):
        return Const(node.value)
    if isinstance(node, (ast.Tuple, ast.Set, ast.List)):
        items = []
        for elt in node.elts:
            if isinstance(elt, (ast.Name, ast.Attribute)):  # class names: type(x) in (int, str)
                items.append(_Class(class_name(elt)))
                continue
            item = _eval(elt, lookup, n)  # a constant, -1 among them
            if not isinstance(item, Const) or item.values is not None:
                raise ContractError(f"{ast.unparse(elt)!r}: a literal set holds constants or class names")
            items.append(item.value)
        return Const(None, tuple(items))
    if _is_affix(node):
        target = _eval(node.func.value, lookup, n)  # type: ignore[attr-defined]
        if not isinstance(target, Ref):
            raise ContractError(f"{ast.unparse(node)!r}: startswith/endswith of a variable only")
        text = target.as_text()
        affix = node.args[0].value  # type: ignore[attr-defined]
        test = str.startswith if node.func.attr == "startswith" else str.endswith  # type: ignore[attr-defined]
        holds = np.array([bool(k) and isinstance(t, str) and test(t, affix)
                          for t, k in zip(text.v, text.known, strict=True)], bool)
        return Column(holds, text.known)
    if isinstance(node, ast.Call):
        func = node.func.id  # type: ignore[attr-defined]
        arg = _eval(node.args[0], lookup, n)
        if func == "type":
            if not isinstance(arg, Ref):
                raise ContractError(f"type() of {ast.unparse(node.args[0])!r}: only of a variable")
            return TypeOf(arg.cls)
        if func == "abs":
            c = _num(arg, n)
            return Column(np.abs(c.v), c.known)
        return arg  # old(expr): the entry value, which is what a record holds
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, lookup, n)
        if isinstance(node.op, ast.Not):
            t = _truth(operand, n)
            return Column(~t.v, t.known)
        if isinstance(node.op, ast.USub):
            if isinstance(operand, Const):
                return Const(-operand.value)
            c = _num(operand, n)
            return Column(-c.v, c.known)
        if isinstance(node.op, ast.UAdd):
            return operand
    if isinstance(node, ast.BinOp):
        return _binop(node.op, _eval(node.left, lookup, n), _eval(node.right, lookup, n), n)
    if isinstance(node, ast.BoolOp):
        values = [_truth(_eval(v, lookup, n), n) for v in node.values]
        out = values[0]
        for other in values[1:]:
            out = _and(out, other) if isinstance(node.op, ast.And) else _or(out, other)
        return out
    if isinstance(node, ast.Compare):
        left = _eval(node.left, lookup, n)
        out: Column | None = None
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            if isinstance(left, TypeOf) and isinstance(comparator, (ast.Name, ast.Attribute)):
                right: Any = Const(None, (_Class(class_name(comparator)),))  # type(x) is C
            else:
                right = _eval(comparator, lookup, n)
            part = _compare(op, left, right, n)
            out = part if out is None else _and(out, part)
            left = right
        assert out is not None
        return out
    raise ContractError(f"{ast.unparse(node)!r} is not allowed in a contract")


@dataclass(frozen=True)
class _Class:
    name: str


def _and(a: Column, b: Column) -> Column:
    known = (a.known & b.known) | (a.known & ~a.v) | (b.known & ~b.v)
    return Column(a.v & b.v, known)


def _or(a: Column, b: Column) -> Column:
    known = (a.known & b.known) | (a.known & a.v) | (b.known & b.v)
    return Column(a.v | b.v, known)


def _num(value: Any, n: int) -> Column:
    if isinstance(value, Ref):
        return value.as_num()
    if isinstance(value, Column):
        return value
    if isinstance(value, Const) and isinstance(value.value, (int, float)) and value.values is None:
        return Column(np.full(n, float(value.value)), np.ones(n, bool))
    raise ContractError("arithmetic needs numbers")


def _binop(op: ast.operator, a: Any, b: Any, n: int) -> Any:
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(eval(compile(ast.Expression(ast.BinOp(ast.Constant(a.value), op, ast.Constant(b.value))),
                                  "<contract>", "eval")))
    x, y = _num(a, n), _num(b, n)
    known = x.known & y.known
    with np.errstate(all="ignore"):
        if isinstance(op, ast.Add):
            v = x.v + y.v
        elif isinstance(op, ast.Sub):
            v = x.v - y.v
        elif isinstance(op, ast.Mult):
            v = x.v * y.v
        elif isinstance(op, (ast.Mod, ast.FloorDiv)):
            zero = y.v == 0
            known = known & ~zero
            safe = np.where(zero, 1, y.v)
            v = np.mod(x.v, safe) if isinstance(op, ast.Mod) else np.floor_divide(x.v, safe)
        else:
            raise ContractError(f"operator {type(op).__name__} is not allowed in a contract")
    return Column(v, known)


_ORDER = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal}


def _compare(op: ast.cmpop, a: Any, b: Any, n: int) -> Column:
    ones = np.ones(n, bool)
    if isinstance(op, (ast.Is, ast.IsNot)):
        if isinstance(a, TypeOf):
            names = _class_names(b)
            holds = np.isin(a.cls.astype(str), names)
            known = a.cls != None  # noqa: E711
        elif isinstance(a, Ref) and isinstance(b, Const) and b.value is None and b.values is None:
            holds, known = a.cls == NONE_CLASS, a.present
        else:
            raise ContractError("'is' compares a variable with None, or type(x) with a class")
        holds = holds if isinstance(op, ast.Is) else ~holds
        return Column(np.asarray(holds, bool), np.asarray(known, bool))
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(b, Const) or b.values is None:
            raise ContractError("'in' needs a literal set, tuple or list on its right")
        if isinstance(a, TypeOf):
            holds, known = np.isin(a.cls.astype(str), _class_names(b)), a.cls != None  # noqa: E711
        else:
            nums = [v for v in b.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            texts = [v for v in b.values if isinstance(v, str)]
            col = _operand(a, nums and not texts, n)
            if col.v.dtype == object:
                holds = np.array([v in b.values for v in col.v], bool)
            else:
                holds = np.isin(col.v, [float(v) for v in b.values if isinstance(v, (int, float))])
            if isinstance(a, Ref) and None in b.values:
                holds = holds | (a.cls == NONE_CLASS)
            known = col.known | (a.cls == NONE_CLASS) if isinstance(a, Ref) else col.known
        holds = holds if isinstance(op, ast.In) else ~holds
        return Column(np.asarray(holds, bool), np.asarray(known, bool))
    if isinstance(op, (ast.Eq, ast.NotEq)):
        numeric = _is_numeric(a) or _is_numeric(b)
        x, y = _operand(a, numeric, n), _operand(b, numeric, n)
        if x.v.dtype == object or y.v.dtype == object:
            holds = np.array([p == q for p, q in zip(_wide(x.v, n), _wide(y.v, n), strict=True)], bool)
        else:
            holds = x.v == y.v
        return Column(holds if isinstance(op, ast.Eq) else ~holds, x.known & y.known & ones)
    # an order compares numbers, unless one side is a string constant
    numeric = not any(isinstance(c, Const) and isinstance(c.value, str) for c in (a, b))
    x, y = _operand(a, numeric, n), _operand(b, numeric, n)
    known = x.known & y.known
    for kind, fn in _ORDER.items():
        if isinstance(op, kind):
            if x.v.dtype == object or y.v.dtype == object:
                holds, known = _ordered(fn, _wide(x.v, n), _wide(y.v, n), known)
            else:
                with np.errstate(invalid="ignore"):
                    holds = fn(x.v, y.v)
            return Column(np.asarray(holds, bool), known)
    raise ContractError(f"comparison {type(op).__name__} is not allowed in a contract")


def _ordered(fn: Any, xs: np.ndarray, ys: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An order over object columns: unknown where Python could not order the two values."""
    holds, known = np.zeros(len(xs), bool), known.copy()
    for i in np.flatnonzero(known).tolist():
        try:
            holds[i] = bool(fn(xs[i], ys[i]))
        except TypeError:
            known[i] = False
    return holds, known


def _wide(v: np.ndarray, n: int) -> np.ndarray:
    return v if len(v) == n else np.full(n, v[0] if len(v) else None, object)


def _is_numeric(x: Any) -> bool:
    if isinstance(x, Const):
        return isinstance(x.value, (int, float)) and x.values is None
    return isinstance(x, Column) and x.v.dtype != object


def _operand(x: Any, numeric: bool, n: int) -> Column:
    if isinstance(x, Ref):
        if numeric:
            return x.as_num()
        return x.as_value()
    if isinstance(x, Const):
        if x.values is not None:
            raise ContractError("a set, tuple or list may only follow 'in'")
        if isinstance(x.value, (int, float)) and numeric:
            return Column(np.full(n, float(x.value)), np.ones(n, bool))
        return Column(np.full(n, x.value, object), np.ones(n, bool))
    if isinstance(x, Column):
        return x
    raise ContractError("type(x) is compared with 'is' or 'in'")


def _class_names(b: Any) -> list[str]:
    if isinstance(b, Const) and b.values is not None:
        return [v.name for v in b.values if isinstance(v, _Class)] + \
            [NONE_CLASS for v in b.values if v is None]
    if isinstance(b, Const) and b.value is None:
        return [NONE_CLASS]
    raise ContractError("type(x) is compared with a class name, or a tuple of them")
