"""The one place that picks the recorder: the C core or its Python twin (``KCOVDF_CORE=c|py``).

The chosen implementation's API (docs/core.md §1) is re-exported as attributes
of this module; callers always go through ``core.enable`` etc., so ``use()``
can switch implementations at run time (tests, ``kcovdf selftest --core``).
This module also keeps the activity listeners: instrumented code tests one
flag, which they keep in step with "some thread of this process is enabled".

Nothing else reads ``KCOVDF_CORE`` or imports an implementation: the decoder asks
``core.name`` whether to use the C scanner (``_core/scan.c``) or its twin
(``read/walk.py``), the Switch swaps code through ``core.set_code``, and
``kcovdf selftest`` drives either core through this API alone.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from types import CodeType, FunctionType, ModuleType
from typing import Any, Protocol, TypeVar

from kcovdf.errors import ConfigError
from kcovdf.instrument.redact import DEFAULT_REDACT

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Every name the C module and the twin must both define (docs/core.md §1).
API = ("enable", "disable", "entry", "ret", "exc", "yld", "resumed", "hold", "done", "REDACTED", "active",
       "in_record", "encode", "add_table", "remove_table", "emit", "after_fork_child", "set_exit_hook",
       "set_record_hook", "set_code", "set_redact", "resegment", "set_full_hook")

_MODULES = {"c": "kcovdf._core._recorder", "py": "kcovdf.runtime.twin"}


class Recorder(Protocol):
    """What ``kcovdf._core._recorder`` and ``kcovdf.runtime.twin`` both provide."""

    REDACTED: object

    def enable(self, mapping: Any, table_fd: int) -> None: ...
    def disable(self, mapping: Any) -> None: ...
    def entry(self, pc: int, *args: object) -> None: ...
    def ret(self, pc: int, value: T) -> T: ...
    def exc(self, pc: int, exc: object = ...) -> None: ...
    def yld(self, pc: int, value: T) -> T: ...
    def resumed(self, pc: int, value: T) -> T: ...
    def hold(self, pc: int, value: T) -> T: ...
    def done(self, pc: int) -> None: ...
    def active(self) -> int: ...
    def in_record(self) -> bool: ...
    def encode(self, obj: object, redacted: bool = False) -> list[int]: ...
    def add_table(self, fd: int, replay: bool = True) -> None: ...
    def remove_table(self, fd: int) -> None: ...
    def emit(self, line: bytes, remember: bool = True) -> None: ...
    def after_fork_child(self) -> None: ...
    def set_exit_hook(self, hook: Callable[[], object] | None) -> None: ...
    def set_record_hook(self, hook: Callable[[], object] | None) -> None: ...
    def set_code(self, func: FunctionType, code: CodeType) -> None: ...
    def set_redact(self, patterns: Sequence[str]) -> None: ...
    def resegment(self, mapping: Any) -> None: ...
    def set_full_hook(self, hook: Callable[[], object] | None) -> None: ...


# Re-exported from the implementation in use (bound by _bind()).
enable: Callable[[Any, int], None]
disable: Callable[[Any], None]
entry: Callable[..., None]
ret: Callable[[int, Any], Any]
exc: Callable[..., None]
yld: Callable[[int, Any], Any]
resumed: Callable[[int, Any], Any]
hold: Callable[[int, Any], Any]
done: Callable[[int], None]
REDACTED: object
active: Callable[[], int]
in_record: Callable[[], bool]
encode: Callable[..., list[int]]
add_table: Callable[..., None]
remove_table: Callable[[int], None]
emit: Callable[..., None]
after_fork_child: Callable[[], None]
set_exit_hook: Callable[[Callable[[], object] | None], None]
set_record_hook: Callable[[Callable[[], object] | None], None]
set_code: Callable[[FunctionType, CodeType], None]
set_redact: Callable[[Sequence[str]], None]
resegment: Callable[[Any], None]
set_full_hook: Callable[[Callable[[], object] | None], None]

#: "c" or "py": the implementation in use.
name: str
implementation: Recorder

_loaded: dict[str, ModuleType] = {}
_redaction: tuple[str, ...] = DEFAULT_REDACT  # until redact(): nested secrets withheld from the start
_listeners: list[Callable[[bool], None]] = []
_activity_lock = threading.RLock()
_was_active = False


def load(which: str) -> Recorder:
    """Import one implementation; ImportError saying what is missing if it cannot serve."""
    if which not in _MODULES:
        raise ConfigError(f"recorder core {which!r}: expected 'c' or 'py'")
    module = _loaded.get(which) or importlib.import_module(_MODULES[which])
    missing = [n for n in API if not hasattr(module, n)]
    if missing:
        raise ImportError(f"{_MODULES[which]} lacks {', '.join(missing)}")
    _loaded[which] = module
    return module  # type: ignore[return-value]


def _bind(which: str, module: Recorder) -> None:
    global name, implementation
    g = globals()
    for attr in API:
        g[attr] = getattr(module, attr)
    if g.get("implementation") not in (None, module):
        implementation.set_exit_hook(None)
    # a thread that ends while enabled stops counting as active: the listeners must hear it
    module.set_exit_hook(activity_changed)
    module.set_redact(_redaction)
    name, implementation = which, module


def use(which: str) -> None:
    """Switch to implementation ``which`` ("c" or "py"); refused while a thread is enabled."""
    module = load(which)
    if which != globals().get("name") and implementation.active():
        raise RuntimeError(f"core.use({which!r}): {implementation.active()} thread(s) enabled "
                           f"on the {name} core")
    _bind(which, module)


def _pick() -> None:
    wanted = os.environ.get("KCOVDF_CORE", "c")
    if wanted not in _MODULES:
        raise ConfigError(f"KCOVDF_CORE={wanted!r}: expected 'c' or 'py'")
    if wanted == "c":
        try:
            _bind("c", load("c"))
            return
        except ImportError as e:
            # Only an explicit request deserves a warning; the default falls back quietly.
            level = logging.WARNING if "KCOVDF_CORE" in os.environ else logging.INFO
            log.log(level, "kcovdf: C recorder unavailable (%s); using the Python twin", e)
    _bind("py", load("py"))


def redact(patterns: Sequence[str]) -> None:
    """Withhold nested values by name under ``patterns`` (the implementation's set_redact),
    also in an implementation chosen later by use()."""
    global _redaction
    implementation.set_redact(patterns)
    _redaction = tuple(patterns)


def on_activity(callback: Callable[[bool], None]) -> Callable[[], None]:
    """Call ``callback(active)`` whenever "some thread of this process is enabled" flips.

    Returns a function that unregisters it.
    """
    with _activity_lock:
        _listeners.append(callback)

    def unregister() -> None:
        with _activity_lock:
            if callback in _listeners:
                _listeners.remove(callback)
    return unregister


def activity_changed() -> None:
    """Tell the listeners if ``active() > 0`` flipped since the last call."""
    global _was_active
    # Listeners run under the lock so that two flips never reach them out of order.
    with _activity_lock:
        now = implementation.active() > 0
        if now == _was_active:
            return
        _was_active = now
        for callback in list(_listeners):
            callback(now)


def _after_fork_child() -> None:
    global _activity_lock
    _activity_lock = threading.RLock()
    # Every implementation loaded may hold thread state (tests switch between them).
    for module in _loaded.values():
        module.after_fork_child()
    activity_changed()


_pick()
os.register_at_fork(after_in_child=_after_fork_child)
