"""Clamping, snapping and normalizing numbers into a range, e.g. for slider widgets."""

from __future__ import annotations


def clamp(x: float, lo: float, hi: float, step: float | None = None) -> float:
    """x limited to [lo, hi]. With step, x is first rounded to the nearest multiple of step
    (the bounds still win: the result is never outside [lo, hi])."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    if step is not None:
        if step <= 0:
            raise ValueError(f"step must be positive, not {step}")
        return max(round(x / step) * step, lo)
    return min(max(x, lo), hi)


def normalize(x: float, lo: float, hi: float) -> float:
    """Where x lies in [lo, hi], from 0.0 to 1.0 (clamped)."""
    if lo >= hi:
        raise ValueError(f"degenerate range [{lo}, {hi}]")
    return (clamp(x, lo, hi) - lo) / (hi - lo)


def wrap(x: float, lo: float, hi: float) -> float:
    """x wrapped around into [lo, hi), as an angle is into [0, 360)."""
    if lo >= hi:
        raise ValueError(f"degenerate range [{lo}, {hi}]")
    return lo + (x - lo) % (hi - lo)


def scale(x: float, lo: float, hi: float, new_lo: float, new_hi: float) -> float:
    """x mapped linearly from [lo, hi] onto [new_lo, new_hi], clamped."""
    return new_lo + normalize(x, lo, hi) * (new_hi - new_lo)
