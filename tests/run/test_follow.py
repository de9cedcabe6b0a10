"""``kcovdf run`` follows raw ``_thread`` threads, and says which Python children it cannot follow.

Each test runs a real program twice, under plain python and under ``kcovdf run``, and
checks that the program computes the same output both times and that the trace holds
what ran where (docs/run.md, Tasks).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import textwrap
from pathlib import Path

import pytest
from test_run import run_kcovdf, run_python, split_summary, write

from kcovdf.read import decode
from kcovdf.run import bootstrap

WARNING = re.compile(r"^kcovdf: warning: not recording the Python child `(.*)`: (.*)$", re.M)


def entries_by_task(trace: Path) -> dict[tuple[int, int, str], list[int]]:
    """(pid, tid, task name) -> the argument of each call of helper.twice, in order."""
    t = decode.load(str(trace))
    out: dict[tuple[int, int, str], list[int]] = {(k.pid, k.tid, k.name): [] for k in t.tasks}
    for row in t.records.to_pylist():
        sym = t.symbols.get(row["pc"])
        if row["kind"] == "entry" and sym is not None and sym.qualname == "twice":
            k = t.tasks[row["task"]]
            out[(k.pid, k.tid, k.name)].append(row["values"][-1])
    return out


def _no_addresses(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x?", text)


# --- threads started through _thread ---------------------------------------------------------
RAW_THREADS = """
    import _thread, sys, threading, time
    import helper

    done = []
    lock = threading.Lock()

    def worker(n, *, tag):
        ident = _thread.get_ident()
        helper.twice(n)
        with lock:
            done.append((tag, ident, threading.active_count()))

    idents = [_thread.start_new_thread(worker, (n,), {"tag": f"w{n}"}) for n in (10, 20)]
    idents.append(_thread.start_new(worker, (30,), {"tag": "w30"}))
    if hasattr(_thread, "start_joinable_thread"):
        handle = _thread.start_joinable_thread(lambda: worker(40, tag="w40"))
        handle.join()
        idents.append(handle.ident)
    else:
        idents.append(_thread.start_new_thread(worker, (40,), {"tag": "w40"}))
    while len(done) < 4:
        time.sleep(0.01)
    time.sleep(0.05)  # let the raw threads finish after their last append
    by_tag = {tag: ident for tag, ident, _ in sorted(done)}
    print(sorted(by_tag.values()) == sorted(idents), [n for _, _, n in sorted(done)])
    print([t.name for t in threading.enumerate()])
    print(helper.twice(1))
"""


def test_raw_threads_each_record_into_their_own_task(tmp_path):
    write(tmp_path / "helper.py", "def twice(x):\n    return 2 * x\n")
    write(tmp_path / "prog.py", RAW_THREADS)
    plain = run_python(tmp_path, "prog.py")
    traced = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert plain.returncode == traced.returncode == 0, traced.stderr
    # start_new_thread returned each thread's own get_ident(); threading saw no extra thread
    assert traced.stdout == plain.stdout
    assert traced.stdout.splitlines()[0].startswith("True")
    assert split_summary(traced.stderr)[0] == plain.stderr == ""
    by_task = entries_by_task(tmp_path / "kcovdf-trace")
    main = [key for key in by_task if key[2] == "MainThread"]
    assert len(main) == 1 and by_task[main[0]] == [1]
    raw = {key: values for key, values in by_task.items() if key[2] != "MainThread"}
    assert sorted(raw.values()) == [[10], [20], [30], [40]]      # one task per raw thread
    assert len({tid for _, tid, _ in raw}) == 4
    assert {pid for pid, _, _ in by_task} == {main[0][0]}
    joinable = "<lambda> (_thread)" if sys.version_info >= (3, 13) else "worker (_thread)"
    assert sorted(name for _, _, name in raw) == sorted(["worker (_thread)"] * 3 + [joinable])


RAW_RAISES = """
    import _thread, sys, time, traceback
    import helper

    def fails(n):
        helper.twice(n)
        raise ValueError(f"bad {n}")

    def exits():
        helper.twice(7)
        sys.exit(3)

    def hook(args):
        frames = [f.name for f in traceback.extract_tb(args.exc_traceback)]
        print("hook:", args.exc_type.__name__, args.exc_value, args.object is fails,
              args.err_msg.replace(repr(fails), "<fails>"), frames,
              args.exc_value.__traceback__ is args.exc_traceback, sys.exc_info()[0], flush=True)

    sys.unraisablehook = hook
    _thread.start_new_thread(fails, (1,))
    time.sleep(0.3)
    _thread.start_new_thread(exits, ())
    time.sleep(0.3)
    sys.unraisablehook = sys.__unraisablehook__
    _thread.start_new_thread(fails, (2,))
    time.sleep(0.3)

    def broken_hook(args):
        raise RuntimeError("the hook broke")

    sys.unraisablehook = broken_hook
    _thread.start_new_thread(fails, (3,))
    time.sleep(0.3)
    sys.unraisablehook = sys.__unraisablehook__
    for bad in [(1, ()), (fails, [1]), (fails, (), None), (fails,), (fails, (), {}, 1)]:
        try:
            _thread.start_new_thread(*bad)
        except TypeError as exc:
            print("TypeError:", exc)
    try:
        _thread.start_new_thread(function=fails, args=())
    except TypeError as exc:
        print("TypeError:", exc)
"""


def test_a_raising_raw_thread_is_reported_as_without_kcovdf(tmp_path):
    write(tmp_path / "helper.py", "def twice(x):\n    return 2 * x\n")
    write(tmp_path / "prog.py", RAW_RAISES)
    plain = run_python(tmp_path, "prog.py")
    traced = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert plain.returncode == traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout
    assert "hook: ValueError bad 1" in traced.stdout and traced.stdout.count("TypeError:") == 6
    # the default hook prints the same report: the thread's function, no kcovdf frame
    rest, _ = split_summary(traced.stderr)
    assert _no_addresses(rest) == _no_addresses(plain.stderr)
    assert "ValueError: bad 2" in rest and "the hook broke" in rest and "tasks.py" not in rest
    by_task = entries_by_task(tmp_path / "kcovdf-trace")
    raw = sorted(values for (_, _, name), values in by_task.items() if name != "MainThread")
    assert raw == [[1], [2], [3], [7]]      # recorded up to the raise; SystemExit ended one quietly


def test_threading_threads_are_followed_once_even_through_patched_thread_functions(tmp_path):
    # A program (or gevent-like library) routing threading through _thread's module
    # functions must still get one task per thread, named by threading.
    write(tmp_path / "helper.py", "def twice(x):\n    return 2 * x\n")
    write(tmp_path / "prog.py", """
        import _thread, threading
        import helper
        if hasattr(threading, "_start_joinable_thread"):
            threading._start_joinable_thread = lambda *a, **k: _thread.start_joinable_thread(*a, **k)
        else:
            threading._start_new_thread = lambda *a: _thread.start_new_thread(*a)
        ts = [threading.Thread(target=helper.twice, args=(n,), name=f"t{n}") for n in (5, 6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    """)
    r = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert r.returncode == 0, r.stderr
    assert split_summary(r.stderr)[1].group(3) == "3"
    by_task = entries_by_task(tmp_path / "kcovdf-trace")
    assert {name: values for (_, _, name), values in by_task.items()} == {
        "MainThread": [], "t5": [5], "t6": [6]}


def test_no_threads_leaves_raw_threads_alone(tmp_path):
    write(tmp_path / "prog.py", """
        import _thread, time
        print(type(_thread.start_new_thread).__name__)
        _thread.start_new_thread(print, ("in thread",))
        time.sleep(0.2)
    """)
    plain = run_python(tmp_path, "prog.py")
    r = run_kcovdf(tmp_path, "--no-threads", "prog.py")
    assert r.stdout == plain.stdout == "builtin_function_or_method\nin thread\n"
    assert split_summary(r.stderr)[1].group(3) == "1"


# --- Python children that cannot be followed ------------------------------------------------
CHILD = """
    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's directory out
    import helper
    print("child", sys.flags.isolated, sys.flags.ignore_environment, sys.flags.no_site,
          helper.twice(int(sys.argv[1])))
"""


def _children_program(tmp_path: Path, spawns: str) -> None:
    write(tmp_path / "helper.py", "def twice(x):\n    return 2 * x\n")
    write(tmp_path / "child.py", CHILD)
    write(tmp_path / "prog.py", "import os, subprocess, sys\nimport helper\nPY = sys.executable\n"
          + textwrap.dedent(spawns) + "print('parent', helper.twice(1))\n")


def test_python_children_with_I_E_S_run_unchanged_and_are_warned_once(tmp_path):
    # -I and -E ignore PYTHONPATH, -S skips site: no sitecustomize, so these children
    # cannot record. They must compute what they would, and the user is told, once.
    _children_program(tmp_path, """
        def run(*argv):
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            print(out.strip(), flush=True)
        run(PY, "child.py", "2")          # followed
        run(PY, "-I", "child.py", "3")
        run(PY, "-E", "child.py", "4")
        run(PY, "-S", "child.py", "5")
        run(PY, "-bEs", "child.py", "6")
        run(PY, "-W", "ignore", "-X", "dev", "-S", "child.py", "7")
    """)
    plain = run_python(tmp_path, "prog.py")
    traced = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert plain.returncode == traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout
    assert "child 1 1 0 6" in traced.stdout and "child 0 0 1 10" in traced.stdout
    rest, _ = split_summary(traced.stderr)
    warnings = WARNING.findall(rest)
    assert len(warnings) == 1, rest                     # once, for the first such child
    assert warnings[0][0] == shlex.join([sys.executable, "-I", "child.py", "3"])
    assert "-I" in warnings[0][1] and "docs/run.md" in warnings[0][1]
    assert rest.replace(WARNING.search(rest).group(0) + "\n", "") == plain.stderr
    # the plain child recorded, the flagged ones did not
    by_task = entries_by_task(tmp_path / "kcovdf-trace")
    assert sorted(values for values in by_task.values() if values) == [[1], [2]]


@pytest.mark.parametrize("spawn, shown", [
    ("os.system(f'{PY} -S child.py 3 > out.txt')", "{py} -S child.py 3 > out.txt"),
    ("subprocess.run(f'cd . && {PY} -E child.py 3 > out.txt', shell=True)",
     "cd . && {py} -E child.py 3 > out.txt"),
    ("os.waitpid(os.posix_spawn(PY, [PY, '-I', 'child.py', '3'], os.environ,"
     " file_actions=[(os.POSIX_SPAWN_OPEN, 1, 'out.txt', os.O_WRONLY | os.O_CREAT, 0o644)]), 0)",
     "{py} -I child.py 3"),
    ("pid = os.fork()\n"
     "if pid == 0:\n"
     "    fd = os.open('out.txt', os.O_WRONLY | os.O_CREAT); os.dup2(fd, 1)\n"
     "    os.execv(PY, [PY, '-Is', 'child.py', '3'])\n"
     "os.waitpid(pid, 0)", "{py} -Is child.py 3"),
    ("os.chmod('tool.py', 0o755); subprocess.run(['./tool.py', '3'], stdout=open('out.txt', 'w'))",
     "./tool.py 3"),
])
def test_every_way_of_starting_an_unfollowed_child_is_warned(tmp_path, spawn, shown):
    _children_program(tmp_path, spawn + "\n")
    (tmp_path / "tool.py").write_text(f"#!{sys.executable} -E\n" + textwrap.dedent(CHILD))
    plain = run_python(tmp_path, "prog.py")
    plain_out = (tmp_path / "out.txt").read_text()
    os.unlink(tmp_path / "out.txt")
    traced = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert plain.returncode == traced.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout == "parent 2\n"
    assert (tmp_path / "out.txt").read_text() == plain_out
    assert "child" in plain_out and plain_out.split()[-1] == "6"
    warnings = WARNING.findall(split_summary(traced.stderr)[0])
    assert [w[0] for w in warnings] == [shown.format(py=sys.executable)]


def test_a_child_environment_without_kcovdf_variables_is_warned(tmp_path):
    _children_program(tmp_path, """
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([PY, "child.py", "3"], env=env, check=True)
        subprocess.run([PY, "child.py", "4"], env=dict(os.environ, PYTHONPATH="."), check=True)
        subprocess.run([PY, "child.py", "5"], check=True)    # followed
        subprocess.run(["true"], env={}, check=True)         # not Python: nothing to say
    """)
    plain = run_python(tmp_path, "prog.py")
    traced = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert traced.returncode == 0 and traced.stdout == plain.stdout
    warnings = WARNING.findall(split_summary(traced.stderr)[0])
    assert [w[0] for w in warnings] == [shlex.join([sys.executable, "child.py", "3"])]
    assert bootstrap.TRACE_ENV in warnings[0][1] or "PYTHONPATH" in warnings[0][1]
    by_task = entries_by_task(tmp_path / "kcovdf-trace")
    assert sorted(values for values in by_task.values() if values) == [[1], [5]]


@pytest.mark.parametrize("own_sitecustomize", [False, True])
def test_a_child_with_more_on_pythonpath(tmp_path, own_sitecustomize):
    # An entry before kcovdf's directory only hides it when it holds a sitecustomize.py.
    (tmp_path / "lib").mkdir()
    if own_sitecustomize:
        (tmp_path / "lib" / "sitecustomize.py").write_text("")
    _children_program(tmp_path, """
        env = dict(os.environ, PYTHONPATH="lib" + os.pathsep + os.environ.get("PYTHONPATH", ""))
        subprocess.run([PY, "child.py", "3"], env=env, check=True)
    """)
    plain = run_python(tmp_path, "prog.py")
    traced = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert traced.returncode == 0 and traced.stdout == plain.stdout
    warnings = WARNING.findall(split_summary(traced.stderr)[0])
    by_task = entries_by_task(tmp_path / "kcovdf-trace")
    if own_sitecustomize:
        assert [w[0] for w in warnings] == [shlex.join([sys.executable, "child.py", "3"])]
        assert "its sitecustomize.py hides kcovdf's" in warnings[0][1]
        assert sorted(values for values in by_task.values() if values) == [[1]]
    else:
        assert warnings == []
        assert sorted(values for values in by_task.values() if values) == [[1], [3]]


def test_a_followed_child_warns_about_its_own_unfollowed_children(tmp_path):
    _children_program(tmp_path, """
        subprocess.run([PY, "middle.py"], check=True)
    """)
    write(tmp_path / "middle.py", """
        import subprocess, sys
        import helper
        helper.twice(8)
        subprocess.run([sys.executable, "-I", "child.py", "9"], check=True)
    """)
    plain = run_python(tmp_path, "prog.py")
    traced = run_kcovdf(tmp_path, "--include", "helper", "prog.py")
    assert traced.returncode == 0 and traced.stdout == plain.stdout
    warnings = WARNING.findall(split_summary(traced.stderr)[0])
    assert [w[0] for w in warnings] == [shlex.join([sys.executable, "-I", "child.py", "9"])]
    by_task = entries_by_task(tmp_path / "kcovdf-trace")
    assert sorted(values for values in by_task.values() if values) == [[1], [8]]


def test_no_subprocess_option_does_not_warn(tmp_path):
    _children_program(tmp_path, "subprocess.run([PY, '-I', 'child.py', '3'], check=True)\n")
    traced = run_kcovdf(tmp_path, "--no-subprocess", "--include", "helper", "prog.py")
    assert traced.returncode == 0
    assert WARNING.findall(split_summary(traced.stderr)[0]) == []


# --- how a child's command line is read -------------------------------------------------------
@pytest.mark.parametrize("argv, flags", [
    (["python3", "x.py"], ""),
    (["python3", "-I", "x.py"], "I"),
    (["/usr/bin/python3.11", "-bEs", "-c", "pass"], "E"),
    (["python", "-W", "-S", "x.py"], ""),           # -W takes -S as its argument
    (["python", "-WS", "-I", "x.py"], "I"),
    (["python", "-X", "dev", "-S", "-m", "mod", "-I"], "S"),   # -I after -m belongs to mod
    (["python", "-c", "-I"], ""),
    (["python", "-cI"], ""),
    (["python", "--check-hash-based-pycs", "always", "-E", "x"], "E"),
    (["python", "-", "-I"], ""),
    (["python", "--", "-I"], ""),
    (["env", "A=1", "python3.13", "-S"], "S"),
    (["nice", "python3", "-I"], "I"),
    (["/bin/echo", "-I"], None),
    (["ls"], None),
])
def test_python_flags_of_a_command_line(argv, flags):
    found = bootstrap.python_flags(argv)
    assert found == (None if flags is None else set(flags))


def test_child_watch_states_and_restores_what_it_wrapped(capfd):
    import subprocess

    wrapped = [(subprocess.Popen, "_execute_child"), (os, "execv"), (os, "execve"), (os, "posix_spawn"),
               (os, "posix_spawnp"), (os, "system")]
    originals = [getattr(owner, name) for owner, name in wrapped]
    watch = bootstrap.ChildWatch()
    assert watch.state is bootstrap.WatchState.IDLE
    watch.start()
    try:
        assert watch.state is bootstrap.WatchState.WATCHING
        assert all(getattr(o, n) is not orig for (o, n), orig in zip(wrapped, originals, strict=True))
        assert os.system.__name__ == "system"
        with pytest.raises(RuntimeError,
                           match=r"^ChildWatch\.start\(\): already started \(state WATCHING\)$"):
            watch.start()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)   # same reason: said once
    finally:
        watch.stop()
    assert watch.state is bootstrap.WatchState.STOPPED
    assert [getattr(o, n) for o, n in wrapped] == originals
    # this test process carries no KCOVDF_TRACE: a watching hook would name the environment
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    warnings = WARNING.findall(capfd.readouterr().err)
    assert [w[0] for w in warnings] == [shlex.join([sys.executable, "-I", "-c", "pass"])]


WRAPPED_CALLS_FAIL = """
    import _thread, os, subprocess, sys, threading
    def fail(how):
        if how == "popen":
            subprocess.run(["kcovdf-no-such-program"])
        elif how == "execv":
            os.execv("/kcovdf/no/such/program", ["x"])
        elif how == "start_new_thread":
            _thread.start_new_thread(1, ())
        elif how == "thread":
            t = threading.Thread(target=print)
            t.start(); t.join()
            try:
                t.start()
            finally:
                print(sorted(vars(t)))
    fail(sys.argv[1])
"""


@pytest.mark.parametrize("how", ["popen", "execv", "start_new_thread", "thread"])
def test_errors_of_wrapped_calls_read_as_without_kcovdf(tmp_path, how):
    write(tmp_path / "prog.py", WRAPPED_CALLS_FAIL)
    plain = run_python(tmp_path, "prog.py", how)
    traced = run_kcovdf(tmp_path, "--exclude", "__main__", "prog.py", how)
    assert plain.returncode == traced.returncode == 1
    assert traced.stdout == plain.stdout             # a thread that failed to start keeps no attribute
    rest, _ = split_summary(traced.stderr)
    if sys.version_info >= (3, 11):
        assert rest == plain.stderr
    else:  # 3.10 keeps one frame of the wrapper in the traceback
        lines = rest.splitlines(keepends=True)
        i = next(i for i, line in enumerate(lines) if "kcovdf" in line and "tasks.py" in line)
        assert "".join(lines[:i] + lines[i + 2:]) == plain.stderr


def test_recording_states(tmp_path):
    code = textwrap.dedent(f"""
        import os
        from kcovdf.instrument import config
        from kcovdf.run import bootstrap
        rec = bootstrap.start(config.Config(), bootstrap.Plan({str(tmp_path)!r}))
        exported = bootstrap.SITE_DIR in os.environ["PYTHONPATH"]
        print(rec.state.name, rec.tasks.state.name, rec.watch.state.name, exported)
        rec.stop()
        print(rec.state.name, rec.tasks.state.name, rec.watch.state.name, type(os.system).__name__)
        rec.stop()
        print(rec.state.name)
    """)
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["RECORDING FOLLOWING WATCHING True",
                                "STOPPED STOPPED STOPPED builtin_function_or_method", "STOPPED"]
