"""kcovdf contracts: expressions, the file, inference, checking, the command and its formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from kcovdf.contracts import expr, model
from kcovdf.contracts.check import check
from kcovdf.contracts.infer import infer
from kcovdf.contracts.observe import observe
from kcovdf.run import sealer

SHAPES = """\
    class Counter:
        def __init__(self):
            self.count = 0
            self.limit = 100

        def bump(self, by):
            self.count += by
            return self.count

    def add(a, b):
        return a + b

    def clamp(x, lo, hi):
        return max(lo, min(hi, x))

    def pad(s, n):
        return s + " " * n

    def parse(s):
        return int(s)
    """

REGRESSED = SHAPES.replace("return a + b", "return a + b + (a > 50)").replace(
    "self.count += by", "self.count -= by").replace("return int(s)", "return int(s) if s else None")

TRAIN = """\
    import random, shapes
    r = random.Random(0)
    c = shapes.Counter()
    for i in range(300):
        a, b = r.randint(0, 40), r.randint(-20, 20)
        shapes.add(a, b)
        lo = r.randint(-10, 0)
        shapes.clamp(r.randint(-30, 30), lo, lo + r.randint(0, 20))
        shapes.pad("x" * r.randint(0, 5), r.randint(0, 4))
        shapes.parse(str(r.randint(0, 99)))
        if i % 10 == 0:
            c = shapes.Counter()
        c.bump(r.randint(0, 3))
    print("trained")
    """

# new input shapes: larger ranges, longer strings; legal for the correct module
CHECK = """\
    import random, shapes
    r = random.Random(1)
    c = shapes.Counter()
    out = []
    for i in range(200):
        out.append(shapes.add(r.randint(0, 400), r.randint(-200, 200)))
        lo = r.randint(-100, 0)
        out.append(shapes.clamp(r.randint(-300, 300), lo, lo + r.randint(0, 200)))
        out.append(len(shapes.pad("y" * r.randint(0, 50), r.randint(0, 40))))
        out.append(shapes.parse(str(r.randint(0, 9999))))
        if i % 2 == 0:
            out.append(c.bump(r.randint(0, 9)))
    print(sum(x for x in out if x is not None))
    """


def record(cwd: Path, module: str, driver: str, out: str, *extra: str) -> Path:
    (cwd / "shapes.py").write_text(textwrap.dedent(module))
    (cwd / "driver.py").write_text(textwrap.dedent(driver))
    r = subprocess.run([sys.executable, "-m", "kcovdf", "run", "--include", "shapes", "-o", out, *extra,
                        "driver.py"], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sealer.wait(cwd / out, timeout=120)
    return cwd / out


def kcovdf(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kcovdf", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    d = tmp_path_factory.mktemp("contracts")
    train = record(d, SHAPES, TRAIN, "train")
    r = kcovdf(d, "contracts", "infer", str(train), "-o", "contracts.toml", "--include", "shapes")
    assert r.returncode == 0, r.stderr
    good = record(d, SHAPES, CHECK, "good")
    bad = record(d, REGRESSED, CHECK, "bad")
    return d, model.read(d / "contracts.toml"), good, bad


# --- expressions ------------------------------------------------------------------------

def ref(name, nums=None, texts=None, classes=None, n=4):
    num = np.array(nums if nums is not None else [np.nan] * n, float)
    text = np.array(texts if texts is not None else [None] * n, object)
    cls = np.array(classes if classes is not None else ["builtins.int"] * n, object)
    return expr.Ref(name, num, text, cls)


def test_expressions_are_three_valued_over_columns():
    x = ref("x", [1, 5, np.nan, 3], classes=["builtins.int", "builtins.int", None, "builtins.int"])
    ret = ref("ret", [2, 6, 1, np.nan], texts=[None, None, None, "hi"],
              classes=["builtins.int"] * 3 + ["builtins.str"])
    env = {"x": x, "ret": ret}

    def ev(e):
        c = expr.evaluate(e, lambda name: env.get(name) or ref(name, classes=[None] * 4), 4)
        return [bool(h) if k else None for h, k in zip(c.v, c.known, strict=True)]

    assert ev("ret == x + 1") == [True, True, None, None]
    assert ev("type(ret) is int") == [True, True, True, False]
    assert ev("type(ret) in (int, str)") == [True] * 4
    assert ev("ret in {2, 6}") == [True, True, False, None]
    assert ev("x is not None") == [True, True, None, True]
    assert ev("ret != 0 and x > 2") == [False, True, None, None]
    assert ev("x > 2 or ret > 0") == [True, True, True, True]
    assert ev("old(x) < ret") == [True, True, None, None]
    assert ev("0 <= x <= 4") == [True, False, None, True]
    assert ev("x % 2 == 1") == [True, True, None, True]
    assert ev("undefined > 0") == [None] * 4  # a variable the calls do not have: no verdict
    assert expr.variables("len(ret) <= n and self.size >= 0 and type(x) is mod.Box") == \
        ["len(ret)", "n", "self.size", "x"]


@pytest.mark.parametrize("bad,message", [
    ("x[0] > 1", "Subscript is not allowed"),
    ("open(x)", r"only len\(x\), type\(x\), old\(x\), abs\(x\) and"),
    ("x.upper() == 'A'", "may be called"),
    ("x >", "does not parse"),
    ("__import__('os')", r"only len\(x\)"),
    ("x in y", "literal set"),
])
def test_expressions_outside_the_subset_are_named(bad, message):
    with pytest.raises(expr.ContractError, match=message):
        expr.evaluate(bad, lambda name: ref(name), 4)


# --- the file ---------------------------------------------------------------------------

def test_the_file_round_trips_and_bad_files_are_named(tmp_path):
    cs = model.ContractSet(traces=["t"])
    cs.functions["m:f"] = model.Spec("m:f", 12, {"mode": "fast", 'we"ird': 3}, [
        model.Contract("ret >= 0", "post", "violation", "inferred", "bound", 12, 5, 0.999),
        model.Contract("len(s) <= 'é'", "pre", "novelty", "require")])
    path = tmp_path / "c.toml"
    model.write(cs, path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    back = model.read(path)
    assert back.functions["m:f"].contracts == cs.functions["m:f"].contracts
    assert back.functions["m:f"].constants == cs.functions["m:f"].constants
    for text, message in [("[functions.x\n", "not valid TOML"),
                          ('[functions."m:f"]\n[[functions."m:f".contract]]\nexpr = "x["\n',
                           "does not parse"),
                          ('[functions."m:f"]\n[[functions."m:f".contract]]\nexpr = "x > 0"\nkind = "nope"\n',
                           "kind 'nope' is not one of"),
                          ('[meta]\nformat = 9\n', "format 9")]:
        with pytest.raises(expr.ContractError, match=message):
            model.loads(text)
    with pytest.raises(expr.ContractError, match="cannot read contracts"):
        model.read(tmp_path / "missing.toml")


def test_infer_again_keeps_what_people_edited():
    old = model.ContractSet()
    old.functions["m:f"] = model.Spec("m:f", 3, {}, [
        model.Contract("ret >= 0", "post", "violation", "ignore", "bound"),
        model.Contract("ret < 100", "post", "violation", "require"),
        model.Contract("x > 1", "pre", "novelty", "inferred", "bound")])
    new = model.ContractSet()
    new.functions["m:f"] = model.Spec("m:f", 9, {}, [
        model.Contract("ret >= 0", "post", "violation", "inferred", "bound", 9, 4, 0.99)])
    merged = model.merge(old, new).functions["m:f"].contracts
    assert [(c.expr, c.status, c.samples) for c in merged] == [("ret >= 0", "ignore", 9),
                                                               ("ret < 100", "require", 0)]


# --- inference and checking -------------------------------------------------------------

def test_inference_learns_the_families_and_splits_guarantees_from_inputs(learned):
    _, cs, _, _ = learned
    add = {c.expr: c for c in cs.functions["shapes:add"].contracts}
    assert add["ret == a + b"].enforce == "violation" and add["ret == a + b"].kind == "post"
    assert add["type(ret) is int"].enforce == "violation"
    assert add["a >= 0"].kind == "pre" and add["a >= 0"].enforce == "novelty"
    clamp = {c.expr for c in cs.functions["shapes:clamp"].contracts}
    assert {"ret >= lo", "ret <= hi"} <= clamp
    pad = {c.expr for c in cs.functions["shapes:pad"].contracts}
    assert "len(ret) == len(s) + n" in pad
    assert "exc is None" in {c.expr for c in cs.functions["shapes:parse"].contracts}
    counter = {c.expr: c for c in cs.classes["shapes.Counter"].contracts}
    assert counter["self.count >= 0"].enforce == "conditional"  # a bound: what inputs allowed
    assert cs.functions["shapes:Counter.bump"].constants["self.limit"] == 100
    # nothing about a value that never varied
    assert not any("self.limit" in c for c in counter)
    for spec in (*cs.functions.values(), *cs.classes.values()):
        for c in spec.contracts:
            assert c.inferred and c.samples >= 7 and c.confidence >= 0.99, c


def test_a_check_with_new_inputs_of_correct_code_finds_no_violation(learned):
    d, cs, good, _ = learned
    result = check(observe(str(good)), cs)
    assert result.violations == [], [f.json() for f in result.violations]
    assert result.novelties  # the new ranges are told apart, as warnings
    r = kcovdf(d, "contracts", "check", str(good), "--contracts", "contracts.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 violations" in r.stdout and "novelty" in r.stdout


def test_a_check_names_every_call_of_each_regression(learned):
    d, cs, _, bad = learned
    r = kcovdf(d, "contracts", "check", str(bad), "--contracts", "contracts.toml", "--format", "json")
    assert r.returncode == 1, r.stderr
    rows = json.loads(r.stdout)
    broken = {(row["function"], row["invariant"]) for row in rows}
    assert ("shapes:add", "ret == a + b") in broken                 # a wrong result
    assert ("shapes:Counter.bump", "self.count >= 0") in broken     # a broken object invariant
    assert any(f == "shapes:parse" and "ret" in inv for f, inv in broken) is False  # parse unchanged here
    add = [row for row in rows if row["invariant"] == "ret == a + b"]
    assert len(add) == len({row["ordinal"] for row in add}) > 1    # every violating call, each once
    row = add[0]
    assert set(row) >= {"function", "ordinal", "task", "seq", "invariant", "kind", "values", "context"}
    assert row["kind"] == "post" and set(row["values"]) == {"ret", "a", "b"}
    assert int(row["values"]["ret"]) == int(row["values"]["a"]) + int(row["values"]["b"]) + 1
    assert row["context"] == []  # called from the driver, which is not instrumented
    # the ordinal is the call's index among all calls of its function, in trace order
    result = check(observe(str(bad)), cs)
    adds = [f for f in result.violations if f.invariant == "ret == a + b"]
    assert [f.ordinal for f in adds] == sorted(f.ordinal for f in adds)


def test_sarif_junit_and_baseline(learned):
    d, _, _, bad = learned
    r = kcovdf(d, "contracts", "check", str(bad), "--contracts", "contracts.toml", "--format", "sarif",
               "-o", "out.sarif")
    assert r.returncode == 1, r.stderr
    log = json.loads((d / "out.sarif").read_text())
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = {rule["id"] for rule in run["tool"]["driver"]["rules"]}
    assert {res["ruleId"] for res in run["results"]} == rules
    res = run["results"][0]
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("shapes.py")
    assert res["locations"][0]["physicalLocation"]["region"]["startLine"] > 0
    assert res["partialFingerprints"]["kcovdfContract/v1"]
    r = kcovdf(d, "contracts", "check", str(bad), "--contracts", "contracts.toml", "--format", "junit")
    suite = ET.fromstring(r.stdout)
    assert int(suite.get("failures")) == len(rules) and suite.find("testcase/failure") is not None
    # what a baseline already holds is not reported again
    r = kcovdf(d, "contracts", "check", str(bad), "--contracts", "contracts.toml", "--baseline", "out.sarif")
    assert r.returncode == 0, r.stdout


def test_show_and_diff(learned, tmp_path):
    d, cs, _, _ = learned
    r = kcovdf(d, "contracts", "show", "contracts.toml")
    assert r.returncode == 0 and "ret == a + b" in r.stdout and "samples" in r.stdout
    edited = model.read(d / "contracts.toml")
    edited.functions["shapes:add"].contracts = [c for c in edited.functions["shapes:add"].contracts
                                                if c.expr != "ret == a + b"]
    model.write(edited, tmp_path / "edited.toml")
    r = kcovdf(d, "contracts", "diff", "contracts.toml", str(tmp_path / "edited.toml"))
    assert r.returncode == 1 and "- shapes:add: ret == a + b" in r.stdout
    assert kcovdf(d, "contracts", "diff", "contracts.toml", "contracts.toml").returncode == 0


def test_bad_input_exits_2_and_an_incomplete_trace_3(learned, tmp_path):
    d, _, good, _ = learned
    r = kcovdf(d, "contracts", "check", str(tmp_path / "nothing"), "--contracts", "contracts.toml")
    assert r.returncode == 2 and "no trace at" in r.stderr
    (tmp_path / "bad.toml").write_text('[functions."a:b"]\n[[functions."a:b".contract]]\nexpr = "ret["\n')
    r = kcovdf(d, "contracts", "check", str(good), "--contracts", str(tmp_path / "bad.toml"))
    assert r.returncode == 2 and "does not parse" in r.stderr
    r = kcovdf(d, "contracts", "check", str(good), "--contracts", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "cannot read contracts" in r.stderr
    r = kcovdf(d, "contracts", "check", str(good), "--contracts", "contracts.toml", "--format", "xml")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    small = record(tmp_path, SHAPES, CHECK, "small", "--mode", "once", "-b", "4K")
    r = kcovdf(tmp_path, "contracts", "check", str(small), "--contracts", str(d / "contracts.toml"))
    assert r.returncode == 3 and "lost" in r.stderr
    r = kcovdf(tmp_path, "contracts", "check", str(small), "--contracts", str(d / "contracts.toml"),
               "--allow-incomplete")
    assert r.returncode == 0, r.stdout


def test_hand_written_contracts_are_enforced_and_ignored_ones_are_not(learned, tmp_path):
    d, _, good, _ = learned
    cs = model.read(d / "contracts.toml")
    cs.functions["shapes:add"].contracts.append(model.Contract("ret < 300", "post"))
    for c in cs.functions["shapes:add"].contracts:
        if c.expr == "a >= 0":
            c.status = "require"
    model.write(cs, tmp_path / "c.toml")
    result = check(observe(str(good)), model.loads((tmp_path / "c.toml").read_text()))
    assert {f.invariant for f in result.violations} == {"ret < 300"}
    for c in cs.functions["shapes:add"].contracts:
        c.status = "ignore"
    assert not [f for f in check(observe(str(good)), cs).findings if f.function == "shapes:add"]


def test_infer_on_several_traces_and_only_included_modules(learned, tmp_path):
    d, cs, good, _ = learned
    both = infer([observe(str(d / "train")), observe(str(good))], ["train", "good"])
    assert both.functions["shapes:add"].calls == cs.functions["shapes:add"].calls + 200
    assert infer([observe(str(d / "train"), ("other",))], ["train"]).functions == {}


def test_kernel_dumps_name_arguments_arg0_and_functions_through_kallsyms(tmp_path):
    import tracegen as tg
    from kcovdf import abi
    from kcovdf.symbols import kernel_symbols_from_args

    f2 = 0xFFFFFFFFC0001040
    words: list[int] = []
    seq = 0
    for i in range(40):
        a, b = i, 2 * i + 1
        for arg, v in enumerate((a, b)):
            seq += 1
            words += tg.record(abi.TYPE_ENTRY, seq, f2, arg, [v])
        seq += 1
        words += tg.record(abi.TYPE_RETURN, seq, f2, 0, [a + b])
    dump = tmp_path / "dump.bin"
    dump.write_bytes(tg.words_bytes([len(words)] + words + [0] * 16))
    kall = tmp_path / "kallsyms"
    kall.write_text(f"{f2:x} t df_func2\t[eight_args_c]\n")

    class Args:
        kallsyms, ko = [str(kall)], []

    cs = infer([observe(str(dump), kernel=kernel_symbols_from_args(Args()))], ["dump"])
    (name, spec), = cs.functions.items()
    assert name == "eight_args_c:df_func2"  # module:qualname, the kernel module and symbol
    exprs = {c.expr for c in spec.contracts}
    assert "ret == arg0 + arg1" in exprs and "arg1 == 2 * arg0 + 1" in exprs
    model.write(cs, tmp_path / "k.toml")
    r = kcovdf(tmp_path, "contracts", "check", str(dump), "--contracts", "k.toml", "--kallsyms", str(kall))
    assert r.returncode == 0 and "0 violations" in r.stdout, r.stdout + r.stderr


def test_a_result_bound_is_novelty_and_the_relation_beside_it_decides(tmp_path):
    """A bound of a result other than a sign (``len(ret) <= 15``) says what training's inputs
    were like: inferred, it warns; ``len(ret) < len(line)`` beside it is what is checked."""
    import tracegen as tg

    def trace(name, pairs):
        b = tg.TraceBuilder()
        f = b.func("app", "strip", 3, ("line",))
        for cid, (line, ret) in enumerate(pairs, 1):
            b.call(f, line, cid=cid).ret(f, ret, cid=cid)
        path = tmp_path / name
        tg.write_kdf(path, b.buffer(len(b.words) + 8), b.table_lines((7, 8, "MainThread")), version=2, pid=7)
        return str(path)

    train = [("x" * (n % 16) + ("\n" if n % 3 else "  \n"), "x" * (n % 16)) for n in range(200)]
    cs = infer([observe(trace("train.kdf", train))], ["train"])
    enforce = {c.expr: c.enforce for c in cs.functions["app:strip"].contracts}
    assert enforce["len(ret) <= 15"] == "novelty" and enforce["len(ret) < len(line)"] == "conditional"
    assert enforce["len(ret) >= 0"] == "conditional"  # a sign is still a guarantee
    check_ = trace("check.kdf", [("x" * 16 + "\n", "x" * 16), ("x" * 5 + "\n", "x" * 16)])
    got = {(f.ordinal, f.invariant): f.severity for f in check(observe(check_), cs).findings}
    assert got == {(0, "len(ret) <= 15"): "novelty", (1, "len(ret) <= 15"): "novelty",
                   (1, "len(ret) < len(line)"): "violation"}
