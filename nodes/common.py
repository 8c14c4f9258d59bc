"""Shared node-boundary helpers: custom socket types, error wording, tensor shaping."""

from __future__ import annotations

import json
from typing import Callable, Iterable, TypeVar

import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas, Region
from ..pakati_core.errors import PakatiError
from ..pakati_core.finite import NAN_HINT, count_non_finite
from ..pakati_core.regional import RegionSet
from ..pakati_core.regional.from_canvas import regions_from_canvas

CanvasType = io.Custom("PAKATI_CANVAS")
RegionsType = io.Custom("PAKATI_REGIONS")

T = TypeVar("T")


class PakatiNodeError(ValueError):
    """A bad input, reported with the node and the input it came from."""

    def __init__(self, node: str, input_name: str, message: str):
        self.node, self.input_name = node, input_name
        super().__init__(f"{node}: input '{input_name}': {message}")


def node_error(
    node: str,
    error: PakatiError,
    input_name: str,
    inputs: Iterable[str] = (),
    input_of: Callable[[PakatiError], str | None] | None = None,
    describe: Callable[[PakatiError], str] | None = None,
) -> PakatiNodeError:
    """The core's typed error as a message naming the node and the input: the one re-mapper every node uses.

    The input named is, in order: what ``input_of`` says for this error type (the model layer's
    key errors name 'credential', for example), the root of the error's field (``mask``,
    ``regions[2].points``...) when it is one of ``inputs``, else ``input_name``. ``describe``
    words the message (default: the error as the core wrote it).
    """
    named = input_of(error) if input_of is not None else None
    root = (error.field or "").split("[")[0].split(".")[0]
    return PakatiNodeError(node, named or (root if root in set(inputs) else input_name), describe(error) if describe else str(error))


def checked(node: str, input_name: str, fn: Callable[[], T], inputs: Iterable[str] = ()) -> T:
    """Run a core call and re-raise its typed error as a message naming node and input (see ``node_error``)."""
    try:
        return fn()
    except PakatiError as e:
        raise node_error(node, e, input_name, inputs) from e


def parse_canvas(node: str, regions_json: str, width: int, height: int) -> Canvas:
    """Parse the canvas widget; a layout drawn at another size is rescaled to width x height."""
    text = regions_json.strip() or json.dumps({"version": 1, "width": width, "height": height, "regions": []})
    canvas = checked(node, "regions", lambda: Canvas.from_json(text))
    if (canvas.width, canvas.height) != (width, height):
        canvas = checked(node, "width", lambda: canvas.scaled(width, height))
    return canvas


def canvas_regions(
    node: str,
    canvas: Canvas,
    encode: Callable[[str], object],
    encoder_for: Callable[[Region], Callable[[str], object] | None] | None = None,
) -> RegionSet:
    """The canvas's regions encoded by the host's text encoder through the core's one builder
    (``pakati_core.regional.from_canvas.regions_from_canvas``), its errors naming the node's 'canvas' input."""
    try:
        return regions_from_canvas(canvas, encode, encoder_for)
    except PakatiError as e:
        raise node_error(node, e, "canvas", describe=lambda err: err.message) from e


def validation_result(node: str, input_name: str, fn: Callable[[], object]) -> bool | str:
    """``validate_inputs`` result: True, or the message naming node, input and field."""
    try:
        checked(node, input_name, fn)
    except PakatiNodeError as e:
        return str(e)
    return True


def canvas_validation_error(regions_json: str, width: int, height: int) -> str | bool:
    """``validate_inputs`` result for a canvas widget: True, or a message naming the field."""
    return validation_result("PakatiCanvas", "regions", lambda: parse_canvas("PakatiCanvas", regions_json, width, height))


def mask_to_numpy(mask: torch.Tensor) -> np.ndarray:
    """A ComfyUI MASK (``[B, H, W]`` or ``[H, W]``) as a float32 ``[B, H, W]`` array."""
    m = mask if mask.ndim == 3 else mask.reshape((-1,) + tuple(mask.shape[-2:]))
    return m.detach().float().cpu().numpy()


def require_finite_tensor(node: str, input_name: str, values: torch.Tensor | np.ndarray, what: str) -> None:
    """Stop with an error naming the node, the input to blame and the likely fix when ``values``
    holds NaN/Inf (a host model or VAE output); nothing downstream ever sees or stores them."""
    if isinstance(values, torch.Tensor):
        bad, size = int((~torch.isfinite(values.detach())).sum()) if values.is_floating_point() else 0, values.numel()
    else:
        bad, size = count_non_finite(values), int(np.asarray(values).size)
    if bad:
        raise PakatiNodeError(node, input_name, f"{what} has {bad} NaN/infinite value(s) of {size}: {NAN_HINT}")


def node_name(cls: type) -> str:
    """The node's id for error messages, also when ComfyUI executes a clone of the class
    (V3 runs ``<id>Clone``, a copy of the class dict, which keeps the finalized SCHEMA)."""
    schema = getattr(cls, "SCHEMA", None)
    return schema.node_id if schema is not None else cls.__name__
