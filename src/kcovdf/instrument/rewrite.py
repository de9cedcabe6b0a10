"""The AST pass (the counterpart of -fsanitize-coverage=trace-args,trace-ret) and its flag.

Instrumented code refers to two module globals of its own: ``__kcovdf_on__`` (FLAG), an
exact bool that is True while some thread of the process is enabled, and ``__kcovdf__``
(RESERVED), always the recorder (kcovdf.runtime.core), whose ``entry/ret/exc/yld`` then decide per
thread. The flag is an exact bool because that is the truth test CPython makes fastest.
A function becomes two copies of its body behind one test::

    def f(a, *rest, key=None):
        "docstring stays first"
        if __kcovdf_on__:
            __kcovdf__.entry(PC, a, rest, key)    # entry(PC) without parameters: every call has one
            try:
                ...
                return __kcovdf__.ret(PC, x)
                ...
                y = __kcovdf__.resumed(PC, (yield v))   # each yield, yield from and await
                ...
                return __kcovdf__.ret(PC, None)   # the implicit return
            except:
                __kcovdf__.exc(PC)
                raise
        else:
            ...                                   # the original body, untouched

so while nothing is enabled a call costs one global load and one bool test, and a call
is recorded whole or not at all: the test is made once, at entry. The recorder stays
bound while idle, so a thread that read the flag just before it went off still calls a
real recorder, which records nothing for it. A body too large to copy (SPLIT_LIMIT) gets
one copy with a test before each recorder call instead (``if __kcovdf_on__:
__kcovdf__.entry(...)``, ``return __kcovdf__.ret(PC, x) if __kcovdf_on__ else x``), except
at suspension points: ``resumed()`` and ``yld()`` are called there without a test, because a
conditional around a ``yield`` or ``await`` adds a line event on 3.13 (see _Resumer).

A function with a ``return`` inside a ``try`` that has a ``finally``, or inside a
``with``, records its exit where the call really ends: each of its returns becomes
``return __kcovdf__.hold(PC, x)`` and the ``try`` gets ``finally: __kcovdf__.done(PC)``,
which writes the held value after every inner ``finally`` and ``__exit__`` has run (a
``finally`` that returns holds again; one that raises leaves through ``exc``).

Functions not nested in another function go further: compile_rewritten() also gives
each a single-copy variant of either body, and the Switch swaps their ``__code__`` between
the two at each flip, so they run without any test at all (see Switch).

No new local, no wrapper, no extra frame, no builtin name: the bare ``except:`` and bare
``raise`` keep the exception and its traceback as they were. The handler and ``done()``
sit on the ``def`` line, a line always executed: a line tracer sees it once more when an
exception leaves the function, or when a function with held returns ends.
"""

from __future__ import annotations

import ast
import logging
import types
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from kcovdf.instrument.config import Config
from kcovdf.instrument.redact import Redactor
from kcovdf.symbols import Symbol, pc_of

log = logging.getLogger("kcovdf")

RESERVED = "__kcovdf__"
#: The exact-bool global tested before every recorder call.
FLAG = "__kcovdf_on__"
#: A module whose docstring holds this marker is never instrumented.
DONT_INSTRUMENT = "KCOVDF_DONT_INSTRUMENT"
#: A function whose ``def`` line (or a decorator line) holds this comment is left alone, nested functions too.
SKIP_COMMENT = "kcovdf: skip"
#: arg_idx above 0xFC is reserved (docs/abi.md); later parameters are not recorded.
MAX_PARAMS = 0xFD
#: Bodies of more AST nodes than this are not copied (see the module docstring): the copy
#: doubles compile time and code size, and per-call tests are noise in a body that large.
#: An inner function is compiled once per copy of its outer one; the count includes the
#: functions a body nests, copies and all, so the limit also bounds that growth.
SPLIT_LIMIT = 4000

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_CO_NEWLOCALS = 0x2  # inspect.CO_NEWLOCALS: set on function code, not on class bodies
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


# --- the pass ----------------------------------------------------------------------------
class Rewritten(NamedTuple):
    """Output of the pass: the new tree, its symbols, and the functions left alone with why."""

    tree: ast.Module
    symbols: list[Symbol]
    skipped: list[tuple[str, str]]
    #: each split function outside any function (module level or in a class)
    static: tuple[ast.FunctionDef | ast.AsyncFunctionDef, ...] = ()


def opt_out(tree: ast.Module, source: str) -> str | None:
    """Why the whole module must stay uninstrumented, or None."""
    doc = ast.get_docstring(tree, clean=False)
    if doc and DONT_INSTRUMENT in doc:
        return f"its docstring holds {DONT_INSTRUMENT}"
    for name in (RESERVED, FLAG):
        if name in source:
            return f"it already uses the reserved name {name} (instrumented already?)"
    return None


def rewrite(tree: ast.Module, source: str, module: str, filename: str, config: Config,
            collides: Callable[[Symbol], bool] = lambda sym: False) -> Rewritten:
    """Instrument every function of ``tree`` in place; ``collides`` vetoes a pc already taken."""
    p = _Pass(source, module, filename, config, collides)
    p.walk(tree, "", frozenset())  # every node it adds is located by _at()
    return Rewritten(tree, p.symbols, p.skipped, tuple(p.static))


def compile_rewritten(result: Rewritten, filename: str) -> tuple[types.CodeType, ...]:
    """The module code of ``result``, then its two variant modules (see variants()) if it has any.

    Each static function gets, in turn, its recorded copy alone and its original copy
    alone; the tree is left in the second state, so compile it no more.
    """
    code = compile(result.tree, filename, "exec", dont_inherit=True)
    if not result.static:
        return (code,)
    splits = [(fn, fn.body[:-1], fn.body[-1]) for fn in result.static]
    for fn, head, split in splits:
        fn.body = head + split.body
    recorded = compile(result.tree, filename, "exec", dont_inherit=True)
    for fn, head, split in splits:
        # the original copy lost its declarations (see _without_declarations): hoist them
        decls: list[ast.stmt] = [_at(kind(sorted(names)), _point(split))
                                 for kind, names in _declared(split.body).items() if names]
        fn.body = head + decls + split.orelse or [_at(ast.Pass(), _point(split))]
    original = compile(result.tree, filename, "exec", dont_inherit=True)
    return code, original, recorded


def _declared(body: list[ast.stmt]) -> dict[type, set[str]]:
    """Names declared ``global`` and ``nonlocal`` directly in ``body`` (nested scopes have their own)."""
    found: dict[type, set[str]] = {ast.Global: set(), ast.Nonlocal: set()}
    for node in _own_nodes(body):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            found[type(node)].update(node.names)
    return found


def parameters(args: ast.arguments) -> list[tuple[str, str]]:
    """(name, inspect.Parameter kind name) of each parameter, in signature order."""
    out = [(a.arg, "POSITIONAL_ONLY") for a in args.posonlyargs]
    out += [(a.arg, "POSITIONAL_OR_KEYWORD") for a in args.args]
    if args.vararg:
        out.append((args.vararg.arg, "VAR_POSITIONAL"))
    out += [(a.arg, "KEYWORD_ONLY") for a in args.kwonlyargs]
    if args.kwarg:
        out.append((args.kwarg.arg, "VAR_KEYWORD"))
    return out


def _scope_globals(node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """Names declared ``global`` directly in the scope of ``node``."""
    return frozenset(_declared(node.body)[ast.Global])


def _own_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of ``body``, not entering nested functions, lambdas or classes."""
    stack: list[ast.AST] = list(body)
    while stack:
        child = stack.pop()
        yield child
        if not isinstance(child, _SCOPES):
            stack.extend(ast.iter_child_nodes(child))


class _Pass:
    def __init__(self, source: str, module: str, filename: str, config: Config,
                 collides: Callable[[Symbol], bool]) -> None:
        self.lines = source.splitlines()
        self.module = module
        self.filename = filename
        self.config = config
        self.collides = collides
        self.redacted = Redactor(config.redact)
        self.symbols: list[Symbol] = []
        self.skipped: list[tuple[str, str]] = []
        self.static: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self._sizes: dict[int, int] = {}  # id of a function done -> its node count, copies included
        self._pcs: set[int] = set()

    def walk(self, node: ast.AST, prefix: str, parent_globals: frozenset[str], nested: bool = False) -> None:
        """Visit nested definitions, computing each __qualname__ as the compiler does.

        ``nested``: inside a function, where definitions run per call (not static).
        """
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (*_FUNCS, ast.ClassDef)):
                qualname = child.name if child.name in parent_globals else prefix + child.name
                if isinstance(child, ast.ClassDef):
                    self.walk(child, qualname + ".", _scope_globals(child), nested)
                elif self._skip_comment(child):
                    self.skipped.append((qualname, f"marked '# {SKIP_COMMENT}'"))
                else:
                    self.walk(child, qualname + ".<locals>.", _scope_globals(child), True)
                    self.function(child, qualname, nested)
            else:
                self.walk(child, prefix, parent_globals, nested)

    def _skip_comment(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        first = min([d.lineno for d in fn.decorator_list] + [fn.lineno])
        return any(SKIP_COMMENT in line for line in self.lines[first - 1:fn.lineno])

    def function(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str, nested: bool) -> None:
        """Instrument one function (its nested functions are done already)."""
        cfg = self.config
        if not (cfg.args or cfg.ret or cfg.yields):
            return
        firstlineno = min([d.lineno for d in fn.decorator_list] + [fn.lineno])
        params = parameters(fn.args)
        pc = pc_of(self.module, qualname, firstlineno)
        sym = Symbol(pc, self.module, qualname, self.filename, firstlineno, tuple(params))
        if pc in self._pcs or self.collides(sym):
            self.skipped.append((qualname, f"pc 0x{pc:x} already names another function"))
            return
        self._pcs.add(pc)
        self.symbols.append(sym)

        body = fn.body
        head = body[:1] if _is_docstring(body[0]) else []
        rest = body[len(head):]
        own = list(_own_nodes(rest))
        # nodes to compile: its own, and those of the functions it nests (copies included)
        size = len(own) + sum(self._sizes.get(id(node), 0) for node in own if isinstance(node, _FUNCS))
        split = size <= SPLIT_LIMIT
        self._sizes[id(fn)] = 2 * size if split else size
        original = _without_declarations(_clone(rest)) if split else []
        recorded = self._recorded(fn, pc, params, rest, own, guarded=not split)
        if split:
            # The test carries the first statement's line, so a line tracer sees no extra line.
            recorded = [_at(ast.If(_flag(), recorded, original), _point(rest[0] if rest else fn))]
            if not nested:
                self.static.append(fn)
        fn.body = head + recorded

    def _recorded(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, pc: int, params: list[tuple[str, str]],
                  rest: list[ast.stmt], own: list[ast.AST], guarded: bool) -> list[ast.stmt]:
        """``rest`` (the body after the docstring; ``own``: its nodes) with its recorder calls.

        ``guarded``: each call behind its own test of the flag.
        """
        cfg = self.config
        suspends = any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)) for n in own)
        async_gen = isinstance(fn, ast.AsyncFunctionDef) and any(
            isinstance(n, (ast.Yield, ast.YieldFrom)) for n in own)
        held = cfg.ret and _returns_through_cleanup(rest)
        exit_method = "hold" if held else "ret"
        if cfg.ret:
            rest = _ReturnRewriter(pc, async_gen, guarded, exit_method).rewrite(rest)
        if suspends:
            rest = _Resumer(pc, cfg.yields).rewrite(rest)
        # Every call writes an entry, so that its exit, yields and events have a call to belong to.
        values: list[ast.expr] = [
            _attr("REDACTED") if self.redacted(name) else ast.Name(name, ast.Load())
            for name, _ in params[:MAX_PARAMS]] if cfg.args else []
        prologue: list[ast.stmt] = [_at(_statement(_call("entry", pc, *values), guarded),
                                        _point(rest[0] if rest else fn))]
        if cfg.ret:
            if not rest or not isinstance(rest[-1], (ast.Return, ast.Raise)):
                rest = rest + _implicit_return(pc, async_gen, guarded, _point(rest[-1] if rest else fn),
                                               exit_method)
            handler = ast.ExceptHandler(None, None, [_statement(_call("exc", pc), guarded),
                                                     ast.Raise(None, None)])
            # The handler sits on the def line: a line tracer sees that line once when an exception
            # leaves the function (a line always executed, so coverage figures stay true). So does
            # done(): it writes a held return once every finally and __exit__ has run.
            final = [_at(_statement(_call("done", pc), guarded), _point(fn))] if held else []
            rest = [_at(ast.Try(rest, [_at(handler, _point(fn))], [], final), _point(rest[0]))]
        return prologue + rest


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
        and isinstance(stmt.value.value, str)


def _flag() -> ast.Name:
    return ast.Name(FLAG, ast.Load())


def _attr(name: str) -> ast.Attribute:
    return ast.Attribute(ast.Name(RESERVED, ast.Load()), name, ast.Load())


def _call(method: str, pc: int, *values: ast.expr) -> ast.Call:
    return ast.Call(_attr(method), [ast.Constant(pc), *values], [])


def _recorder_call(method: str, pc: int, value: ast.expr, guarded: bool) -> ast.expr:
    """``__kcovdf__.method(pc, value)``; guarded: ``... if __kcovdf_on__ else value``."""
    call = _call(method, pc, value)
    return ast.IfExp(_flag(), call, value) if guarded else call


def _statement(call: ast.Call, guarded: bool) -> ast.stmt:
    """``call`` as a statement; guarded: ``if __kcovdf_on__: call``."""
    return ast.If(_flag(), [ast.Expr(call)], []) if guarded else ast.Expr(call)


def _implicit_return(pc: int, async_gen: bool, guarded: bool, where: ast.AST,
                     method: str = "ret") -> list[ast.stmt]:
    none = ast.Constant(None)
    if async_gen:
        # 'return <value>' is a SyntaxError in an async generator: record, then fall off the end.
        return [_at(_statement(_call(method, pc, none), guarded), where)]
    return [_at(ast.Return(_recorder_call(method, pc, none, guarded)), where)]


_CLEANUPS = (ast.With, ast.AsyncWith)


def _returns_through_cleanup(body: list[ast.stmt]) -> bool:
    """Whether a return of this scope runs code after it: it sits in a ``try`` with a
    ``finally`` or in a ``with``, so its value is known at the return but the call ends later."""
    stack: list[tuple[ast.AST, bool]] = [(stmt, False) for stmt in body]
    while stack:
        node, inside = stack.pop()
        if isinstance(node, ast.Return) and inside:
            return True
        if isinstance(node, _SCOPES):
            continue
        # ast.TryStar (3.11+) has a finalbody too
        inside = inside or isinstance(node, _CLEANUPS) or bool(getattr(node, "finalbody", None))
        stack.extend((child, inside) for child in ast.iter_child_nodes(node))
    return False


def _without_declarations(stmts: list[ast.stmt], where: ast.AST | None = None) -> list[ast.stmt]:
    """``stmts`` without their ``global``/``nonlocal`` statements (nested scopes keep theirs).

    For the uninstrumented copy of a body: the recorded copy comes first and keeps every
    declaration where it was (so a misplaced one is the same SyntaxError as without
    kcovdf), and declaring a name again after a use is an error. A block left empty gets
    a ``pass`` on the line of the statement holding it (``where``).
    """
    out = [stmt for stmt in stmts if not isinstance(stmt, (ast.Global, ast.Nonlocal))]
    for stmt in out:
        if not isinstance(stmt, _SCOPES):
            _strip_blocks(stmt)
    if stmts and not out:
        out = [_at(ast.Pass(), _point(where or stmts[0]))]
    return out


def _strip_blocks(node: ast.AST) -> None:
    """Apply _without_declarations to the blocks of a compound statement, handlers and cases too."""
    for field, value in ast.iter_fields(node):
        if not isinstance(value, list) or not value:
            continue
        if isinstance(value[0], ast.stmt):
            setattr(node, field, _without_declarations(value, node))
        elif isinstance(value[0], (ast.excepthandler, getattr(ast, "match_case", ast.excepthandler))):
            for part in value:
                _strip_blocks(part)


def _point(node: ast.AST) -> ast.AST:
    """A zero-width location at the start of ``node``, for statements the pass adds."""
    return ast.Pass(lineno=node.lineno, col_offset=node.col_offset,  # type: ignore[attr-defined]
                    end_lineno=node.lineno, end_col_offset=node.col_offset)  # type: ignore[attr-defined]


def _at(node: ast.AST, where: ast.AST) -> Any:
    """Give ``node`` and its location-less descendants the location of ``where``.

    A node that has a location already came from the source (or was placed): its subtree
    is left alone, which keeps the pass linear in the size of the module.
    """
    stack = [node]
    while stack:
        sub = stack.pop()
        if "lineno" in sub._attributes:
            if hasattr(sub, "lineno"):
                continue
            ast.copy_location(sub, where)
        stack.extend(ast.iter_child_nodes(sub))
    return node


def _clone(body: list[ast.stmt]) -> list[ast.stmt]:
    """A copy of ``body`` for the original copy; nested scopes are shared, not copied.

    The pass never changes a nested function, class or lambda once it is done with it,
    so both copies can hold the same one (compile() reads the tree, it does not own it).
    """
    def copy_node(node: Any) -> Any:
        if isinstance(node, list):
            return [copy_node(item) for item in node]
        if not isinstance(node, ast.AST) or isinstance(node, _SCOPES):
            return node
        new = node.__class__.__new__(node.__class__)
        for name, value in ast.iter_fields(node):
            setattr(new, name, copy_node(value))
        for name in node._attributes:
            if hasattr(node, name):
                setattr(new, name, getattr(node, name))
        return new
    return copy_node(body)


class _ReturnRewriter(ast.NodeTransformer):
    """Rewrites the returns of one function's own scope (nested scopes have their own pc)."""

    def __init__(self, pc: int, async_gen: bool, guarded: bool, method: str = "ret") -> None:
        self.pc = pc
        self.async_gen = async_gen
        self.guarded = guarded
        self.method = method

    def rewrite(self, body: list[ast.stmt]) -> list[ast.stmt]:
        return [out for stmt in body for out in _as_list(self.visit(stmt))]

    def _skip_scope(self, node: ast.AST) -> ast.AST:
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _skip_scope

    def visit_Return(self, node: ast.Return) -> ast.AST | list[ast.stmt]:
        if self.async_gen:
            return _implicit_return(self.pc, True, self.guarded, node, self.method) + [node]
        value = node.value or _at(ast.Constant(None), node)
        node.value = _at(_recorder_call(self.method, self.pc, value, self.guarded), node)
        return node


class _Resumer(ast.NodeTransformer):
    """Wraps each suspension point of one function's own scope: ``resumed(PC, (yield x))``,
    ``resumed(PC, await x)``, ``resumed(PC, (yield from x))``; with yield records on, the
    yielded value also goes through ``yld(PC, x)``."""

    def __init__(self, pc: int, yields: bool) -> None:
        self.pc = pc
        self.yields = yields

    def rewrite(self, body: list[ast.stmt]) -> list[ast.stmt]:
        return [self.visit(stmt) for stmt in body]

    def _skip_scope(self, node: ast.AST) -> ast.AST:
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _skip_scope

    def _resume(self, node: ast.expr) -> ast.expr:
        # Never behind a flag test, even in guarded code: a conditional around a suspension
        # point joins after it, and 3.13 gives the join a line event of its own. Idle, these
        # calls return their value at once.
        self.generic_visit(node)
        if self.yields and isinstance(node, ast.Yield):
            value = node.value or _at(ast.Constant(None), node)
            node.value = _at(_call("yld", self.pc, value), node)
        return _at(_call("resumed", self.pc, node), node)

    visit_Yield = visit_YieldFrom = visit_Await = _resume


def _as_list(result: ast.AST | list[ast.stmt]) -> list[ast.stmt]:
    return result if isinstance(result, list) else [result]  # type: ignore[list-item]
