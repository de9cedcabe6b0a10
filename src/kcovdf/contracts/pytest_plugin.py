"""The pytest plugin: record a suite, then learn its contracts or check them at session end.

::

    pytest --kcovdf-include mypkg --kcovdf-learn contracts.toml      # record and learn
    pytest --kcovdf-include mypkg --kcovdf-contracts contracts.toml  # record and check
    pytest ... --kcovdf-trace DIR                                     # keep the trace

Without these options the plugin does nothing (``pip install kcovdf`` registers it in every
pytest session). Recording runs in the pytest process: the modules named by
``--kcovdf-include`` are instrumented as they are imported, and each test runs inside a call
of ``_kcovdf_pytest.run(test)`` (a module this plugin writes and instruments), so every call a
test makes has that call among its callers: a violation names its test. Violations appear in
the terminal summary and fail the session (exit status 1).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

#: The module each test runs in a call of: its one function records the test's index.
RUNNER = "_kcovdf_pytest"
_RUNNER_SOURCE = '''"""Written by kcovdf's pytest plugin: each test runs inside run(test, ...)."""


def run(test, body, kwargs):
    return body(**kwargs)
'''


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's options."""
    group = parser.getgroup("kcovdf", "kcovdf contracts (record the suite, learn or check contracts)")
    group.addoption("--kcovdf-include", action="append", default=[], metavar="MOD",
                    help="record the calls of this module or package (repeatable)")
    group.addoption("--kcovdf-learn", metavar="FILE", help="learn contracts from the suite into FILE")
    group.addoption("--kcovdf-contracts", metavar="FILE",
                    help="check the suite's calls against the contracts in FILE")
    group.addoption("--kcovdf-trace", metavar="DIR", help="keep the suite's trace in DIR")
    group.addoption("--kcovdf-allow-incomplete", action="store_true",
                    help="do not fail the session only because the trace lost records")


class _Session:
    """One recorded session: its trace, its recording, the tests by index."""

    def __init__(self, config: pytest.Config) -> None:
        from kcovdf.instrument import config as kconfig
        from kcovdf.run import bootstrap, command
        from kcovdf.runtime import tasks

        opt = config.option
        self.config = config
        self.include = tuple(opt.kcovdf_include)
        self.learn, self.contracts = opt.kcovdf_learn, opt.kcovdf_contracts
        self.keep = opt.kcovdf_trace is not None
        self.trace = command.prepare_trace_dir(opt.kcovdf_trace or tempfile.mkdtemp(prefix="kcovdf-pytest-"))
        self.runner_dir = tempfile.mkdtemp(prefix="kcovdf-pytest-runner-")
        with open(os.path.join(self.runner_dir, RUNNER + ".py"), "w", encoding="utf-8") as f:
            f.write(_RUNNER_SOURCE)
        sys.path.insert(0, self.runner_dir)
        cfg = kconfig.Config(include=(*self.include, RUNNER))
        plan = bootstrap.Plan(trace_dir=self.trace, subprocesses=False,
                              max_bytes=tasks.default_budget(self.trace))
        command.write_run_info(self.trace, ["pytest", *config.invocation_params.args], cfg, plan)
        self.recording = bootstrap.start(cfg, plan)
        import _kcovdf_pytest  # noqa: F401 - imported now, under the hook: instrumented

        self.runner = sys.modules[RUNNER].run
        self.tests: list[str] = []
        self.lines: list[str] = []
        self.failed = False

    def wrap(self, item: pytest.Item) -> None:
        """Run ``item``'s test function inside a recorded call naming it."""
        fn = getattr(item, "obj", None)
        if fn is None or not callable(fn):
            return
        index = len(self.tests)
        self.tests.append(item.nodeid)
        runner = self.runner

        @functools.wraps(fn)
        def test(*args: Any, **kwargs: Any) -> Any:
            if args:
                return fn(*args, **kwargs)
            return runner(index, fn, kwargs)

        item.obj = test

    def finish(self) -> None:
        """Stop recording; learn or check."""
        from kcovdf.contracts import model
        from kcovdf.contracts.check import check
        from kcovdf.contracts.infer import infer
        from kcovdf.contracts.observe import observe

        self.recording.stop()
        sys.path[:] = [p for p in sys.path if p != self.runner_dir]
        shutil.rmtree(self.runner_dir, ignore_errors=True)
        if self.learn:
            obs = observe(self.trace, self.include)
            cs = infer([obs], [self.trace if self.keep else "pytest"])
            if os.path.exists(self.learn):
                cs = model.merge(model.read(self.learn), cs)
            model.write(cs, self.learn)
            self.lines.append(f"kcovdf: {cs.count()} contracts for {len(cs.functions)} functions and "
                              f"{len(cs.classes)} classes learned -> {self.learn}")
            if obs.drops:
                self.lines.append(f"kcovdf: warning: the trace lost {obs.drops:,} records: training did "
                                  "not see every call")
        if self.contracts:
            cs = model.read(self.contracts)
            obs = observe(self.trace)
            result = check(obs, cs)
            test_of = _test_names(obs, self.tests)
            for f in result.violations:
                test = test_of(f.call)
                values = ", ".join(f"{k}={v}" for k, v in f.values.items())
                self.lines.append(f"VIOLATION {test}: {f.function} call #{f.ordinal}: {f.invariant} "
                                  f"[{values}]")
            self.lines.append(f"kcovdf: {len(result.violations)} violations, {len(result.novelties)} "
                              f"novelty warnings ({result.checked} contract checks over "
                              f"{result.calls} calls)")
            if result.violations:
                self.failed = True
            if result.drops:
                self.lines.append(f"kcovdf: the trace lost {result.drops:,} records: the check is incomplete")
                if not self.config.option.kcovdf_allow_incomplete:
                    self.failed = True
        if self.keep:
            self.lines.append(f"kcovdf: the trace is in {self.trace}")
        else:
            shutil.rmtree(self.trace, ignore_errors=True)


def _test_names(obs: Any, tests: list[str]) -> Callable[[int], str]:
    """Call -> the test it was made in: the ``_kcovdf_pytest.run`` call above it."""
    from kcovdf.contracts.check import _Calls

    runner = obs.functions.get(f"{RUNNER}:run")
    test_of: dict[int, float] = {}
    if runner is not None and "test" in runner.variables:
        test_of = dict(zip(runner.calls.tolist(), runner.variables["test"].num.tolist(), strict=True))
    calls = _Calls(obs)

    def name(call: int) -> str:
        for p in calls.ancestors(call, limit=None):
            index = test_of.get(p)
            if index is not None and index == index:  # not NaN
                return tests[int(index)] if 0 <= index < len(tests) else "(unknown test)"
        return "(outside any test)"
    return name


_KEY = pytest.StashKey[_Session]()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Start recording when asked to learn or check."""
    opt = config.option
    if not (getattr(opt, "kcovdf_learn", None) or getattr(opt, "kcovdf_contracts", None)):
        return
    if not opt.kcovdf_include:
        raise pytest.UsageError("--kcovdf-learn/--kcovdf-contracts need --kcovdf-include MOD: "
                                "the modules whose calls to record")
    if opt.kcovdf_contracts and not os.path.exists(opt.kcovdf_contracts):
        raise pytest.UsageError(f"--kcovdf-contracts: no file {opt.kcovdf_contracts}")
    config.stash[_KEY] = _Session(config)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Each test runs inside a recorded call naming it."""
    s = config.stash.get(_KEY, None)
    if s is not None:
        for item in items:
            s.wrap(item)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Learn or check, and fail the session on violations."""
    s = session.config.stash.get(_KEY, None)
    if s is None:
        return
    s.finish()
    if s.failed and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The violations, each with the test that made the call."""
    s = config.stash.get(_KEY, None)
    if s is None or not s.lines:
        return
    terminalreporter.section("kcovdf contracts")
    for line in s.lines:
        terminalreporter.write_line(line, red=line.startswith("VIOLATION"))
