"""The config: one option table, four sources, one precedence, errors naming key and source."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from kcovdf.errors import ConfigError
from kcovdf.instrument.config import (
    DEFAULT_REDACT,
    ENV_VAR,
    Config,
    add_selection_arguments,
    parse_env,
    read_pyproject,
)

PYPROJECT = """
[project]
name = "x"

[tool.kcovdf]
include = ["app", "lib"]
exclude = ["app.vendor"]
ret = false
redact_extra = ["*pin*"]
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_selection_arguments(p)
    return p


def test_defaults():
    c = Config()
    assert (c.include, c.exclude, c.instrument_all, c.args, c.ret, c.yields, c.cache) == (
        (), (), False, True, True, False, True)
    assert c.redact == DEFAULT_REDACT


def test_pyproject(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    c = Config.from_values(read_pyproject(path))
    assert c.include == ("app", "lib") and c.exclude == ("app.vendor",) and c.ret is False
    assert c.redact == DEFAULT_REDACT + ("*pin*",)


def test_pyproject_without_table_or_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert read_pyproject(tmp_path / "pyproject.toml") == {}
    assert read_pyproject(tmp_path / "absent.toml") == {}
    with pytest.raises(ConfigError, match="absent.toml does not exist"):
        read_pyproject(tmp_path / "absent.toml", required=True)


def test_unknown_pyproject_key_names_key_and_file(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.kcovdf]\nincldue = ['x']\n")
    with pytest.raises(ConfigError, match=r"unknown option 'incldue' in \[tool.kcovdf\] of .*pyproject.toml "
                                          r"\(did you mean 'include'\?\)"):
        read_pyproject(path)


def test_wrong_types_name_the_option(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.kcovdf]\nargs = 'maybe'\n")
    with pytest.raises(ConfigError, match=r"option 'args' in \[tool.kcovdf\].* must be a boolean"):
        read_pyproject(path)
    path.write_text("[tool.kcovdf]\ninclude = ['ok', '1bad']\n")
    with pytest.raises(ConfigError, match=r"option 'include'.*'1bad' is not a dotted module name"):
        read_pyproject(path)
    path.write_text("[tool.kcovdf]\nexclude = 3\n")
    with pytest.raises(ConfigError, match="must be a list of strings"):
        read_pyproject(path)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.kcovdf]\ninclude = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_pyproject(path)


def test_env_round_trip():
    c = Config(include=("a", "b.c"), exclude=("a.x",), instrument_all=True, args=False, yields=True,
               redact=("*k*",), cache=False)
    text = c.to_env()
    assert Config.from_env({ENV_VAR: text}) == c
    assert Config().to_env() == "" and Config.from_env({}) is None


def test_env_errors_name_the_variable():
    with pytest.raises(ConfigError, match=r"unknown option 'bogus' in the KCOV_DATAFLOW environment"):
        parse_env("include=a;bogus=1")
    with pytest.raises(ConfigError, match="KCOV_DATAFLOW.*expected key=value"):
        parse_env("include")
    assert parse_env("ret=n; args=YES;include=a, b") == {"ret": False, "args": True, "include": ("a", "b")}


def test_flags_and_precedence(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    args = parser().parse_args(["--config", str(path), "--include", "cli1,cli2", "--no-cache",
                                "--redact-extra", "*otp*"])
    env = {ENV_VAR: "include=envmod;ret=y;yields=y"}
    c = Config.from_args(args, env)
    assert c.include == ("cli1", "cli2")            # flags > env > pyproject
    assert c.ret is True and c.yields is True       # env > pyproject
    assert c.exclude == ("app.vendor",)             # only pyproject set it
    assert c.cache is False
    assert c.redact == DEFAULT_REDACT + ("*pin*", "*otp*")  # extras add up across sources
    replaced = Config.from_args(parser().parse_args(["--config", str(path), "--redact", "only"]), {})
    assert replaced.redact == ("only", "*pin*")


def test_from_args_reads_pyproject_in_cwd(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    monkeypatch.chdir(tmp_path)
    assert Config.from_args(parser().parse_args([]), {}).include == ("app", "lib")


def test_bad_flag_value_names_the_flag():
    with pytest.raises(ConfigError, match="command-line flag --exclude"):
        Config.from_args(parser().parse_args(["--config", os.devnull, "--exclude", "not-a-name"]), {})


def test_rewrite_key_ignores_selection():
    assert Config(include=("a",)).rewrite_key() == Config(exclude=("b",)).rewrite_key()
    assert Config(args=False).rewrite_key() != Config().rewrite_key()
    assert Config(redact=("x",)).rewrite_key() != Config().rewrite_key()


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="the tomli fallback exists on 3.10 only")
def test_python310_without_tomli_explains(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    code = ("import sys; sys.modules['tomli'] = None\n"
            "from kcovdf.instrument.config import read_pyproject\n"
            f"read_pyproject({str(path)!r})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "needs the 'tomli' package" in out.stderr
