"""``kcovdf fuzz`` end to end: crashes, artifacts, reproduction, bad input, timeouts, exits."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fuzzkit import BRANCHY, MAGIC, Fuzz

from kcovdf.fuzz.crash import EXIT_CRASH, EXIT_OOM, EXIT_TIMEOUT


@pytest.fixture
def fuzz(tmp_path: Path) -> Fuzz:
    return Fuzz(tmp_path)


def _artifacts(fuzz: Fuzz, kind: str = "crash") -> list[str]:
    return sorted(p for p in os.listdir(fuzz.dir) if p.startswith(f"{kind}-") and not p.endswith(".kdf"))


def test_finds_a_magic_word_from_an_empty_corpus_and_shows_the_call_tree(fuzz: Fuzz) -> None:
    fuzz.harness(MAGIC)
    proc = fuzz.run("harness.py", "--include", "harness", "-runs=20000", "-seed=7")
    assert proc.returncode == EXIT_CRASH, proc.stderr
    err = proc.stderr
    assert "harness.PlantedBug: found kc0v" in err
    assert "ERROR: libFuzzer: fuzz target raised: uncaught PlantedBug: found kc0v" in err
    assert "#1\tINITED cov:" in err and "\tNEW    cov:" in err
    (artifact,) = _artifacts(fuzz)
    assert (fuzz.dir / artifact).read_bytes() == b"kc0v"
    assert stat.S_IMODE(os.stat(fuzz.dir / artifact).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(fuzz.dir / f"{artifact}.kdf").st_mode) == 0o600
    assert f"Test unit written to {artifact}" in err
    # the data-flow call tree: arguments and the exception of each call
    tree = err.split("=== kcovdf call tree of the crashing input")[1]
    assert "harness.check(word='kc0v')" in tree
    assert "harness.check() raised PlantedBug('found kc0v')" in tree
    # the traceback starts in the harness, not in the fuzzer
    assert "kcovdf/fuzz/engine.py" not in err

    again = fuzz.run("harness.py", "--include", "harness", artifact)
    assert again.returncode == EXIT_CRASH
    assert f"Running: {artifact}" in again.stderr and "PlantedBug: found kc0v" in again.stderr
    assert "harness.check(word='kc0v')" in again.stderr


def test_no_crash_within_the_runs_exits_0_with_a_summary(fuzz: Fuzz) -> None:
    fuzz.harness(BRANCHY)
    proc = fuzz.run("harness.py", "--include", "harness", "-runs=500", "-seed=1", "-report=out/fuzz.html")
    assert proc.returncode == 0, proc.stderr
    assert "#500\tDONE" in proc.stderr and "Done 500 runs" in proc.stderr
    assert "kcovdf fuzz: 500 runs in" in proc.stderr and "; no crash" in proc.stderr
    page = fuzz.dir / "out" / "fuzz.html"
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o600
    text = page.read_text()
    assert text.count("<svg") == 3 and "coverage (cov) over time" in text and "exec/s over time" in text


def test_sys_exit_and_os_exit_are_crashes_with_their_cause(fuzz: Fuzz) -> None:
    fuzz.harness("import sys\ndef TestOneInput(data):\n    sys.exit(3)\n", "quits")
    proc = fuzz.run("quits.py", "-runs=10")
    assert proc.returncode == EXIT_CRASH
    assert "the harness called sys.exit(3)" in proc.stderr
    assert len(_artifacts(fuzz)) == 1
    fuzz.harness("import os\ndef TestOneInput(data):\n    if data:\n        os._exit(4)\n", "dies")
    proc = fuzz.run("dies.py", "-runs=100", "-artifact_prefix=out/")
    assert proc.returncode == EXIT_CRASH
    assert "the harness called os._exit(4)" in proc.stderr
    (saved,) = [n for n in os.listdir(fuzz.dir / "out") if not n.endswith(".kdf")]
    assert (fuzz.dir / "out" / saved).read_bytes() != b""


def test_a_slow_input_is_a_timeout(fuzz: Fuzz) -> None:
    fuzz.harness("import time\ndef TestOneInput(data):\n    if data:\n        time.sleep(30)\n")
    proc = fuzz.run("harness.py", "-timeout=1", "-runs=100")
    assert proc.returncode == EXIT_TIMEOUT, proc.stderr
    assert "ERROR: libFuzzer: timeout" in proc.stderr
    assert len(_artifacts(fuzz, "timeout")) == 1


def test_bad_harnesses_and_paths_get_clear_errors(fuzz: Fuzz) -> None:
    fuzz.harness("X = 1\n", "empty")
    proc = fuzz.run("empty.py")
    assert proc.returncode == 2 and "harness empty.py defines no TestOneInput(data)" in proc.stderr
    fuzz.harness("import no_such_module_here\n", "broken")
    proc = fuzz.run("broken.py")
    assert proc.returncode == 2
    assert "harness broken.py raised ModuleNotFoundError at import" in proc.stderr
    proc = fuzz.run("missing.py")
    assert proc.returncode == 2 and "harness missing.py: no such file" in proc.stderr
    fuzz.harness(MAGIC)
    (fuzz.dir / "plain").write_text("x")
    proc = fuzz.run("harness.py", "plain/corpus")
    assert proc.returncode == 2 and "corpus directory plain/corpus: cannot create it" in proc.stderr
    proc = fuzz.run("harness.py", "-runs=5", "-max_len=oops")
    assert proc.returncode == 2 and "-max_len=oops: expected int" in proc.stderr
    proc = fuzz.run("harness.py", "-ruins=5")
    assert proc.returncode == 2 and "unknown flag -ruins=5 (did you mean -runs?)" in proc.stderr


def test_the_harness_directory_is_on_sys_path(fuzz: Fuzz) -> None:
    (fuzz.dir / "helper.py").write_text("VALUE = 42\n")
    fuzz.harness("import helper\ndef TestOneInput(data):\n    assert helper.VALUE == 42\n")
    sub = fuzz.dir / "elsewhere"
    sub.mkdir()
    proc = fuzz.run(str(fuzz.dir / "harness.py"), "-runs=10")
    assert proc.returncode == 0, proc.stderr


def test_minimize_crash_keeps_the_exception_and_place(fuzz: Fuzz) -> None:
    fuzz.harness("""
        class Bug(Exception):
            pass
        def TestOneInput(data):
            if b"BOOM" in data:
                raise Bug()
            if b"other" in data:
                raise KeyError()
    """)
    (fuzz.dir / "crash-big").write_bytes(b"a" * 300 + b"BOOM" + b"other" + b"z" * 300)
    proc = fuzz.run("harness.py", "-minimize_crash=1", "-runs=2000", "crash-big")
    assert proc.returncode == 0, proc.stderr
    small = (fuzz.dir / "minimized-from-crash-big").read_bytes()
    assert b"BOOM" in small and len(small) < 20
    again = fuzz.run("harness.py", "minimized-from-crash-big")
    assert again.returncode == EXIT_CRASH and "harness.Bug" in again.stderr


def test_corpus_dirs_are_read_written_and_merged(fuzz: Fuzz) -> None:
    fuzz.harness(BRANCHY)
    proc = fuzz.run("harness.py", "corpus", "--include", "harness", "-runs=3000", "-seed=2")
    assert proc.returncode == 0, proc.stderr
    written = os.listdir(fuzz.dir / "corpus")
    assert written
    assert all(stat.S_IMODE(os.stat(fuzz.dir / "corpus" / n).st_mode) == 0o600 for n in written)
    (fuzz.dir / "corpus" / "dup").write_bytes((fuzz.dir / "corpus" / written[0]).read_bytes())
    proc = fuzz.run("harness.py", "corpus", "--include", "harness", "-merge=1")
    assert proc.returncode == 0, proc.stderr
    assert "MERGE-OUTER:" in proc.stderr
    assert len(os.listdir(fuzz.dir / "corpus")) < len(written) + 1


def test_jobs_share_their_corpus_directory(fuzz: Fuzz) -> None:
    fuzz.harness(BRANCHY)
    proc = fuzz.run("harness.py", "shared", "--include", "harness", "-jobs=2", "-workers=2",
                    "-max_total_time=4", "-seed=5")
    assert proc.returncode == 0, proc.stderr
    logs = [(fuzz.dir / f"fuzz-{i}.log").read_text() for i in (0, 1)]
    assert all("DONE" in log for log in logs)
    # each job took inputs another job wrote into the shared directory
    assert any("RELOAD" in log for log in logs), logs


def test_tool_kcovdf_in_pyproject_selects_the_modules(fuzz: Fuzz) -> None:
    fuzz.harness(MAGIC)
    (fuzz.dir / "pyproject.toml").write_text('[tool.kcovdf]\ninclude = ["harness"]\n')
    proc = fuzz.run("harness.py", "-runs=20000", "-seed=7")
    assert proc.returncode == EXIT_CRASH, proc.stderr
    assert "harness.check(word='kc0v')" in proc.stderr


def test_memory_over_the_limit_is_an_oom(fuzz: Fuzz) -> None:
    # 16 MiB a run, slowly enough for the watchdog's quarter-second look to see it before the kernel does
    fuzz.harness("import time\nKEEP = []\ndef TestOneInput(data):\n"
                 "    if data:\n        KEEP.append(bytearray(16 << 20))\n        time.sleep(0.05)\n")
    proc = fuzz.run("harness.py", "-rss_limit_mb=200", "-runs=100000")
    assert proc.returncode == EXIT_OOM, proc.stderr
    assert "over -rss_limit_mb=200" in proc.stderr
    assert len(_artifacts(fuzz, "oom")) == 1
    fuzz.harness("def TestOneInput(data):\n    raise MemoryError()\n", "nomem")
    proc = fuzz.run("nomem.py", "-runs=10")
    assert proc.returncode == EXIT_OOM and len(_artifacts(fuzz, "oom")) == 2
