"""The selection rules, each decision with the rule that made it."""

from __future__ import annotations

import pytest

from kcovdf.instrument.config import Config
from kcovdf.instrument.selection import OWN_USE, SAFETY, by_name, decide, is_test_module

INC = Config(include=("app", "lib.core"), exclude=("app.vendor",))


@pytest.mark.parametrize("name, path, expected, rule", [
    ("app", "/s/app/__init__.py", True, "include 'app'"),
    ("app.models", "/s/app/models.py", True, "include 'app' (package)"),
    ("app.vendor", "/s/app/vendor/__init__.py", False, "exclude 'app.vendor'"),
    ("app.vendor.six", "/s/app/vendor/six.py", False, "exclude 'app.vendor'"),
    ("lib.core", "/s/lib/core.py", True, "include 'lib.core'"),
    ("lib", "/s/lib/__init__.py", False, "not selected"),          # never widens to the package
    ("lib.other", "/s/lib/other.py", False, "not selected"),
    ("application", "/s/application.py", False, "not selected"),   # a prefix is not a package
    ("app.ext", "/s/app/ext.cpython-311-x86_64-linux-gnu.so", False, "no Python source"),
    ("app.frozen", None, False, "no Python source"),
    ("app.test_models", "/s/app/test_models.py", False,
     "test module (left to pytest; include it by its exact name)"),
    ("app.conftest", "/s/app/conftest.py", False,
     "test module (left to pytest; include it by its exact name)"),
    ("kcovdf.instrument.hook", "/s/kcovdf/hook.py", False, "kcovdf itself"),
])
def test_rules(name, path, expected, rule):
    assert decide(name, path, INC) == (expected, rule)


def test_exact_include_of_a_test_module():
    assert decide("app.test_x", "/s/app/test_x.py", Config(include=("app.test_x",))).instrument


def test_exclude_wins_over_include_of_the_same_or_inner_name():
    config = Config(include=("app.vendor.lib",), exclude=("app.vendor",))
    assert decide("app.vendor.lib", "/s/app/vendor/lib.py", config) == (False, "exclude 'app.vendor'")


def test_instrument_all_keeps_kcovdf_and_the_safety_list_out():
    config = Config(instrument_all=True, exclude=("noisy",))
    assert decide("anything.at.all", "/x/all.py", config) == (True, "instrument_all")
    assert decide("noisy.sub", "/x/sub.py", config) == (False, "exclude 'noisy'")
    assert not decide("kcovdf", "/x/kcovdf/__init__.py", config).instrument
    for name in ("importlib.util", "encodings.utf_8", "threading", "weakref", "abc"):
        verdict = decide(name, f"/lib/{name}.py", config)
        assert not verdict.instrument and verdict.rule.startswith("safety list: ")
    for name in ("json.decoder", "logging.handlers", "ast", "tomllib"):
        verdict = decide(name, f"/lib/{name}.py", config)
        assert not verdict.instrument and verdict.rule.startswith("used by kcovdf itself (")
        assert verdict.rule.endswith("name it in include to record it")


def test_safety_list_wins_over_explicit_include():
    verdict = by_name("importlib", Config(include=("importlib",)))
    assert verdict == (False, f"safety list: {SAFETY['importlib']}")


@pytest.mark.parametrize("name", ["json", "json.decoder", "tomllib", "logging.handlers", "ast", "re"])
def test_modules_kcovdf_only_uses_are_recordable_by_include(name):
    top = name.partition(".")[0]
    assert name not in SAFETY and top in OWN_USE
    verdict = decide(name, f"/lib/{name}.py", Config(include=(top,)))
    assert verdict.instrument and verdict.rule.startswith(f"include {top!r}")


def test_the_safety_list_keeps_only_what_would_break_kcovdf():
    # the import system, startup, the runtime's threads and the Switch's weak tables, ABC checks
    assert set(SAFETY) == {
        "importlib", "_frozen_importlib", "_frozen_importlib_external", "zipimport", "encodings", "codecs",
        "site", "sitecustomize", "usercustomize", "_sitebuiltins", "threading", "_threading_local",
        "weakref", "_weakrefset", "abc", "_py_abc", "_collections_abc"}
    assert not set(SAFETY) & set(OWN_USE)


def test_test_module_names():
    assert is_test_module("/a/test_x.py") and is_test_module("/a/x_test.py") and is_test_module("conftest.py")
    assert not is_test_module("/a/testing.py") and not is_test_module("/a/contest.py")
