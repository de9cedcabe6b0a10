"""The three selection verbs of the Python API (in the style of Atheris).

- ``instrument_imports(include=, exclude=)``: modules and packages imported from now on
  (and those already imported, rewritten in place); a context manager too. Cannot reach
  code without Python source (C extensions, frozen modules) or lambdas.
- ``@instrument_func``: one function, from its module's source file. Cannot reach
  functions defined by exec() or at the interactive prompt.
- ``instrument_all()``: everything importable except kcovdf, the safety list
  (selection.SAFETY) and the modules kcovdf uses itself (selection.OWN_USE, which
  ``instrument_imports`` can name). Cannot reach what ``instrument_imports`` cannot.

API calls read no config file and no environment: their arguments are the whole config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kcovdf.errors import ConfigError
from kcovdf.instrument import install as installer
from kcovdf.instrument import selection
from kcovdf.instrument.config import DEFAULT_REDACT, Config, check_module_name
from kcovdf.instrument.hook import Hook, install
from kcovdf.instrument.switch import report

F = TypeVar("F", bound=Callable[..., Any])


def _names(value: Iterable[str], call: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{call}: {what} must be a list of module names, not {value!r}")
    return tuple(check_module_name(name, f"{call}: {what}") for name in value)


def _patterns(value: Iterable[str], call: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable) or \
            not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{call}: {what} must be a list of patterns, not {value!r}")
    return tuple(value)


def _config(call: str, include: Iterable[str], exclude: Iterable[str], every: bool, args: bool,
            ret: bool, yields: bool, redact: Iterable[str] | None, redact_extra: Iterable[str],
            cache: bool) -> Config:
    for key, flag in (("args", args), ("ret", ret), ("yields", yields), ("cache", cache)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{call}: {key} must be True or False, not {flag!r}")
    patterns = DEFAULT_REDACT if redact is None else _patterns(redact, call, "redact")
    patterns += _patterns(redact_extra, call, "redact_extra")
    return Config(include=_names(include, call, "include"), exclude=_names(exclude, call, "exclude"),
                  instrument_all=every, args=args, ret=ret, yields=yields,
                  redact=tuple(dict.fromkeys(patterns)), cache=cache)


def _warn_unmatched(config: Config, call: str) -> None:
    """Warn, naming the call, about include entries that cannot select anything."""
    for name in config.include:
        verdict = selection.by_name(name, config)
        if not verdict.instrument:
            report(f"kcovdf: {call}: include {name!r} stays uninstrumented ({verdict.rule})")
            continue
        if not selection.importable(name):
            report(f"kcovdf: {call}: include {name!r} matches no importable module")


def instrument_imports(include: Iterable[str] = (), exclude: Iterable[str] = (), *, args: bool = True,
                       ret: bool = True, yields: bool = False, redact: Iterable[str] | None = None,
                       redact_extra: Iterable[str] = (), cache: bool = True) -> Hook:
    """Instrument the modules and packages in ``include`` minus ``exclude`` (submodules included).

    ``redact`` replaces the default parameter-name patterns, ``redact_extra`` adds to them.
    Returns the installed Hook; ``with instrument_imports(...):`` removes it at the end of
    the block (code instrumented meanwhile stays instrumented).
    """
    call = "instrument_imports()"
    config = _config(call, include, exclude, False, args, ret, yields, redact, redact_extra, cache)
    if not config.include:
        raise ConfigError(f"{call}: include is empty; name at least one module or package")
    _warn_unmatched(config, call)
    return install(config, call)


def instrument_all(exclude: Iterable[str] = (), *, args: bool = True, ret: bool = True,
                   yields: bool = False, redact: Iterable[str] | None = None,
                   redact_extra: Iterable[str] = (), cache: bool = True) -> Hook:
    """Instrument every module with Python source except ``exclude``, kcovdf, the safety list and OWN_USE."""
    config = _config("instrument_all()", (), exclude, True, args, ret, yields, redact, redact_extra, cache)
    return install(config, "instrument_all()")


def instrument_func(func: F) -> F:
    """Decorator: instrument one function (and the functions nested in it) in place; returns it."""
    return installer.instrument_function(func)
