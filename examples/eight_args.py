"""Python twin of the kernel selftest module eight_args_c.

df_func1 .. df_func8 take 1 to 8 arguments and return a value derived from
them, as the kernel's noinline functions do; df_func_struct takes a dataclass
pair (the kernel's ``struct pair *``), df_func_slots a ``__slots__`` object,
and df_func_raise raises an exception that its caller catches. Run it with
``kcovdf run examples/eight_args.py`` and show the records with ``kcovdf view``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pair:
    """The kernel selftest's ``struct pair``: two u64 fields."""

    a: int
    b: int


class Point:
    """An object whose fields live in ``__slots__`` rather than a ``__dict__``."""

    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


def df_func1(a: int) -> int:
    return a + 1


def df_func2(a: int, b: int) -> int:
    return a + b


def df_func3(a: int, b: int, c: int) -> int:
    return a + b + c


def df_func4(a: int, b: int, c: int, d: int) -> int:
    return a + b + c + d


def df_func5(a: int, b: int, c: int, d: int, e: int) -> int:
    return a + b + c + d + e


def df_func6(a: int, b: int, c: int, d: int, e: int, f: int) -> int:
    return a + b + c + d + e + f


def df_func7(a: int, b: int, c: int, d: int, e: int, f: int, g: int) -> int:
    return a + b + c + d + e + f + g


def df_func8(a: int, b: int, c: int, d: int, e: int, f: int, g: int, h: int) -> int:
    return a + b + c + d + e + f + g + h


def df_func_struct(p: Pair) -> int:
    return p.a * p.b


def df_func_slots(pt: Point) -> int:
    return pt.x - pt.y


def df_func_raise(value: int) -> int:
    raise ValueError(f"bad value {value:#x}")


def df_call_raise(value: int) -> int:
    """Catch df_func_raise's exception and turn it into -EINVAL, like a kernel caller would."""
    try:
        return df_func_raise(value)
    except ValueError:
        return -22


def main() -> int:
    """Call every function once with recognisable values; print what they return."""
    results = [
        df_func1(0x11),
        df_func2(0x11, 0x22),
        df_func3(0x11, 0x22, 0x33),
        df_func4(0x11, 0x22, 0x33, 0x44),
        df_func5(0x11, 0x22, 0x33, 0x44, 0x55),
        df_func6(0x11, 0x22, 0x33, 0x44, 0x55, 0x66),
        df_func7(0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77),
        df_func8(0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88),
        df_func_struct(Pair(0x10, 0x20)),
        df_func_slots(Point(0x30, 0x08)),
        df_call_raise(0xBAD),
    ]
    print(" ".join(hex(r) if r >= 0 else str(r) for r in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
