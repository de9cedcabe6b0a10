"""The C extensions: ``_recorder`` (the hot path: per-thread state, the encoder, the record writers),
``_scan`` (the decoder's record scanner) and ``_pair`` (the pairing of records into calls)."""
