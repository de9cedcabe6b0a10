"""Type stub of the C recorder ``kcovdf._core._recorder`` (docs/core.md §1).

``kcovdf.runtime.twin`` is its Python twin with the same API (``kcovdf.runtime.core.Recorder``);
``kcovdf.runtime.core`` picks one. The names with a leading underscore are C-only test seams.
"""

from collections.abc import Callable, Sequence
from types import CodeType, FunctionType
from typing import Any, TypeVar

_T = TypeVar("_T")

#: Passed in place of a value: recorded as the REDACTED form.
REDACTED: object

def enable(mapping: Any, table_fd: int) -> None:
    """Bind the calling thread to the buffer of ``mapping`` (a writable .kdf layout).

    Resets the thread's sequence to 0 and keeps the mapping exported until
    ``disable()`` or the thread's end. ``OSError(EBUSY)`` if this thread is
    already enabled or the header's owner word is not 0; ``TypeError`` /
    ``ValueError`` for a mapping that is not a writable .kdf layout.
    ``table_fd`` is accepted for the twin's sake (its lock file); the C core
    needs none.
    """

def disable(mapping: Any) -> None:
    """Unbind the calling thread; ``OSError(EINVAL)`` unless it is enabled on ``mapping`` and owns it."""

def entry(pc: int, *args: object) -> None:
    """Start a call of the calling frame: a new call id, one entry record per argument
    (arg_idx = position, positions above 0xFC dropped), one ARG_NONE record without any."""

def ret(pc: int, value: _T) -> _T:
    """The return record (arg_idx 0) of the calling frame's call; returns ``value``."""

def exc(pc: int, exc: object = ...) -> None:
    """The exception record (arg_idx 0xFF) of the calling frame's call, for ``exc``, by
    default the exception being handled."""

def yld(pc: int, value: _T) -> _T:
    """A yield record (arg_idx 0xFE); the call leaves this thread's stack. Returns ``value``."""

def resumed(pc: int, value: _T) -> _T:
    """The calling frame runs again after a yield or await (RESUME if it had left this
    thread's stack); returns ``value``."""

def hold(pc: int, value: _T) -> _T:
    """Keep ``value`` as the pending return of the calling frame's call; returns it."""

def done(pc: int) -> None:
    """Write the held return of the calling frame's call, which ends now (no-op without one)."""

def active() -> int:
    """Number of threads of this process currently enabled."""

def in_record() -> bool:
    """Whether a record is being made on the calling thread (the re-entrancy guard is held)."""

def encode(obj: object, redacted: bool = False) -> list[int]:
    """The value words of ``obj`` (shape, layout, fields), as ``kcovdf.runtime.encode.encode_value``."""

def add_table(fd: int, replay: bool = True) -> None:
    """Register a table fd (O_WRONLY|O_APPEND) and (``replay``) write every remembered line into it."""

def remove_table(fd: int) -> None:
    """Forget a table fd (no error if it was not registered)."""

def emit(line: bytes, remember: bool = True) -> None:
    """Append ``line`` and a newline to every table fd, one write() each; keep it for replay."""

def after_fork_child() -> None:
    """In a fork child: forget the calling thread's task (the parent keeps its owner word)."""

def set_exit_hook(hook: Callable[[], object] | None) -> None:
    """Call ``hook()`` after a thread that ended while enabled is released (None: stop).

    The dying thread is clearing its state then, so the call is made from the main
    thread as a pending call, at its next bytecode boundary; what it raises is
    reported as unraisable.
    """

def set_code(func: FunctionType, code: CodeType) -> None:
    """``func.__code__ = code`` through the setter (so audit hooks see it); on 3.13 it also
    gives the function the version a new function of that code gets, so its call sites can
    specialize again. ``TypeError`` unless given a function and a code object."""

def set_record_hook(hook: Callable[[], object] | None) -> None:
    """Test seam: call ``hook()`` in the middle of every record (None: stop).

    It runs after the record's words are reserved and before its values are
    written, with the re-entrancy guard held, as the kernel's interrupt would:
    writers it calls on this thread record nothing, and what it raises is
    dropped. If it disables the thread, the call stops without writing more.
    """

def resegment(mapping: Any) -> None:
    """Move the enabled calling thread to the buffer of ``mapping`` (a .kdf layout whose
    owner word is free), as one task: its sequence, calls and guard go on, and the old
    buffer's owner word goes back to 0. ``EINVAL`` unless enabled, ``EBUSY`` if taken."""

def set_full_hook(hook: Callable[[], object] | None) -> None:
    """Call ``hook()`` when a record does not fit the calling thread's buffer (None: stop).

    It runs once per record, with the re-entrancy guard held; if it moved the thread
    to a fresh buffer (``resegment``) the record goes there, else it is dropped and
    counted. What it raises is dropped. The check is on the full path only: a record
    that fits pays nothing for it.
    """

def _encode_general(obj: object, redacted: bool = False) -> list[int]:
    """Test seam: ``encode()`` through the general encoder alone, the layout cache neither
    used nor filled: what every cached layout must reproduce."""

def _encode_cached(obj: object) -> list[int] | None:
    """Test seam: ``encode()`` through the class's layout cache alone (no type table lines);
    None when the cache does not serve ``obj``."""

def set_redact(patterns: Sequence[str]) -> None:
    """Withhold, at every depth, the values whose names (object fields, namedtuple fields,
    str dict keys) match one of the fnmatch ``patterns`` (ASCII case-insensitive)."""

def _frames() -> bool:
    """Test seam: whether calls are named by their frames (else paired by stack position)."""

def _layout() -> bool:
    """Test seam: whether instance attributes are read where CPython keeps them (3.10-3.13)."""
