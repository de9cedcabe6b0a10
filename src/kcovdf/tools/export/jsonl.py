"""JSON Lines export: one object per record, names and values resolved."""

from __future__ import annotations

import json
from pathlib import Path

from kcovdf import tracefile
from kcovdf.read.decode import Trace
from kcovdf.read.resolve import resolve
from kcovdf.tools.export.base import Exporter, register


@register
class JsonLinesExporter(Exporter):
    """One JSON object per record; 64-bit words are hex strings (JSON numbers lose bits above 2^53)."""

    name = "jsonl"
    description = "JSON Lines, one record per line (OUT is a file)"

    def write(self, trace: Trace, out: Path) -> list[Path]:
        """Write every record of ``trace`` as one line of ``out``."""
        table = resolve(trace)
        with tracefile.private_file(out) as f:
            for row in table.to_pylist():
                line = {"task": row["task"], "pid": row["pid"], "tid": row["tid"],
                        "thread": row["thread"], "seq": row["seq"], "kind": row["kind"],
                        "pc": f"{row['pc']:#x}", "function": row["function"],
                        "arg_idx": row["arg_idx"], "param": row["param"],
                        "ptr": f"{row['ptr']:#x}", "class": row["class"],
                        "values": [f"{w:#x}" for w in row["values"]],
                        "rendered": row["rendered"], "value": json.loads(row["value"])}
                f.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
        return [out]
