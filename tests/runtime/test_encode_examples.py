"""The worked examples of docs/abi.md are re-encoded here word for word, so the page cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kcovdf import abi
from kcovdf.runtime.encode import encode_value

DOC = Path(__file__).resolve().parents[2] / "docs" / "abi.md"
TEXT = DOC.read_text(encoding="utf-8")


def _namespace() -> dict:
    code = re.search(r"The example classes \(module `app`\):\n\n```python\n(.*?)```", TEXT, re.S)
    assert code, "docs/abi.md lost its example classes"
    ns: dict = {}
    exec(compile(code.group(1), str(DOC), "exec", dont_inherit=True), ns)
    return ns


def _examples() -> list[tuple[str, list[int]]]:
    out = []
    for block in re.findall(r"```text\nexample: (.*?)```", TEXT, re.S):
        expr, *lines = block.strip().splitlines()
        words = [int(line.split()[1], 16) for line in lines]
        out.append((expr, words))
    return out


EXAMPLES = _examples()


def test_doc_has_every_required_example() -> None:
    exprs = [e for e, _ in EXAMPLES]
    # int, big int, bool, float, None, str (ASCII and not), bytes, list, tuple, dict,
    # dataclass, __slots__, plain objects with two attribute sets, unreadable field, redacted
    assert len(exprs) >= 19
    for needle in ("2**70", "True", "1.5", "None", "'héllo €'", "b'", "[1,", "(7,", "{'a'",
                   "Point(", "Pair(", "plain(a=", "plain(b=", "Sensor(", "REDACTED"):
        assert any(needle in e for e in exprs), needle


@pytest.mark.parametrize(("expr", "words"), EXAMPLES, ids=[e for e, _ in EXAMPLES])
def test_example_words_match_reference_encoder(expr: str, words: list[int]) -> None:
    ns = _namespace()
    if expr == "REDACTED":
        got = encode_value("hunter2", redacted=True).words
    else:
        *stmts, last = expr.split(";")
        for stmt in stmts:
            exec(stmt.strip(), ns)
        got = encode_value(eval(last.strip(), ns)).words
    assert [f"0x{w:016x}" for w in got] == [f"0x{w:016x}" for w in words]


def test_whole_record_example() -> None:
    block = re.search(r"A whole record:.*?```text\n(.*?)```", TEXT, re.S).group(1)
    words = [line.split()[0] for line in block.splitlines()]
    pc = abi.fnv1a64(b"app:f:1")
    assert words[0] == f"0x{abi.type_seq(abi.TYPE_ENTRY, 3, 1):016x}"
    assert words[1] == words[7] == f"0x{pc:016x}"
    assert words[6] == f"0x{abi.type_seq(abi.TYPE_RETURN, 3, 2):016x}"
    assert [int(w, 16) for w in words[3:6]] == encode_value(42).words
    assert [int(w, 16) for w in words[9:12]] == encode_value(43).words
