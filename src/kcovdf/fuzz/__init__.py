"""kcovdf's fuzzer, with Atheris's API: ``Setup(argv, TestOneInput)``, ``Fuzz()``, FuzzedDataProvider.

An Atheris harness runs with an import change::

    import kcovdf.fuzz as atheris

    with atheris.instrument_imports():       # or instrument_imports(include=["mypkg"])
        import mypkg

    def TestOneInput(data: bytes) -> None:
        mypkg.parse(atheris.FuzzedDataProvider(data).ConsumeUnicode(64))

    if __name__ == "__main__":
        atheris.Setup(sys.argv, TestOneInput)
        atheris.Fuzz()

``kcovdf fuzz HARNESS.py`` runs the same harness without its ``__main__`` block
(docs/fuzz.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kcovdf.fuzz.provider import FuzzedDataProvider

__all__ = ["FuzzedDataProvider", "Fuzz", "Setup", "instrument_all", "instrument_imports"]

_setup: tuple[Callable[[bytes], object], list[str]] | None = None


class _Block:
    """``with instrument_imports():`` without names: what is imported in the block is instrumented."""

    def __init__(self, exclude: Iterable[str]) -> None:
        self.exclude = tuple(exclude)
        self.before: set[str] = set()
        self.hook: Any = None

    def __enter__(self) -> _Block:
        from kcovdf.fuzz.harness import instrument

        self.before = set(sys.modules)
        self.hook = instrument((), self.exclude, every=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        from kcovdf.instrument.hook import uninstall

        uninstall(self.hook)


def instrument_imports(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> Any:
    """Instrument, with the fuzzer's probes, the modules in ``include`` (a hook that stays), or,
    without ``include``, as a context manager, every module imported inside the ``with`` block."""
    from kcovdf.fuzz.harness import instrument

    names = tuple(include)
    if not names:
        return _Block(exclude)
    return instrument(names, tuple(exclude))


def instrument_all(exclude: Iterable[str] = ()) -> Any:
    """Instrument every importable module (kcovdf and the safety list aside) with the probes."""
    from kcovdf.fuzz.harness import instrument

    return instrument((), tuple(exclude), every=True)


def Setup(argv: Sequence[str], test_one_input: Callable[[bytes], object], **_atheris: Any) -> list[str]:
    """Remember the target and the command line (argv[0] is the program); returns the arguments
    that are no flags, as Atheris does. Atheris's keyword options are accepted and ignored."""
    global _setup
    if not callable(test_one_input):
        raise TypeError(f"Setup(): TestOneInput must be callable, not {type(test_one_input).__name__}")
    args = list(argv[1:])
    _setup = (test_one_input, args)
    return [a for a in args if not a.startswith("-")]


def Fuzz() -> None:
    """Fuzz the target given to Setup(); exits the process with the fuzzer's status, as Atheris."""
    from kcovdf.errors import ConfigError
    from kcovdf.fuzz import command, options

    if _setup is None:
        raise RuntimeError("Fuzz(): call Setup(sys.argv, TestOneInput) first")
    target, args = _setup
    try:
        opts = options.parse(args)
    except ConfigError as exc:
        print(f"kcovdf fuzz: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(command.run(target, opts))
