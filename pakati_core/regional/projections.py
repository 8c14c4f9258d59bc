"""Region K/V projections, computed once per layer instead of at every call.

The region prompts do not change while a sampler runs, so each cross-attention layer's
``to_k``/``to_v`` of the region tokens are the same at every step, and at the next run with
the same weights (a re-queue with another seed). They are cached per layer, keyed by the
identity, storage and version of that layer's weights, the device and dtype asked for, and a
``token`` from the host that names the weights' patch state, so a weight swapped or updated
through autograd-visible ops misses the cache (inference tensors keep no version: identity
and storage only). Weights patched *in place* behind autograd's back (ComfyUI merges LoRAs
into the weights in place) are named by the host's token (ComfyUI's patch uuid); while
patches can change mid-run (hook keyframes) the host passes ``volatile=True``, and layers
whose weights are patched per call are never cached.
"""

from __future__ import annotations

from typing import Callable

import torch


def _version(w: torch.Tensor) -> int:
    return -1 if w.is_inference() else w._version  # inference tensors keep no version counter


def _fingerprint(weights: list[torch.Tensor | None]) -> tuple:
    return tuple((id(w), w.data_ptr(), _version(w), w.dtype, str(w.device)) if w is not None else None for w in weights)


class ProjectionCache:
    """Per-layer cache of ``(k, v)`` projections of the extra (region) context."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[object, tuple, torch.Tensor, torch.Tensor]] = {}
        self.hits = 0
        self.misses = 0

    def __deepcopy__(self, memo):  # shared by ComfyUI model clones, like the wrapper holding it
        return self

    def clear(self) -> None:
        self._entries.clear()

    def release_accelerator_memory(self) -> None:
        """Drop the entries held in accelerator memory (kept only within a run there: the host's
        memory manager does not see them); entries in host memory stay for the next run."""
        for key in [k for k, e in self._entries.items() if e[2].device.type != "cpu"]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        layer: object,
        weights: list[torch.Tensor | None],
        device: torch.device,
        dtype: torch.dtype,
        compute: Callable[[], tuple[torch.Tensor, torch.Tensor]],
        volatile: bool = False,
        token: object = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached projections for ``layer``, or ``compute()`` (stored unless ``volatile``)."""
        if volatile:
            self.misses += 1
            return compute()
        key = (_fingerprint(weights), str(device), dtype, token)
        entry = self._entries.get(id(layer))
        if entry is not None and entry[0] is layer and entry[1] == key:
            self.hits += 1
            return entry[2], entry[3]
        self.misses += 1
        k, v = compute()
        self._entries[id(layer)] = (layer, key, k, v)
        return k, v
