"""Redaction: secret-named parameters reach the recorder only as the REDACTED sentinel."""

from __future__ import annotations

import pytest

from instr_samples.helpers import load, recording, write_module
from kcovdf.instrument.config import DEFAULT_REDACT, Config
from kcovdf.instrument.redact import Redactor


@pytest.mark.parametrize("name", ["password", "PASSWORD", "db_passwd", "client_secret", "token",
                                  "accessToken", "api_key", "APIKEY", "credentials", "private_key",
                                  "auth", "basic_auth", "auth_header", "Authorization", "cookie",
                                  "session_key", "sessionid"])
def test_default_patterns_redact(name):
    assert Redactor(DEFAULT_REDACT)(name)


@pytest.mark.parametrize("name", ["user", "author", "path", "self", "key", "session", "count"])
def test_default_patterns_keep(name):
    assert not Redactor(DEFAULT_REDACT)(name)


def test_no_patterns_redacts_nothing():
    assert not Redactor(())("password")


SRC = "def login(user, password, *, api_key=None, pin=0):\n    return user\n"


@pytest.fixture
def rec(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_module(tmp_path, "kcovdf_t_login", SRC)
    yield from recording(monkeypatch, tmp_path)


def entries(rec):
    return [value for kind, _, _, value in rec.records if kind == "entry"]


def test_redacted_values_never_reach_the_recorder(rec):
    m = load("kcovdf_t_login")
    rec.set_active(True)
    assert m.login("ann", "hunter2", api_key="k", pin=1234) == "ann"
    assert entries(rec) == ["ann", rec.REDACTED, rec.REDACTED, 1234]
    assert "hunter2" not in repr(rec.records)


def test_patterns_can_be_extended_and_replaced(rec):
    m = load("kcovdf_t_login", Config(include=("kcovdf_t_login",), redact=DEFAULT_REDACT + ("pin",)))
    rec.set_active(True)
    m.login("ann", "pw", pin=1)
    assert entries(rec) == ["ann", rec.REDACTED, rec.REDACTED, rec.REDACTED]
    rec.records.clear()
    m = load("kcovdf_t_login", Config(include=("kcovdf_t_login",), redact=("user",)))
    m.login("ann", "pw", pin=1)
    assert entries(rec) == [rec.REDACTED, "pw", None, 1]
