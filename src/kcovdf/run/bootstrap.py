"""Start recording in a process: the one ``kcovdf run`` starts and every Python child of it.

``start(config, plan)`` installs the import hook, enables the calling thread on a
file device in the trace directory and follows threads and forks (kcovdf.runtime.tasks).
When the plan follows subprocesses it also exports the plan: ``KCOV_DATAFLOW``
carries the selection (kcovdf.instrument.config's format) and ``KCOVDF_TRACE`` the trace
directory and task options, and this directory goes first on ``PYTHONPATH`` so
that the ``sitecustomize`` beside this file calls ``start_from_environ()`` when a
child interpreter starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

from kcovdf.instrument import config
from kcovdf.runtime import tasks

#: Where the trace goes, as JSON: {"dir": ..., "words": ..., "threads": ..., "forks": ...}.
TRACE_ENV = "KCOVDF_TRACE"
#: The directory holding only our sitecustomize.py, put first on a child's PYTHONPATH.
SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sitedir")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where and how the tasks of a traced program record."""

    trace_dir: str
    words: int = tasks.DEFAULT_WORDS
    threads: bool = True
    forks: bool = True
    subprocesses: bool = True

    def to_env(self) -> str:
        """The KCOVDF_TRACE value (subprocesses of a child are followed too)."""
        return json.dumps({"dir": self.trace_dir, "words": self.words,
                           "threads": self.threads, "forks": self.forks})

    @classmethod
    def from_env(cls, text: str) -> Plan:
        """Inverse of to_env; ValueError when the text is not one."""
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("dir"), str):
            raise ValueError(f"{TRACE_ENV} is not a kcovdf trace plan: {text!r}")
        return cls(raw["dir"], int(raw.get("words", tasks.DEFAULT_WORDS)),
                   bool(raw.get("threads", True)), bool(raw.get("forks", True)))


class Recording:
    """Recording in this process: the hook and the tasks; ``stop()`` ends both."""

    def __init__(self, hook: Any, task_set: tasks.Tasks) -> None:
        self.hook = hook
        self.tasks = task_set
        self.pid = os.getpid()

    def stop(self) -> None:
        """Disable the calling thread's device and stop following threads."""
        self.tasks.stop()


def start(cfg: config.Config, plan: Plan) -> Recording:
    """Install the hook, export the plan to children, enable the calling thread."""
    from kcovdf.instrument import hook

    if plan.subprocesses:
        export(cfg, plan, os.environ)
    hook.set_reporter(_say)  # one "kcovdf: ..." line each, untouched by the program's warning filters
    installed = hook.install(cfg)
    task_set = tasks.Tasks(plan.trace_dir, plan.words, follow_threads=plan.threads,
                           follow_forks=plan.forks)
    task_set.start()
    return Recording(installed, task_set)


def _say(message: str) -> None:
    """Print one of kcovdf's messages on stderr, as the summary line is."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass  # the program closed or replaced stderr: it must not fail for our message


def export(cfg: config.Config, plan: Plan, environ: Any) -> None:
    """Set the variables that make a Python child record into the same trace directory."""
    environ[config.ENV_VAR] = cfg.to_env()
    environ[TRACE_ENV] = plan.to_env()
    path = environ.get("PYTHONPATH", "")
    parts = [p for p in path.split(os.pathsep) if p and p != SITE_DIR]
    environ["PYTHONPATH"] = os.pathsep.join([SITE_DIR, *parts])


def start_from_environ() -> Recording | None:
    """In a child interpreter: start recording as the environment says, or do nothing."""
    text = os.environ.get(TRACE_ENV)
    if not text:
        return None
    plan = Plan.from_env(text)
    if not os.path.isdir(plan.trace_dir):
        return None  # the trace was removed; run the program untraced
    cfg = config.Config.from_env() or config.Config()
    recording = start(cfg, dataclasses.replace(plan, subprocesses=False))
    import atexit

    atexit.register(recording.stop)
    return recording
