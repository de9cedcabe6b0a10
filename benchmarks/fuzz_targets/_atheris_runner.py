"""Run a planted-bug target under Atheris: ``python _atheris_runner.py TARGET.py [libFuzzer flags]``.

The target module is instrumented as Atheris users do it (``with atheris.instrument_imports()``).
With $KCOVDF_BENCH_BUG set, that exception of the target is swallowed (benchmarks/fuzz.py's
speed runs).
"""

import importlib
import os
import sys

import atheris

path = sys.argv[1]
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
with atheris.instrument_imports():
    target = importlib.import_module(os.path.splitext(os.path.basename(path))[0])
test_one_input = target.TestOneInput
if os.environ.get("KCOVDF_BENCH_BUG"):  # the speed runs: the same code as _swallow.py
    bug = getattr(target, os.environ["KCOVDF_BENCH_BUG"])

    def test_one_input(data: bytes) -> None:
        try:
            target.TestOneInput(data)
        except bug:
            pass
atheris.Setup([sys.argv[0], *sys.argv[2:]], test_one_input)
atheris.Fuzz()
