"""The switch: the flag of every instrumented namespace, and code patching like static keys.

Instrumented code tests one exact-bool global, ``__kcovdf_on__`` (rewrite.FLAG), that is
True while some thread of the process records. The Switch keeps that flag in step with
the recorder's activity in every namespace it planted, and patches the code of functions
not nested in another function: once a module has run, each such function gets the
single-copy variant of its body that fits the state (the original while idle, the
recorded one while enabled), swapped at every flip, so it runs with no test at all.

A program sees the same code object for as long as it holds one. Before each swap the
Switch checks that nothing outside kcovdf holds the function's current code (holders():
one reference count, confirmed through the garbage collector only when it is higher than
kcovdf's own references explain). Running frames, suspended generators, code constants
and other functions sharing the code are not holders: they keep the code they have.

States of one function (State)::

                      settle(): code held nowhere else
    UNPATCHED (split) -------------------------------> ORIGINAL <--flip--> RECORDED
        ^   code held elsewhere or the set refused:        |                  |
        |   stays split, one test per call, records        +------------------+
        |                                                  | code held elsewhere or the
        |                                                  | set refused, at a flip
        |                                                  v
        +---- someone else sets __code__ --------------- PINNED: keeps the variant it runs
              (from any state: theirs from then on)       (ORIGINAL: no longer recorded, said once)
"""

from __future__ import annotations

import collections
import enum
import gc
import logging
import os
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from kcovdf.errors import InstrumentWarning
from kcovdf.instrument.rewrite import FLAG, RESERVED
from kcovdf.runtime import core  # the one place that picks the C core or its twin (set_code)
from kcovdf.symbols import SymbolTable

log = logging.getLogger("kcovdf")

_CO_NEWLOCALS = 0x2  # inspect.CO_NEWLOCALS: set on function code, not on class bodies
_KCOVDF_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SHOWN = 5  # names a message lists before "and N more"


class State(enum.Enum):
    """What code a function runs, as far as the Switch is concerned (the diagram above)."""

    UNPATCHED = "UNPATCHED"  # not swapped by the Switch: split or guarded code, or someone else's
    ORIGINAL = "ORIGINAL"    # the original body alone: nothing is enabled
    RECORDED = "RECORDED"    # the recorded body alone: something is enabled
    PINNED = "PINNED"        # keeps the variant it runs: its code is held elsewhere, or a swap was refused


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
    while frame.f_back is not None and (frame.f_code.co_filename.startswith(_KCOVDF_DIR)
                                        or frame.f_code.co_filename.startswith("<frozen importlib")):
        frame = frame.f_back
    try:
        warnings.warn_explicit(message, InstrumentWarning, frame.f_code.co_filename, frame.f_lineno,
                               module=frame.f_globals.get("__name__"),
                               registry=frame.f_globals.setdefault("__warningregistry__", {}))
    except Warning:
        pass


def listed(items: Iterable[str]) -> str:
    """``a, b, c`` for a message, at most a few, then how many more."""
    shown = list(items)
    more = len(shown) - _SHOWN
    return ", ".join(shown[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def names(funcs: Iterable[types.FunctionType]) -> str:
    """``mod.f, mod.C.g`` for a message (listed())."""
    return listed(f"{f.__module__}.{f.__qualname__}" for f in funcs)


def pronouns(count: int) -> dict[str, str]:
    """The words of a message about ``count`` functions: it/they, its/their, it/them, s/"" (runs/run)."""
    if count == 1:
        return {"it": "it", "its": "its", "them": "it", "s": "s"}
    return {"it": "they", "its": "their", "them": "them", "s": ""}


class Switch:
    """Flips ``__kcovdf_on__`` in every instrumented namespace when recording starts or stops.

    Bound to one recorder (kcovdf.runtime.core in production); also owns that recorder's symbol
    table. Namespaces are kept for the life of the process: a module dict cannot be
    weakly referenced, and instrumented modules are rarely unloaded.

    It also patches code, as the kernel patches static keys: a module-level function or
    method found in its namespace once the module has run ("settled") gets single-copy
    code, the original while nothing is enabled (no test at all) and the recorded one
    while something is; each flip swaps their ``__code__``. A function it never finds (a
    closure, or one only a registry holds), or whose code is held elsewhere, keeps the
    split code and its one test.
    """

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.symbols = SymbolTable(recorder.emit)
        self._namespaces: list[MutableMapping[str, Any]] = []
        self._pending: list[tuple[MutableMapping[str, Any], Variants]] = []
        # each patched function -> its (original, recorded) code; the lock protects both tables
        self._patched: weakref.WeakKeyDictionary[types.FunctionType, tuple[types.CodeType, ...]]
        self._patched = weakref.WeakKeyDictionary()
        self._pinned: weakref.WeakKeyDictionary[types.FunctionType, tuple[types.CodeType, ...]]
        self._pinned = weakref.WeakKeyDictionary()
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
        """Patch the static functions of the planted modules that have finished running.

        A function whose split code is held outside kcovdf keeps it for good (it records
        correctly, at one test per call).
        """
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
                matched = [func for func in found if func.__code__ in variants]
                if not matched:
                    # not run yet (importlib.reload() execs after get_code planted it), or
                    # nothing left to patch: look again next time
                    waiting.append((namespace, variants))
                    continue
                del found
                # kcovdf's one reference to each split code: its key in ``variants``
                held = holders([(func, 1) for func in matched], own=(variants, *variants.values()))
                for func in matched:
                    if id(func) in held:
                        log.info("kcovdf: %s.%s keeps its split code: its code object is held by %s",
                                 func.__module__, func.__qualname__, held[id(func)])
                refused = []
                for func in matched:
                    if id(func) in held:
                        continue
                    pair = variants[func.__code__]
                    if set_code(func, pair[self._on]):
                        self._patched[func] = pair
                    else:
                        refused.append(func)
                if refused:
                    w = pronouns(len(refused))
                    report(f"kcovdf: setting __code__ was refused (an audit hook?) for {names(refused)}: "
                           f"{w['it']} keep{w['s']} the split code, and {w['its']} calls are recorded as "
                           "usual")
            self._pending = waiting

    def state(self, func: types.FunctionType) -> State:
        """The state of ``func`` (State); a function the Switch does not swap is UNPATCHED."""
        if not isinstance(func, types.FunctionType):
            raise TypeError(f"Switch.state(): expected a function, not {type(func).__qualname__}")
        with self._lock:
            for table in (self._patched, self._pinned):
                pair = table.get(func)
                if pair is None:
                    continue
                code = func.__code__
                if code is pair[0] or code is pair[1]:
                    if table is self._pinned:
                        return State.PINNED
                    return State.RECORDED if code is pair[1] else State.ORIGINAL
        return State.UNPATCHED

    def patched(self, func: types.FunctionType) -> bool:
        """Whether ``func`` runs single-copy code this Switch set (ORIGINAL, RECORDED or PINNED)."""
        return self.state(func) is not State.UNPATCHED

    def _flip(self, active: bool) -> None:
        self.settle()
        with self._lock:
            self._on = bool(active)
            for namespace in self._namespaces:
                namespace[FLAG] = self._on
            mine = []
            for func, pair in list(self._patched.items()):
                if func.__code__ is pair[0] or func.__code__ is pair[1]:
                    mine.append((func, pair))
                else:
                    del self._patched[func]  # someone else replaced its code since: theirs now
            # kcovdf's one reference to each variant: its (original, recorded) pair
            held = holders([(func, 1) for func, _ in mine], own=[pair for _, pair in mine])
            kept = []
            for func, pair in mine:
                if id(func) in held or not set_code(func, pair[self._on]):
                    del self._patched[func]
                    self._pinned[func] = pair
                    kept.append((func, held.get(id(func))))
            if kept:
                _report_pinned(kept)

    def __repr__(self) -> str:
        return (f"<kcovdf Switch flag={self._on} namespaces={len(self._namespaces)} "
                f"patched={len(self._patched)} pinned={len(self._pinned)}>")


def _report_pinned(kept: list[tuple[types.FunctionType, str | None]]) -> None:
    """Say, once per flip, which functions the Switch no longer swaps and what that means for their calls."""
    lost = [func for func, _holder in kept if RESERVED not in func.__code__.co_names]
    for func, holder in kept:
        why = f"its code object is held by {holder}" if holder else \
            "setting __code__ was refused (an audit hook?)"
        log.info("kcovdf: %s.%s is no longer swapped: %s", func.__module__, func.__qualname__, why)
    if lost:
        w = pronouns(len(lost))
        holder = next((h for f, h in kept if h and f in lost), None)
        why = f"{w['its']} code is held elsewhere (by {holder})" if holder else \
            "setting __code__ was refused (an audit hook?)"
        report(f"kcovdf: calls to {names(lost)} are not recorded from now on: {w['it']} run{w['s']} the "
               f"uninstrumented code and {why}, so kcovdf no longer swaps {w['them']}")


def set_code(func: types.FunctionType, code: types.CodeType) -> bool:
    """Set ``func.__code__``; False if refused (an audit hook may veto the object.__setattr__ event)."""
    try:
        core.set_code(func, code)  # the C core's also keeps its call sites specializable on 3.13
    except Exception:  # noqa: BLE001 - the function keeps the code it has; the caller says what that means
        return False
    return True


# --- who holds a code object -------------------------------------------------------------
def holders(batch: Iterable[tuple[types.FunctionType, int]], own: Iterable[object] = ()) -> dict[int, str]:
    """Who, outside kcovdf, holds the current code object of each function of ``batch``.

    ``batch`` pairs each function with the number of references kcovdf itself holds to its
    current code (its own ``__code__`` and those of the other functions of the batch are
    counted here); ``own`` are the containers holding them. Returns ``{id(function): holder}``
    for the functions whose code something else holds, the holder described for a message.

    The test is one reference count per code. Only when that is higher than explained are
    the frames of every thread and the constants of live code counted (a running frame
    keeps what it runs, and a closure's code is a constant of its enclosing function's),
    and then the garbage collector asked who refers to the code. What it cannot see (C
    code, or a dict or tuple it does not track) counts as a holder.
    """
    # the fast path, each code on its own: its function's reference and the caller's stand
    # where the probe's list and argument do
    probe = [compile("", "<kcovdf probe>", "exec")]
    base = sys.getrefcount(probe[0])
    odd = [(func, known) for func, known in batch if sys.getrefcount(func.__code__) - base > known]
    if not odd:
        return {}
    entries = _suspects(odd)
    del odd
    _measure(entries)
    suspects = [e for e in entries if e.unexplained > 0]
    if not suspects:
        return {}
    census = _census(suspects)
    for e in suspects:
        e.unexplained -= census.refs[id(e.code)]
    suspects = [e for e in suspects if e.unexplained > 0]
    if not suspects:
        return {}
    _referrers(suspects, [entries, suspects, *entries, *own], census)
    out: dict[int, str] = {}
    again = []
    for e in suspects:
        if e.holder is not None:
            out.update((id(func), e.holder) for func in e.funcs)
        elif e.unexplained - e.benign > 0:
            again.append(e)
    if again:
        # a frame of another thread may have started or ended meanwhile: count once more
        _measure(again)
        census = _census(again)
        for e in again:
            if e.unexplained - census.refs[id(e.code)] - e.benign > 0:
                out.update((id(func), "a reference the garbage collector cannot see (C code, or an "
                                      "untracked dict or tuple)") for func in e.funcs)
    return out


class _Suspect:
    """One code object under test: the only reference to it holders() keeps while counting."""

    __slots__ = ("code", "known", "funcs", "unexplained", "holder", "benign")

    def __init__(self, code: types.CodeType, known: int, func: types.FunctionType) -> None:
        self.code = code
        self.known = known  # references kcovdf holds, its functions' __code__ aside
        self.funcs = [func]  # the functions running it
        self.unexplained = 0  # references left to explain
        self.holder: str | None = None  # what holds it, when found
        self.benign = 0  # references from referrers that only run or share it


def _suspects(batch: Iterable[tuple[types.FunctionType, int]]) -> list[_Suspect]:
    """One suspect per distinct current code (in its own frame, so no local keeps a code alive)."""
    by_code: dict[int, _Suspect] = {}
    for func, known in batch:
        e = by_code.get(id(func.__code__))
        if e is None:
            by_code[id(func.__code__)] = _Suspect(func.__code__, known, func)
        else:
            e.known = max(e.known, known)
            e.funcs.append(func)
    return list(by_code.values())


def _measure(suspects: list[_Suspect]) -> None:
    """Set each suspect's unexplained references: its count beyond a fresh code held the same way."""
    probe = _Suspect(compile("", "<kcovdf probe>", "exec"), 0, _measure)  # type: ignore[arg-type]
    base = sys.getrefcount(probe.code)
    for e in suspects:
        e.unexplained = sys.getrefcount(e.code) - base - e.known - len(e.funcs)


class _Census:
    """What frames and live code hold: code references by id, and the referrers to skip."""

    def __init__(self) -> None:
        self.refs: collections.Counter[int] = collections.Counter()
        self.frames: set[int] = set()
        self.consts: set[int] = set()


def _census(suspects: list[_Suspect]) -> _Census:
    """Each running frame holds its code; each live code holds its code constants.

    The live code looked at: that of the running frames, and that of the functions of
    each suspect's module (a closure's code is a constant of its enclosing function's).
    """
    census = _Census()
    roots: list[types.CodeType] = []
    for frame in list(sys._current_frames().values()):
        while frame is not None:
            census.frames.add(id(frame))
            census.refs[id(frame.f_code)] += 1
            roots.append(frame.f_code)
            frame = frame.f_back
    modules: set[int] = set()
    for e in suspects:
        for func in e.funcs:
            namespace = func.__globals__
            if id(namespace) not in modules:
                modules.add(id(namespace))
                roots.extend(f.__code__ for f in functions_of(namespace, namespace))
    seen: set[int] = set()
    while roots:
        code = roots.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        census.consts.add(id(code.co_consts))
        for const in code.co_consts:
            if type(const) is types.CodeType:
                census.refs[id(const)] += 1
                roots.append(const)
    return census


def _referrers(suspects: list[_Suspect], mine: list[object], census: _Census) -> None:
    """Classify what refers to each suspect's code: its holder, or references that are benign."""
    codes = [e.code for e in suspects]
    by_id = {id(e.code): e for e in suspects}
    skip = {id(obj) for obj in mine} | {id(codes), id(by_id)} | census.frames | census.consts
    funcs = {id(f) for e in suspects for f in e.funcs}
    for obj in gc.get_referrers(*codes):
        if id(obj) in skip or id(obj) in funcs:
            continue
        if type(obj) is tuple and len(obj) == len(codes) and \
                all(a is b for a, b in zip(obj, codes, strict=True)):
            continue  # the arguments of this very get_referrers() call (a tuple on some versions)
        counts = collections.Counter(id(x) for x in gc.get_referents(obj) if id(x) in by_id)
        for code_id, n in counts.items():
            e = by_id[code_id]
            holder = _holder(obj, e.code)
            if holder is None:
                e.benign += n
            elif e.holder is None:
                e.holder = holder


def _holder(obj: object, code: types.CodeType) -> str | None:
    """None when ``obj`` only runs ``code`` or shares it (benign), else a description of ``obj``."""
    kind = type(obj)
    running = {types.FunctionType: "__code__", types.FrameType: "f_code", types.GeneratorType: "gi_code",
               types.CoroutineType: "cr_code", types.AsyncGeneratorType: "ag_code"}.get(kind)
    if running is not None and getattr(obj, running) is code:
        return None
    if kind is types.FrameType and obj.f_code.co_filename.startswith(_KCOVDF_DIR):  # type: ignore[attr-defined]
        return None  # kcovdf's own frame, looking at the code
    if kind is types.FrameType:
        return f"a local variable of {obj.f_code.co_name}()"  # type: ignore[attr-defined]
    return f"a {kind.__qualname__}"


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
