"""Start recording in a process: the one ``kcovdf run`` starts and every Python child of it.

``start(config, plan)`` installs the import hook, enables the calling thread on a
file device in the trace directory and follows threads and forks (kcovdf.runtime.tasks).
When the plan follows subprocesses it also exports the plan: ``KCOV_DATAFLOW``
carries the selection (kcovdf.instrument.config's format) and ``KCOVDF_TRACE`` the trace
directory and task options, and this directory goes first on ``PYTHONPATH`` so
that the ``sitecustomize`` beside this file calls ``start_from_environ()`` when a
child interpreter starts.

A Python child started with ``-I``, ``-E`` or ``-S`` never reaches that
sitecustomize (``-I``/``-E`` ignore PYTHONPATH, ``-S`` skips site), and neither does
one given an environment without these variables. Such a child runs untraced, as it
would without kcovdf; a ``ChildWatch`` (wrapping subprocess.Popen, os.exec*,
os.posix_spawn* and os.system) says so once per reason on stderr, naming the child's
command line. docs/run.md (Subprocesses kcovdf cannot follow) says why kcovdf does
not rewrite such command lines.

A Recording's life, and its ChildWatch's:

    RECORDING --stop()--> STOPPED

    IDLE --start()--> WATCHING --stop()--> STOPPED
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from kcovdf.instrument import config
from kcovdf.runtime import tasks

#: Where the trace goes, as JSON: {"dir": ..., "words": ..., "threads": ..., "forks": ...}.
TRACE_ENV = "KCOVDF_TRACE"
#: The directory holding only our sitecustomize.py, put first on a child's PYTHONPATH.
SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sitedir")
#: Interpreter flags that keep a Python child from recording, and why.
UNFOLLOWED_FLAGS = {
    "I": "-I ignores PYTHONPATH (and every PYTHON* variable)",
    "E": "-E ignores PYTHONPATH (and every PYTHON* variable)",
    "S": "-S skips the site module, which imports sitecustomize",
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where and how the tasks of a traced program record."""

    trace_dir: str
    words: int = tasks.DEFAULT_WORDS
    threads: bool = True
    forks: bool = True
    subprocesses: bool = True
    mode: str = "whole"
    max_bytes: int | None = None        # whole mode's disk budget for the whole trace
    ring_bytes: int = tasks.DEFAULT_RING_BYTES

    def to_env(self) -> str:
        """The KCOVDF_TRACE value (subprocesses of a child are followed too)."""
        return json.dumps({"dir": self.trace_dir, "words": self.words,
                           "threads": self.threads, "forks": self.forks, "mode": self.mode,
                           "max_bytes": self.max_bytes, "ring_bytes": self.ring_bytes})

    @classmethod
    def from_env(cls, text: str) -> Plan:
        """Inverse of to_env; ValueError when the text is not one."""
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("dir"), str):
            raise ValueError(f"{TRACE_ENV} is not a kcovdf trace plan: {text!r}")
        max_bytes = raw.get("max_bytes")
        return cls(raw["dir"], int(raw.get("words", tasks.DEFAULT_WORDS)),
                   bool(raw.get("threads", True)), bool(raw.get("forks", True)),
                   mode=str(raw.get("mode", "whole")),
                   max_bytes=None if max_bytes is None else int(max_bytes),
                   ring_bytes=int(raw.get("ring_bytes", tasks.DEFAULT_RING_BYTES)))


class State(enum.Enum):
    """Where a Recording is in its life (the diagram at the top of this module)."""

    RECORDING = "RECORDING"  # the import hook is installed, the tasks follow, the children are watched
    STOPPED = "STOPPED"      # stop() ran: the calling thread is disabled, thread and child starts restored


class Recording:
    """Recording in this process: the hook, the tasks and the child watch; ``stop()`` ends them."""

    def __init__(self, hook: Any, task_set: tasks.Tasks, watch: ChildWatch | None = None) -> None:
        self.hook = hook
        self.tasks = task_set
        self.watch = watch
        self.pid = os.getpid()
        self.state = State.RECORDING

    def stop(self) -> None:
        """Disable the calling thread's device, stop following threads and watching children.

        A second stop() does nothing (an atexit handler and the program may both stop).
        """
        if self.state is State.STOPPED:
            return
        self.state = State.STOPPED
        if self.watch is not None:
            self.watch.stop()
        self.tasks.stop()


def start(cfg: config.Config, plan: Plan) -> Recording:
    """Install the hook, export the plan to children, enable the calling thread."""
    if plan.subprocesses:
        export(cfg, plan, os.environ)
    return _record(cfg, plan)


def _record(cfg: config.Config, plan: Plan) -> Recording:
    from kcovdf.instrument import hook, switch

    switch.set_reporter(_say)  # one "kcovdf: ..." line each, untouched by the program's warning filters
    installed = hook.install(cfg)
    task_set = tasks.Tasks(plan.trace_dir, plan.words, mode=plan.mode, max_bytes=plan.max_bytes,
                           ring_bytes=plan.ring_bytes, follow_threads=plan.threads,
                           follow_forks=plan.forks)
    task_set.start()
    watch = None
    if plan.subprocesses:
        watch = ChildWatch()
        watch.start()
    return Recording(installed, task_set, watch)


def _say(message: str, stream: Any = None) -> None:
    """Print one of kcovdf's messages on ``stream`` (default stderr), as the summary line is."""
    stream = stream or sys.stderr
    try:
        stream.write(message + "\n")
        stream.flush()
    except Exception:  # noqa: BLE001 - the program closed or replaced it: it must not fail for our message
        pass


def export(cfg: config.Config, plan: Plan, environ: Any) -> None:
    """Set the variables that make a Python child record into the same trace directory."""
    environ[config.ENV_VAR] = cfg.to_env()
    environ[TRACE_ENV] = plan.to_env()
    path = environ.get("PYTHONPATH", "")
    parts = [p for p in path.split(os.pathsep) if p and p != SITE_DIR]
    environ["PYTHONPATH"] = os.pathsep.join([SITE_DIR, *parts])


def start_from_environ() -> Recording | None:
    """In a child interpreter: start recording as the environment says, or do nothing.

    The environment already carries the plan to this child's own children, so it
    is not exported again; they are watched as in the parent.
    """
    text = os.environ.get(TRACE_ENV)
    if not text:
        return None
    plan = Plan.from_env(text)
    if not os.path.isdir(plan.trace_dir):
        return None  # the trace was removed; run the program untraced
    cfg = config.Config.from_env() or config.Config()
    recording = _record(cfg, plan)
    import atexit

    atexit.register(recording.stop)
    return recording


# --- Python children that will not record -----------------------------------------------
class WatchState(enum.Enum):
    """Where a ChildWatch is in its life (the diagram at the top of this module)."""

    IDLE = "IDLE"          # nothing wrapped yet
    WATCHING = "WATCHING"  # the functions that start programs check each Python child first
    STOPPED = "STOPPED"    # the originals are back (a wrapper something patched over passes through)


class ChildWatch:
    """Warns on stderr, once per reason, when this process starts a Python child that cannot record.

    It wraps what starts a program: ``subprocess.Popen`` (its ``_execute_child``,
    through which every subprocess function goes), ``os.execv``/``os.execve`` (every
    ``os.exec*``, and ``os.spawn*`` in the forked child), ``os.posix_spawn``,
    ``os.posix_spawnp`` and ``os.system``. Checking never changes what the call does:
    it only reads the command line and a plain-dict environment, never consumes an
    iterator, and ignores any failure of its own. (An audit hook would see the same
    calls without wrappers, but a Python audit hook slows every audited event of the
    program, such as each sys._getframe() or pickle global, by about 0.6 us.)
    """

    def __init__(self) -> None:
        self.state = WatchState.IDLE
        self._patches = tasks.Patches()
        # Reasons not warned about yet; set.remove is atomic, so each warns exactly once
        # without a lock (a lock held by another thread at fork would hang a forked child).
        self._unwarned = {"flags", "environment"}

    def _error(self, call: str, why: str) -> RuntimeError:
        return RuntimeError(f"ChildWatch.{call}(): {why} (state {self.state.name})")

    def start(self) -> None:
        """Wrap the functions that start programs; RuntimeError unless IDLE."""
        if self.state is not WatchState.IDLE:
            raise self._error("start", "already started")
        import subprocess

        self.state = WatchState.WATCHING
        p = self._patches
        p.wrap(subprocess.Popen, "_execute_child", self._before_popen)
        for name in ("execv", "execve", "posix_spawn", "posix_spawnp"):
            p.wrap(os, name, self._before_exec)
        p.wrap(os, "system", self._before_system)

    def stop(self) -> None:
        """Put the original functions back."""
        if self.state is WatchState.WATCHING:
            self._patches.undo()
        self.state = WatchState.STOPPED

    # Popen._execute_child(self, args, executable, preexec_fn, close_fds, pass_fds, cwd,
    # env, startupinfo, creationflags, shell, ...): the same first eleven on 3.10-3.13,
    # passed by position from Popen.__init__.
    def _before_popen(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tasks.Arguments:
        if self.state is WatchState.WATCHING and len(args) >= 11:
            cmd, executable, cwd, env, shell = args[1], args[2], args[6], args[7], args[10]
            if shell:
                text = cmd if isinstance(cmd, (str, bytes)) else _first(cmd)
                self._check(None, text, env, cwd)
            elif isinstance(cmd, (str, bytes, os.PathLike)):
                self._check(executable, [cmd], env, cwd)
            else:
                self._check(executable, cmd, env, cwd)
        return args, kwargs

    # execv(path, argv), execve(path, argv, env), posix_spawn[p](path, argv, env, ...)
    def _before_exec(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tasks.Arguments:
        if self.state is WatchState.WATCHING and len(args) >= 2:
            self._check(args[0], args[1], args[2] if len(args) >= 3 else None, None)
        return args, kwargs

    def _before_system(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tasks.Arguments:
        if self.state is WatchState.WATCHING and len(args) == 1:
            self._check(None, args[0], None, None)
        return args, kwargs

    def _check(self, executable: Any, argv: Any, env: Any, cwd: Any) -> None:
        """Warn if this command starts a Python child that will not record.

        ``argv`` is a str (or bytes) for a shell command line; ``executable``, when
        given, is what runs instead of argv[0].
        """
        try:
            if isinstance(argv, (str, bytes)):
                shown = os.fsdecode(argv)
                commands = _shell_commands(shown)
            elif type(argv) in (list, tuple):  # never iterate what the call will consume
                words = [os.fsdecode(w) for w in argv]
                shown = shlex.join(words)
                if executable is not None and words:
                    words[0] = os.fsdecode(executable)
                commands = [words]
            else:
                return
            why = self._why_not_followed(commands, env, None if cwd is None else os.fsdecode(cwd))
        except Exception:
            return  # a check that fails must not fail the program's call
        if why is not None:
            self._warn(why[0], f"not recording the Python child `{shown}`: {why[1]}")

    def _why_not_followed(self, commands: list[list[str]], env: Any,
                          cwd: str | None) -> tuple[str, str] | None:
        path = _env_get(env, "PATH")
        for words in commands:
            flags = python_flags(words, cwd=cwd, path=path)
            if flags is None:
                continue
            if flags:
                first = min(flags, key="IES".index)
                return "flags", (f"{UNFOLLOWED_FLAGS[first]}, and kcovdf follows Python children "
                                 "through PYTHONPATH and sitecustomize (docs/run.md)")
            missing = _missing_from(env)
            if missing:
                return "environment", (f"its environment lacks {missing}, which kcovdf sets to "
                                       "follow Python children (docs/run.md)")
        return None

    def _warn(self, reason: str, message: str) -> None:
        try:
            self._unwarned.remove(reason)
        except KeyError:
            return
        _say(f"kcovdf: warning: {message}; further children like it are not reported", sys.__stderr__)


def _first(cmd: Any) -> Any:
    """The command of ``Popen([command, ...], shell=True)``: its first word (the rest are $0, $1...)."""
    return cmd[0] if type(cmd) in (list, tuple) and cmd else None


_SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}
# Commands that run the command after them (options and VAR=value words are skipped too).
_PREFIX_COMMANDS = {"env", "exec", "nice", "nohup", "command", "time"}
_PYTHON = re.compile(r"(python|pypy)[0-9.]*[a-z]?(\.exe)?")
# Options of the interpreter that take the next word as their argument when it is not attached.
_OPTIONS_WITH_ARGUMENT = {"W", "X"}
_LONG_OPTIONS_WITH_ARGUMENT = {"--check-hash-based-pycs"}


def python_flags(argv: Sequence[str], *, cwd: str | None = None, path: str | None = None) -> set[str] | None:
    """The flags among -I, -E and -S that a command line gives a Python interpreter.

    None when ``argv`` does not start Python: its command (after prefix commands
    such as ``env A=1`` or ``nice``) is neither named like an interpreter nor a
    script whose ``#!`` line names one. ``cwd`` and ``path`` (the child's PATH)
    locate such a script. Only options before the program (script, ``-c``, ``-m``,
    ``-``) count: later words belong to the program.
    """
    words = _command(list(argv))
    if not words:
        return None
    if not _is_python(words[0]):
        shebang = _shebang(words[0], cwd, path)
        if shebang is None:
            return None
        words = _command(shebang)
        if not words or not _is_python(words[0]):
            return None
    found: set[str] = set()
    rest = iter(words[1:])
    for word in rest:
        if word == "--" or word == "-" or not word.startswith("-"):
            break
        if word.startswith("--"):
            if word in _LONG_OPTIONS_WITH_ARGUMENT:
                next(rest, None)
            continue
        letters = word[1:]
        for i, letter in enumerate(letters):
            if letter in "cm":
                return found & set(UNFOLLOWED_FLAGS)      # the program starts here
            if letter in _OPTIONS_WITH_ARGUMENT:
                if i == len(letters) - 1:
                    next(rest, None)
                break                                     # the rest of the word is its argument
            found.add(letter)
    return found & set(UNFOLLOWED_FLAGS)


def _command(words: list[str]) -> list[str]:
    """The words from the command that runs, past prefix commands, their options and VAR=value."""
    i = 0
    while i < len(words):
        word = words[i]
        if os.path.basename(word) in _PREFIX_COMMANDS or (i > 0 and word.startswith("-")) \
                or ("=" in word and not word.startswith("-")):
            i += 1
            continue
        return words[i:]
    return []


def _is_python(word: str) -> bool:
    if _PYTHON.fullmatch(os.path.basename(word)):
        return True
    return os.path.isabs(word) and os.path.realpath(word) == os.path.realpath(sys.executable)


def _shebang(word: str, cwd: str | None, path: str | None) -> list[str] | None:
    """The words of the ``#!`` line of the script ``word`` names, or None."""
    if os.sep in word:
        file: str | None = os.path.join(cwd, word) if cwd else word
    else:
        import shutil

        file = shutil.which(word, path=path)
    if not file or not os.path.isfile(file):  # never open a fifo or a device
        return None
    try:
        with open(file, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    return os.fsdecode(head[2:].split(b"\n", 1)[0]).split()


def _shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell command line, split at ; & | ( ) (best effort)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token and all(c in lexer.punctuation_chars for c in token):
                commands.append([])
            else:
                commands[-1].append(token)
    except ValueError:
        pass  # unbalanced quotes: the shell will refuse it anyway
    return [c for c in commands if c]


def _env_get(env: Any, name: str) -> str | None:
    """A variable of the child's environment (None: inherited), read only from a plain mapping."""
    env = os.environ if env is None else env
    if env is not os.environ and type(env) is not dict:
        return None  # another mapping type could run the program's code when read
    value = env.get(name)
    if value is None:
        value = env.get(name.encode())
    return None if value is None else os.fsdecode(value)


def _missing_from(env: Any) -> str | None:
    """What of kcovdf's variables the child's environment lacks; None when it follows (or is unknown)."""
    if env is not None and env is not os.environ and type(env) is not dict:
        return None
    if not _env_get(env, TRACE_ENV):
        return TRACE_ENV
    entries = (_env_get(env, "PYTHONPATH") or "").split(os.pathsep)
    if SITE_DIR not in entries:
        return f"{SITE_DIR} on PYTHONPATH"
    for entry in entries[:entries.index(SITE_DIR)]:
        if os.path.isfile(os.path.join(entry, "sitecustomize.py")):
            return f"{SITE_DIR} before {entry} on PYTHONPATH (its sitecustomize.py hides kcovdf's)"
    return None
