"""A recorder with kcovdf.runtime.core's API (docs/core.md section 1) that keeps records in a list.

Records are tuples ``(kind, pc, arg_idx, value)`` with kind "entry" (arg_idx 0xFD, value
None: a call without arguments), "ret", "exc" or "yld";
hold()/done() give one "ret" when done() runs, and resumed() calls are listed apart (``resumes``);
with ``keep_values=False`` the value is replaced by its type name, so the recorder holds
no reference to the program's objects.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class _Redacted:
    def __repr__(self) -> str:
        return "REDACTED"


class FakeRecorder:
    """Records in memory; ``set_active`` plays the part of Device.enable()/disable()."""

    def __init__(self, keep_values: bool = True) -> None:
        self.keep_values = keep_values
        self.records: list[tuple[str, int, int, Any]] = []
        self.lines: list[bytes] = []
        self.REDACTED = _Redacted()
        self._listeners: list[Callable[[bool], None]] = []
        self._active = 0
        self._held: dict[int, Any] = {}
        self.resumes: list[int] = []  # pc of each resumed() call

    def _keep(self, value: Any) -> Any:
        return value if self.keep_values or value is self.REDACTED else type(value).__name__

    def entry(self, pc: int, *args: Any) -> None:
        if not args:
            self.records.append(("entry", pc, 0xFD, None))
        for i, value in enumerate(args):
            self.records.append(("entry", pc, i, self._keep(value)))

    def ret(self, pc: int, value: Any) -> Any:
        self.records.append(("ret", pc, 0, self._keep(value)))
        return value

    def exc(self, pc: int, exc: BaseException | None = None) -> None:
        self._held.pop(id(sys._getframe(1)), None)
        self.records.append(("exc", pc, 0xFF, self._keep(exc if exc is not None else sys.exc_info()[1])))

    def yld(self, pc: int, value: Any) -> Any:
        self.records.append(("yld", pc, 0xFE, self._keep(value)))
        return value

    def resumed(self, pc: int, value: Any) -> Any:
        self.resumes.append(pc)
        return value

    def hold(self, pc: int, value: Any) -> Any:
        self._held[id(sys._getframe(1))] = value
        return value

    def done(self, pc: int) -> None:
        frame = id(sys._getframe(1))
        if frame in self._held:
            self.records.append(("ret", pc, 0, self._keep(self._held.pop(frame))))

    def emit(self, line: bytes, remember: bool = True) -> None:
        self.lines.append(line)

    def active(self) -> int:
        return self._active

    def on_activity(self, callback: Callable[[bool], None]) -> None:
        self._listeners.append(callback)

    def set_active(self, on: bool) -> None:
        self._active = int(on)
        for callback in self._listeners:
            callback(on)
