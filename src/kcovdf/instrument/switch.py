"""The switch: the flag of every instrumented namespace, and code patching like static keys.

Instrumented code tests one exact-bool global, ``__kcovdf_on__`` (rewrite.FLAG), that is
True while some thread of the process records. The Switch keeps that flag in step with
the recorder's activity in every namespace it planted, and patches the code of functions
not nested in another function: once a module has run, each such function gets the
single-copy variant of its body that fits the state (the original while idle, the
recorded one while enabled), swapped at every flip, so it runs with no test at all.

States of one patched function::

    split code --settle()--> original variant <--flip--> recorded variant
        ^                                                      |
        +-------- someone else sets __code__: left alone ------+
"""

from __future__ import annotations

import logging
import threading
import types
import weakref
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from kcovdf.instrument.rewrite import FLAG, RESERVED
from kcovdf.runtime import core  # the one place that picks the C core or its twin (set_code)
from kcovdf.symtab import Table

log = logging.getLogger("kcovdf")

_CO_NEWLOCALS = 0x2  # inspect.CO_NEWLOCALS: set on function code, not on class bodies


class Switch:
    """Flips ``__kcovdf_on__`` in every instrumented namespace when recording starts or stops.

    Bound to one recorder (kcovdf.runtime.core in production); also owns that recorder's symbol
    table. Namespaces are kept for the life of the process: a module dict cannot be
    weakly referenced, and instrumented modules are rarely unloaded.

    It also patches code, as the kernel patches static keys: a module-level function or
    method found in its namespace once the module has run ("settled") gets single-copy
    code, the original while nothing is enabled (no test at all) and the recorded one
    while something is; each flip swaps their ``__code__``. A function it never finds (a
    closure, or one only a registry holds) keeps the split code and its one test.
    """

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.symbols = Table(recorder.emit)
        self._namespaces: list[MutableMapping[str, Any]] = []
        self._pending: list[tuple[MutableMapping[str, Any], Variants]] = []
        # each patched function -> its (original, recorded) code
        self._patched: weakref.WeakKeyDictionary[types.FunctionType, tuple[types.CodeType, ...]]
        self._patched = weakref.WeakKeyDictionary()
        self._lock = threading.RLock()
        self._on = recorder.active() > 0
        recorder.on_activity(self._flip)

    def plant(self, namespace: MutableMapping[str, Any], variants: Variants | None = None) -> None:
        """Give ``namespace`` its recorder and flag, and keep the flag in step from now on.

        ``variants`` maps the split code of its static functions to their single-copy code;
        those functions are patched once the namespace's module has finished running.
        """
        with self._lock:
            if not any(ns is namespace for ns in self._namespaces):
                self._namespaces.append(namespace)
            namespace[RESERVED] = self.recorder
            namespace[FLAG] = self._on
            if variants:
                self._pending.append((namespace, variants))
        self.settle()

    def settle(self) -> None:
        """Patch the static functions of the planted modules that have finished running."""
        if not self._pending:
            return
        with self._lock:
            waiting = []
            for namespace, variants in self._pending:
                spec = namespace.get("__spec__")
                # importlib sets __spec__ after create_module (where plant runs) and clears
                # _initializing once the body has run; a namespace without one never settles.
                if spec is None or getattr(spec, "_initializing", False):
                    waiting.append((namespace, variants))
                    continue
                try:
                    found = list(functions_of(namespace, namespace))
                except Exception:  # noqa: BLE001 - an odd namespace object: its functions keep the split code
                    continue
                matched = [(func, variants[func.__code__]) for func in found if func.__code__ in variants]
                if not matched:
                    # not run yet (importlib.reload() execs after get_code planted it), or
                    # nothing left to patch: look again next time
                    waiting.append((namespace, variants))
                for func, pair in matched:
                    if _set_code(func, pair[self._on]):
                        self._patched[func] = pair
            self._pending = waiting

    def patched(self, func: types.FunctionType) -> bool:
        """Whether ``func`` runs single-copy code this Switch swaps."""
        pair = self._patched.get(func)
        return pair is not None and any(func.__code__ is code for code in pair)

    def _flip(self, active: bool) -> None:
        self.settle()
        with self._lock:
            self._on = bool(active)
            for namespace in self._namespaces:
                namespace[FLAG] = self._on
            for func, pair in list(self._patched.items()):
                if not any(func.__code__ is code for code in pair):
                    del self._patched[func]  # someone else replaced its code since: theirs now
                elif not _set_code(func, pair[self._on]):
                    del self._patched[func]
                    log.warning("kcovdf: setting __code__ of %s.%s was refused (an audit hook?); its calls "
                                "are %s from now on", func.__module__, func.__qualname__,
                                "recorded" if func.__code__ is pair[1] else "not recorded")


def _set_code(func: types.FunctionType, code: types.CodeType) -> bool:
    """Set ``func.__code__``; False if refused (an audit hook may veto the object.__setattr__ event)."""
    try:
        core.set_code(func, code)  # the C core's also keeps its call sites specializable on 3.13
    except Exception:  # noqa: BLE001 - the function keeps the code it has; the caller says what that means
        return False
    return True


_switch: Switch | None = None


_switch_lock = threading.Lock()


def get() -> Switch:
    """The process's Switch over kcovdf.runtime.core, created on first use."""
    global _switch
    with _switch_lock:
        if _switch is None:
            _switch = Switch(core)
        return _switch


#: Split code of a static function -> its (original, recorded) single-copy code.
Variants = dict[types.CodeType, tuple[types.CodeType, types.CodeType]]


def variants(codes: tuple[types.CodeType, ...]) -> Variants:
    """Pair the split code of each static function with its single-copy code, from compile_rewritten()."""
    if len(codes) != 3:
        return {}
    tables = [_static_code(code) for code in codes]
    out: Variants = {}
    for key, split in tables[0].items():
        original, recorded = tables[1].get(key), tables[2].get(key)
        # a function the pass left alone (skip comment, collision) compiles the same thrice
        if split is not None and original is not None and recorded is not None and original != split \
                and split.co_freevars == original.co_freevars == recorded.co_freevars:
            out[split] = (original, recorded)
    return out


def functions_of(namespace: MutableMapping[str, Any], globals_: MutableMapping[str, Any]
                 ) -> Iterator[types.FunctionType]:
    """Functions of a module (or class) namespace defined in that module, methods and wrappers included.

    Types are tested with ``type()``, never ``isinstance()``, so no object's ``__class__``
    property (a lazy proxy's, a mock's) runs.
    """
    seen: set[int] = set()
    stack = list(namespace.values())
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        kind = type(obj)
        if issubclass(kind, types.FunctionType):
            if obj.__globals__ is globals_:
                yield obj
            wrapped = obj.__dict__.get("__wrapped__")
            if wrapped is not None:
                stack.append(wrapped)
        elif issubclass(kind, (staticmethod, classmethod)):
            stack.append(obj.__func__)
        elif issubclass(kind, property):
            stack.extend(f for f in (obj.fget, obj.fset, obj.fdel) if f is not None)
        elif issubclass(kind, type):
            own = dict(vars(obj))
            if own.get("__module__") == globals_.get("__name__"):
                stack.extend(own.values())


def code_table(codes: Iterable[types.CodeType]) -> dict[tuple[str, int], types.CodeType | None]:
    """Function code objects by (name, first line); None where two different ones share a key.

    The pass compiles a nested function once per copy of its outer body: equal code
    under one key is one function. Different code under one key is ambiguous.
    """
    table: dict[tuple[str, int], types.CodeType | None] = {}
    for code in codes:
        key = (code.co_name, code.co_firstlineno)
        table[key] = code if table.get(key, code) == code else None
    return table


def _static_code(module: types.CodeType) -> dict[tuple[str, int], types.CodeType | None]:
    """Function code objects of a module at module level and in classes (see code_table)."""
    def static(code: types.CodeType) -> Iterator[types.CodeType]:
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                if const.co_flags & _CO_NEWLOCALS:  # a function: its nested ones are not static
                    yield const
                else:
                    yield from static(const)  # a class body
    return code_table(static(module))
