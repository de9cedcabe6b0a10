"""The C hot path (``_recorder``): per-thread state, the encoder and the record writers."""
