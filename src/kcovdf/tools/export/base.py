"""The exporter base class and the registry of formats (output files: kcovdf.tracefile.private_file)."""

from __future__ import annotations

import abc
from pathlib import Path

from kcovdf.read.decode import Trace

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


def register(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator adding an exporter to ``REGISTRY`` under its ``name``."""
    REGISTRY[cls.name] = cls
    return cls
