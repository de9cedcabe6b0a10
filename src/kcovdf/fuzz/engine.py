"""The fuzzing loop: run an input, read its feedback, keep it if it is new, mutate, repeat.

One Engine per process. Its state machine::

    start() -> [load corpus] -> INITED -> loop: next input -> execute -> collect -> ...
                                           \\-> a crash, timeout or oom: report, save, stop
                                           \\-> -runs / -max_total_time reached: DONE

Feedback of one execution (kcovdf.fuzz.feedback): new branch counters, new per-site
value-profile distances, new (pc, arg_idx, bucket) and (pc, return bucket) tuples of
the records. An input with a new feature joins the corpus, and its input-to-state
candidates (compared operands; return values spliced where a later call's argument came
from the input) run next, before any random mutation.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from kcovdf.fuzz import crash, feedback, mutate, provider

try:  # the hot path in C; KCOVDF_FUZZ_CORE=py takes the Python path (kcovdf/fuzz/*.py) instead
    from kcovdf._core import _fuzz
except ImportError:  # pragma: no cover - a build without the extension
    _fuzz = None  # type: ignore[assignment]
if os.environ.get("KCOVDF_FUZZ_CORE") == "py":
    _fuzz = None  # type: ignore[assignment]
from kcovdf.fuzz.options import Options
from kcovdf.instrument import coverage

#: Words of the recorder's buffer during fuzzing: records of one execution past it are dropped.
RECORD_WORDS = 1 << 16
#: Records of one execution read for features.
MAX_RECORDS = 4096
#: Input-to-state candidates queued per new corpus input.
MAX_CANDIDATES = 256
#: Candidates waiting beyond which a new input queues none.
MAX_QUEUE = 4096
#: Words the automatic dictionary keeps.
MAX_WORDS = 4096
#: Inputs the C loop runs before it comes back for the clock, the status and the workers' inputs.
CHUNK = 512
#: How often (in seconds) a worker looks for inputs other workers wrote to the corpus directory.
SYNC_SECONDS = 1.0


@dataclass
class Entry:
    """One corpus input."""

    data: bytes
    features: int = 0


@dataclass
class Stats:
    """Counters for the status lines and the end-of-run summary."""

    runs: int = 0
    started: float = field(default_factory=time.monotonic)
    series: list[tuple[float, int, int, int, int]] = field(default_factory=list)  # t, runs, cov, ft, corp

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    def exec_per_s(self) -> int:
        """Executions per second so far."""
        return int(self.runs / max(self.elapsed(), 1e-6))


class Stop(Exception):
    """The loop ends: ``status`` is the process's exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _rss_mb() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    except (OSError, ValueError, IndexError):
        return 0


class Engine:
    """Fuzzes one ``TestOneInput`` with ``opts``; messages go to ``out`` (stderr, as libFuzzer)."""

    def __init__(self, target: Callable[[bytes], object], opts: Options, out: TextIO | None = None) -> None:
        self.target = target
        self.opts = opts
        self.out = out or sys.stderr
        seed = opts.seed or (int(time.time() * 1000) ^ os.getpid()) & 0xFFFFFFFF
        self.seed = seed
        self.rng = random.Random(seed)
        self.corpus: list[Entry] = []
        self.corpus_data: list[bytes] = []  # the same inputs, for the C loop
        self.fb = _fuzz.Feedback(seed) if _fuzz is not None else None
        self.known: set[str] = set()        # sha1 of every input in the corpus
        self.features: set[int] = set()     # value profile and data-flow features
        self.covered = 0                    # branch counters seen, as bits of one int
        self.queue: list[bytes] = []  # input-to-state candidates, run before any mutation, last first
        self.words: list[bytes] = []
        self._word_set: set[bytes] = set()
        self.stats = Stats()
        self.mutations = ""
        self._device: Any = None
        self._buf: Any = None
        self._exec_started = 0.0
        self._current = b""
        self._alarm: str | None = None
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()
        self._real_exit = os._exit
        self._next_pulse = 1
        self._chunk_size = 16
        self._last_sync = 0.0
        self.log_inputs: list[bytes] | None = None  # tests: every input executed, in order
        self.outcome = "no crash"

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Turn the feedback on: recorder buffer, watchdog, os._exit as a crash, the dictionary."""
        print(f"INFO: Seed: {self.seed}", file=self.out)
        for word in sorted(coverage.registry.constants, key=repr):
            for w in mutate.dictionary_words(word):
                self._add_word(w)
        if self.opts.dict:
            try:
                with open(self.opts.dict, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except OSError as exc:
                raise Stop(self._fail(f"-dict={self.opts.dict}: cannot read it ({exc.strerror})")) from None
            try:
                for w in mutate.parse_dict(text, self.opts.dict):
                    self._add_word(w)
            except ValueError as exc:
                raise Stop(self._fail(f"-dict: {exc}")) from None
        if self.opts.dataflow:
            from kcovdf.runtime.device import Device

            self._device = Device(task_line=False)
            self._device.init_trace(RECORD_WORDS)
            self._buf = self._device.mmap()
            self._device.enable()
        os._exit = self._os_exit  # type: ignore[assignment]
        provider.provenance = []
        feedback.tracer.notes = []
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, self._on_alarm)
            self._watchdog = threading.Thread(target=self._watch, name="kcovdf-fuzz-watchdog", daemon=True)
            self._watchdog.start()

    def stop(self) -> None:
        """Undo start()."""
        self._stopping.set()
        os._exit = self._real_exit  # type: ignore[assignment]
        provider.provenance = None
        if self._device is not None:
            with contextlib.suppress(OSError):
                self._device.disable()
            self._buf.release()
            self._device.close()
            self._device = self._buf = None
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

    def _fail(self, message: str) -> int:
        print(f"kcovdf fuzz: {message}", file=self.out)
        return 2

    def _os_exit(self, status: int) -> None:
        raise crash.HarnessExit(status)

    # --- the watchdog: timeouts and memory ---------------------------------------------------
    def _watch(self) -> None:
        main = threading.main_thread().ident
        seen, since = -1, 0.0
        while not self._stopping.wait(0.25):
            started = self._exec_started
            if _fuzz is not None and self.fb is not None:
                count, busy, data = _fuzz.progress()
                if not busy:
                    seen = -1
                elif count != seen:
                    seen, since = count, time.monotonic()
                    started = started or 0.0
                else:
                    started = started or since
                    self._current = data if data is not None else self._current
            if started and self.opts.timeout > 0 and time.monotonic() - started > self.opts.timeout:
                self._alarm = f"an input ran for more than {self.opts.timeout:g} s (-timeout)"
            elif self.opts.rss_limit_mb > 0 and _rss_mb() > self.opts.rss_limit_mb:
                self._alarm = f"rss {_rss_mb()} MiB over -rss_limit_mb={self.opts.rss_limit_mb}"
            else:
                continue
            assert main is not None
            signal.pthread_kill(main, signal.SIGALRM)
            # stuck in code that never returns to the interpreter: save the input from here
            if not self._stopping.wait(5.0) and self._alarm:
                kind = "timeout" if "timeout" in self._alarm else "oom"
                path = crash.artifact_path(self.opts.artifact_prefix, kind, self._current,
                                           self.opts.exact_artifact_path)
                crash.save(path, self._current)
                print(f"==={os.getpid()}== ERROR: libFuzzer: {kind}: {self._alarm}\n"
                      f"Test unit written to {path}", file=self.out, flush=True)
                self._real_exit(crash.exit_status(kind))

    def _on_alarm(self, signum: int, frame: Any) -> None:
        alarm, self._alarm = self._alarm, None
        if alarm is None:
            return
        raise (crash.Timeout if "timeout" in alarm else crash.OutOfMemory)(alarm)

    # --- one execution -----------------------------------------------------------------------
    def execute(self, data: bytes) -> BaseException | None:
        """Run the target on ``data``; the exception that escaped it, if one did."""
        if self.log_inputs is not None:
            self.log_inputs.append(data)
        if self._buf is not None:
            self._buf[0] = 0
        prov = provider.provenance
        if prov:
            prov.clear()
        if feedback.tracer.notes:
            feedback.tracer.notes.clear()
        self._current = data
        self._exec_started = time.monotonic()
        try:
            self.target(data)
        except BaseException as exc:  # noqa: BLE001 - every escape is a crash, sys.exit included
            self._exec_started = 0.0
            if isinstance(exc, KeyboardInterrupt):
                raise
            return exc
        self._exec_started = 0.0
        self.stats.runs += 1
        return None

    def collect(self, data: bytes) -> int:
        """New features of the last execution; a new input joins the corpus and queues its candidates."""
        n = coverage.registry.blocks + 1
        cmap = feedback.coverage_map
        notes = feedback.tracer.notes
        if self.fb is not None:
            new = self.fb.collect(cmap, n, notes if self.opts.use_value_profile else [],
                                  self._buf if self._buf is not None else None)
            if new:
                self._keep(data, new, notes, self._records())
            return new
        new = 0
        if n > 1:
            part = cmap[:n]
            bits = int.from_bytes(part, "little")
            if bits:
                fresh = bits & ~self.covered
                if fresh:
                    new += fresh.bit_count()
                    self.covered |= bits
                cmap[:n] = bytes(n)
        features = self.features
        if notes and self.opts.use_value_profile:
            for feature in feedback.value_profile(notes):
                if feature not in features:
                    features.add(feature)
                    new += 1
        recs: list[tuple[int, int, int, int, Any]] = []
        if self._buf is not None and self._buf[0]:
            for count, rec in enumerate(feedback.records(self._buf)):
                if count >= MAX_RECORDS:
                    break
                _, rtype, pc, arg, value = rec
                feature = (1 << 62) | (hash((pc, arg, rtype, feedback.bucket(value))) & ((1 << 60) - 1))
                if feature not in features:
                    features.add(feature)
                    new += 1
                recs.append(rec)
        if new:
            self._keep(data, new, notes, recs)
        return new

    def _records(self) -> list[tuple[int, int, int, int, Any]]:
        if self._buf is None or not self._buf[0]:
            return []
        out = []
        for count, rec in enumerate(feedback.records(self._buf)):
            if count >= MAX_RECORDS:
                break
            out.append(rec)
        return out

    def _keep(self, data: bytes, new: int, notes: list[tuple[int, int, Any, Any]],
              recs: list[tuple[int, int, int, int, Any]]) -> None:
        digest = hashlib.sha1(data).hexdigest()
        if digest in self.known:
            return
        self.known.add(digest)
        self.corpus.append(Entry(data, new))
        self.corpus_data.append(data)
        if self.opts.paths and os.path.isdir(self.opts.paths[0]) and not self.opts.merge:
            path = os.path.join(self.opts.paths[0], digest)
            if not os.path.exists(path):
                with contextlib.suppress(OSError):
                    crash.save(path, data)
        self._queue_candidates(data, notes, recs)

    def _queue_candidates(self, data: bytes, notes: list[tuple[int, int, Any, Any]],
                          recs: list[tuple[int, int, int, int, Any]]) -> None:
        """Input-to-state: compared operands, and return values for later arguments from the input."""
        hints: dict[tuple[int, Any, Any], None] = {}
        for _, kind, a, b in notes:
            key = (kind, a, b)
            if key not in hints:
                hints[key] = None
        returns: list[Any] = []
        for _, rtype, _, arg, value in recs:
            if type(value) not in (int, str, bytes):
                continue
            if rtype == 0xF and arg == 0:
                returns.append(value)
                self._add_word_value(value)
            elif rtype == 0xE:
                for r in returns[-8:]:
                    if type(r) is type(value) and r != value:
                        hints.setdefault((feedback.EQ, value, r), None)
        prov = list(provider.provenance or ())
        seen: set[bytes] = {data}
        queued = 0
        for _kind, _a, b in hints:
            self._add_word_value(b)
        if len(self.queue) >= MAX_QUEUE:
            return  # candidates keep making candidates: let random mutation run too
        for kind, a, b in hints:
            for candidate in mutate.solve(data, kind, a, b, prov):
                if candidate in seen or len(candidate) > self.opts.max_len:
                    continue
                seen.add(candidate)
                self.queue.append(candidate)
                queued += 1
                if queued >= MAX_CANDIDATES:
                    return

    def _add_word_value(self, value: Any) -> None:
        for w in mutate.dictionary_words(value):
            self._add_word(w)

    def _add_word(self, word: bytes) -> None:
        if word and word not in self._word_set and len(self.words) < MAX_WORDS and len(word) <= 64:
            self._word_set.add(word)
            self.words.append(word)

    # --- the loop ----------------------------------------------------------------------------
    def next_input(self) -> tuple[bytes, str]:
        """The next input to run and how it was made."""
        if self.queue:
            return self.queue.pop(), "I2S"
        rng = self.rng
        corpus = self.corpus
        if not corpus:
            base = b""
        elif rng.random() < 0.5:
            base = corpus[-1 - rng.randrange(min(16, len(corpus)))].data
        else:
            base = corpus[rng.randrange(len(corpus))].data
        other = corpus[rng.randrange(len(corpus))].data if corpus else None
        data, names = mutate.havoc(base, rng, self.opts.max_len, self.words, other)
        if self.opts.only_ascii:
            data = bytes(b & 0x7F for b in data)
        return data, "-".join(names) + "-"

    def status(self, what: str) -> None:
        """One libFuzzer status line."""
        size = sum(len(e.data) for e in self.corpus)
        cov, ft = self.counts()
        st = self.stats
        st.series.append((st.elapsed(), st.runs, cov, ft, len(self.corpus)))
        if self.opts.verbosity <= 0 and what not in ("INITED", "DONE"):
            return
        extra = f" L: {len(self._current)} MS: {self.mutations}" if what == "NEW" else ""
        print(f"#{st.runs}\t{what:<6} cov: {cov} ft: {ft} corp: {len(self.corpus)}/{_size(size)} "
              f"exec/s: {st.exec_per_s()} rss: {_rss_mb()}Mb{extra}", file=self.out, flush=True)

    def counts(self) -> tuple[int, int]:
        """(branches covered, features): libFuzzer's cov: and ft:."""
        if self.fb is not None:
            cov, other = self.fb.counts()
            return cov, cov + other
        cov = self.covered.bit_count()
        return cov, cov + len(self.features)

    def seeds(self) -> Iterator[bytes]:
        """The inputs of the corpus directories and files given, smallest first; an empty input if none."""
        found = []
        for path in self.opts.paths:
            for _name, data in read_inputs(path):
                found.append(data)
        if not found:
            found = [b""]
        yield from sorted(found, key=len)

    def fuzz(self) -> int:
        """Run until a crash or a limit; the exit status."""
        opts = self.opts
        try:
            self.start()
        except Stop as stop:
            return stop.status
        try:
            for data in self.seeds():
                self._run(data[:opts.max_len] if opts.max_len > 0 else data, "seed")
                self.known.add(hashlib.sha1(data).hexdigest())
            self.status("INITED")
            deadline = self.stats.started + opts.max_total_time if opts.max_total_time > 0 else None
            while opts.runs < 0 or self.stats.runs < opts.runs:
                if self.fb is not None or (self.stats.runs & 255) == 0:
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        break
                    if opts.jobs == 0 and opts.paths and now - self._last_sync > SYNC_SECONDS:
                        self._sync()
                if self.fb is not None:
                    self._chunk()
                    continue
                data, how = self.next_input()
                self._run(data, how)
            self.status("DONE")
            print(f"Done {self.stats.runs} runs in {int(self.stats.elapsed())} second(s)", file=self.out)
            return 0
        except Stop as stop:
            return stop.status
        except KeyboardInterrupt:
            print(f"=={os.getpid()}== libFuzzer: run interrupted; exiting", file=self.out)
            return 72
        finally:
            self.stop()
            self.summary()

    def _chunk(self) -> None:
        """Up to ``self._chunk_size`` inputs through the C loop, a size that keeps a chunk near 50 ms
        (so -max_total_time is kept closely on slow targets too)."""
        opts = self.opts
        limit = self._chunk_size if opts.runs < 0 else min(self._chunk_size, opts.runs - self.stats.runs)
        began = time.monotonic()
        status, data, exc, ran = self.fb.loop(  # type: ignore[union-attr]
            self.target, self.corpus_data, self.words, opts.max_len, feedback.coverage_map,
            coverage.registry.blocks + 1, feedback.tracer.notes if opts.use_value_profile else [],
            provider.provenance, self._buf if self._buf is not None else None, limit,
            bool(opts.only_ascii), self.log_inputs, self.queue)
        self.stats.runs += ran
        took = time.monotonic() - began
        if status == 0 and took > 0.1 and self._chunk_size > 1:
            self._chunk_size //= 2
        elif status == 0 and took < 0.025 and self._chunk_size < CHUNK:
            self._chunk_size *= 2
        if status == 2:
            self.mutations = self.fb.mutations()  # type: ignore[union-attr]
            self._current = data
            raise Stop(self.crashed(data, exc))
        if status == 1:
            self.mutations = self.fb.mutations()  # type: ignore[union-attr]
            self._current = data
            self._keep(data, 1, feedback.tracer.notes, self._records())
            self.status("NEW")
        elif self.stats.runs >= self._next_pulse:
            while self._next_pulse <= self.stats.runs:
                self._next_pulse *= 2
            self.status("pulse")

    def _run(self, data: bytes, how: str) -> None:
        exc = self.execute(data)
        if exc is not None:
            self.mutations = how
            raise Stop(self.crashed(data, exc))
        if self.collect(data):
            self.mutations = how
            self.status("NEW")
        elif self.stats.runs >= self._next_pulse:
            self._next_pulse *= 2
            self.status("pulse")

    def _sync(self) -> None:
        """Take the inputs other workers wrote to the shared corpus directory meanwhile."""
        self._last_sync = time.monotonic()
        directory = self.opts.paths[0]
        try:
            names = os.listdir(directory)
        except OSError:
            return
        read = 0
        for name in names:
            if name in self.known or name.startswith(".") or name.endswith(".kdf"):
                continue
            try:
                with open(os.path.join(directory, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            exc = self.execute(data)
            if exc is not None:
                raise Stop(self.crashed(data, exc))
            self.collect(data)  # kept if it brings this worker something new
            self.known.add(name)  # the file's name is the sha1 of its input: not read again
            read += 1
        if read:
            self.status("RELOAD")

    # --- crashes ----------------------------------------------------------------------------
    def crashed(self, data: bytes, exc: BaseException, save: bool = True, source: str = "") -> int:
        """Report the crash of ``data``, save it, show its call tree; the exit status.

        ``source``: the file ``data`` was read from (not saved again; its call tree goes beside it).
        """
        kind = crash.kind_of(exc)
        self.outcome = f"{kind}: {crash.cause(exc)}"
        path = crash.artifact_path(self.opts.artifact_prefix, kind, data, self.opts.exact_artifact_path) \
            if save else None
        if path is not None:
            crash.save(path, data)
        crash.report(self.out, exc, data, path, self.mutations)
        if self.opts.calltree and kind != "timeout":
            self.stop()
            kdf = (path or source or crash.artifact_path(self.opts.artifact_prefix, kind, data)) + ".kdf"
            crash.call_tree(self.out, self.target, data, kdf, recording)
        return crash.exit_status(kind)

    def summary(self) -> None:
        """The end-of-run statistics (and the HTML page of -report=)."""
        st = self.stats
        cov, ft = self.counts()
        print(f"kcovdf fuzz: {st.runs} runs in {st.elapsed():.1f} s ({st.exec_per_s()} exec/s), cov: {cov} "
              f"ft: {ft} corp: {len(self.corpus)}; {self.outcome}", file=self.out)
        if self.opts.print_final_stats:
            print(f"stat::number_of_executed_units: {st.runs}\nstat::average_exec_per_sec:     "
                  f"{st.exec_per_s()}\nstat::new_units_added:          {len(self.corpus)}\n"
                  f"stat::peak_rss_mb:              {_rss_mb()}", file=self.out)
        if self.opts.report:
            from kcovdf.fuzz import summary

            try:
                summary.write(self.opts.report, self)
            except OSError as exc:
                print(f"kcovdf fuzz: -report={self.opts.report}: cannot write it ({exc.strerror})",
                      file=self.out)
                return
            print(f"kcovdf fuzz: summary and plots written to {self.opts.report}", file=self.out)


@contextlib.contextmanager
def recording(path: str) -> Iterator[None]:
    """Record the calling thread into the trace file ``path`` (0600) for the time of the block."""
    from kcovdf.runtime.device import Device

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    dev = Device(file=path)
    try:
        dev.init_trace(1 << 17)
        dev.enable()
        try:
            yield
        finally:
            dev.disable()
    finally:
        dev.close()


def read_inputs(path: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of a corpus directory's files, or of one input file; OSError naming the problem."""
    if os.path.isdir(path):
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise OSError(exc.errno, f"corpus directory {path}: cannot list it ({exc.strerror})") from None
        for name in names:
            full = os.path.join(path, name)
            if name.startswith(".") or name.endswith(".kdf") or not os.path.isfile(full):
                continue
            try:
                with open(full, "rb") as f:
                    yield name, f.read()
            except OSError as exc:
                raise OSError(exc.errno, f"corpus file {full}: cannot read it ({exc.strerror})") from None
        return
    try:
        with open(path, "rb") as f:
            yield os.path.basename(path), f.read()
    except OSError as exc:
        raise OSError(exc.errno, f"input {path}: cannot read it ({exc.strerror})") from None


def _size(n: int) -> str:
    if n < 1 << 14:
        return f"{n}b"
    if n < 1 << 24:
        return f"{n >> 10}Kb"
    return f"{n >> 20}Mb"
