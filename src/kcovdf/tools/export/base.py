"""The exporter base class and the registry of formats (output files: kcovdf.tracefile.private_file)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from kcovdf.read.decode import Trace

#: Starts one pass over a trace: its batches of records (``kcovdf.read.decode.batches``).
Batches = Callable[[], Iterator[tuple[Trace, pa.Table]]]

#: format name -> exporter class; filled by @register in each format's module.
REGISTRY: dict[str, type[Exporter]] = {}


class Exporter(abc.ABC):
    """Writes one decoded trace in one format."""

    #: the name given to ``kcovdf export --format``
    name: str
    #: one line for ``--help``
    description: str

    @abc.abstractmethod
    def write(self, trace: Trace, out: Path) -> list[Path]:
        """Write ``trace`` to ``out`` (a file or directory, as the format says); returns the files written."""

    def write_batches(self, batches: Batches, out: Path) -> tuple[list[Path], Trace]:
        """Write a trace read batch by batch: (files, the trace). ``batches()`` starts a pass
        over the trace (``kcovdf.read.decode.batches``); a format may make several.

        By default the batches are joined and written by ``write``; a format that can
        write as the batches come overrides this, and holds one batch at a time.
        """
        tables, trace = [], None
        for t, table in batches():
            tables.append(table)
            trace = t
        if trace is None:
            raise ValueError("no trace was read")
        trace.records = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return self.write(trace, out), trace


def register(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator adding an exporter to ``REGISTRY`` under its ``name``."""
    REGISTRY[cls.name] = cls
    return cls
