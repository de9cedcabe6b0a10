"""Type stub of the C recorder ``kcovdf._core._recorder`` (docs/core.md §1).

``kcovdf.record`` is its Python twin with the same API; ``kcovdf.core`` picks one.
The decoder's scanner (scan.c) is added to this module too; see ``kcovdf.decode``.
"""

from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

#: Passed in place of a value: recorded as the REDACTED form, pointer 0.
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
    """One entry record per argument (arg_idx = position, positions above 0xFC dropped)."""

def ret(pc: int, value: _T) -> _T:
    """One return record (arg_idx 0); returns ``value``."""

def exc(pc: int, exc: object = ...) -> None:
    """One return record (arg_idx 0xFF) for ``exc``, by default the exception being handled."""

def yld(pc: int, value: _T) -> _T:
    """One return record (arg_idx 0xFE) for a yielded value; returns ``value``."""

def active() -> int:
    """Number of threads of this process currently enabled."""

def encode(obj: object, redacted: bool = False) -> list[int]:
    """The value words of ``obj`` (shape, layout, fields), as ``kcovdf.encode.encode_value``."""

def add_table(fd: int) -> None:
    """Register a table fd (O_WRONLY|O_APPEND) and replay every remembered line into it."""

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

def _set_code(func: Callable[..., object], code: object) -> None:
    """``func.__code__ = code`` through the setter; on 3.13 it also gives the function the
    version a new function of that code gets, so its call sites can specialize again."""

def _set_record_hook(hook: Callable[[], object] | None) -> None:
    """Test seam: call ``hook()`` in the middle of every record (None: stop).

    It runs after the record's words are reserved and before its values are
    written, with the re-entrancy guard held, as the kernel's interrupt would:
    writers it calls on this thread record nothing, and what it raises is
    dropped. If it disables the thread, the call stops without writing more.
    """

def _layout() -> bool:
    """Test seam: whether instance attributes are read where CPython keeps them (3.10-3.13)."""

def _noop(*args: object) -> None:
    """An empty C call with the writers' calling convention: the benchmarks' baseline."""

def scan(*args: Any, **kwargs: Any) -> Any:
    """The decoder's record scanner (scan.c); documented in ``kcovdf.decode``."""
