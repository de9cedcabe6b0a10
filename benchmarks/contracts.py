"""Contracts: planted regressions found by ``kcovdf contracts``, and its speed at 1M calls.

Run: python benchmarks/contracts.py [--scenarios DIR] [--keep DIR] [--calls N] [--only NAMES]
     [--no-scenarios] [-v]
     (default: the scenarios of tests/contracts_scenarios, then a 1,000,000-call trace;
     --calls 0 skips the second part; --keep DIR keeps the traces, contract files and the
     JSON of each check beside its trace)

Part 1. Each scenario directory holds a small module twice, ``correct/`` and ``regressed/``
(one planted regression, or for a control a harmless refactor), a ``train.py`` driver and
a ``check.py`` driver that feeds the module inputs training never saw (new ranges, types,
defaults, characters), after a first batch within training's shapes that reaches the
regression too. For each scenario: record train.py against correct/, ``contracts infer``
from that trace, record check.py against correct/ and against regressed/, and ``contracts
check`` both traces (``--format json``). Every driver also runs untraced: tracing must not
change its output. The table gives the findings (violations; novelty warnings are not
findings) of each check run, those of the regressed run on contracts the correct run kept
("beyond"), whether the regression was flagged, and the times of infer and check. Then the
run-level recall (flagged regressed runs / regressed runs, controls excluded), the precision
(runs with a finding that should have one / runs with a finding) and the false alarms
(findings on correct runs and on the controls' refactored runs). Targets: recall >= 0.9, no
false alarm. False alarms are always listed; -v lists the regressed runs' findings too.

Part 2. A generated program makes N calls of four functions taking ints, strs and small
dataclass objects; ``kcovdf run`` records it, then ``contracts infer`` and ``contracts check``
run on that trace, each in a process of its own so that its peak RSS is its alone. Targets:
infer <= 20 s, check <= 5 s at 1M calls.

The exit status is 0 when every command ran and every target was met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcovdf.contracts.model import tomllib

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIOS = ROOT / "tests" / "contracts_scenarios"

#: Targets (module docstring).
RECALL_TARGET = 0.9
INFER_TARGET_S = 20.0
CHECK_TARGET_S = 5.0

#: No command of a scenario should take long; this only keeps a hung one from stalling the run.
TIMEOUT_S = 900.0

#: Run one command, then print its peak RSS (KB) on stderr's last line: a process of its own,
#: so that the peak is that command's alone (RUSAGE_CHILDREN of this process would be the
#: largest of every child so far, the recordings included).
_RSS = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)")

#: Exit codes of ``contracts check``.
CHECK_CLEAN, CHECK_VIOLATIONS, CHECK_BAD_INPUT, CHECK_INCOMPLETE = 0, 1, 2, 3


def read_scenario_toml(path: Path) -> dict[str, str]:
    """A scenario.toml (tomllib, or tomli on 3.10: kcovdf's own choice)."""
    with open(path, "rb") as f:
        return tomllib.load(f)


@dataclass
class Scenario:
    """One scenario directory: its module, its kind of regression and its description."""

    name: str
    path: Path
    module: str
    kind: str
    description: str

    @property
    def control(self) -> bool:
        """True when regressed/ is only a harmless refactor: nothing may be reported on it."""
        return self.kind == "control"


def load_scenarios(directory: Path) -> list[Scenario]:
    """Every scenario under directory (the subdirectories holding a scenario.toml), by name."""
    scenarios = []
    for path in sorted(p for p in directory.iterdir() if (p / "scenario.toml").is_file()):
        meta = read_scenario_toml(path / "scenario.toml")
        scenarios.append(Scenario(path.name, path, meta["module"], meta["kind"], meta.get("description", "")))
    return scenarios


@dataclass
class Result:
    """What a command did."""

    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class CommandFailed(Exception):
    """A command of a scenario failed; the message says which and how."""


def kcovdf(*args: str) -> list[str]:
    """The command line of ``kcovdf ARGS``, run by this interpreter (so its kcovdf and venv)."""
    return [sys.executable, "-m", "kcovdf", *args]


def environment(pythonpath: Path | None) -> dict[str, str]:
    """This process's environment with pythonpath in front of PYTHONPATH.

    No bytecode is written, so that the scenario tree stays as it is in the repository.
    """
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p)
    return env


def tail(text: str, lines: int = 12) -> str:
    """The last lines of text, indented, for a failure message."""
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join("      " + line for line in kept) if kept else "      (no output)"


def run(cmd: list[str], cwd: Path, pythonpath: Path | None = None, ok: Sequence[int] = (0,)) -> Result:
    """Run cmd and return what it did; CommandFailed when its exit code is not in ok."""
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=cwd, env=environment(pythonpath), capture_output=True, text=True,
                             timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"timed out after {TIMEOUT_S:.0f} s: {' '.join(cmd)}") from exc
    result = Result(cmd, out.returncode, out.stdout, out.stderr, time.perf_counter() - start)
    if result.returncode not in ok:
        raise CommandFailed(f"exit {result.returncode}: {' '.join(cmd)}\n{tail(result.stderr)}")
    return result


def findings_of(stdout: str) -> list[dict[str, Any]]:
    """The violations in the output of ``contracts check --format json``.

    The output is a list of violations. Entries marked as warnings (novelty: an input outside
    what training saw) are left out, should a version list them too: they are not findings.
    """
    data = json.loads(stdout) if stdout.strip() else []
    if isinstance(data, dict):  # tolerate a wrapping object
        data = data.get("violations", [])
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list of violations, got {type(data).__name__}")
    return [v for v in data if isinstance(v, dict) and v.get("severity") not in ("novelty", "warning")
            and v.get("kind") not in ("novelty", "warning")]


@dataclass
class CheckRun:
    """A recorded check.py run and what ``contracts check`` found in it."""

    findings: list[dict[str, Any]]
    stdout: str  # check.py's own output, to tell the correct and regressed behaviours apart
    seconds: float


@dataclass
class Outcome:
    """What one scenario gave; error is set when one of its commands failed."""

    scenario: Scenario
    infer_s: float = 0.0
    runs: dict[str, CheckRun] = field(default_factory=dict)
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def beyond(self) -> list[dict[str, Any]]:
        """The regressed run's findings of contracts that the correct run kept."""
        if "correct" not in self.runs or "regressed" not in self.runs:
            return []
        def key(finding: dict[str, Any]) -> tuple[Any, Any]:
            return finding.get("function"), finding.get("invariant")

        kept = {key(f) for f in self.runs["correct"].findings}
        return [f for f in self.runs["regressed"].findings if key(f) not in kept]

    def count(self, variant: str) -> int | None:
        """The findings on variant's run, None when it did not get that far."""
        run_ = self.runs.get(variant)
        return None if run_ is None else len(run_.findings)


def record(scenario: Scenario, variant: str, driver: str, out: Path, work: Path) -> tuple[Result, list[str]]:
    """Record driver against variant's module into out, and run it untraced too.

    Returns the recording and notes: a note when the traced and untraced outputs differ
    (tracing must not change the program).
    """
    code = scenario.path / variant
    script = str(scenario.path / driver)
    traced = run(kcovdf("run", "--no-cache", "--include", scenario.module, "-o", str(out), script),
                 work, code)
    plain = run([sys.executable, script], work, code)
    notes = []
    if traced.stdout != plain.stdout:
        notes.append(f"FAIL {scenario.name}: {driver} against {variant}/ prints differently traced:\n"
                     f"      traced:   {traced.stdout.strip()[:200]!r}\n"
                     f"      untraced: {plain.stdout.strip()[:200]!r}")
    return traced, notes


def check(trace: Path, contracts: Path, work: Path) -> tuple[list[dict[str, Any]], float, list[str]]:
    """(findings, seconds, notes) of ``contracts check`` on trace; CommandFailed on exit 2 or 3.

    A note says when the exit code and the JSON disagree (exit 1 without a finding, or the
    other way round): the findings are still the JSON's, but CI looks at the exit code.
    """
    res = run(kcovdf("contracts", "check", str(trace), "--contracts", str(contracts), "--format", "json"),
              work, ok=(CHECK_CLEAN, CHECK_VIOLATIONS, CHECK_BAD_INPUT, CHECK_INCOMPLETE))
    if res.returncode == CHECK_INCOMPLETE:
        raise CommandFailed(f"trace incomplete (exit 3): {trace}\n{tail(res.stderr)}")
    if res.returncode == CHECK_BAD_INPUT:
        raise CommandFailed(f"bad input (exit 2): {' '.join(res.cmd)}\n{tail(res.stderr)}")
    # Kept beside the trace (with --keep, for a look at every finding).
    trace.with_suffix(".json").write_text(res.stdout, encoding="utf-8")
    try:
        found = findings_of(res.stdout)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise CommandFailed(f"unreadable JSON from {' '.join(res.cmd)}: {exc}\n{tail(res.stdout)}") from exc
    notes = []
    if (res.returncode == CHECK_VIOLATIONS) != bool(found):
        notes.append(f"FAIL check of {trace.name}: exit {res.returncode} "
                     f"but {len(found)} findings in the JSON")
    return found, res.seconds, notes


def evaluate(scenario: Scenario, work: Path) -> Outcome:
    """Run one scenario's pipeline in work (a directory of its own)."""
    outcome = Outcome(scenario)
    shutil.rmtree(work, ignore_errors=True)  # a --keep directory of an earlier run: start afresh
    work.mkdir(parents=True)
    try:
        _, notes = record(scenario, "correct", "train.py", work / "train", work)
        outcome.notes += notes
        contracts = work / "contracts.toml"
        outcome.infer_s = run(kcovdf("contracts", "infer", str(work / "train"), "-o", str(contracts),
                                     "--include", scenario.module), work).seconds
        for variant in ("correct", "regressed"):
            traced, notes = record(scenario, variant, "check.py", work / f"check-{variant}", work)
            outcome.notes += notes
            found, seconds, notes = check(work / f"check-{variant}", contracts, work)
            outcome.notes += notes
            outcome.runs[variant] = CheckRun(found, traced.stdout, seconds)
    except CommandFailed as exc:
        outcome.error = str(exc)
        return outcome
    same = outcome.runs["correct"].stdout == outcome.runs["regressed"].stdout
    if same != scenario.control:
        # The scenario itself is broken: its regression is not reached, or its control is not one.
        outcome.notes.append(f"FAIL {scenario.name}: check.py prints {'the same' if same else 'differently'} "
                             f"against correct/ and regressed/, but the scenario is "
                             f"{'not ' if not scenario.control else ''}a control")
    return outcome


def describe(finding: dict[str, Any]) -> str:
    """One line of a finding: where and what."""
    return (f"{finding.get('function', '?')} #{finding.get('ordinal', '?')} [{finding.get('kind', '?')}] "
            f"{finding.get('invariant', '?')}  values={finding.get('values', '')}")


def print_findings(label: str, findings: list[dict[str, Any]], limit: int) -> None:
    """The first `limit` findings under label."""
    print(f"    {label}: {len(findings)} finding(s)")
    for finding in findings[:limit]:
        print(f"      {describe(finding)[:200]}")
    if len(findings) > limit:
        print(f"      ... {len(findings) - limit} more")


def scenarios_part(directory: Path, work: Path, verbose: bool) -> bool:
    """Part 1; True when every scenario ran and the targets were met."""
    scenarios = load_scenarios(directory)
    if not scenarios:
        print(f"no scenario (directory with a scenario.toml) under {directory}")
        return False
    print(f"Part 1: {len(scenarios)} scenarios from {directory}\n")
    # "beyond": the regressed run's findings of contracts the correct run did not break too,
    # those that tell the regression from the novelty of check.py's inputs.
    header = (f"{'scenario':<18} {'kind':<24} {'correct':>7} {'regressed':>9} {'beyond':>6} {'flagged':>7} "
              f"{'infer s':>7} {'check s (c/r)':>13}")
    print(header)
    print("-" * len(header))
    outcomes = []
    for scenario in scenarios:
        outcome = evaluate(scenario, work / scenario.name)
        outcomes.append(outcome)
        if outcome.error:
            print(f"{scenario.name:<18} {scenario.kind:<24} FAILED: {outcome.error}")
        else:
            correct, regressed = outcome.count("correct"), outcome.count("regressed")
            flagged = "-" if scenario.control else ("yes" if regressed else "no")
            times = f"{outcome.runs['correct'].seconds:.2f}/{outcome.runs['regressed'].seconds:.2f}"
            print(f"{scenario.name:<18} {scenario.kind:<24} {correct:>7} {regressed:>9} "
                  f"{len(outcome.beyond()):>6} {flagged:>7} {outcome.infer_s:>7.2f} {times:>13}")
        for note in outcome.notes:
            print("  " + note)
        # False alarms always show, so that they can be looked into; true findings on request.
        if not outcome.error:
            if outcome.runs["correct"].findings:
                print_findings("FALSE ALARM on correct/", outcome.runs["correct"].findings, 5)
            if scenario.control and outcome.runs["regressed"].findings:
                print_findings("FALSE ALARM on the control's regressed/",
                               outcome.runs["regressed"].findings, 5)
            elif verbose and outcome.runs["regressed"].findings:
                print_findings("regressed/", outcome.runs["regressed"].findings, 10)

    failed = [o for o in outcomes if o.error]
    broken = [o for o in outcomes if o.notes]
    done = [o for o in outcomes if not o.error]
    planted = [o for o in outcomes if not o.scenario.control]
    # A scenario that failed counts as a miss: recall is over every planted regression.
    flagged = [o for o in planted if not o.error and o.runs["regressed"].findings]
    with_findings = [(o, v) for o in done for v in ("correct", "regressed") if o.runs[v].findings]
    right = [(o, v) for o, v in with_findings if v == "regressed" and not o.scenario.control]
    false_runs = [(o, v) for o, v in with_findings if v == "correct" or o.scenario.control]
    false_alarms = sum(len(o.runs[v].findings) for o, v in false_runs)

    recall = len(flagged) / len(planted) if planted else float("nan")
    print()
    print(f"recall     {len(flagged)}/{len(planted)} regressed runs flagged = {recall:.2f} "
          f"(target >= {RECALL_TARGET}) {'ok' if recall >= RECALL_TARGET else 'MISSED'}")
    if with_findings:
        print(f"precision  {len(right)}/{len(with_findings)} runs with findings should have them "
              f"= {len(right) / len(with_findings):.2f}")
    else:
        print("precision  n/a (no run has a finding)")
    print(f"false alarms {false_alarms} finding(s) in {len(false_runs)} run(s) "
          f"(correct runs and control refactors; target 0) {'ok' if not false_alarms else 'MISSED'}")
    missed = [o.scenario.name for o in planted if o not in flagged]
    if missed:
        print(f"not flagged: {', '.join(missed)}")
    if failed:
        print(f"{len(failed)} scenario(s) failed to run: {', '.join(o.scenario.name for o in failed)}")
    if broken:
        print(f"{len(broken)} scenario(s) with FAIL notes: {', '.join(o.scenario.name for o in broken)}")
    infer_total = sum(o.infer_s for o in done)
    check_total = sum(r.seconds for o in done for r in o.runs.values())
    print(f"time       infer {infer_total:.1f} s, check {check_total:.1f} s over {len(done)} scenarios")
    return not failed and not broken and recall >= RECALL_TARGET and not false_alarms


#: The module of part 2: four functions over ints, strs and small dataclass objects.
SPEED_MODULE = textwrap.dedent("""\
    import dataclasses


    @dataclasses.dataclass
    class Point:
        x: int
        y: int


    @dataclasses.dataclass
    class Item:
        name: str
        qty: int
        price: int


    def add(a, b):
        return a + b


    def label(name, n):
        return f"{name}-{n % 97}"


    def norm1(p):
        return abs(p.x) + abs(p.y)


    def restock(item, qty):
        return Item(item.name, item.qty + qty, item.price)
    """)

#: Its driver: argv[1] calls, four per iteration.
SPEED_MAIN = textwrap.dedent("""\
    import sys

    import speedmod

    names = ("bolt", "nut", "gear", "axle")
    total = 0
    for i in range(int(sys.argv[1]) // 4):
        total += speedmod.add(i, 7)
        total += len(speedmod.label(names[i % 4], i))
        total += speedmod.norm1(speedmod.Point(i % 1000, -(i % 321)))
        total += speedmod.restock(speedmod.Item(names[i % 4], i % 50, 100 + i % 9), i % 5).qty
    print(total)
    """)


def measured(args: list[str], cwd: Path, ok: Sequence[int] = (0,)) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one kcovdf command, run in a wrapper process of its own."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _RSS, *kcovdf(*args)], cwd=cwd, env=environment(None),
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    took = time.perf_counter() - start
    if out.returncode not in ok:
        raise CommandFailed(f"exit {out.returncode}: kcovdf {' '.join(args)}\n{tail(out.stderr)}")
    return took, int(out.stderr.splitlines()[-1]) * 1024  # ru_maxrss is in KB on Linux


def speed_part(calls: int, work: Path) -> bool:
    """Part 2; True when every command ran and the targets were met."""
    print(f"\nPart 2: contracts infer and check on a trace of {calls:,} calls")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "speedmod.py").write_text(SPEED_MODULE)
    (work / "speed_main.py").write_text(SPEED_MAIN)
    trace, contracts = work / "trace", work / "contracts.toml"
    try:
        rec = run(kcovdf("run", "--no-cache", "--include", "speedmod", "-o", str(trace),
                         str(work / "speed_main.py"), str(calls)), work, work)
        stats = rec.stderr.strip().splitlines()[-1] if rec.stderr.strip() else ""
        print(f"  record  {rec.seconds:6.1f} s   ({stats})")
        infer_s, infer_rss = measured(["contracts", "infer", str(trace), "-o", str(contracts),
                                       "--include", "speedmod"], work)
        # Exit 1 (violations) still times the check; the trace is its own training set, so it should be 0.
        check_s, check_rss = measured(["contracts", "check", str(trace), "--contracts", str(contracts),
                                       "--format", "json"], work, ok=(CHECK_CLEAN, CHECK_VIOLATIONS))
    except CommandFailed as exc:
        print(f"  FAILED: {exc}")
        return False
    for label, took, rss, target in (("infer", infer_s, infer_rss, INFER_TARGET_S),
                                     ("check", check_s, check_rss, CHECK_TARGET_S)):
        verdict = "ok" if took <= target else "MISSED"
        print(f"  {label}   {took:6.1f} s   peak RSS {rss / 2**20:7.0f} MB   "
              f"{calls / took / 1e6:5.2f} Mcalls/s   (target <= {target:.0f} s) {verdict}")
    return infer_s <= INFER_TARGET_S and check_s <= CHECK_TARGET_S


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit status (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS,
                        help="directory of scenario directories (default: %(default)s)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="write the traces and contract files under DIR and keep them "
                             "(default: a temporary directory, removed at the end)")
    parser.add_argument("--calls", type=int, default=1_000_000,
                        help="calls of the speed benchmark; 0 skips it (default: %(default)s)")
    parser.add_argument("--only", metavar="NAME[,NAME...]",
                        help="run only these scenarios (comma-separated names), for a quick look")
    parser.add_argument("--no-scenarios", action="store_true", help="skip part 1 (the scenarios)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the findings of regressed runs")
    args = parser.parse_args(argv)

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="kcovdf-contracts-bench-"))
    try:
        scenarios = args.scenarios.resolve()
        if args.only:
            # A filtered copy of the scenario list: symlinks, so that paths stay the real ones' names.
            picked = work / "selected"
            shutil.rmtree(picked, ignore_errors=True)
            picked.mkdir()
            for name in args.only.split(","):
                if not (scenarios / name / "scenario.toml").is_file():
                    parser.error(f"no scenario {name!r} in {scenarios}")
                (picked / name).symlink_to(scenarios / name)
            scenarios = picked
        ok = args.no_scenarios or scenarios_part(scenarios, work / "scenarios", args.verbose)
        if args.calls > 0:
            ok = speed_part(args.calls, work / "speed") and ok
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
