"""The fuzzer's options, spelled as libFuzzer spells them (``-flag=value``), plus kcovdf's own.

One row per flag in FLAGS; parse() turns an argv into Options and the positional
arguments (corpus directories or input files), and names an unknown flag with the
closest known ones. kcovdf's selection flags (``--include``, ``--exclude``) take a value
as the next argument or after ``=``, as ``kcovdf run``'s do.
"""

from __future__ import annotations

import dataclasses
import difflib

from kcovdf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Flag:
    """One libFuzzer-style flag: its name, its kind (int, float, str), default and help."""

    name: str
    kind: type
    default: object
    help: str


FLAGS: tuple[Flag, ...] = (
    Flag("runs", int, -1, "number of inputs to run (-1: no limit)"),
    Flag("seed", int, 0, "random seed (0: from the clock); the same seed gives the same inputs"),
    Flag("max_len", int, 4096, "longest input to generate"),
    Flag("max_total_time", float, 0.0, "stop after this many seconds (0: no limit)"),
    Flag("artifact_prefix", str, "", "prefix of crash-/timeout-/oom- files ('dir/' puts them in dir)"),
    Flag("exact_artifact_path", str, "", "write the crash input to exactly this path"),
    Flag("timeout", float, 300.0, "an input running longer than this many seconds is a timeout-"),
    Flag("rss_limit_mb", int, 2048, "memory (max RSS) beyond this many MiB is an oom- (0: no limit)"),
    Flag("dict", str, "", "a dictionary file, in AFL/libFuzzer format (\"word\" per line)"),
    Flag("jobs", int, 0, "run this many fuzzing jobs in processes sharing the first corpus directory"),
    Flag("workers", int, 0, "processes running the jobs at once (default: min(jobs, half the CPUs))"),
    Flag("minimize_crash", int, 0, "1: shrink the given crash input, keeping its exception and location"),
    Flag("merge", int, 0, "1: keep in the first corpus directory only inputs that add features"),
    Flag("use_value_profile", int, 1, "1: per-site distances of compared values count as features"),
    Flag("dataflow", int, 1, "1: record arguments and returns for features and splicing (kcovdf's)"),
    Flag("print_final_stats", int, 0, "1: print libFuzzer's final statistics"),
    Flag("report", str, "", "write the end-of-run summary and plot to this HTML file (kcovdf's)"),
    Flag("calltree", int, 1, "1: show the kcovdf call tree of a crashing input (kcovdf's)"),
    Flag("verbosity", int, 1, "0: fewer status lines"),
    Flag("close_fd_mask", int, 0, "accepted for compatibility; ignored"),
    Flag("only_ascii", int, 0, "1: generate only ASCII inputs"),
)
_BY_NAME = {f.name: f for f in FLAGS}
#: kcovdf's own options, each taking a value.
SELECTION = ("--include", "--exclude")


@dataclasses.dataclass
class Options:
    """Parsed flags (libFuzzer names), the selection, and the positional arguments."""

    runs: int = -1
    seed: int = 0
    max_len: int = 4096
    max_total_time: float = 0.0
    artifact_prefix: str = ""
    exact_artifact_path: str = ""
    timeout: float = 300.0
    rss_limit_mb: int = 2048
    dict: str = ""
    jobs: int = 0
    workers: int = 0
    minimize_crash: int = 0
    merge: int = 0
    use_value_profile: int = 1
    dataflow: int = 1
    print_final_stats: int = 0
    report: str = ""
    calltree: int = 1
    verbosity: int = 1
    close_fd_mask: int = 0
    only_ascii: int = 0
    include: list[str] = dataclasses.field(default_factory=list)
    exclude: list[str] = dataclasses.field(default_factory=list)
    paths: list[str] = dataclasses.field(default_factory=list)
    #: the flags as given, for the workers' command lines
    given: list[str] = dataclasses.field(default_factory=list)


def parse(argv: list[str]) -> Options:
    """Options from ``argv`` (flags in any order among the paths); ConfigError naming a bad one."""
    opts = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name not in SELECTION:
                raise ConfigError(_unknown(arg, name))
            if not eq:
                if not args:
                    raise ConfigError(f"{name} needs a module name")
                value = args.pop(0)
            getattr(opts, name[2:]).extend(v for v in value.split(",") if v)
            opts.given += [name, value]
            continue
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg[1:].partition("=")
            flag = _BY_NAME.get(name)
            if flag is None:
                raise ConfigError(_unknown(arg, "-" + name))
            if not eq:
                raise ConfigError(f"-{name}: give a value, as -{name}=VALUE")
            try:
                parsed = flag.kind(value)
            except ValueError:
                kind = flag.kind.__name__ if flag.kind is not str else "text"
                raise ConfigError(f"-{name}={value}: expected {kind}") from None
            setattr(opts, name, parsed)
            opts.given.append(arg)
            continue
        opts.paths.append(arg)
    return opts


def _unknown(arg: str, name: str) -> str:
    known = [f"-{f.name}" for f in FLAGS] + list(SELECTION)
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    tip = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"unknown flag {arg}{tip}; 'kcovdf fuzz --help' lists the flags"


def help_text() -> str:
    """The flag table for ``kcovdf fuzz --help``."""
    width = max(len(f.name) for f in FLAGS) + 8
    lines = ["flags (libFuzzer's spelling, -flag=value; in any order among the paths):"]
    for f in FLAGS:
        lines.append(f"  -{f.name}=" + " " * (width - len(f.name) - 2) + f"{f.help} (default {f.default!r})")
    lines.append("  --include MOD" + " " * (width - 12) + "instrument this module or package (repeatable)")
    lines.append("  --exclude MOD" + " " * (width - 12) + "never instrument this module or package")
    return "\n".join(lines)
