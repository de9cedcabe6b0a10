"""``kcovdf fuzz HARNESS.py [CORPUS_DIR | INPUT ...] [-flag=value ...]``: the command.

What it does depends on the paths and flags, as with libFuzzer:
  - directories (or none): fuzz, reading and growing the first directory's corpus;
  - files: run each input once (``kcovdf fuzz h.py crash-<sha1>`` reproduces a crash);
  - ``-minimize_crash=1 FILE``: shrink a crash input, keeping its exception and location;
  - ``-merge=1 DIR...``: keep in the first directory only the inputs that add features;
  - ``-jobs=N``: N fuzzing processes sharing the first corpus directory, ``-workers`` at once.
libFuzzer's ``-flag=value`` spelling is parsed here (kcovdf.fuzz.options), not by argparse.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from typing import Any

from kcovdf.errors import ConfigError
from kcovdf.fuzz import crash, options
from kcovdf.fuzz.engine import Engine, read_inputs
from kcovdf.fuzz.harness import HarnessError, instrument, load
from kcovdf.instrument.config import read_pyproject


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``kcovdf fuzz``'s arguments: the harness, then paths and flags in libFuzzer's spelling."""
    parser.add_argument("harness", metavar="HARNESS.py",
                        help="a Python file defining TestOneInput(data: bytes)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="CORPUS_DIR|INPUT|-flag=value",
                        help="corpus directories or input files, and flags")
    parser.epilog = (parser.epilog or "") + "\n\n" + options.help_text()

    def parse_args(args: Any = None, namespace: Any = None) -> argparse.Namespace:
        argv = list(sys.argv[2:] if args is None else args)
        if argv and argv[0] in ("-h", "--help", "-help=1"):
            parser.print_help()
            parser.exit(0)
        # the harness is the first argument that is no flag; flags may come anywhere
        at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
        if at is None:
            parser.error("the harness is missing: kcovdf fuzz HARNESS.py [CORPUS_DIR...] [-flag=value...]")
        if at > 0 and argv[at - 1] in options.SELECTION:
            at = next((i for i, a in enumerate(argv) if i > at and not a.startswith("-")), None)
            if at is None:
                parser.error("the harness is missing")
        return argparse.Namespace(harness=argv[at], rest=argv[:at] + argv[at + 1:])

    parser.parse_args = parse_args  # type: ignore[method-assign]


def main(args: argparse.Namespace) -> int:
    """Run ``kcovdf fuzz``; its exit status."""
    try:
        opts = options.parse(args.rest)
    except ConfigError as exc:
        print(f"kcovdf fuzz: {exc}", file=sys.stderr)
        return 2
    if opts.jobs > 0:
        return run_jobs(args.harness, opts)
    if not opts.include and not opts.exclude:
        try:  # [tool.kcovdf] of ./pyproject.toml, as kcovdf run reads it
            table = read_pyproject("pyproject.toml")
        except ConfigError as exc:
            print(f"kcovdf fuzz: {exc}", file=sys.stderr)
            return 2
        opts.include = list(table.get("include", ()))
        opts.exclude = list(table.get("exclude", ()))
    if opts.include or opts.exclude:
        instrument(opts.include, opts.exclude)
    try:
        target = load(args.harness)
    except HarnessError as exc:
        print(f"kcovdf fuzz: {exc}", file=sys.stderr)
        return 2
    return run(target, opts)


def run(target: Any, opts: options.Options) -> int:
    """Fuzz ``target``, or run, minimize or merge the inputs ``opts`` names."""
    for path in opts.paths:
        if not os.path.exists(path):
            if opts.merge or opts.minimize_crash or path is not opts.paths[0]:
                print(f"kcovdf fuzz: {path}: no such file or directory", file=sys.stderr)
                return 2
            try:
                os.makedirs(path, exist_ok=True)  # libFuzzer too creates a missing corpus directory
            except OSError as exc:
                print(f"kcovdf fuzz: corpus directory {path}: cannot create it ({exc.strerror})",
                      file=sys.stderr)
                return 2
        elif os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK):
            print(f"kcovdf fuzz: corpus directory {path}: cannot read it (permission denied)",
                  file=sys.stderr)
            return 2
        elif not os.path.isdir(path) and not os.path.isfile(path):
            print(f"kcovdf fuzz: {path}: neither a corpus directory nor an input file", file=sys.stderr)
            return 2
    files = [p for p in opts.paths if os.path.isfile(p)]
    if opts.minimize_crash:
        if len(files) != 1:
            print("kcovdf fuzz: -minimize_crash=1 needs exactly one crash input file", file=sys.stderr)
            return 2
        return minimize(target, opts, files[0])
    if opts.merge:
        return merge(target, opts)
    if files:
        return run_inputs(target, opts, files)
    try:
        return Engine(target, opts).fuzz()
    except OSError as exc:
        print(f"kcovdf fuzz: {exc.strerror or exc}", file=sys.stderr)
        return 2


def run_inputs(target: Any, opts: options.Options, files: list[str]) -> int:
    """Run each input file once, as libFuzzer does with file arguments; stop at the first crash."""
    engine = Engine(target, opts)
    opts.dataflow = 0
    print(f"INFO: running {len(files)} input(s) once each", file=sys.stderr)
    for path in files:
        try:
            data = next(read_inputs(path))[1]
        except OSError as exc:
            print(f"kcovdf fuzz: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"Running: {path}", file=sys.stderr)
        started = time.monotonic()
        engine.start()
        try:
            exc = engine.execute(data)
        finally:
            engine.stop()
        if exc is not None:
            return engine.crashed(data, exc, save=False, source=path)
        print(f"Executed {path} in {int((time.monotonic() - started) * 1000)} ms", file=sys.stderr)
    print("***\n*** NOTE: fuzzing was not performed, you have only\n***       executed the target code "
          "on a fixed set of inputs.\n***", file=sys.stderr)
    return 0


def minimize(target: Any, opts: options.Options, path: str) -> int:
    """Shrink the crash input ``path`` while it raises the same exception at the same place."""
    with open(path, "rb") as f:
        data = f.read()
    opts.dataflow = 0
    engine = Engine(target, opts)
    engine.start()
    try:
        exc = engine.execute(data)
        if exc is None:
            print(f"kcovdf fuzz: -minimize_crash: {path} does not crash", file=sys.stderr)
            return 2
        want = crash.location(exc)
        print(f"CRASH_MIN: minimizing crash input: '{path}' ({len(data)} bytes): {want[0]} at "
              f"{want[1]}:{want[2]}", file=sys.stderr)
        budget = opts.runs if opts.runs > 0 else 10_000
        tries = 0
        chunk = max(1, len(data) // 2)
        while chunk >= 1 and tries < budget:
            shrunk = False
            at = 0
            while at < len(data) and tries < budget:
                candidate = data[:at] + data[at + chunk:]
                tries += 1
                again = engine.execute(candidate)
                if again is not None and crash.location(again) == want:
                    data = candidate
                    shrunk = True
                else:
                    at += chunk
            if not shrunk:
                chunk //= 2
        # then simpler bytes: each byte to '0' or NUL where it keeps the crash
        for i in range(len(data)):
            for simple in (0x30, 0):
                if tries >= budget or data[i] == simple:
                    continue
                candidate = data[:i] + bytes([simple]) + data[i + 1:]
                tries += 1
                again = engine.execute(candidate)
                if again is not None and crash.location(again) == want:
                    data = candidate
                    break
    finally:
        engine.stop()
    out = opts.exact_artifact_path or f"{opts.artifact_prefix}minimized-from-{os.path.basename(path)}"
    crash.save(out, data)
    print(f"CRASH_MIN: {len(data)} bytes after {tries} runs, still {want[0]} at {want[1]}:{want[2]}; "
          f"written to {out}", file=sys.stderr)
    return 0


def merge(target: Any, opts: options.Options) -> int:
    """Keep in the first directory the inputs of all directories that add features (smallest first)."""
    dirs = opts.paths
    if not dirs or not all(os.path.isdir(d) for d in dirs):
        print("kcovdf fuzz: -merge=1 needs corpus directories (the first one receives the result)",
              file=sys.stderr)
        return 2
    engine = Engine(target, opts)
    found = []
    try:
        for d in dirs:
            found += [(len(data), d, name, data) for name, data in read_inputs(d)]
    except OSError as exc:
        print(f"kcovdf fuzz: {exc.strerror or exc}", file=sys.stderr)
        return 2
    found.sort(key=lambda item: (item[0], item[2]))
    engine.start()
    kept: set[str] = set()
    try:
        for _, d, name, data in found:
            exc = engine.execute(data)
            if exc is not None:
                print(f"MERGE: {os.path.join(d, name)} crashes ({crash.cause(exc)}); left out",
                      file=sys.stderr)
                continue
            if engine.collect(data):
                digest = hashlib.sha1(data).hexdigest()
                kept.add(digest)
                out = os.path.join(dirs[0], digest)
                if not os.path.exists(out):
                    crash.save(out, data)
    finally:
        engine.stop()
    if len(dirs) == 1:  # minimize the one directory in place
        for _, d, name, _data in found:
            if name not in kept:
                os.unlink(os.path.join(d, name))
    cov, ft = engine.counts()
    print(f"MERGE-OUTER: {len(found)} inputs, {len(kept)} kept in {dirs[0]} (cov: {cov} ft: {ft})",
          file=sys.stderr)
    return 0


def run_jobs(harness: str, opts: options.Options) -> int:
    """``-jobs=N``: N fuzzing processes, ``-workers`` at a time, sharing the first corpus directory."""
    if not opts.paths or os.path.isfile(opts.paths[0]):
        print("kcovdf fuzz: -jobs needs a corpus directory for the jobs to share", file=sys.stderr)
        return 2
    os.makedirs(opts.paths[0], exist_ok=True)
    workers = opts.workers or max(1, min(opts.jobs, (os.cpu_count() or 2) // 2))
    flags = [f for f in opts.given if not f.startswith(("-jobs=", "-workers=", "-seed="))]
    base_seed = opts.seed or int(time.time()) & 0xFFFF
    pending = list(range(opts.jobs))
    running: dict[int, tuple[subprocess.Popen[bytes], str]] = {}
    status = 0
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                log = f"fuzz-{job}.log"
                cmd = [sys.executable, "-m", "kcovdf", "fuzz", harness, *opts.paths, *flags,
                       f"-seed={base_seed + job}"]
                with open(log, "wb") as f:
                    running[job] = (subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT), log)
                print(f"kcovdf fuzz: job {job} started (pid {running[job][0].pid}), log in {log}",
                      file=sys.stderr)
            time.sleep(0.2)
            for job, (proc, log) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[job]
                print(f"kcovdf fuzz: job {job} exited with status {code}", file=sys.stderr)
                if code != 0:
                    status = code
                    with open(log, encoding="utf-8", errors="replace") as f:
                        sys.stderr.write("".join(f.readlines()[-40:]))
                    pending.clear()
                    for other, _ in running.values():
                        other.terminate()
    finally:
        for proc, _ in running.values():
            proc.terminate()
            proc.wait()
    return status
