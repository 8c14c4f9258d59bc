"""Attention capture in diffusers: the conditional rows' cross-attention of watched words, into an ``AttentionRecorder``.

rec = AttentionRecorder(["cat"], [word_positions_in(pipe, prompt, "cat")])
with capture_attention(pipe.unet, rec, latent_hw=(128, 128)):
    pipe(prompt, num_inference_steps=30)
rec.word_map("cat")                      # [B, 128, 128]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..attention_maps.recorder import AttentionRecorder
from ..regional.attention import grid_shape
from .processors import IN_EXCITE_PASS, cross_attention_names, query_key, text_of, wrapped_processors


class CaptureProcessor:
    """Records the conditional rows' cross-attention of the watched words, then runs the wrapped processor unchanged."""

    def __init__(self, recorder: AttentionRecorder, name: str, inner, latent_hw: tuple[int, int], cfg: bool):
        self.recorder, self.name, self.inner, self.latent_hw, self.cfg = recorder, name, inner, latent_hw, cfg

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: Any = None, attention_mask=None, **kwargs: Any):
        text = text_of(encoder_hidden_states)
        if text is not None and not IN_EXCITE_PASS.get() and hidden_states.ndim == 3:
            b = hidden_states.shape[0]
            rows = slice(b // 2, b) if self.cfg else slice(0, b)  # diffusers batches [uncond, cond]
            with torch.no_grad():
                q, k = query_key(attn, hidden_states[rows], text[rows])
            self.recorder.record(self.name, q, k, attn.heads, 1, grid_shape(self.latent_hw, q.shape[1]), self.latent_hw)
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, **kwargs)


@contextmanager
def capture_attention(
    unet: torch.nn.Module, recorder: AttentionRecorder, latent_hw: tuple[int, int], cfg: bool = True, blocks: str = "all"
) -> Iterator[AttentionRecorder]:
    """Record into ``recorder`` (a fresh run) during the block; ``cfg``: the pipeline batches [uncond, cond] (guidance > 1)."""
    recorder.begin_run()
    try:
        with wrapped_processors(unet, cross_attention_names(unet, blocks), lambda n, p: CaptureProcessor(recorder, n, p, latent_hw, cfg)):
            yield recorder
    finally:
        recorder.end_run()
