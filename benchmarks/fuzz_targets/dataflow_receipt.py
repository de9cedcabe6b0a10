"""Data flow: a state reached only by a history of calls.

put() returns a receipt derived from the store's state; commit() accepts only the
receipt of the last put. No constant equals it: it depends on the key put first.
"""

import hashlib

CLASS = "dataflow"


class ReceiptBug(Exception):
    """The planted bug."""


class Store:
    def __init__(self) -> None:
        self.items: dict[bytes, int] = {}
        self.receipts: dict[int, bytes] = {}

    def put(self, key: bytes) -> int:
        self.items[key] = len(self.items)
        receipt = int.from_bytes(hashlib.md5(key).digest()[:4], "little")
        self.receipts[receipt] = key
        return receipt

    def commit(self, receipt: int) -> None:
        key = self.receipts.get(receipt)
        if key is not None and len(self.items) >= 2:
            raise ReceiptBug(f"committed {key!r}")


def TestOneInput(data: bytes) -> None:
    store = Store()
    for chunk in data.split(b";")[:-1]:
        if chunk.startswith(b"P"):
            store.put(chunk[1:])
        elif chunk.startswith(b"C") and len(chunk) >= 5:
            store.commit(int.from_bytes(chunk[1:5], "little"))
