"""Speed: a TestOneInput that does nothing (the fuzzer's own loop)."""

CLASS = "speed"


def TestOneInput(data: bytes) -> None:
    pass
