"""A contact sheet of what the model was shown and what it brought back."""

from __future__ import annotations

import numpy as np
from PIL import Image


def _thumb(image: np.ndarray, side: int) -> np.ndarray:
    pil = Image.fromarray((np.clip(image[..., :3], 0, 1) * 255).round().astype(np.uint8))
    pil.thumbnail((side, side), Image.Resampling.LANCZOS)
    tile = np.full((side, side, 3), 24, np.uint8)
    a = np.asarray(pil)
    y, x = (side - a.shape[0]) // 2, (side - a.shape[1]) // 2
    tile[y : y + a.shape[0], x : x + a.shape[1]] = a
    return tile


def preview_grid(pairs: list[tuple[np.ndarray, np.ndarray]], side: int = 128, columns: int = 4) -> np.ndarray:
    """Pairs (masked view, reconstruction) laid out left-to-right, ``columns`` pairs per row; float [0, 1]."""
    if not pairs:
        return np.zeros((side, side, 3), np.float32)
    cells = [np.concatenate([_thumb(v, side), _thumb(r, side)], axis=1) for v, r in pairs]
    gap = 4
    rows = []
    for i in range(0, len(cells), columns):
        row = cells[i : i + columns]
        row += [np.zeros_like(cells[0])] * (columns - len(row)) if len(cells) > columns else []
        rows.append(np.concatenate([np.pad(c, ((0, gap), (0, gap), (0, 0))) for c in row], axis=1))
    return np.concatenate(rows, axis=0).astype(np.float32) / 255.0
