"""libFuzzer's flag spelling, kcovdf's own flags, and errors naming a bad flag."""

from __future__ import annotations

import pytest

from kcovdf.errors import ConfigError
from kcovdf.fuzz import options


def test_flags_in_any_order_among_paths() -> None:
    opts = options.parse(["corpus", "-runs=10", "--include", "pkg,other", "-seed=3", "more", "--exclude=x",
                          "-max_total_time=1.5", "-artifact_prefix=out/"])
    assert (opts.runs, opts.seed, opts.max_total_time, opts.artifact_prefix) == (10, 3, 1.5, "out/")
    assert opts.paths == ["corpus", "more"]
    assert opts.include == ["pkg", "other"] and opts.exclude == ["x"]


def test_unknown_flag_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown flag -max_totl_time=3 \(did you mean -max_total_time"):
        options.parse(["-max_totl_time=3"])
    with pytest.raises(ConfigError, match="unknown flag --includ"):
        options.parse(["--includ", "x"])


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match="-runs=many: expected int"):
        options.parse(["-runs=many"])
    with pytest.raises(ConfigError, match="-seed: give a value"):
        options.parse(["-seed"])
