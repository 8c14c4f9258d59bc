"""Finite numbers only: the checks that turn NaN/Inf into an error, and strict JSON.

A NaN that reaches a score, a report or a store is worse than an error: it reads as a result.
Everything Pakati computes from host pixels goes through :func:`require_finite`, and everything
it writes as JSON goes through :func:`strict_json` (``allow_nan=False``), so non-finite values
stop where they appear and nothing is stored.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .errors import NonFiniteError

# The usual cause when a host model or VAE produces NaN/Inf, and what fixes it.
NAN_HINT = ("an SDXL VAE run in fp16 overflows to NaN; start ComfyUI with --fp32-vae (or --bf16-vae) or load an "
            "fp16-fixed SDXL VAE; a broken or mismatched checkpoint, LoRA or VAE does the same")


def count_non_finite(values: Any) -> int:
    """How many entries of an array-like are NaN or infinite."""
    a = np.asarray(values)
    if a.dtype.kind not in "fc":
        return 0
    return int(a.size - np.count_nonzero(np.isfinite(a)))


def require_finite(values: Any, what: str, field: str | None = None, hint: str = "") -> None:
    """Raise :class:`NonFiniteError` naming ``what`` when ``values`` holds NaN or Inf."""
    bad = count_non_finite(values)
    if bad:
        size = int(np.asarray(values).size)
        raise NonFiniteError(f"{what} has {bad} NaN/infinite value(s) of {size}" + (f": {hint}" if hint else ""), field)


def non_finite_path(obj: Any, path: str = "") -> str | None:
    """The JSON path of the first NaN/Inf number inside nested dicts/lists/tuples, or None."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (path or "$")
    if isinstance(obj, (np.floating, np.ndarray)):
        return None if count_non_finite(obj) == 0 else (path or "$")
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = non_finite_path(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = non_finite_path(v, f"{path}[{i}]")
            if found:
                return found
    return None


def strict_json(obj: Any, what: str = "record", field: str | None = None, **kwargs: Any) -> str:
    """``json.dumps(obj, allow_nan=False)``; a NaN/Inf raises :class:`NonFiniteError` naming where it is."""
    where = non_finite_path(obj)
    if where is not None:
        raise NonFiniteError(f"{what} holds a NaN/infinite number at {where}; nothing was written", field)
    return json.dumps(obj, allow_nan=False, **kwargs)
