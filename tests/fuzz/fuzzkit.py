"""Helpers of the fuzzer's tests: write a harness, run ``kcovdf fuzz`` on it, and target sources.

Not a conftest.py: tests/conftest.py is the one the suite imports as ``conftest``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


class Fuzz:
    """Runs ``python -m kcovdf fuzz`` in a temporary directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path

    def harness(self, source: str, name: str = "harness") -> Path:
        path = self.dir / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        return subprocess.run([sys.executable, "-m", "kcovdf", "fuzz", *map(str, args)], cwd=self.dir,
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)


MAGIC = """
class PlantedBug(Exception):
    pass

def check(word: str) -> int:
    if word == "kc0v":
        raise PlantedBug("found " + word)
    return len(word)

def TestOneInput(data: bytes) -> None:
    check(data.decode("latin-1"))
"""


#: A harness with a few branches and no reachable bug: the corpus grows, nothing crashes.
BRANCHY = """
import hashlib

def classify(word: bytes) -> int:
    if len(word) > 3:
        if word[0] == 65:
            return 1
        if word.startswith(b"xy"):
            return 2
        return 3
    if word.isdigit():
        return 4
    return 0

def TestOneInput(data: bytes) -> None:
    if classify(data) == 1 and hashlib.sha256(data).digest()[:6] == bytes(6):
        raise AssertionError("unreachable")
"""
