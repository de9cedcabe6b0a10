"""Blind spot: a dict lookup (`table.get(s)`) and a set membership."""

CLASS = "blind"


class LookupBug(Exception):
    """The planted bug."""


TABLE = {"k3yZ": 1, "opcode-7": 2, "zz_top": 3}
ALLOWED = {"tenant_a", "tenant_b"}


def check(tenant: str, key: str) -> None:
    if tenant in ALLOWED:
        if TABLE.get(key) == 2:
            raise LookupBug(key)


def TestOneInput(data: bytes) -> None:
    tenant, _, key = data.decode("latin-1").partition("/")
    check(tenant, key)
