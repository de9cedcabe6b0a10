"""Real libraries' own test suites pass the same with the library entirely instrumented (slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_real_library_suites_match_uninstrumented():
    # scripts/realcode.py fetches pinned sdists (tests included) once into build/realcode,
    # runs each suite plainly and under `kcovdf run --include LIB`, and compares outcome counts.
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "realcode.py")],
                          capture_output=True, text=True, timeout=1500)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    verdicts = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip() in ("MATCH", "MISMATCH")]
    assert verdicts == ["MATCH", "MATCH"], report
