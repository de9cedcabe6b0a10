"""Data flow: a session token returned by one call must be presented to another.

The token is a hash of the user name: no constant in the code equals it, and it reaches
the check through a dict lookup.
"""

import hashlib

CLASS = "dataflow"


class SessionBug(Exception):
    """The planted bug."""


_sessions: dict[str, str] = {}


def open_session(user: str) -> str:
    token = hashlib.sha256(user.encode("utf-8", "replace")).hexdigest()[:8]
    _sessions[token] = user
    return token


def act(token: str) -> None:
    user = _sessions.get(token)
    if user is not None:
        raise SessionBug(f"acted as {user!r} with a token the fuzzer never got")


def TestOneInput(data: bytes) -> None:
    _sessions.clear()
    user, _, rest = data.partition(b"|")
    open_session(user.decode("latin-1"))
    act(rest[:8].decode("latin-1"))
