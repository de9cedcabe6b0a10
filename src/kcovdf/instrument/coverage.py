"""The fuzzer's probes in the pass: branch counters (trace-pc) and comparison tracing (trace-cmp).

Both are off by default (Config.coverage, Config.compare); with them off this module is
never called and the rewritten code is what the pass alone makes. They run before the
recording pass, so both copies of a split body carry the same probes.

Coverage: the first statement of every branch of the included code (a function body,
each arm of ``if`` (an ``else`` is added where there is none), loop bodies and their
``else``, ``except`` handlers, ``match`` cases) becomes ``__kcovdf_cov__[ID] = 1``: one
store into the fuzzer's shared-memory map (kcovdf.fuzz.feedback), no call. IDs are
allocated in import order in this process, so rewritten code is never cached.

Comparisons: ``a OP b`` (one operator of ``== != < <= > >= in not in``) becomes
``__kcovdf_cmp__.OP(SITE, a, b)``; ``x.startswith/endswith/find/rfind/index/rindex/
removeprefix/removesuffix/partition/get(...)`` becomes ``__kcovdf_cmp__.call(SITE, x,
'name', ...)``; ``d[k]`` (a load, not a slice) becomes ``__kcovdf_cmp__.item(SITE, d, k)``
and ``match s:`` becomes ``match __kcovdf_cmp__.match(SITE, s, (constants of the cases)):``.
Each returns what the original expression gives, evaluated once, in the original order
of its operands; the tracer notes the operands for the fuzzer. SITE is unique per
expression, so the value profile is per comparison (Atheris reports every int comparison
through a few C call sites). The constants of the code go into an automatic dictionary.
"""

from __future__ import annotations

import ast
import threading

COV = "__kcovdf_cov__"
CMP = "__kcovdf_cmp__"
#: Size of the coverage map; IDs wrap beyond it (collisions, like libFuzzer's fixed map).
MAP_SIZE = 1 << 16

_OPS = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge",
        ast.In: "contains", ast.NotIn: "not_contains"}
_METHODS = frozenset({"startswith", "endswith", "find", "rfind", "index", "rindex", "removeprefix",
                      "removesuffix", "partition", "rpartition", "get", "count"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class Registry:
    """IDs handed out so far and the constants seen, for this process (the lock guards all three)."""

    def __init__(self) -> None:
        self.blocks = 0
        self.sites = 0
        self.constants: set[bytes | str | int] = set()
        self.lock = threading.Lock()


registry = Registry()


def transform(tree: ast.Module, coverage: bool, compare: bool) -> None:
    """Add the probes to ``tree`` in place (see the module docstring)."""
    with registry.lock:
        if compare:
            _Compares().visit(tree)
        if coverage:
            _add_counters(tree.body, top=True)
        _collect_constants(tree)
    ast.fix_missing_locations(tree)


# --- coverage --------------------------------------------------------------------------------
def _counter(where: ast.AST) -> ast.stmt:
    registry.blocks += 1
    ident = registry.blocks % MAP_SIZE
    target = ast.Subscript(ast.Name(COV, ast.Load()), ast.Constant(ident), ast.Store())
    stmt = ast.Assign([target], ast.Constant(1))
    return ast.copy_location(stmt, where)


def _add_counters(body: list[ast.stmt], top: bool = False) -> list[ast.stmt]:
    """Counters into every branch under ``body`` (``top``: the module body, which gets none itself)."""
    for stmt in body:
        for field in ("body", "orelse", "finalbody"):
            block = getattr(stmt, field, None)
            if not isinstance(block, list) or not block or not isinstance(block[0], ast.stmt):
                continue
            if isinstance(stmt, ast.ClassDef) or field == "finalbody" or \
                    (isinstance(stmt, ast.Try) and field == "orelse"):
                _add_counters(block)
                continue
            setattr(stmt, field, _probed(block))
        if isinstance(stmt, ast.If) and not stmt.orelse:
            stmt.orelse = [_counter(stmt)]
        for handler in getattr(stmt, "handlers", ()):
            handler.body = _probed(handler.body)
        for case in getattr(stmt, "cases", ()):
            case.body = _probed(case.body)
    return body


def _probed(block: list[ast.stmt]) -> list[ast.stmt]:
    head = block[:1] if block and isinstance(block[0], ast.Expr) and isinstance(
        block[0].value, ast.Constant) and isinstance(block[0].value.value, str) else []
    rest = _add_counters(block[len(head):])
    return head + [_counter(rest[0] if rest else block[0])] + rest


# --- comparisons -----------------------------------------------------------------------------
def _site() -> ast.Constant:
    registry.sites += 1
    return ast.Constant(registry.sites)


def _tracer(method: str) -> ast.Attribute:
    return ast.Attribute(ast.Name(CMP, ast.Load()), method, ast.Load())


class _Compares(ast.NodeTransformer):
    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if len(node.ops) != 1 or type(node.ops[0]) not in _OPS:
            return node
        call = ast.Call(_tracer(_OPS[type(node.ops[0])]), [_site(), node.left, node.comparators[0]], [])
        return ast.copy_location(call, node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in _METHODS:
            return node
        call = ast.Call(_tracer("call"), [_site(), func.value, ast.Constant(func.attr), *node.args],
                        node.keywords)
        return ast.copy_location(call, node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load) or isinstance(node.slice, (ast.Slice, ast.Tuple)):
            return node
        call = ast.Call(_tracer("item"), [_site(), node.value, node.slice], [])
        return ast.copy_location(call, node)

    def visit_Match(self, node: ast.Match) -> ast.AST:
        self.generic_visit(node)
        constants = [sub for case in node.cases for sub in ast.walk(case.pattern)
                     if isinstance(sub, ast.Constant)]
        values = ast.Tuple([ast.Constant(c.value) for c in constants], ast.Load())
        node.subject = ast.copy_location(
            ast.Call(_tracer("match"), [_site(), node.subject, values], []), node.subject)
        return node


def _collect_constants(tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, (str, bytes)) and 1 <= len(value) <= 64:
                registry.constants.add(value)
            elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 16:
                registry.constants.add(value)
