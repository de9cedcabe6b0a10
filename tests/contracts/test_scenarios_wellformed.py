"""The evaluation scenarios of ``kcovdf contracts`` (tests/contracts_scenarios) are well formed.

benchmarks/contracts.py measures the checker on them; these tests need no kcovdf at all and
keep the scenarios honest: each has its files, a readable scenario.toml, a train.py that runs
cleanly, and a check.py whose output differs between correct/ and regressed/ exactly when the
scenario is not a control (so the planted regression is reached, and a control's refactor
changes nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

from kcovdf.contracts.model import tomllib

SCENARIOS = Path(__file__).resolve().parent.parent / "contracts_scenarios"

#: The regression kinds the set must cover (the brief of the set), besides controls.
REQUIRED_KINDS = {
    "wrong-return-value", "broken-object-invariant", "exception-raised", "exception-swallowed",
    "off-by-one-length", "return-exceeds-argument", "return-type-change",
}

#: A driver that runs longer than this is broken (they take well under a second).
DRIVER_TIMEOUT_S = 60


def read_toml(path: Path) -> dict[str, str]:
    """A scenario.toml (tomllib, or tomli on 3.10: kcovdf's own choice)."""
    with open(path, "rb") as f:
        return tomllib.load(f)


def scenario_dirs() -> list[Path]:
    """Every scenario directory, by name."""
    return sorted(p for p in SCENARIOS.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


@cache
def drive(scenario: Path, variant: str, driver: str) -> subprocess.CompletedProcess[str]:
    """Run driver (train.py or check.py) against variant's module, as plain Python (cached)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scenario / variant)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep the scenario tree as it is in the repository
    return subprocess.run([sys.executable, str(scenario / driver)], cwd=scenario, env=env,
                          capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S)


@pytest.fixture(scope="module", autouse=True)
def _run_drivers_in_parallel() -> None:
    """Fill drive()'s cache with every run at once: a few dozen interpreters, side by side."""
    jobs = [(s, v, d) for s in scenario_dirs() for v, d in
            (("correct", "train.py"), ("correct", "check.py"), ("regressed", "check.py"))]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: drive(*job), jobs))


IDS = [p.name for p in scenario_dirs()]


def test_the_set() -> None:
    """At least 10 scenarios, 2 of them controls, every required kind, one kind per scenario."""
    kinds = [read_toml(p / "scenario.toml")["kind"] for p in scenario_dirs()]
    planted = [k for k in kinds if k != "control"]
    assert len(kinds) >= 10
    assert kinds.count("control") >= 2
    assert REQUIRED_KINDS <= set(planted), f"missing kinds: {REQUIRED_KINDS - set(planted)}"
    assert len(planted) == len(set(planted)), "each regressed scenario has a kind of its own"


@pytest.mark.parametrize("scenario", scenario_dirs(), ids=IDS)
def test_files(scenario: Path) -> None:
    """The drivers, scenario.toml and the module in correct/ and regressed/, of 20-60 lines."""
    meta = read_toml(scenario / "scenario.toml")
    assert {"module", "kind", "description"} <= set(meta)
    assert meta["module"].isidentifier() and meta["description"]
    for name in ("train.py", "check.py"):
        assert (scenario / name).is_file()
    sources = {}
    for variant in ("correct", "regressed"):
        module = scenario / variant / f"{meta['module']}.py"
        assert module.is_file(), module
        sources[variant] = module.read_text(encoding="utf-8")
        assert 20 <= len(sources[variant].splitlines()) <= 60, f"{module}: keep it small"
        # Only the module: anything else there would be importable by the drivers too.
        found = sorted(p.name for p in (scenario / variant).iterdir() if p.name != "__pycache__")
        assert found == [module.name]
    assert sources["correct"] != sources["regressed"], "regressed/ must change the code (a control refactors)"


@pytest.mark.parametrize("scenario", scenario_dirs(), ids=IDS)
def test_train_runs_cleanly(scenario: Path) -> None:
    """train.py against correct/ exits 0, prints its summary line and nothing on stderr."""
    run = drive(scenario, "correct", "train.py")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert len(run.stdout.strip().splitlines()) == 1, "one summary line"


@pytest.mark.parametrize("scenario", scenario_dirs(), ids=IDS)
def test_check_reaches_the_regression(scenario: Path) -> None:
    """check.py runs cleanly against both copies; its output is the same for a control and
    differs for a planted regression."""
    control = read_toml(scenario / "scenario.toml")["kind"] == "control"
    correct, regressed = drive(scenario, "correct", "check.py"), drive(scenario, "regressed", "check.py")
    for run in (correct, regressed):
        # The drivers catch what a regression raises: the trace of a crashed run would be cut short.
        assert run.returncode == 0 and run.stderr == "", run.stderr
        assert run.stdout.strip()
    if control:
        assert correct.stdout == regressed.stdout, "a control's refactor must not change behaviour"
    else:
        assert correct.stdout != regressed.stdout, "check.py does not reach the planted regression"


@pytest.mark.parametrize("scenario", scenario_dirs(), ids=IDS)
def test_check_is_deterministic(scenario: Path) -> None:
    """check.py prints the same on a second run (seeded, no ids or hash order): what the
    benchmark compares traced and untraced must not vary by itself."""
    again = subprocess.run([sys.executable, str(scenario / "check.py")], cwd=scenario,
                           env={**os.environ, "PYTHONPATH": str(scenario / "correct"),
                                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "12345"},
                           capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S)
    assert again.stdout == drive(scenario, "correct", "check.py").stdout
