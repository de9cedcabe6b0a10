"""The import hook: a sys.meta_path finder whose loader executes instrumented code.

Reads top-down as three decisions, each logged with the rule that decided:
  1. Hook.find_spec: bail out on the name alone (selection.by_name), else ask the finders
     behind us for the spec and decide on its path (selection.decide);
  2. swap the plain SourceFileLoader of that spec (found directly, or inside a wrapping
     loader such as a post-import-hook's) for a Loader, a SourceFileLoader subclass;
  3. Loader.create_module: the instrumented code from install.module_code(), which
     rewrites (or reads the cache), plants the flag and registers the symbols.
A module that cannot be rewritten is imported unchanged with a warning naming it.
Modules imported before the hook are rewritten in place (install.rewrite_loaded).

A Hook's life (State)::

    install(config) --> INSTALLED --uninstall(), the end of its with block,--> REMOVED
                                    or anyone taking it off sys.meta_path

Only an INSTALLED hook finds modules; the code it instrumented stays instrumented after.
"""

from __future__ import annotations

import enum
import importlib.machinery
import logging
import sys
import threading
import types
from typing import Any

from kcovdf.instrument import install as installer
from kcovdf.instrument import rewrite, selection, switch
from kcovdf.instrument.config import Config
from kcovdf.instrument.switch import report
from kcovdf.runtime import core

log = logging.getLogger("kcovdf")

# Attributes under which loader wrappers commonly keep the loader they wrap.
_WRAPPED_LOADER_ATTRS = ("loader", "_loader", "__wrapped__", "wrapped")


class State(enum.Enum):
    """Where a hook is in its life (the comment at the top of this module draws it)."""

    INSTALLED = "INSTALLED"  # on sys.meta_path: instruments the modules its config selects
    REMOVED = "REMOVED"      # off sys.meta_path: finds nothing; what it instrumented stays


class Hook:
    """A sys.meta_path finder instrumenting the modules its Config selects."""

    def __init__(self, config: Config, caller: str = "install()") -> None:
        self.config = config
        self.caller = caller
        self.switch = switch.get()
        self.tally = installer.Tally()
        self._busy = threading.local()

    @property
    def instrumented(self) -> list[str]:
        """Names of the modules instrumented through this hook, in order."""
        return self.tally.instrumented

    @property
    def state(self) -> State:
        """INSTALLED while the hook is on sys.meta_path."""
        return State.INSTALLED if any(f is self for f in sys.meta_path) else State.REMOVED

    def __enter__(self) -> Hook:
        if self.state is not State.INSTALLED:
            raise RuntimeError(f"{self.caller}: with: the hook was taken off sys.meta_path already "
                               f"(state {self.state.name}); call {self.caller} again")
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Leave the with block: remove the hook, warning when it instrumented nothing."""
        uninstall(self)
        if exc_info[0] is not None:
            return
        if not self.instrumented:
            report(f"kcovdf: {self.caller} instrumented no module (include={list(self.config.include)}, "
                   f"instrument_all={self.config.instrument_all})")
        for note in self.no_source_notes():
            report(f"kcovdf: {self.caller}: {note}")

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
        elif verdict.rule == "no Python source":
            self.tally.saw(fullname, spec.origin)
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

    # -- what was not instrumented ------------------------------------------------------
    def notes(self) -> list[str]:
        """What the selection did not instrument and why, one line each (``kcovdf run`` prints them).

        An include entry that instrumented nothing says why: a rule refused it (the safety
        list, exclude, kcovdf itself) or no module of that name was imported; then come the
        selected modules that have no Python source.
        """
        out = []
        for name in self.config.include:
            if any(selection.covers(name, m) for m in self.instrumented) or \
                    any(selection.covers(name, m) for m in self.tally.no_source):
                continue
            verdict = selection.by_name(name, self.config)
            if not verdict.instrument:
                out.append(f"--include {name}: not instrumented: {verdict.rule}")
            elif selection.importable(name):
                out.append(f"--include {name}: this process never imported {name}")
            else:
                out.append(f"--include {name}: no module named {name!r} can be imported")
        return out + self.no_source_notes()

    def no_source_notes(self) -> list[str]:
        """A line per kind of selected module without Python source (compiled, frozen, built in)."""
        out = []
        kinds = {"compiled": ("compiled (a C, Cython or mypyc extension)",
                              "compiled (C, Cython or mypyc extensions)"),
                 "frozen": ("frozen into the interpreter",) * 2,
                 "built in": ("built into the interpreter",) * 2}
        for kind, (one, many) in kinds.items():
            found = sorted(n for n, k in self.tally.no_source.items() if k == kind)
            if not found:
                continue
            if len(found) == 1:
                what = f"1 selected module is {one}, so kcovdf cannot record its functions"
            else:
                what = f"{len(found)} selected modules are {many}, so kcovdf cannot record their functions"
            out.append(f"{what} (it rewrites Python source): {switch.listed(found)}")
        return out


class Loader(importlib.machinery.SourceFileLoader):
    """A SourceFileLoader that executes the instrumented code (importlib's own exec_module runs it,
    so import-error tracebacks are trimmed exactly as without kcovdf)."""

    def __init__(self, fullname: str, path: str, hook: Hook) -> None:
        super().__init__(fullname, path)
        self.hook = hook
        self._code: types.CodeType | None = None

    def create_module(self, spec: Any) -> types.ModuleType | None:
        """A fresh module already holding the flag, when the rewrite succeeds."""
        module = types.ModuleType(spec.name)
        code = installer.module_code(spec.name, self.path, self.get_data(self.path), self.hook.config,
                                     module.__dict__, self.hook.tally)
        if code is None:
            # The plain loader's own get_code, called with no frame of ours in between, so
            # that importlib trims an error (a SyntaxError) to what python alone shows.
            self.get_code = super().get_code  # type: ignore[method-assign]
            return None
        self._code = code
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
            code = installer.module_code(fullname, self.path, self.get_data(self.path), self.hook.config,
                                         namespace, self.hook.tally)
        return code if code is not None else super().get_code(fullname)


def install(config: Config, caller: str = "install()") -> Hook:
    """Put a Hook for ``config`` first on sys.meta_path and instrument the selected loaded modules.

    ``caller`` names the API call in warnings. The Hook is also a context manager that
    uninstalls itself.
    """
    hook = Hook(config, caller)
    # the parameter names the pass redacts are redacted inside values too (fields, dict keys)
    core.redact(config.redact)
    sys.meta_path.insert(0, hook)
    installer.rewrite_loaded(config, hook.tally)
    return hook


def uninstall(hook: Hook | None = None) -> None:
    """Remove ``hook`` (default: every kcovdf hook) from sys.meta_path; instrumented code stays.

    Removing a hook that is REMOVED already does nothing.
    """
    removed = [f for f in sys.meta_path if isinstance(f, Hook) and (hook is None or f is hook)]
    sys.meta_path[:] = [f for f in sys.meta_path if not any(f is r for r in removed)]
    for f in removed:
        f.switch.settle()  # the imports made through it have run
