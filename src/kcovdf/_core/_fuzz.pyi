"""Type stub of the fuzzer's hot path ``kcovdf._core._fuzz`` (fuzz.c), owned by ``kcovdf.fuzz.engine``."""

from collections.abc import Callable
from typing import Any

Buffer = Any  # a writable buffer (collections.abc.Buffer from 3.12 on)

class Feedback:
    """Branches covered and a set of features; mutates inputs and runs the loop (see fuzz.c)."""

    def __init__(self, seed: int = 1) -> None: ...
    def collect(self, map: Buffer, nblocks: int, notes: list[Any], recs: Buffer | None) -> int:
        """New features of the last execution (clears the coverage map)."""
    def havoc(self, data: bytes, max_len: int, words: list[bytes], other: bytes | None,
              ascii: bool = False) -> bytes:
        """``data`` with 1 to 8 stacked mutations."""
    def loop(self, target: Callable[[bytes], object], corpus: list[bytes], words: list[bytes], max_len: int,
             map: Buffer, nblocks: int, notes: list[Any], provenance: list[Any] | None, recs: Buffer | None,
             limit: int, ascii: bool, log: list[bytes] | None = None
             ) -> tuple[int, bytes | None, BaseException | None, int]:
        """(status, input, exception, runs): 0 ran ``limit`` inputs, 1 ``input`` is new, 2 it raised."""
    def mutations(self) -> str:
        """The names of the last input's mutations, libFuzzer's ``MS:`` line."""
    def counts(self) -> tuple[int, int]:
        """(branches covered, other features)."""

def progress() -> tuple[int, int, bytes | None]:
    """(executions, whether the target runs now, the current input): for the watchdog."""
