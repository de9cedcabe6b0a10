"""A harness that runs target $KCOVDF_BENCH_TARGET and swallows its planted bug
($KCOVDF_BENCH_BUG): benchmarks/fuzz.py measures exec/s on it, the same code for both fuzzers."""

import importlib
import os

_target = importlib.import_module(os.environ["KCOVDF_BENCH_TARGET"])
_bug = getattr(_target, os.environ["KCOVDF_BENCH_BUG"], None) or ()


def TestOneInput(data: bytes) -> None:
    try:
        _target.TestOneInput(data)
    except _bug:
        pass
