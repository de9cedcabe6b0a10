"""Daikon export, checked against the grammar of the Daikon developer manual, "File formats"."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

import exportgen
from kcovdf.read import decode
from kcovdf.tools.export.daikon import DaikonExporter

REP_TYPES = {"boolean", "int", "hashcode", "double", "java.lang.String"}
VAR_INFO = {"var-kind", "enclosing-var", "reference-type", "array", "dec-type", "rep-type", "flags",
            "comparability", "parent", "constant", "function-args", "min-value", "max-value",
            "min-length", "max-length", "valid-values"}
PPT_INFO = {"ppt-type", "flags", "parent"}
VALUE = {"int": r"-?\d+", "boolean": r"-?\d+", "double": r"-?\d+(\.\d*)?([eE][-+]?\d+)?|NaN|-?Infinity",
         "hashcode": r"\d+|null", "java.lang.String": r'"(?:[^"\\\n]|\\.)*"'}


@dataclass
class Var:
    name: str
    info: dict[str, str] = field(default_factory=dict)


@dataclass
class Ppt:
    name: str
    info: dict[str, str] = field(default_factory=dict)
    vars: list[Var] = field(default_factory=list)


def _records(text: str) -> list[list[str]]:
    """Blank-line separated records; comment lines outside records dropped."""
    out, cur = [], []
    for line in text.split("\n"):
        if not line.strip():
            if cur:
                out.append(cur)
            cur = []
        elif cur or not line.startswith(("#", "//")):
            cur.append(line)
    return out + ([cur] if cur else [])


def check_decls(text: str) -> dict[str, Ppt]:
    """The program points of a version 2.0 declaration file; AssertionError on any violation."""
    records = _records(text)
    assert records[0] == ["decl-version 2.0"], "decl-version must be the first record"
    ppts: dict[str, Ppt] = {}
    for rec in records[1:]:
        key, _, value = rec[0].partition(" ")
        if key in ("var-comparability", "input-language"):
            assert len(rec) == 1 and value
            continue
        assert key == "ppt", f"unknown record {rec[0]!r}"
        assert " " not in value and value not in ppts, f"bad or repeated ppt name {value!r}"
        ppt = ppts[value] = Ppt(value)
        for line in rec[1:]:
            k, _, v = line.strip().partition(" ")
            if k == "variable":
                assert " " not in v and all(x.name != v for x in ppt.vars), f"bad variable {v!r}"
                ppt.vars.append(Var(v))
            elif ppt.vars:
                assert k in VAR_INFO, f"unknown variable info {k!r}"
                ppt.vars[-1].info[k] = v
            else:
                assert k in PPT_INFO, f"unknown ppt info {k!r}"
                ppt.info[k] = v
        point = value.rsplit(":::", 1)[1]
        assert (point, ppt.info["ppt-type"]) in {("ENTER", "enter")} or \
            (re.fullmatch(r"EXIT\d+", point) and ppt.info["ppt-type"] == "subexit"), value
        names = {x.name for x in ppt.vars}
        for var in ppt.vars:
            assert {"var-kind", "dec-type", "rep-type", "comparability"} <= set(var.info), var
            assert var.info["rep-type"] in REP_TYPES
            assert re.fullmatch(r"-?\d+", var.info["comparability"])
            kind, _, rel = var.info["var-kind"].partition(" ")
            assert kind in {"field", "function", "array", "variable", "return"}
            if kind == "field":
                assert rel and var.info["enclosing-var"] in names, var
                assert var.name == f"{var.info['enclosing-var']}.{rel}"
    return ppts


def check_dtrace(text: str, ppts: dict[str, Ppt]) -> list[tuple[str, int, dict[str, tuple[str, str]]]]:
    """(ppt, nonce, {variable: (value, modified)}) of every sample; AssertionError on a violation."""
    samples = []
    for rec in _records(text):
        if rec[0].startswith("decl-version"):
            assert rec == ["decl-version 2.0"]
            continue
        ppt = ppts[rec[0]]
        assert rec[1] == "this_invocation_nonce" and rec[2].isdigit()
        body = rec[3:]
        assert len(body) == 3 * len(ppt.vars), f"{rec[0]}: {len(body)} lines for {len(ppt.vars)} variables"
        values = {}
        for var, (name, value, modified) in zip(ppt.vars, zip(*[iter(body)] * 3, strict=True), strict=True):
            assert name == var.name, f"{rec[0]}: {name} where {var.name} is declared"
            if value == "nonsensical":
                assert modified == "2", f"{name}: nonsensical needs modified 2"
            else:
                assert modified in ("0", "1")
                assert re.fullmatch(VALUE[var.info["rep-type"]], value), f"{name}: {value!r}"
            values[name] = (value, modified)
        samples.append((rec[0], int(rec[2]), values))
    return samples


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Ppt], list]:
    base = tmp_path_factory.mktemp("daikon")
    task = exportgen.sample_task()
    say = task.function("app", "say", ["text"], line=70)
    task.call(say, 'a "quoted"\nline\\', ret="ok")
    paths = DaikonExporter().write(decode.load(task.write(base / "t.kdf")), base / "out.dtrace")
    assert [p.name for p in paths] == ["out.decls", "out.dtrace"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in paths)
    ppts = check_decls(paths[0].read_text())
    return ppts, check_dtrace(paths[1].read_text(), ppts)


def test_every_enter_pairs_with_its_exit_by_nonce(exported: tuple) -> None:
    ppts, samples = exported
    enters = {nonce: ppt for ppt, nonce, _ in samples if ppt.endswith(":::ENTER")}
    exits = [(nonce, ppt) for ppt, nonce, _ in samples if ":::EXIT" in ppt]
    assert len(enters) == sum(1 for ppt, _, _ in samples if ppt.endswith(":::ENTER"))  # unique nonces
    assert len({n for n, _ in exits}) == len(exits) == len(enters)
    order = [nonce for _, nonce, _ in samples]
    for nonce, ppt in exits:
        assert enters[nonce].split(":::")[0] == ppt.split(":::")[0]
        assert order.index(nonce) < len(order) - 1 - order[::-1].index(nonce)  # ENTER first


def test_types_fields_and_unknown_values(exported: tuple) -> None:
    ppts, samples = exported
    enter = ppts["geo.Point.norm(self):::ENTER"]
    info = {v.name: v.info for v in enter.vars}
    assert info["self"]["rep-type"] == "hashcode" and info["self"]["flags"] == "is_param"
    assert info["self.x"] == {"var-kind": "field x", "enclosing-var": "self", "dec-type": "int",
                              "rep-type": "int", "comparability": "1"}
    norms = [v for ppt, _, v in samples if ppt == enter.name]
    assert [v["self.x"][0] for v in norms] == ["0", "1", "2", "nonsensical"]
    assert norms[3]["self.balance"] == ("nonsensical", "2")  # FAULT: behind a property
    assert norms[3]["self.owner"] == ('"eve"', "1")
    assert norms[3]["self.__class__"] == ('"exportgen.Account"', "1")
    login = [v for ppt, _, v in samples if ppt == "app.login(user,password):::ENTER"][0]
    assert login == {"user": ('"root"', "1"), "password": ("nonsensical", "2")}
    greet = {v.name: v.info for v in ppts["app.greet(name,loud):::ENTER"].vars}
    assert (greet["loud"]["dec-type"], greet["loud"]["rep-type"]) == ("boolean", "int")
    adds = [v for ppt, _, v in samples if ppt == "geo.add(a,b):::EXIT1"]
    assert adds[5] == {"a": ("1.5", "1"), "b": ("2.25", "1"), "return": ("3.75", "1")}


def test_exits_after_a_raise_and_escaped_strings(exported: tuple) -> None:
    ppts, samples = exported
    raised = [v for ppt, _, v in samples if ppt == "app.parse(text):::EXIT2"]
    assert len(raised) == 1
    assert raised[0]["exception.__class__"] == ('"builtins.ValueError"', "1")
    assert raised[0]["return"] == ("nonsensical", "2")
    returned = [v for ppt, _, v in samples if ppt == "app.parse(text):::EXIT1"]
    assert all(v["exception"] == ("nonsensical", "2") for v in returned)
    said = [v for ppt, _, v in samples if ppt == "app.say(text):::ENTER"][0]
    assert said["text"] == ('"a \\"quoted\\"\\nline\\\\"', "1")


def test_checker_rejects_what_the_grammar_forbids() -> None:
    good = "decl-version 2.0\n\nppt m.f(x):::ENTER\nppt-type enter\nvariable x\n  var-kind variable\n" \
           "  dec-type int\n  rep-type int\n  comparability 1\n"
    ppts = check_decls(good)
    check_dtrace("m.f(x):::ENTER\nthis_invocation_nonce\n1\nx\n5\n1\n", ppts)
    with pytest.raises(AssertionError):
        check_decls(good.replace("decl-version 2.0\n\n", ""))
    with pytest.raises(AssertionError):
        check_decls(good.replace("  rep-type int\n", ""))
    with pytest.raises(AssertionError):
        check_dtrace("m.f(x):::ENTER\nthis_invocation_nonce\n1\nx\nnonsensical\n1\n", ppts)
    with pytest.raises(AssertionError):
        check_dtrace("m.f(x):::ENTER\nthis_invocation_nonce\n1\nx\n\"5\"\n1\n", ppts)


def test_format_2_trace_pairs_by_call_id_and_has_no_identities(tmp_path) -> None:
    import tracegen as tg

    b = tg.no_parameters()
    point = b.func("m", "keep", 7, ("p",))
    b.call(point, [1, 2], cid=3).ret(point, [1, 2], cid=3)
    b.call(point, [3], cid=4).ret(point, [3], cid=4)
    t = decode.load(tg.write_kdf(tmp_path / "t.kdf", b.buffer(), b.table_lines(), version=2))
    paths = DaikonExporter().write(t, tmp_path / "out")
    ppts = check_decls(paths[0].read_text())
    samples = check_dtrace(paths[1].read_text(), ppts)
    # main() has no parameter: its ARG_NONE entry gives an ENTER with no variable, and its EXIT
    assert [(ppt, nonce) for ppt, nonce, _ in samples if ppt.startswith("m.main")] == \
        [("m.main():::ENTER", 0), ("m.main():::EXIT1", 0)]
    assert ppts["m.main():::ENTER"].vars == []
    # meta's pointer is the call id in format 2, not the list's identity
    keep = [values for ppt, _, values in samples if ppt.startswith("m.keep")]
    assert all(v["p"] == ("nonsensical", "2") for v in keep) and len(keep) == 4
