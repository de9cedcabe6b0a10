"""The config: which modules, which records, which parameters stay secret, what is kept.

Every option is one row of OPTIONS; each source (``[tool.kcovdf]`` in pyproject.toml,
the ``KCOV_DATAFLOW`` environment variable, ``kcovdf run`` flags, API arguments) is
parsed into a dict of raw values keyed by option name and merged by ``merge()``.

Precedence, lowest first: defaults < pyproject < KCOV_DATAFLOW < command-line flags.
A later source replaces each key it sets, except ``redact_extra``, whose patterns from
every source are added to the final ``redact`` list. API calls (kcovdf.instrument.api) read no
file and no environment: their arguments over the defaults are the whole config.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from kcovdf.errors import ConfigError
from kcovdf.instrument.redact import DEFAULT_REDACT
from kcovdf.runtime.tasks import DEFAULT_RING_BYTES, MODES

ENV_VAR = "KCOV_DATAFLOW"



@dataclasses.dataclass(frozen=True)
class Option:
    """One row of the option table: its key, value kind, default, flag and help."""

    key: str
    kind: str          # "bool", "names" (dotted module names), "patterns", "choice" or "size" (bytes)
    default: Any
    flag: str
    help: str
    choices: tuple[str, ...] = ()


OPTIONS: tuple[Option, ...] = (
    Option("include", "names", (), "--include",
           "instrument this module or package (and its submodules); repeatable, comma-separated"),
    Option("exclude", "names", (), "--exclude",
           "never instrument this module or package (and its submodules); wins over include"),
    Option("instrument_all", "bool", False, "--instrument-all",
           "instrument every importable module except kcovdf and the safety list"),
    Option("args", "bool", True, "--args", "record arguments at function entry"),
    Option("ret", "bool", True, "--ret", "record return values and raised exceptions"),
    Option("yields", "bool", False, "--yields", "record values yielded by generators and coroutines"),
    Option("redact", "patterns", DEFAULT_REDACT, "--redact",
           "parameter-name pattern to redact, replacing the default list; repeatable"),
    Option("redact_extra", "patterns", (), "--redact-extra",
           "parameter-name pattern to redact on top of the list; repeatable"),
    Option("cache", "bool", True, "--cache", "cache rewritten code beside the bytecode cache"),
    # what kcovdf run keeps (docs/run.md, "Recording modes"); they change no rewritten code
    Option("mode", "choice", "whole", "--mode",
           "whole (the default): keep every record, in segments of up to -b words, up to --max-size "
           "on disk; ring: keep the last --ring-size of each task (a flight recorder: a crash "
           "leaves the last calls); once: one buffer of -b words per task, records dropped when "
           "it is full (the kernel's way)", choices=MODES),
    Option("max_size", "size", None, "--max-size",
           "whole mode: the most the trace may take on disk, K, M or G suffixed (default: half "
           "the free space of its disk); records are dropped, and counted, beyond it"),
    Option("ring_size", "size", DEFAULT_RING_BYTES, "--ring-size",
           f"ring mode: what each task keeps, K, M or G suffixed (default: {DEFAULT_RING_BYTES >> 20}M)"),
)
_BY_KEY = {o.key: o for o in OPTIONS}

_TRUE = {"y", "yes", "true", "1", "on"}
_FALSE = {"n", "no", "false", "0", "off"}


@dataclasses.dataclass(frozen=True)
class Config:
    """A complete selection and instrumentation config (immutable)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    instrument_all: bool = False
    args: bool = True
    ret: bool = True
    yields: bool = False
    redact: tuple[str, ...] = DEFAULT_REDACT
    cache: bool = True
    mode: str = "whole"
    max_size: int | None = None
    ring_size: int = DEFAULT_RING_BYTES
    # the fuzzer's probes (kcovdf.instrument.coverage), set by kcovdf fuzz alone: no option row
    coverage: bool = False
    compare: bool = False

    # --- construction from each source -------------------------------------------------
    @classmethod
    def from_values(cls, *layers: Mapping[str, Any]) -> Config:
        """Merge already-checked layers of raw values, lowest precedence first."""
        values = {o.key: o.default for o in OPTIONS}
        extra: list[str] = []
        for layer in layers:
            for key, value in layer.items():
                if key == "redact_extra":
                    extra.extend(value)
                else:
                    values[key] = value
        values["redact"] = tuple(dict.fromkeys((*values["redact"], *extra)))
        del values["redact_extra"]
        return cls(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config | None:
        """The config in ``KCOV_DATAFLOW``, or None when the variable is unset or empty."""
        text = (os.environ if environ is None else environ).get(ENV_VAR, "")
        if not text.strip():
            return None
        return cls.from_values(parse_env(text))

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
        """Defaults < pyproject (``--config`` or ./pyproject.toml) < KCOV_DATAFLOW < flags."""
        path = getattr(args, "kcovdf_config", None)
        layers = [read_pyproject(path or "pyproject.toml", required=path is not None)]
        text = (os.environ if environ is None else environ).get(ENV_VAR, "")
        if text.strip():
            layers.append(parse_env(text))
        layers.append(parse_args(args))
        return cls.from_values(*layers)

    # --- output ----------------------------------------------------------------------
    def to_env(self) -> str:
        """The ``KCOV_DATAFLOW`` value that rebuilds this config in a child process."""
        parts = []
        for option in OPTIONS:
            if option.key == "redact_extra":
                continue
            value = getattr(self, option.key)
            if value == option.default:
                continue
            if option.kind == "bool":
                parts.append(f"{option.key}={'y' if value else 'n'}")
            elif option.kind in ("choice", "size"):
                parts.append(f"{option.key}={value}")
            else:
                parts.append(f"{option.key}={','.join(value)}")
        return ";".join(parts)

    def rewrite_key(self) -> str:
        """Hash of the options that change rewritten code (selection does not); part of the cache key."""
        text = f"args={self.args};ret={self.ret};yields={self.yields};redact={','.join(self.redact)}"
        if self.coverage or self.compare:  # never cached (install.compile_module); kept apart anyway
            text += f";coverage={self.coverage};compare={self.compare}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- parsing and checking ------------------------------------------------------------
def check(key: str, value: Any, source: str) -> Any:
    """The value of option ``key`` from ``source`` in its canonical form, or ConfigError naming both."""
    option = _BY_KEY.get(key)
    if option is None:
        hint = difflib.get_close_matches(key, _BY_KEY, n=1)
        tip = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"unknown option {key!r} in {source}{tip}; known: {', '.join(_BY_KEY)}")
    if option.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"option {key!r} in {source} must be a boolean (y/n), not {value!r}")
    if option.kind == "choice":
        if value not in option.choices:
            raise ConfigError(f"option {key!r} in {source} must be one of {', '.join(option.choices)}, "
                              f"not {value!r}")
        return value
    if option.kind == "size":
        try:
            return parse_size(value)
        except ValueError as exc:
            raise ConfigError(f"option {key!r} in {source}: {exc}") from None
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    if not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"option {key!r} in {source} must be a list of strings, not {value!r}")
    items = tuple(v.strip() for v in value if v.strip())
    if option.kind == "names":
        for name in items:
            check_module_name(name, f"option {key!r} in {source}")
    return items


#: Multipliers of the K, M and G suffixes: binary, like the kernel's sizes.
SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
#: The least --max-size or --ring-size.
MIN_SIZE = 1 << 20


def parse_size(value: object) -> int:
    """A size in bytes: an int, or text with an optional K, M or G (``500M``); ValueError naming it."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str):
        number, factor = value.strip(), 1
        if number[-1:].upper() in SUFFIXES:
            number, factor = number[:-1], SUFFIXES[number[-1].upper()]
        try:
            n = int(number) * factor
        except ValueError:
            raise ValueError(f"{value!r} is not a size in bytes (examples: 500M, 2G)") from None
    else:
        raise ValueError(f"{value!r} is not a size in bytes (examples: 500M, 2G)")
    if n < MIN_SIZE:
        raise ValueError(f"{value} = {n} bytes is below the least, 1M")
    return n


def check_module_name(name: object, where: str) -> str:
    """``name`` if it is a dotted module name, else ConfigError naming ``where``."""
    if not isinstance(name, str) or not name or not all(p.isidentifier() for p in name.split(".")):
        raise ConfigError(f"{where}: {name!r} is not a dotted module name")
    return name


def parse_env(text: str) -> dict[str, Any]:
    """``key=value;key=value`` (lists comma-separated, booleans y/n) as checked raw values."""
    source = f"the {ENV_VAR} environment variable"
    values: dict[str, Any] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"{source}: expected key=value, got {item.strip()!r}")
        values[key.strip()] = check(key.strip(), value, source)
    return values


def read_pyproject(path: str | os.PathLike[str], required: bool = False) -> dict[str, Any]:
    """Checked raw values of ``[tool.kcovdf]`` in ``path``; {} when the file or table is absent.

    A missing file is an error only when ``required`` (it was named explicitly).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    if b"tool.kcovdf" not in data:
        return {}
    toml = _toml_module(path)
    try:
        doc = toml.loads(data.decode("utf-8"))
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = doc.get("tool", {}).get("kcovdf")
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.kcovdf] must be a table")
    source = f"[tool.kcovdf] of {path}"
    return {key: check(key, value, source) for key, value in table.items()}


def _toml_module(path: str) -> Any:
    """tomllib (3.11+), else tomli; the error names the file that needed it."""
    try:
        import tomllib
        return tomllib
    except ModuleNotFoundError:
        pass
    try:
        import tomli
        return tomli
    except ModuleNotFoundError:
        raise ConfigError(f"{path} has a [tool.kcovdf] table, but reading TOML on Python < 3.11 "
                          "needs the 'tomli' package (pip install tomli)") from None


# --- command line --------------------------------------------------------------------
def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per option (plus ``--config``) to ``parser``; read them with Config.from_args."""
    group = parser.add_argument_group("instrumentation and recording (override [tool.kcovdf] and "
                                      "KCOV_DATAFLOW)")
    group.add_argument("--config", dest="kcovdf_config", metavar="PYPROJECT",
                       help="read [tool.kcovdf] from this file instead of ./pyproject.toml")
    for option in OPTIONS:
        dest = f"kcovdf_{option.key}"
        if option.key == "instrument_all":
            group.add_argument(option.flag, dest=dest, action="store_true", default=None,
                               help=option.help)
        elif option.kind == "bool":
            group.add_argument(option.flag, dest=dest, action=argparse.BooleanOptionalAction,
                               default=None, help=option.help)
        elif option.kind == "choice":
            group.add_argument(option.flag, dest=dest, choices=option.choices, default=None,
                               help=option.help)
        elif option.kind == "size":
            group.add_argument(option.flag, dest=dest, type=_size_arg, default=None, metavar="BYTES",
                               help=option.help)
        else:
            metavar = "MODULE" if option.kind == "names" else "PATTERN"
            group.add_argument(option.flag, dest=dest, action="append", default=None,
                               metavar=metavar, help=option.help)


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(args: argparse.Namespace) -> dict[str, Any]:
    """Checked raw values of the flags that were given (flags not given are absent)."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = getattr(args, f"kcovdf_{option.key}", None)
        if value is None:
            continue
        if option.kind in ("names", "patterns"):
            value = [part for item in value for part in item.split(",")]
        values[option.key] = check(option.key, value, f"command-line flag {option.flag}")
    return values
