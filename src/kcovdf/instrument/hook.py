"""The import hook: a sys.meta_path finder whose loader executes instrumented code.

Reads top-down as three decisions, each logged with the rule that decided:
  1. Hook.find_spec: bail out on the name alone (selection.by_name), else ask the finders
     behind us for the spec and decide on its path (selection.decide);
  2. swap the plain SourceFileLoader of that spec (found directly, or inside a wrapping
     loader such as a post-import-hook's) for a Loader, a SourceFileLoader subclass;
  3. Loader.create_module: rewrite (or read the cache), plant the flag, register symbols.
A module that cannot be rewritten is imported unchanged with a warning naming it.
Modules imported before the hook went in are rewritten in place (rewrite_loaded).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from kcovdf.errors import InstrumentWarning
from kcovdf.instrument import cache, rewrite, selection, switch
from kcovdf.instrument.config import Config
from kcovdf.symbols import Symbol

log = logging.getLogger("kcovdf")


class Compiled(NamedTuple):
    """A rewritten module: the code to run, the single-copy code of its static functions, its symbols."""

    code: types.CodeType
    variants: switch.Variants
    symbols: list[Symbol]


# Attributes under which loader wrappers commonly keep the loader they wrap.
_WRAPPED_LOADER_ATTRS = ("loader", "_loader", "__wrapped__", "wrapped")


#: kcovdf's own source files, whose frames a warning never points at.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
#: Set by set_reporter(): where report() sends messages instead of warnings.
_reporter: Callable[[str], None] | None = None


def set_reporter(reporter: Callable[[str], None] | None) -> None:
    """Send report()'s messages to ``reporter`` (``kcovdf run`` prints them), or back to warnings."""
    global _reporter
    _reporter = reporter


def report(message: str) -> None:
    """Tell the user once: to the reporter if one is set, else as an InstrumentWarning.

    The warning points at the first caller outside kcovdf and importlib (the user's import
    or API call), and a warnings filter set to "error" cannot break an import.
    """
    if _reporter is not None:
        _reporter(message)
        return
    frame = sys._getframe(1)
    while frame.f_back is not None and (frame.f_code.co_filename.startswith(_PACKAGE_DIR)
                                        or frame.f_code.co_filename.startswith("<frozen importlib")):
        frame = frame.f_back
    try:
        warnings.warn_explicit(message, InstrumentWarning, frame.f_code.co_filename, frame.f_lineno,
                               module=frame.f_globals.get("__name__"),
                               registry=frame.f_globals.setdefault("__warningregistry__", {}))
    except Warning:
        pass


class Hook:
    """A sys.meta_path finder instrumenting the modules its Config selects."""

    def __init__(self, config: Config, caller: str = "install()") -> None:
        self.config = config
        self.caller = caller
        self.switch = switch.get()
        self.instrumented: list[str] = []
        self._busy = threading.local()

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Leave the with block: remove the hook, warning when it instrumented nothing."""
        uninstall(self)
        if not self.instrumented and exc_info[0] is None:
            report(f"kcovdf: {self.caller} instrumented no module (include={list(self.config.include)}, "
                   f"instrument_all={self.config.instrument_all})")

    # -- finder ---------------------------------------------------------------------
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        """The spec the next finders give, with our loader when the module is selected."""
        self.switch.settle()  # the modules imported before this one have run by now, mostly
        if not selection.by_name(fullname, self.config).instrument:
            return None
        busy = self._busy.__dict__.setdefault("names", set())
        if fullname in busy:
            return None  # a finder behind us asked the whole meta_path again
        busy.add(fullname)
        try:
            spec = self._next_spec(fullname, path, target)
        finally:
            busy.discard(fullname)
        if spec is None:
            return None
        verdict = selection.decide(fullname, spec.origin, self.config)
        log.debug("%s: %s (%s)", fullname, "selected" if verdict.instrument else "skipped", verdict.rule)
        if verdict.instrument:
            self._take_loader(spec)
        return spec

    def _next_spec(self, fullname: str, path: Any, target: Any) -> Any:
        found = False
        for finder in list(sys.meta_path):
            if not found:
                found = finder is self
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                return spec
        return None

    def _take_loader(self, spec: Any) -> None:
        owner, attr, loader = None, "", spec.loader
        for _ in range(4):
            if isinstance(loader, Loader):
                return
            if type(loader) is importlib.machinery.SourceFileLoader:
                ours = Loader(spec.name, loader.path, self)
                if owner is None:
                    spec.loader = ours
                else:
                    setattr(owner, attr, ours)
                return
            inner = next(((a, getattr(loader, a)) for a in _WRAPPED_LOADER_ATTRS
                          if hasattr(loader, a) and hasattr(getattr(loader, a), "exec_module")), None)
            if inner is None:
                break
            owner, (attr, loader) = loader, inner
        report(f"kcovdf: module {spec.name} is loaded by {type(spec.loader).__qualname__}, which kcovdf "
               "does not rewrite through; imported uninstrumented")

    # -- rewriting ------------------------------------------------------------------
    def compile(self, name: str, path: str, source: bytes) -> Compiled | None:
        """Instrumented code of module ``name`` and its symbols (registered), or None after a warning."""
        digest = hashlib.sha256(source).digest()
        cpath = cache.path_for(path, self.config) if self.config.cache else None
        hit = cache.read(cpath, digest, name, self.config) if cpath else None
        table = self.switch.symbols
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
                result = rewrite.rewrite(tree, text, name, path, self.config, collides)
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
                cache.write(cpath, digest, name, self.config, codes, symbols)
        for sym in table.register(symbols):
            report(f"kcovdf: {name}.{sym.qualname}: pc 0x{sym.pc:x} was taken meanwhile by another function")
        self.instrumented.append(name)
        log.info("kcovdf: instrumented module %s (%d functions) from %s", name, len(symbols), path)
        return Compiled(codes[0], switch.variants(codes), symbols)

    def rewrite_loaded(self) -> None:
        """Instrument in place the selected modules that were imported before the hook."""
        for name, module in list(sys.modules.items()):
            if not isinstance(module, types.ModuleType) or rewrite.RESERVED in vars(module):
                continue
            origin = getattr(getattr(module, "__spec__", None), "origin", None) or getattr(
                module, "__file__", None)
            verdict = selection.decide(name, origin, self.config)
            if not verdict.instrument:
                if verdict.rule == "no Python source" and name in self.config.include:
                    report(f"kcovdf: module {name} was imported before the hook and has no Python "
                           "source; left uninstrumented")
                continue
            rewrite_in_place(module, origin, self)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _code_objects(const)


def swap_code(functions: Iterator[types.FunctionType], module_code: types.CodeType) -> int:
    """Give each function the instrumented code of the same name and first line; returns how many."""
    table = switch.code_table(_code_objects(module_code))  # ambiguous keys are left alone
    count = 0
    for func in functions:
        old = func.__code__
        new = table.get((old.co_name, old.co_firstlineno))
        # A closure must keep its shape; anything else means the source changed since import.
        if new is not None and new.co_freevars == old.co_freevars and new is not old:
            func.__code__ = new
            count += 1
    return count


def rewrite_in_place(module: types.ModuleType, path: str, hook: Hook) -> None:
    """Replace the __code__ of the functions of an already-imported module with instrumented code."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        report(f"kcovdf: module {module.__name__} was imported before the hook and its source "
               f"{path} cannot be read ({exc}); left uninstrumented")
        return
    compiled = hook.compile(module.__name__, path, source)
    if compiled is None:
        return
    count = swap_code(switch.functions_of(module.__dict__, module.__dict__), compiled.code)
    hook.switch.plant(module.__dict__, compiled.variants)
    log.info("kcovdf: %s was imported before the hook: %d functions rewritten in place", module.__name__,
             count)


class Loader(importlib.machinery.SourceFileLoader):
    """A SourceFileLoader that executes the instrumented code (importlib's own exec_module runs it,
    so import-error tracebacks are trimmed exactly as without kcovdf)."""

    def __init__(self, fullname: str, path: str, hook: Hook) -> None:
        super().__init__(fullname, path)
        self.hook = hook
        self._code: types.CodeType | None = None

    def create_module(self, spec: Any) -> types.ModuleType | None:
        """A fresh module already holding the flag, when the rewrite succeeds."""
        compiled = self.hook.compile(spec.name, self.path, self.get_data(self.path))
        if compiled is None:
            # The plain loader's own get_code, called with no frame of ours in between, so
            # that importlib trims an error (a SyntaxError) to what python alone shows.
            self.get_code = super().get_code  # type: ignore[method-assign]
            return None
        self._code = compiled.code
        module = types.ModuleType(spec.name)
        self.hook.switch.plant(module.__dict__, compiled.variants)
        return module

    def get_code(self, fullname: str) -> types.CodeType | None:
        """The instrumented code prepared by create_module, else the plain code.

        importlib.reload() skips create_module: a module that already holds the flag gets
        instrumented code again; any other caller (runpy, pkgutil) gets the plain code,
        which runs anywhere.
        """
        code, self._code = self._code, None
        namespace = getattr(sys.modules.get(fullname), "__dict__", {})
        if code is None and rewrite.RESERVED in namespace:
            compiled = self.hook.compile(fullname, self.path, self.get_data(self.path))
            if compiled is not None:
                code = compiled.code
                self.hook.switch.plant(namespace, compiled.variants)
        return code if code is not None else super().get_code(fullname)


def install(config: Config, caller: str = "install()") -> Hook:
    """Put a Hook for ``config`` first on sys.meta_path and instrument the selected loaded modules.

    ``caller`` names the API call in warnings. The Hook is also a context manager that
    uninstalls itself.
    """
    hook = Hook(config, caller)
    sys.meta_path.insert(0, hook)
    hook.rewrite_loaded()
    return hook


def uninstall(hook: Hook | None = None) -> None:
    """Remove ``hook`` (default: every kcovdf hook) from sys.meta_path; instrumented code stays."""
    removed = [f for f in sys.meta_path if isinstance(f, Hook) and (hook is None or f is hook)]
    sys.meta_path[:] = [f for f in sys.meta_path if not any(f is r for r in removed)]
    for f in removed:
        f.switch.settle()  # the imports made through it have run
