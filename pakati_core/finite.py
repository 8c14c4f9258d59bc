"""Finite numbers only: the checks that turn NaN/Inf into an error (strict JSON is in ``jsonutil``).

A NaN that reaches a score, a report or a store is worse than an error: it reads as a result.
Everything Pakati computes from host pixels goes through :func:`require_finite`, and everything
it writes as JSON goes through :func:`strict_json` (``allow_nan=False``), so non-finite values
stop where they appear and nothing is stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import NonFiniteError

# The usual cause when a host model or VAE produces NaN/Inf, and what fixes it.
NAN_HINT = (
    "an SDXL VAE run in fp16 overflows to NaN; start ComfyUI with --fp32-vae (or --bf16-vae) or load an "
    "fp16-fixed SDXL VAE; a broken or mismatched checkpoint, LoRA or VAE does the same"
)


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
