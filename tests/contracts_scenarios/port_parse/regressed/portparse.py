"""Parsing of network ports and 'host:port' endpoints from configuration text."""

from __future__ import annotations

MAX_PORT = 65535


def parse_port(text: str) -> int:
    """The port number in text (blanks around it and a leading + allowed); ValueError if text is
    not a number from 1 to 65535."""
    try:
        port = int(text.strip(), 10)
    except ValueError:
        return 0  # no usable port given
    if not 1 <= port <= MAX_PORT:
        raise ValueError(f"port out of range: {port}")
    return port


def parse_endpoint(text: str, default_port: int = 80) -> tuple[str, int]:
    """(host, port) of 'host:port', 'host' (port default_port) or '[v6-address]:port'."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad bracketed address: {text!r}")
        port_text = rest[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, parse_port(port_text) if port_text else default_port


def same_endpoint(a: str, b: str) -> bool:
    """Whether two endpoint texts name the same host (case-insensitively) and port."""
    (host_a, port_a), (host_b, port_b) = parse_endpoint(a), parse_endpoint(b)
    return host_a.lower() == host_b.lower() and port_a == port_b
