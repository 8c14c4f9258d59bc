"""diffusers' cross-attention layers: which there are, and wrapping their processors for the length of a block.

The regional, capture and excite processors all wrap whatever processor a layer (``attn2``)
already has (diffusers' own, IP-Adapter's, each other's) through :func:`wrapped_processors`,
and restore the UNet's own processors when the block ends.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ..errors import AttentionMapError

BLOCKS = {
    "lowest resolution": None,
    "all": ("input", "middle", "output"),
    "input": ("input",),
    "middle": ("middle",),
    "output": ("output",),
    "middle+output": ("middle", "output"),
}
# Set while Attend-and-Excite runs its gradient pass: the capture leaves those calls out.
IN_EXCITE_PASS: contextvars.ContextVar[bool] = contextvars.ContextVar("pakati_excite_pass", default=False)


def plain_processor_types() -> tuple[type, ...]:
    """diffusers processors that compute exactly softmax(q k^T / sqrt(d)) v over the prompt, nothing else."""
    from diffusers.models import attention_processor as ap

    return tuple(getattr(ap, name) for name in ("AttnProcessor2_0", "AttnProcessor") if hasattr(ap, name))


def block_of(name: str) -> tuple[str, int]:
    """('input' | 'middle' | 'output', index of the down/up block) from a processor's name."""
    if name.startswith("down_blocks."):
        return "input", int(name.split(".")[1])
    if name.startswith("up_blocks."):
        return "output", int(name.split(".")[1])
    return "middle", 0


def cross_attention_names(unet: torch.nn.Module, blocks: str = "all") -> list[str]:
    """Processor names of the chosen ``attn2`` layers, in forward order; 'lowest resolution' = the deepest level."""
    if blocks not in BLOCKS:
        raise AttentionMapError(f"unknown blocks {blocks!r}; use one of {', '.join(BLOCKS)}", "blocks")
    names = [n for n in unet.attn_processors if ".attn2." in n]
    depth = len(unet.config.block_out_channels) - 1

    def level(name: str) -> int:
        kind, i = block_of(name)
        return depth if kind == "middle" else (i if kind == "input" else depth - i)

    if BLOCKS[blocks] is None:
        deepest = max((level(n) for n in names), default=0)
        return [n for n in names if level(n) == deepest]
    return [n for n in names if block_of(n)[0] in BLOCKS[blocks]]


def query_key(attn, hidden_states: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if attn.norm_cross:
        text = attn.norm_encoder_hidden_states(text)
    return attn.to_q(hidden_states), attn.to_k(text)


def text_of(encoder_hidden_states: Any) -> torch.Tensor | None:
    return encoder_hidden_states[0] if isinstance(encoder_hidden_states, tuple) else encoder_hidden_states


@contextmanager
def wrapped_processors(unet: torch.nn.Module, names: Sequence[str], make: Callable[[str, Any], Any]) -> Iterator[None]:
    """Wrap the processors ``names`` with ``make(name, inner)`` for the duration of the block."""
    saved = dict(unet.attn_processors)
    chosen = set(names)
    unet.set_attn_processor({n: make(n, p) if n in chosen else p for n, p in saved.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(saved)
