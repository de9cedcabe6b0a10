"""JSON Lines export: one object per record, names and values resolved (resolve.RECORD_COLUMNS)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from kcovdf import tracefile
from kcovdf.read.decode import Trace
from kcovdf.read.resolve import RECORD_COLUMNS, Resolved
from kcovdf.tools.export.base import Batches, Exporter, register

#: Records turned into text at a time: memory stays bounded whatever the batch.
_ROWS = 1 << 16

_HEX = "'0x' || lower(hex({}))"
#: How each column is written: 64-bit words as hex strings (resolve.json_record), the value nested.
_AS_JSON = {"pc": _HEX.format("pc"), "ptr": _HEX.format("ptr"),
            "values": "list_transform(\"values\", lambda w: " + _HEX.format("w") + ")",
            "value": "json(value)"}
#: One JSON object per row, built by DuckDB's JSON writer (the object of ``resolve.json_record``).
_LINE = "SELECT json_object(" + ", ".join(
    f"'{name}', {_AS_JSON.get(name, chr(34) + name + chr(34))}" for name in RECORD_COLUMNS) + \
    ")::VARCHAR FROM _batch"


@register
class JsonLinesExporter(Exporter):
    """One JSON object per record; 64-bit words are hex strings (JSON numbers lose bits above 2^53)."""

    name = "jsonl"
    description = "JSON Lines, one record per line (OUT is a file)"

    def write(self, trace: Trace, out: Path) -> list[Path]:
        """Write every record of ``trace`` as one line of ``out``."""
        return self.write_batches(lambda: iter([(trace, trace.records)]), out)[0]

    def write_batches(self, batches: Batches, out: Path) -> tuple[list[Path], Trace]:
        """Write the records as the batches come (see ``Exporter.write_batches``)."""
        resolved = Resolved(batches())
        con = duckdb.connect(":memory:")
        with tracefile.private_file(out) as f:
            for table in resolved:
                for batch in table.to_batches(_ROWS):
                    con.register("_batch", batch)
                    lines = con.sql(_LINE).fetchnumpy()
                    con.unregister("_batch")
                    text = next(iter(lines.values()))
                    if len(text):
                        f.write(("\n".join(text.tolist()) + "\n").encode("utf-8", "surrogatepass"))
        con.close()
        if resolved.trace is None:
            raise ValueError("no trace was read")
        return [out], resolved.trace
