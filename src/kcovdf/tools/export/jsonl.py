"""JSON Lines export: one object per record, names and values resolved (resolve.RECORD_COLUMNS)."""

from __future__ import annotations

import json
from pathlib import Path

from kcovdf import tracefile
from kcovdf.read.decode import Trace
from kcovdf.read.resolve import json_record, records_and_calls
from kcovdf.tools.export.base import Exporter, register


@register
class JsonLinesExporter(Exporter):
    """One JSON object per record; 64-bit words are hex strings (JSON numbers lose bits above 2^53)."""

    name = "jsonl"
    description = "JSON Lines, one record per line (OUT is a file)"

    def write(self, trace: Trace, out: Path) -> list[Path]:
        """Write every record of ``trace`` as one line of ``out``."""
        table, _ = records_and_calls(trace)
        with tracefile.private_file(out) as f:
            for row in table.to_pylist():
                f.write(json.dumps(json_record(row), ensure_ascii=False).encode() + b"\n")
        return [out]
