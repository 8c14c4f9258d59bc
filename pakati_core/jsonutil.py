"""Strict JSON: the one writer of JSON text in the core (NaN and infinities refused, naming where they are).

``json.dumps`` writes ``NaN`` by default, which is not JSON and reads back as a number; a score
or record that holds one is an error where it appears, not text that looks like a result.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .errors import NonFiniteError, PakatiError
from .finite import count_non_finite


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


def parse_json(text: str | bytes, error: type[PakatiError], field: str) -> Any:
    """``json.loads(text)``; text that is not JSON raises ``error`` (a typed core error) saying where it broke."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})", field=field) from None
