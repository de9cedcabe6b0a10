"""``kcovdf run --mode whole|ring|once``: segmented task buffers, the disk budget, the ring."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from test_run import run_kcovdf, run_python, split_summary, write

from kcovdf import tracefile
from kcovdf.read import decode

LOOP = """\
    import sys

    def f(i, label):
        return i

    n = int(sys.argv[1])
    for i in range(n):
        f(i, "call")
    print("done", n)
    """


def calls_then(n: int, end: str) -> str:
    """A program making n calls of f(i, "call"), then running ``end``."""
    return f"import os, signal\n\ndef f(i, label):\n    return i\n\nfor i in range({n}):\n" \
           f"    f(i, 'call')\n{end}\n"


KILL = "os.kill(os.getpid(), signal.SIGKILL)"


def entries_of_f(trace) -> list[int]:
    """The first argument of every recorded call of f, in trace order."""
    rows = trace.records.to_pylist()
    out = []
    for row in rows:
        sym = trace.symbols.get(row["pc"])
        if row["kind"] == "entry" and row["arg_idx"] == 0 and sym is not None and sym.qualname == "f":
            out.append(row["values"][2])
    return out


def test_whole_run_keeps_every_record_in_segments(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    r = run_kcovdf(tmp_path, "loop.py", "30000")
    plain = run_python(tmp_path, "loop.py", "30000")
    assert r.returncode == 0 and r.stdout == plain.stdout
    _, summary = split_summary(r.stderr)
    assert summary.group(2) == "0" and summary.group(3) == "1"
    assert summary.group("kept").endswith(", whole run")
    files = sorted(os.listdir(tmp_path / "kcovdf-trace"))
    segments = [tracefile.parse_task_name(f) for f in files if f != "run.json"]
    assert len(segments) > 2 and {s.task for s in segments} == {segments[0].task}
    assert sorted(s.segment for s in segments) == list(range(len(segments)))
    t = decode.load(str(tmp_path / "kcovdf-trace"))
    assert not t.notes and len(t.tasks) == 1 and t.tasks[0].segments == len(segments)
    # one stream: every call, in order, its sequence going on across the segments
    assert entries_of_f(t) == list(range(30000))
    seq = t.records.column("seq").to_numpy()
    assert ((seq[1:] - seq[:-1]) == 1).all()
    # sealed segments say so in their header; the last was cut to what it holds
    heads = [tracefile.read_header(tracefile.read_task_file(tmp_path / "kcovdf-trace" / s.name)[:4096],
                                   s.name) for s in sorted(segments)]
    assert all(h.flags & tracefile.FLAG_SEALED for h in heads[:-1]) and not heads[-1].flags
    assert [h.segment for h in heads] == list(range(len(heads)))


def test_a_short_task_costs_little_on_disk(tmp_path):
    write(tmp_path / "p.py", "def f(x):\n    return x\nf(1)\n")
    r = run_kcovdf(tmp_path, "p.py")
    assert r.returncode == 0, r.stderr
    (task,) = (tmp_path / "kcovdf-trace").glob("task-*")
    assert len(tracefile.read_task_file(task)) < 16 * 1024  # sized to what was written, not to -b


def test_the_budget_drops_from_there_and_says_so_once(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    r = run_kcovdf(tmp_path, "--max-size", "2M", "loop.py", "60000")
    assert r.returncode == 0 and r.stdout == "done 60000\n"
    rest, summary = split_summary(r.stderr)
    assert rest.count("reached its budget") == 1 and "--max-size" in rest
    assert int(summary.group(2)) > 0 and "--max-size" in summary.group("hint")
    t = decode.load(str(tmp_path / "kcovdf-trace"))
    kept = entries_of_f(t)
    assert kept == list(range(len(kept))) and 0 < len(kept) < 60000  # the first calls, whole
    assert len(t) + int(summary.group(2)) == int(summary.group(1)) + int(summary.group(2))


def test_the_ring_keeps_the_last_calls(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    r = run_kcovdf(tmp_path, "--mode", "ring", "--ring-size", "1M", "loop.py", "60000")
    assert r.returncode == 0 and r.stdout == "done 60000\n"
    _, summary = split_summary(r.stderr)
    assert summary.group(2) == "0" and "the last 1 MiB of each task" in summary.group("kept")
    t = decode.load(str(tmp_path / "kcovdf-trace"))
    kept = entries_of_f(t)
    assert kept[-1] == 59999 and kept == list(range(kept[0], 60000)) and kept[0] > 0
    assert any("recycled" in n for n in t.notes)
    assert sum(f.stat().st_size for f in (tmp_path / "kcovdf-trace").glob("task-*")) <= 1 << 20


def test_the_ring_survives_sigkill_with_the_last_calls(tmp_path):
    write(tmp_path / "spin.py", calls_then(40000, KILL))
    r = run_kcovdf(tmp_path, "--mode", "ring", "--ring-size", "1M", "spin.py")
    assert r.returncode == -signal.SIGKILL
    t = decode.load(str(tmp_path / "kcovdf-trace"))
    kept = entries_of_f(t)
    assert kept and kept[-1] == 39999 and kept == list(range(kept[0], 40000))


def test_a_missing_segment_is_named_and_the_rest_decodes(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    assert run_kcovdf(tmp_path, "loop.py", "30000").returncode == 0
    trace = tmp_path / "kcovdf-trace"
    (second,) = trace.glob("task-*.s1.kdf*")
    second.unlink()
    t = decode.load(str(trace))
    assert any(second.name.removesuffix(".gz") in n and "missing" in n for n in t.notes)
    kept = entries_of_f(t)
    assert kept[-1] == 29999 and 0 < len(kept) < 30000


def test_a_segment_cut_short_decodes_to_its_last_whole_record(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    assert run_kcovdf(tmp_path, "loop.py", "30000").returncode == 0
    trace = tmp_path / "kcovdf-trace"
    (second,) = trace.glob("task-*.s1.kdf.gz")
    raw = second.with_name(second.name[:-3])
    raw.write_bytes(tracefile.read_task_file(second)[:4096 + 8 * 1001 + 5])  # mid-record, mid-word:
    second.unlink()                                                        # as a kill mid-switch leaves it
    t = decode.load(str(trace))
    assert any(raw.name in n and "truncated" in n for n in t.notes)
    kept = entries_of_f(t)
    assert kept[-1] == 29999 and len(kept) < 30000


def test_modes_and_sizes_are_checked(tmp_path):
    write(tmp_path / "p.py", "pass\n")
    r = run_kcovdf(tmp_path, "--mode", "all", "p.py")
    assert r.returncode == 2 and "argument --mode: invalid choice: 'all'" in r.stderr
    r = run_kcovdf(tmp_path, "--max-size", "10", "p.py")
    assert r.returncode == 2 and "--max-size: 10 = 10 bytes is below the least, 1M" in r.stderr
    r = run_kcovdf(tmp_path, "--ring-size", "lots", "p.py")
    assert r.returncode == 2 and "'lots' is not a size in bytes" in r.stderr


def test_threads_each_have_their_own_segments(tmp_path):
    write(tmp_path / "threads.py", """\
        import threading

        def f(i, label):
            return i

        def work():
            for i in range(20000):
                f(i, "call")

        ts = [threading.Thread(target=work) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        """)
    r = run_kcovdf(tmp_path, "threads.py")
    assert r.returncode == 0, r.stderr
    t = decode.load(str(tmp_path / "kcovdf-trace"))
    by_task = {}
    for row in t.records.to_pylist():
        sym = t.symbols.get(row["pc"])
        if row["kind"] == "entry" and row["arg_idx"] == 0 and sym is not None and sym.qualname == "f":
            by_task.setdefault(row["task"], []).append(row["values"][2])
    assert sorted(map(len, by_task.values())) == [20000, 20000]
    assert all(v == list(range(20000)) for v in by_task.values())
    assert sum(task.segments > 1 for task in t.tasks) == 2


def test_sql_counts_every_call_of_a_whole_run(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    assert run_kcovdf(tmp_path, "loop.py", "30000").returncode == 0
    out = subprocess.run([sys.executable, "-m", "kcovdf", "sql",
                          "SELECT count(*) FROM calls WHERE function = '__main__.f'"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "30000" in out.stdout.replace(",", "")


def test_the_mode_and_sizes_come_from_pyproject_too(tmp_path):
    write(tmp_path / "loop.py", LOOP)
    (tmp_path / "pyproject.toml").write_text('[tool.kcovdf]\nmode = "ring"\nring_size = "2M"\n')
    r = run_kcovdf(tmp_path, "loop.py", "1000")
    assert r.returncode == 0, r.stderr
    assert "the last 2 MiB of each task" in split_summary(r.stderr)[1].group("kept")
    # the flag wins over the file
    r = run_kcovdf(tmp_path, "--mode", "once", "loop.py", "1000")
    assert split_summary(r.stderr)[1].group("kept").endswith("one buffer per task")
    (tmp_path / "pyproject.toml").write_text('[tool.kcovdf]\nmode = "all"\n')
    r = run_kcovdf(tmp_path, "loop.py", "1000")
    assert r.returncode == 1
    assert "option 'mode' in [tool.kcovdf] of pyproject.toml must be one of whole, ring, once" in r.stderr


GENERATOR_LOOP = """\
    def f(i, label):
        return i

    def gen(n, step):
        for k in range(n):
            yield k * step

    g = gen(10**6, 2)
    for i in range(12000):
        f(i, "call")
        next(g)
    """


def test_view_streams_the_segments_as_the_one_tree_of_the_whole_trace(tmp_path, monkeypatch, capsys):
    from kcovdf import cli
    from kcovdf.tools import view

    write(tmp_path / "loop.py", GENERATOR_LOOP)
    assert run_kcovdf(tmp_path, "loop.py").returncode == 0
    trace = str(tmp_path / "kcovdf-trace")
    assert len(os.listdir(trace)) > 3  # several segments: calls straddle their boundaries

    def shown(*opts: str, whole: bool) -> list[str]:
        with monkeypatch.context() as m:
            if whole:  # the trace decoded first, as one batch
                m.setattr(view.os.path, "isdir", lambda p: False)
            assert cli.main(["view", *opts, trace]) == 0
        return capsys.readouterr().out.splitlines()

    for opts, at_least in (((), 48000), (("--function", "f", "--value", "i=7001", "-C", "2"), 7),
                           (("--raw",), 59999), (("--json",), 59999)):
        streamed, whole = shown(*opts, whole=False), shown(*opts, whole=True)
        assert streamed == whole and len(streamed) > at_least
    lines = shown(whole=False)
    assert lines[1] == "# 60000 records" and lines[0] == f"# Captured {decode.load(trace).words} words"
    # the generator, resumed in every segment, is named with its arguments each time
    resumes = {ln for ln in lines if "↻" in ln}
    assert resumes == {"↻ __main__.gen(n=1000000, step=2)"}
    assert shown("--function", "f", "--value", "i=7001", "-C", "1", whole=False)[3:] == [
        "__main__.gen() suspended", "__main__.f(i=7001, label='call')", "7001 = __main__.f()"]


def test_sql_streams_a_whole_run_through_a_private_database_it_removes(tmp_path, monkeypatch):
    from kcovdf.tools import sql

    # finished calls go into the database batch by batch, as they would at 2**18 calls each
    monkeypatch.setattr(sql.Database, "CALLS_PER_INSERT", 1)

    write(tmp_path / "loop.py", GENERATOR_LOOP)
    assert run_kcovdf(tmp_path, "loop.py").returncode == 0
    trace = str(tmp_path / "kcovdf-trace")
    whole = decode.load(trace)
    for q in ("SELECT count(*) FROM records", "SELECT count(*) FROM tasks",
              "SELECT function, count(*) AS n, sum(resumes) FROM calls GROUP BY 1 ORDER BY 1",
              "SELECT seq, call, depth, rendered, value FROM records ORDER BY task, seq LIMIT 50",
              "SELECT * FROM records WHERE kind = 'resume' ORDER BY seq LIMIT 5",
              "SELECT args, result, parent FROM calls WHERE function = '__main__.f' AND call > 11000 "
              "ORDER BY call",
              "SELECT function, count(*), avg(nargs), max(depth) FROM calls GROUP BY 1 ORDER BY 1"):
        with sql.Database(decode.batches(trace), q) as db:
            assert os.stat(db._dir).st_mode & 0o777 == 0o700
            got = db.query(q)
            where = db._dir
        assert got.to_pylist() == sql.query(whole, q).to_pylist() and got.num_rows > 0, q
        assert not os.path.exists(where)
    # DuckDB's plan says what a statement reads: a count of records no column, no pairing
    # and no names; a statement naming them reads them
    assert sql._reads("SELECT count(*) FROM records") == (frozenset(), True, False)
    assert sql._reads("SELECT depth FROM records") == ({"depth"}, True, False)
    assert sql._reads("SELECT function, count(*) FROM records WHERE seq > 3 GROUP BY 1") == \
        ({"function", "seq"}, True, False)
    assert sql._reads("SELECT rendered FROM records")[0] == {"task", "kind", "arg_idx", "values"}
    assert sql._reads("SELECT * FROM records") == (set(sql._RAW.names), True, False)
    assert sql._reads("SELECT r FROM records r") == (set(sql._RAW.names), True, False)
    assert sql._reads("SELECT count(*) FROM calls")[1:] == (True, True)
    assert sql._reads("SELECT count(*) FROM tasks") == (frozenset(), False, False)
    assert sql._reads("SELECT nonsense") == sql._EVERYTHING
    # a statement over calls that reads no argument or result gets a calls view without them
    group = "SELECT function, count(*), avg(nargs) FROM calls GROUP BY 1"
    assert sql._calls_only(group, sql._reads(group))
    for q in ("SELECT args FROM calls", "SELECT result_class, count(*) FROM calls GROUP BY 1",
              "SELECT count(*) FROM calls c JOIN records r ON r.call = c.call"):
        assert not sql._calls_only(q, sql._reads(q)), q


def test_exports_of_a_streamed_trace_equal_those_of_the_whole_trace(tmp_path):
    import pyarrow.parquet as pq

    from kcovdf import cli
    from kcovdf.tools.export.base import REGISTRY

    write(tmp_path / "loop.py", GENERATOR_LOOP)
    assert run_kcovdf(tmp_path, "loop.py").returncode == 0
    trace = str(tmp_path / "kcovdf-trace")
    assert len(os.listdir(trace)) > 3
    whole = decode.load(trace)
    for fmt in ("jsonl", "daikon", "parquet"):
        streamed, one = tmp_path / f"s-{fmt}", tmp_path / f"w-{fmt}"
        assert cli.main(["export", trace, "-f", fmt, "-o", str(streamed)]) == 0  # segment by segment
        written = REGISTRY[fmt]().write(whole, one)  # the trace decoded first, as one batch
        for path in written:
            other = streamed / path.name if fmt == "parquet" else \
                path.with_name(path.name.replace("w-", "s-"))
            if path.suffix == ".parquet":
                assert pq.read_table(other).equals(pq.read_table(path)), path.name
            else:
                assert other.read_bytes() == path.read_bytes() and path.stat().st_size > 1000, path.name
