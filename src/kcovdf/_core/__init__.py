"""The C extensions: ``_recorder`` (the hot path: per-thread state, the encoder, the record writers)
and ``_scan`` (the decoder's record scanner)."""
