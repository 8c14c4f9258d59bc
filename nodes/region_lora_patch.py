"""Adapts ``pakati_core.regional.lora`` to ComfyUI: a LoRA applied only inside a region's mask.

A LoRA file is read with ComfyUI's own key mapping (``comfy.lora_convert.convert_lora``,
``comfy.lora.model_lora_keys_unet`` / ``model_lora_keys_clip``, ``comfy.lora.load_lora``), so
every form ComfyUI's LoraLoader reads (kohya, diffusers/PEFT, the LyCORIS forms, DoRA) reads
here. A plain LoRA stays low rank; every other form becomes the dense change of that layer's
weight, computed once by ComfyUI's own ``calculate_weight``.

At each model call a keyed ``APPLY_MODEL`` wrapper hooks the touched layers for that call only
(``output += m ⊙ Δ(input)`` on top of whatever the layer computed, so LoraLoader's merged
weights, lowvram casting and other patches stay untouched) and, for cross-attention layers
whose keys/values the LoRA changes, puts an attn2 replace that wraps the one already there
(Pakati's regional attention, IP-Adapter) and adds the masked attention difference. Pakati's
regional attention reads the call state from ``transformer_options`` to project a region's own
prompt tokens with the LoRAs bound to that region (part of its K/V cache key).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import comfy.ldm.modules.attention as comfy_attention
import comfy.lora
import comfy.lora_convert
import comfy.utils
import comfy.weight_adapter
import torch

from ..pakati_core.regional.lora import LayerDelta, RegionMask, add_kv_differences, add_masked, apply_to_tokens, kv_differences
from .unet import attn2_blocks, call_grid, with_attn2_replaced

log = logging.getLogger("pakati")

WRAPPER_KEY = "pakati_region_lora"
OPTIONS_KEY = "pakati_region_lora"  # transformer_options entry: the current call's RegionLoraCall
CLIP_BINDINGS = "pakati_region_clips"  # attribute of a CLIP clone: {canvas region id: CLIP with that region's LoRAs}
_KV = re.compile(r"^(?P<attn>.+\.attn2)\.to_(?P<which>[kv])$")
_NOT_POSITIONAL = ("time_embed", "label_emb", "emb_layers")  # act on the timestep/size embedding: no positions to mask


@dataclass(frozen=True, eq=False)
class BoundLora:
    """One LoRA file bound to one mask: the layer changes to hook and the attn2 K/V changes."""

    name: str  # the file, for messages
    region_id: str | None  # the canvas region whose prompt tokens also get the K/V change (None: a mask only)
    mask: RegionMask
    hooks: dict  # module path -> [LayerDelta]
    kv: dict  # attn2 module path -> (LayerDelta | None for K, LayerDelta | None for V)
    uid: str = ""  # names this binding in the region K/V cache key (ids of collected objects can be reused)


def clip_for_region(clip, region_id: str):
    """The CLIP that encodes a region's prompt: the one a PakatiRegionLora bound to it, else ``clip``."""
    return getattr(clip, CLIP_BINDINGS, {}).get(region_id, clip)


def read_lora(lora_sd: dict, model=None, clip=None) -> dict:
    """ComfyUI's own key mapping of a LoRA state dict onto the model's and the CLIP's weights."""
    key_map: dict = {}
    if model is not None:
        key_map = comfy.lora.model_lora_keys_unet(model.model, key_map)
    if clip is not None:
        key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    return comfy.lora.load_lora(comfy.lora_convert.convert_lora(lora_sd), key_map, log_missing=False)


def _plain_lora(patch) -> bool:
    if not isinstance(patch, comfy.weight_adapter.LoRAAdapter):
        return False
    _, _, _, mid, dora, reshape = patch.weights
    return mid is None and dora is None and reshape is None


def _dense(patch, key, param: torch.Tensor, strength: float) -> torch.Tensor:
    """The change ``patch`` makes to ``param``, by ComfyUI's own calculate_weight (every form it knows)."""
    offset = key[1] if isinstance(key, tuple) else None
    name = key[0] if isinstance(key, tuple) else key
    base = param.detach().float().clone()
    new = comfy.lora.calculate_weight([(strength, patch, 1.0, offset, None)], base.clone(), name, intermediate_dtype=torch.float32)
    return new - base


def model_deltas(model, loaded: dict, strength: float) -> tuple[dict, dict, int, int]:
    """(hooks, kv, touched keys, skipped keys) of a loaded LoRA on the model's layers."""
    hooks: dict[str, list[LayerDelta]] = {}
    kv: dict[str, list] = {}
    touched = skipped = 0
    base_model = model.model
    for key, patch in loaded.items():
        name = key[0] if isinstance(key, tuple) else key
        if not isinstance(name, str) or not name.startswith("diffusion_model.") or not name.endswith((".weight", ".bias")):
            continue
        path, _, which = name.rpartition(".")
        try:
            module = comfy.utils.get_attr(base_model, path)
        except AttributeError:
            continue
        param = getattr(module, which, None)
        if not isinstance(param, torch.Tensor):
            continue
        touched += 1
        is_conv = isinstance(module, torch.nn.Conv2d)
        if (
            not (isinstance(module, torch.nn.Linear) or is_conv)
            or any(part in path for part in _NOT_POSITIONAL)
            or (is_conv and (module.groups != 1 or isinstance(module.padding, str)))
        ):
            skipped += 1
            continue
        conv = (tuple(module.stride), tuple(module.padding), tuple(module.dilation)) if is_conv else None
        if which == "weight" and not isinstance(key, tuple) and _plain_lora(patch):
            up, down, alpha, _, _, _ = patch.weights
            scale = strength * (alpha / down.shape[0] if alpha is not None else 1.0)
            delta = LayerDelta(up=up.float(), down=down.float(), scale=scale, conv=conv)
        elif which == "weight":
            delta = LayerDelta(weight=_dense(patch, key, param, strength), conv=conv)
        else:
            delta = LayerDelta(bias=_dense(patch, key, param, strength), conv=conv)
        m = _KV.match(path)
        if m is not None:
            pair = kv.setdefault(m["attn"], [None, None])
            i = 0 if m["which"] == "k" else 1
            pair[i] = delta if pair[i] is None else _SumDelta(pair[i], delta)
        else:
            hooks.setdefault(path, []).append(delta)
    return hooks, {k: tuple(v) for k, v in kv.items()}, touched, skipped


class _SumDelta:
    """Two changes to one projection (its weight and its bias)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __call__(self, x, out_hw=None):
        return self.a(x) + self.b(x)


class RegionLoraCall:
    """One model call's state: the latent size, the text context and the bound LoRAs."""

    def __init__(self, loras: tuple[BoundLora, ...], latent_hw: tuple[int, int], context: torch.Tensor):
        self.loras, self.latent_hw, self.context = loras, latent_hw, context

    def region_tokens(self, layer: torch.nn.Module, core, paths: dict):
        """For Pakati's regional attention: (cache key, fn(k, v, extra) -> k, v) giving each region's own
        prompt tokens the K/V change of the LoRAs bound to that region at this layer; None when none applies."""
        path = paths.get(id(layer))
        if path is None:
            return None
        spans, deltas, key = [], [], []
        regions = core.regions.regions
        bound_spans = [(i, span) for i, span in enumerate(core._pos)] + [(i, core._neg[j]) for j, i in enumerate(core.neg_index)]
        for i, span in bound_spans:
            r = regions[i]
            rid = r.canvas.regions[r.canvas_index].id if r.canvas is not None and r.canvas_index >= 0 else None
            for lora in self.loras:
                pair = lora.kv.get(path)
                if pair is None or rid is None or lora.region_id != rid:
                    continue
                spans.append(span)
                deltas.append(pair)
                key.append((i, lora.uid))
        if not spans:
            return None
        return tuple(key), lambda k, v, extra: apply_to_tokens(k, v, extra, spans, deltas)


class RegionLoraAttn2:
    """attn2 replace for one model call: the inner attention plus each LoRA's masked K/V difference."""

    def __init__(self, call: RegionLoraCall, items: list, inner=None):
        self.call, self.items, self.inner = call, items, inner

    @property
    def plain_based(self) -> bool:
        """Whether this replace's output is ComfyUI's plain attention plus differences taken from it (no other
        replace inside): Pakati's regional attention, which computes the plain attention itself, then calls
        ``differences`` and ``add`` instead of this replace, so the plain attention is computed once."""
        return self.inner is None

    def differences(self, plain: torch.Tensor | None, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> list:
        grid = call_grid(extra_options, q.shape[1], self.call.latent_hw)
        return kv_differences(plain, q, k, v, extra_options["n_heads"], self.items, self.call.context, grid)

    @staticmethod
    def add(out: torch.Tensor, differences: list) -> torch.Tensor:
        return add_kv_differences(out, differences)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        if self.inner is not None:
            out = self.inner(q, k, v, extra_options)
            plain = None
        else:  # ComfyUI's own attention over the base tokens: the differences reuse it as attn(q, K, V)
            out = comfy_attention.optimized_attention(
                q, k, v, extra_options["n_heads"], attn_precision=extra_options.get("attn_precision"), transformer_options=extra_options
            )
            plain = out
        if out.requires_grad:
            out = out.clone()
        return add_kv_differences(out, self.differences(plain, q, k, v, extra_options))


class RegionLoraWrapper:
    """APPLY_MODEL wrapper installed by PakatiRegionLora (immutable; shared across clones)."""

    def __init__(self, loras: tuple[BoundLora, ...]):
        self.loras = loras
        self._layout: dict[int, tuple] = {}

    def __deepcopy__(self, memo):
        return self

    def with_lora(self, lora: BoundLora) -> RegionLoraWrapper:
        return RegionLoraWrapper(self.loras + (lora,))

    def layout(self, base_model) -> tuple[list, dict, dict]:
        """(hooked modules with their deltas, attn2 block key -> [(dk, dv, mask)], id(attn2) -> path), per model."""
        cached = self._layout.get(id(base_model))
        if cached is not None and cached[0] is base_model:
            return cached[1]
        per_module: dict[str, list] = {}
        per_attn: dict[str, list] = {}
        for lora in self.loras:
            if lora.mask.empty:
                continue
            for path, deltas in lora.hooks.items():
                per_module.setdefault(path, []).extend((d, lora.mask) for d in deltas)
            for path, (dk, dv) in lora.kv.items():
                per_attn.setdefault(path, []).append((dk, dv, lora.mask))
        modules = [(comfy.utils.get_attr(base_model, path), (items, {})) for path, items in per_module.items()]
        unet = base_model.diffusion_model
        paths = {id(m): n for n, m in base_model.named_modules() if n.endswith(".attn2")}
        attn = {}
        for key, layer in attn2_blocks(unet):
            items = per_attn.get(paths.get(id(layer)))
            if items:
                attn[key] = items
        out = (modules, attn, paths)
        self._layout[id(base_model)] = (base_model, out)
        return out

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
        transformer_options = transformer_options if transformer_options is not None else {}
        base_model = executor.class_obj
        modules, attn, paths = self.layout(base_model)
        if not modules and not attn:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        latent_hw = (int(x.shape[-2]), int(x.shape[-1]))
        for lora in self.loras:
            check_aspect(lora, latent_hw)
        call = RegionLoraCall(self.loras, latent_hw, c_crossattn)
        options = dict(transformer_options)
        options[OPTIONS_KEY] = _Bound(call, paths)
        if attn and c_crossattn is not None:
            options = with_attn2_replaced(options, attn, lambda key, inner: RegionLoraAttn2(call, attn[key], inner))
        handles = []
        try:
            for module, (items, cache) in modules:
                handles.append(module.register_forward_hook(_Hook(items, latent_hw, cache)))
            return executor(x, t, c_concat, c_crossattn, control, options, **kwargs)
        finally:
            for h in handles:
                h.remove()


class _Bound:
    """What Pakati's regional attention finds in ``transformer_options`` (see RegionLoraCall.region_tokens)."""

    def __init__(self, call: RegionLoraCall, paths: dict):
        self.call, self.paths = call, paths

    def region_tokens(self, layer, core):
        return self.call.region_tokens(layer, core, self.paths)


class _Hook:
    """Forward hook of one layer for one model call: ``output += Σ m ⊙ Δ(input)`` (``cache``: the layer's
    stacked low-rank factors, kept with the wrapper's layout across calls)."""

    def __init__(self, items: list, latent_hw: tuple[int, int], cache: dict):
        self.items, self.latent_hw, self.cache = items, latent_hw, cache

    def __call__(self, module, args, output):
        if not args or not isinstance(output, torch.Tensor):
            return output
        return add_masked(output, args[0], self.items, self.latent_hw, self.cache)


def check_aspect(lora: BoundLora, latent_hw: tuple[int, int]) -> None:
    from ..pakati_core.canvas import same_aspect
    from .common import PakatiNodeError

    w, h = lora.mask.size
    if not same_aspect(w, h, latent_hw[1] * 8, latent_hw[0] * 8):
        raise PakatiNodeError(
            "PakatiRegionLora",
            "mask",
            f"the mask of '{lora.name}' is {w}x{h} but the latent is {latent_hw[1] * 8}x{latent_hw[0] * 8} pixels: "
            "use a canvas or mask with the image's aspect ratio",
        )
