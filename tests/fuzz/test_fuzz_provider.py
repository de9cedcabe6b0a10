"""FuzzedDataProvider: Atheris's methods, and encode() as the inverse of each Consume call."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcovdf.fuzz import FuzzedDataProvider, provider


def test_consumes_from_the_front_and_runs_dry() -> None:
    fdp = FuzzedDataProvider(b"\x05abcdef")
    assert fdp.ConsumeIntInRange(0, 255) == 5
    assert fdp.ConsumeBytes(3) == b"abc"
    assert fdp.remaining_bytes() == 3
    assert fdp.buffer() == b"def"
    assert fdp.ConsumeBytes(10) == b"def"
    assert fdp.ConsumeBytes(1) == b""
    assert fdp.ConsumeInt(4) == 0  # exhausted: zeros, as Atheris
    assert fdp.ConsumeBool() is False


def test_atheris_method_names() -> None:
    names = ["ConsumeBytes", "ConsumeUnicode", "ConsumeUnicodeNoSurrogates", "ConsumeString", "ConsumeInt",
             "ConsumeUInt", "ConsumeIntInRange", "ConsumeIntList", "ConsumeIntListInRange", "ConsumeFloat",
             "ConsumeRegularFloat", "ConsumeProbability", "ConsumeFloatInRange", "ConsumeFloatList",
             "ConsumeRegularFloatList", "ConsumeProbabilityList", "ConsumeFloatListInRange", "ConsumeBool",
             "PickValueInList", "remaining_bytes", "buffer"]
    assert [n for n in names if not callable(getattr(FuzzedDataProvider, n, None))] == []


@given(st.binary(max_size=64))
def test_values_stay_in_their_ranges(data: bytes) -> None:
    fdp = FuzzedDataProvider(data)
    assert -5 <= fdp.ConsumeIntInRange(-5, 300) <= 300
    assert 0 <= fdp.ConsumeProbability() <= 1
    assert 1.5 <= fdp.ConsumeFloatInRange(1.5, 2.5) <= 2.5
    assert math.isfinite(fdp.ConsumeRegularFloat())
    assert fdp.PickValueInList(["a", "b", "c"]) in "abc"
    assert len(fdp.ConsumeUnicode(5)) <= 5
    text = fdp.ConsumeUnicodeNoSurrogates(5)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_bad_ranges_name_the_call() -> None:
    with pytest.raises(ValueError, match="ConsumeIntInRange"):
        FuzzedDataProvider(b"").ConsumeIntInRange(3, 1)
    with pytest.raises(ValueError, match="PickValueInList"):
        FuzzedDataProvider(b"").PickValueInList([])


@pytest.mark.parametrize(("call", "arg", "value"), [
    ("ConsumeIntInRange", (10, 5000), 4321), ("ConsumeInt", 4, -123456), ("ConsumeUInt", 2, 65000),
    ("ConsumeUnicode", 8, "héllo"), ("ConsumeUnicode", 4, "ab\U0001F600"), ("ConsumeBytes", 3, b"\0xy"),
    ("ConsumeFloat", None, 2.5), ("ConsumeBool", None, True)])
def test_encode_inverts_each_call(call: str, arg: object, value: object) -> None:
    provider.provenance = log = []
    try:
        probe = FuzzedDataProvider(b"\x07" * 32)
        getattr(probe, call)(*([] if arg is None else list(arg) if isinstance(arg, tuple) else [arg]))
        _, _, kind, karg, _ = log[0]
    finally:
        provider.provenance = None
    data = provider.encode(kind, karg, value)
    assert data is not None
    fdp = FuzzedDataProvider(data)
    got = getattr(fdp, call)(*([] if arg is None else list(arg) if isinstance(arg, tuple) else [arg]))
    assert got == value
