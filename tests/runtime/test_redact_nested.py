"""Redaction by name inside values: fields, attributes, namedtuple fields and dict keys.

Both cores and the reference encoder withhold the same words; the layout cache never
serves a class with a withheld field; and a secret recorded by ``kcovdf run`` is in no
byte of the trace.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import R
from kcovdf import abi, tracefile
from kcovdf.instrument.config import DEFAULT_REDACT
from kcovdf.run import sealer
from kcovdf.runtime import core, encode


@pytest.fixture
def redacting(recorder):
    """set_redact(patterns) on the core under test and on the reference encoder; reset after."""
    def set_both(patterns):
        core.redact(patterns)
        encode.set_redact(patterns)
    yield set_both
    set_both(DEFAULT_REDACT)


@dataclasses.dataclass
class Cfg:
    password: str
    api_token: str
    host: str


Pair = collections.namedtuple("Pair", "user secret")


class Attrs:
    def __init__(self) -> None:
        self.name = "n"
        self.Session_Key = "abc"  # the patterns fold ASCII case


def test_fields_keys_and_attributes_are_withheld(redacting):
    redacting(DEFAULT_REDACT)
    values = [Cfg("hunter2", "tok123", "example.org"), {"secret": "s3cr3t", "a": 1, "Token": [1]},
              Pair("ada", "pw"), Attrs()]
    withheld = [[0, 1], [2, 6], [1], [1]]  # field-word positions (from v[2]) that must be withheld
    for value, where in zip(values, withheld, strict=True):
        for _ in range(3):  # the first encodes by the full walk, later ones may use the cache
            words = R.encode(value)
            assert words == encode.encode_value(value).words
            fields = words[2:]
            kinds = [abi.split_layout(words[1], len(fields))[2][j] for j in range(len(fields))]
            assert [j for j, k in enumerate(kinds) if k == abi.Kind.REDACTED] == where, value
            assert all(fields[j] == abi.REDACTED for j in where)


def test_without_patterns_nothing_is_withheld(redacting):
    redacting(())
    words = R.encode({"password": 5})
    assert words == encode.encode_value({"password": 5}).words and abi.REDACTED not in words[2:]


def test_new_patterns_reach_classes_already_cached(redacting):
    redacting(())
    c = Cfg("hunter2", "t", "h")
    for _ in range(3):
        R.encode(c)  # the layout cache now serves Cfg
    redacting(["host"])
    words = R.encode(c)
    assert words == encode.encode_value(c).words and words[4] == abi.REDACTED


_names = st.text(alphabet="abcXYZ_é?*[]!-", min_size=1, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(patterns=st.lists(_names, max_size=3), keys=st.lists(_names, min_size=1, max_size=6, unique=True))
def test_both_cores_match_the_reference_on_any_pattern_and_name(recorder, patterns, keys):
    core.redact(patterns)
    encode.set_redact(patterns)
    try:
        d = {k: i for i, k in enumerate(keys)}
        assert R.encode(d) == encode.encode_value(d).words
        obj = Attrs()
        obj.__dict__.clear()
        obj.__dict__.update(d)
        for _ in range(2):
            assert R.encode(obj) == encode.encode_value(obj).words
    finally:
        core.redact(DEFAULT_REDACT)
        encode.set_redact(DEFAULT_REDACT)


def test_kcovdf_run_leaves_no_nested_secret_in_the_trace(tmp_path: Path):
    (tmp_path / "prog.py").write_text(textwrap.dedent("""
        import dataclasses

        @dataclasses.dataclass
        class Cfg:
            password: str
            api_token: str

        def login(password, cfg, opts, **kwargs):
            return len(password) + len(opts)

        login(password="pw-top-0", cfg=Cfg(password="hunter2", api_token="tok123"),
              opts={"secret": "s3cr3t", "user": "ada"}, session_key="kw-55")
    """))
    r = subprocess.run([sys.executable, "-m", "kcovdf", "run", "-o", "tr", "prog.py"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sealer.wait(tmp_path / "tr")  # the files as they stay
    files = [p for p in (tmp_path / "tr").rglob("*") if p.is_file()]
    assert files
    # the task files as written: compressed ones inflated, or a secret would hide in gzip's bytes
    data = b"".join(tracefile.read_task_file(p) if tracefile.is_compressed(p.name) else p.read_bytes()
                    for p in files)
    assert b"ada" in data  # the values that match no pattern are there
    for secret in (b"pw-top-0", b"hunter2", b"tok123", b"s3cr3t", b"kw-55"):
        assert secret not in data, secret


@pytest.mark.parametrize("which", [
    pytest.param("c", marks=pytest.mark.c_core(reason="a child process on the C core")), "py"])
def test_the_default_patterns_are_in_force_from_the_start(which):
    # a fresh process that installs no hook (a Device user, @instrument_func alone)
    code = ("from kcovdf import abi; from kcovdf.runtime import core; "
            "w = core.encode({'api_token': 'tok', 'user': 'ada'}); "
            "print(core.name, w.count(abi.REDACTED))")
    env = {**os.environ, "KCOVDF_CORE": which}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [which, "1"]
