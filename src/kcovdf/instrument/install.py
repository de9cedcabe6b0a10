"""The one install path: compile (or read the cache), plant the flag, register the symbols, swap code.

Every way kcovdf instruments code goes through here:
  - a module being imported: the hook's Loader calls module_code(), importlib runs the code;
  - ``kcovdf run``'s main module: module_code() too, into the ``__main__`` namespace;
  - a module imported before the hook: rewrite_loaded() and rewrite_in_place() swap the
    ``__code__`` of its functions;
  - ``@instrument_func``: instrument_function() swaps one function's ``__code__``.

One policy when something goes wrong: warn (InstrumentWarning and the ``kcovdf`` logger,
once per module or function, naming it and saying what happens to its calls) and go on;
nothing here raises into the program. And one rule for code identity: a function whose
code object is held outside kcovdf (switch.holders()) keeps it.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import linecache
import logging
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

from kcovdf.errors import ConfigError
from kcovdf.instrument import cache, coverage, rewrite, selection, switch
from kcovdf.instrument.config import Config
from kcovdf.instrument.switch import names, pronouns, report
from kcovdf.symbols import Symbol

log = logging.getLogger("kcovdf")
F = TypeVar("F", bound=Callable[..., Any])


class Compiled(NamedTuple):
    """A rewritten module: the code to run, the single-copy code of its static functions, its symbols."""

    code: types.CodeType
    variants: switch.Variants
    symbols: list[Symbol]


@dataclasses.dataclass
class Tally:
    """What one selection instrumented, and the modules it matched that have no Python source."""

    instrumented: list[str] = dataclasses.field(default_factory=list)
    #: module name -> what it is instead: "compiled", "frozen" or "built in"
    no_source: dict[str, str] = dataclasses.field(default_factory=dict)

    def saw(self, name: str, origin: str | None) -> None:
        """Note selected module ``name``, whose ``origin`` is not Python source (namespace packages aside)."""
        if origin is None or origin == "namespace":
            return
        if origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            self.no_source[name] = "compiled"
        elif origin in ("frozen", "built-in"):
            self.no_source[name] = "frozen" if origin == "frozen" else "built in"


# --- compiling ------------------------------------------------------------------------------
def compile_module(name: str, path: str, source: bytes, config: Config, tally: Tally | None = None
                   ) -> Compiled | None:
    """Instrumented code of module ``name`` and its symbols (registered), or None after a warning."""
    digest = hashlib.sha256(source).digest()
    probes = config.coverage or config.compare
    # the probes' IDs are handed out per process: such code is never cached
    cpath = cache.path_for(path, config) if config.cache and not probes else None
    hit = cache.read(cpath, digest, name, config) if cpath else None
    table = switch.get().symbols
    if hit is not None and any(table.collides(s) for s in hit[1]):
        hit = None  # this process already holds one of these pcs: redo, without caching
    if hit is not None:
        codes, symbols = hit
        log.debug("%s: rewritten code from cache %s", name, cpath)
    else:
        collided: list[Symbol] = []

        def collides(sym: Symbol) -> bool:
            if table.collides(sym):
                collided.append(sym)
                return True
            return False
        try:
            text = importlib.util.decode_source(source)
            tree = ast.parse(text, path)
        except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
            # Python cannot compile it either: the import raises this error itself.
            log.info("kcovdf: module %s not instrumented: its source does not compile (%s)", name, exc)
            return None
        reason = rewrite.opt_out(tree, text)
        if reason is not None:
            log.info("kcovdf: module %s not instrumented: %s", name, reason)
            return None
        try:
            if probes:
                coverage.transform(tree, config.coverage, config.compare)
            result = rewrite.rewrite(tree, text, name, path, config, collides)
            codes = rewrite.compile_rewritten(result, path)
        except Exception as exc:  # noqa: BLE001 - whatever the pass hits, the import goes on
            report(f"kcovdf: cannot rewrite module {name} ({path}): {type(exc).__name__}: {exc}; "
                   "imported uninstrumented")
            return None
        symbols = result.symbols
        for qualname, why in result.skipped:
            if "pc" in why:
                report(f"kcovdf: {name}.{qualname} left uninstrumented: {why}")
            else:
                log.info("kcovdf: %s.%s left uninstrumented: %s", name, qualname, why)
        if cpath and not collided:
            cache.write(cpath, digest, name, config, codes, symbols)
    for sym in table.register(symbols):
        report(f"kcovdf: {name}.{sym.qualname}: pc 0x{sym.pc:x} was taken meanwhile by another function")
    if tally is not None:
        tally.instrumented.append(name)
    log.info("kcovdf: instrumented module %s (%d functions) from %s", name, len(symbols), path)
    return Compiled(codes[0], switch.variants(codes), symbols)


def module_code(name: str, path: str, source: bytes, config: Config,
                namespace: dict[str, Any], tally: Tally | None = None) -> types.CodeType | None:
    """The instrumented code of a module about to run in ``namespace`` (planted here), or None."""
    compiled = compile_module(name, path, source, config, tally)
    if compiled is None:
        return None
    if config.coverage or config.compare:
        from kcovdf.fuzz import feedback  # the probes' runtime, standard library only

        feedback.plant(namespace)
    switch.get().plant(namespace, compiled.variants)
    return compiled.code


# --- swapping code ---------------------------------------------------------------------------
def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _code_objects(const)


class Swapped(NamedTuple):
    """What swap_code() did: the functions given new code (with their old code), and those it left."""

    done: list[tuple[types.FunctionType, types.CodeType]]
    held: list[tuple[types.FunctionType, str]]  # each with what holds its code
    refused: list[types.FunctionType]


def swap_code(functions: Iterable[types.FunctionType], module_code: types.CodeType) -> Swapped:
    """Give each function the instrumented code of the same name and first line.

    A function whose code object is held outside kcovdf, or whose ``__code__`` set is
    refused, keeps its code.
    """
    table = switch.code_table(_code_objects(module_code))  # ambiguous keys are left alone
    pairs = []
    for func in functions:
        new = table.get((func.__code__.co_name, func.__code__.co_firstlineno))
        # A closure must keep its shape; anything else means the source changed since import.
        if new is not None and new.co_freevars == func.__code__.co_freevars and new is not func.__code__:
            pairs.append((func, new))
    del table
    # no local may hold an old code during the count (a local is a reference)
    held = switch.holders((func, known_refs(func.__code__)) for func, _ in pairs)
    out = Swapped([], [], [])
    for func, new in pairs:
        if id(func) in held:
            out.held.append((func, held[id(func)]))
            continue
        out.done.append((func, func.__code__))
        if not switch.set_code(func, new):
            out.done.pop()
            out.refused.append(func)
    return out


# Already rewritten code of a nested function -> its instrumented code, so that a decorated
# nested function is parsed once, not at every call of its enclosing function.
_done: dict[types.CodeType, types.CodeType] = {}
_done_keys: set[int] = set()  # ids of _done's keys (alive as long as they are keys)


def known_refs(code: types.CodeType) -> int:
    """References kcovdf holds to ``code`` before it swaps it out: a key of the instrument_func cache."""
    return 1 if id(code) in _done_keys else 0


def _say_left(where: str, swapped: Swapped, listed: bool = True) -> None:
    """One warning for the functions swap_code() left: what holds them, and that their calls are lost.

    ``listed``: name them (``where`` does not).
    """
    if swapped.held:
        w = pronouns(len(swapped.held))
        who = f"{names(f for f, _ in swapped.held)} keep{w['s']}" if listed else f"{w['it']} keeps"
        report(f"kcovdf: {where}: {who} {w['its']} uninstrumented code, which is held elsewhere (by "
               f"{swapped.held[0][1]}); {w['its']} calls are not recorded")
    if swapped.refused:
        w = pronouns(len(swapped.refused))
        whom = f" for {names(swapped.refused)}" if listed else ""
        report(f"kcovdf: {where}: setting __code__ was refused (an audit hook?){whom}; {w['it']} "
               f"stay{w['s']} uninstrumented, and {w['its']} calls are not recorded")


# --- modules imported before the hook ---------------------------------------------------------
def rewrite_loaded(config: Config, tally: Tally | None = None) -> None:
    """Instrument in place the selected modules that were imported before the hook."""
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or rewrite.RESERVED in vars(module):
            continue
        origin = getattr(getattr(module, "__spec__", None), "origin", None) or getattr(
            module, "__file__", None)
        verdict = selection.decide(name, origin, config)
        if not verdict.instrument:
            if verdict.rule == "no Python source":
                if tally is not None:
                    tally.saw(name, origin or ("built-in" if name in sys.builtin_module_names else None))
                if name in config.include:
                    report(f"kcovdf: module {name} was imported before the hook and has no Python "
                           "source; left uninstrumented")
            continue
        rewrite_in_place(module, origin, config, tally)


def rewrite_in_place(module: types.ModuleType, path: str, config: Config, tally: Tally | None = None) -> None:
    """Replace the ``__code__`` of the functions of an already-imported module with instrumented code."""
    name = module.__name__
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        report(f"kcovdf: module {name} was imported before the hook and its source "
               f"{path} cannot be read ({exc}); left uninstrumented")
        return
    compiled = compile_module(name, path, source, config, tally)
    if compiled is None:
        return
    code, found_variants = compiled.code, compiled.variants
    del compiled  # the module code must be gone before settle() counts who holds its functions' code
    if config.coverage or config.compare:
        from kcovdf.fuzz import feedback

        feedback.plant(module.__dict__)
    swapped = swap_code(switch.functions_of(module.__dict__, module.__dict__), code)
    del code
    _say_left(f"module {name} was imported before the hook", swapped)
    switch.get().plant(module.__dict__, found_variants)
    log.info("kcovdf: %s was imported before the hook: %d functions rewritten in place", name,
             len(swapped.done))


# --- one function ------------------------------------------------------------------------------
def instrument_function(func: F) -> F:
    """Instrument one function (and the functions nested in it) in place; returns it (instrument_func)."""
    target: Any = func
    for _ in range(16):  # reach the function under functools.wraps-style wrappers
        if isinstance(target, types.FunctionType) or not hasattr(target, "__wrapped__"):
            break
        target = target.__wrapped__
    if not isinstance(target, types.FunctionType):
        raise ConfigError(f"instrument_func(): expected a function, got {type(func).__qualname__}")
    flags = switch.get()
    name = target.__module__ or "__main__"
    where = f"instrument_func(): {name}.{target.__qualname__}"
    done = _done.get(target.__code__)
    if done is not None:  # a nested function made again by its enclosing function
        flags.plant(target.__globals__)
        _say_left(where, _swap_one(target, done), listed=False)
        return func
    if rewrite.RESERVED in target.__code__.co_names or flags.patched(target):
        return func  # already instrumented (by the hook or an earlier decorator)
    verdict = selection.by_name(name, Config(include=(name,)))
    if not verdict.instrument:
        report(f"kcovdf: {where} stays uninstrumented ({verdict.rule})")
        return func
    filename = target.__code__.co_filename
    source = "".join(linecache.getlines(filename, target.__globals__))
    if not source:
        report(f"kcovdf: instrument_func(): no source for {name}.{target.__qualname__} ({filename}); "
               "left uninstrumented")
        return func
    try:
        tree = ast.parse(source, filename)
        result = rewrite.rewrite(tree, source, name, filename, Config(), flags.symbols.collides)
        codes = rewrite.compile_rewritten(result, filename)
    except Exception as exc:  # noqa: BLE001 - the program goes on with the plain function
        report(f"kcovdf: {where}: cannot rewrite: {type(exc).__name__}: {exc}; left uninstrumented")
        return func
    found_variants = switch.variants(codes)
    module_code_ = codes[0]
    del codes  # the module code must be gone before settle() counts who holds the new code
    swapped = swap_code(iter([target]), module_code_)
    del module_code_
    if swapped.held or swapped.refused:
        _say_left(where, swapped, listed=False)
        return func
    if not swapped.done:
        report(f"kcovdf: {where} does not match its source in {filename}; left uninstrumented")
        return func
    if target.__code__ not in found_variants:  # nested: made again at each call of its outer function
        old = swapped.done[0][1]
        _done[old] = target.__code__
        _done_keys.add(id(old))
    del swapped
    flags.plant(target.__globals__, found_variants)
    mine = target.__qualname__
    flags.symbols.register(s for s in result.symbols
                           if s.qualname == mine or s.qualname.startswith(mine + ".<locals>."))
    log.info("kcovdf: instrumented function %s.%s", name, mine)
    return func


def _swap_one(func: types.FunctionType, new: types.CodeType) -> Swapped:
    held = switch.holders([(func, known_refs(func.__code__))])
    if held:
        return Swapped([], [(func, held[id(func)])], [])
    old = func.__code__
    if not switch.set_code(func, new):
        return Swapped([], [], [func])
    return Swapped([(func, old)], [], [])
