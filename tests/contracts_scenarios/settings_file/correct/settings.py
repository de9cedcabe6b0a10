"""A tiny 'key = value' settings format, and typed access to its values."""

from __future__ import annotations


def parse(text: str) -> dict[str, str]:
    """The settings of text: one 'key = value' a line, '#' comments, keys lowercased."""
    cfg: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"line {number}: expected 'key = value', got {line!r}")
        cfg[key.strip().lower()] = value.strip()
    return cfg


def get_int(cfg: dict[str, str], key: str, default: int = 0) -> int:
    """The value of key as an int: decimal, or 0x/0o/0b prefixed; default when key is absent."""
    raw = cfg.get(key)
    if raw is None:
        return default
    return int(raw, 0)


def get_bool(cfg: dict[str, str], key: str, default: bool = False) -> bool:
    """The value of key as a bool (1/0, yes/no, true/false, on/off); default when absent."""
    raw = cfg.get(key)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"{key}: not a boolean: {raw!r}")


def get_list(cfg: dict[str, str], key: str) -> list[str]:
    """The comma-separated items of key's value, blanks dropped; [] when absent."""
    return [item.strip() for item in cfg.get(key, "").split(",") if item.strip()]
