"""Membership functions (triangle and trapezoid; shoulders by repeating an end point)."""

from __future__ import annotations

import numpy as np

SHAPES = {"tri": 3, "trap": 4}


def membership(shape: str, params: tuple[float, ...], x: np.ndarray | float) -> np.ndarray:
    """Degree of membership of ``x``: 0 outside [first, last], 1 on the plateau, linear between."""
    x = np.asarray(x, dtype=np.float64)
    a, b, c, d = (params[0], params[1], params[1], params[2]) if shape == "tri" else params
    up = np.ones_like(x) if b <= a else np.clip((x - a) / (b - a), 0.0, 1.0)
    down = np.ones_like(x) if d <= c else np.clip((d - x) / (d - c), 0.0, 1.0)
    inside = (x >= a) & (x <= d)
    return np.where(inside, np.minimum(up, down), 0.0)
