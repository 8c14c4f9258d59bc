"""Adapts ``pakati_core.regional.joint`` to ComfyUI's Flux: the same regional nodes, joint attention.

``PakatiRegionalConditioning`` and ``PakatiApplyRegions`` detect the model family here and,
for Flux, encode region prompts with the Flux CLIP (T5 + CLIP-L; T5 tokens trimmed to their real
length) and patch the model so that at each model call:

* a keyed ``APPLY_MODEL`` wrapper appends every region's tokens to the sampler's text tokens
  (the base prompt, which also gives the pooled vector and, through FluxGuidance, the guidance);
* a ``patches_replace["dit"]`` entry on every double and single block hands the block the joint
  attention bias from ``JointRegionalAttention`` (regional on the first ``depth`` fraction of the
  blocks, quiet on the rest), added to any attention mask the conditioning already carries, and
  calls whatever replace was there before (or the original block);
* attention backends that cannot take a mask (flash-attn, SageAttention) are swapped for PyTorch
  SDPA in those blocks, through ComfyUI's ``optimized_attention_override``, with one log line.
"""

from __future__ import annotations

import logging

import comfy.ldm.modules.attention as comfy_attention
import comfy.model_base
import torch

from ..pakati_core.canvas import Canvas
from ..pakati_core.regional import RegionalOptions, RegionSet
from ..pakati_core.regional.joint import JointGeometry, JointRegionalAttention, flux_grid, real_token_count
from .common import PakatiNodeError, canvas_regions, checked
from .regional_patch import WRAPPER_KEY, checked_call, finite_prediction
from .unet import in_schedule_range, with_replaced

log = logging.getLogger("pakati")

SUPPORTED = "SDXL and Flux"
MASKLESS_BACKENDS = ("attention_sage", "attention_flash")  # ComfyUI's fast paths that cannot apply an arbitrary bias
_fallback_logged: set[str] = set()


def clip_family(clip) -> str:
    """'flux', 'sdxl', or a name for a text encoder Pakati's regions do not support yet."""
    import comfy.sd1_clip
    import comfy.sdxl_clip
    import comfy.text_encoders.flux
    import comfy.text_encoders.sd3_clip

    model = clip.cond_stage_model
    if isinstance(model, comfy.text_encoders.flux.FluxClipModel):
        return "flux"
    if isinstance(model, comfy.sdxl_clip.SDXLClipModel):
        return "sdxl"
    if isinstance(model, comfy.text_encoders.sd3_clip.SD3ClipModel):
        return "SD3 (MMDiT)"
    if isinstance(model, comfy.sdxl_clip.SDXLRefinerClipModel):
        return "SDXL refiner"
    if isinstance(model, comfy.sd1_clip.SD1ClipModel):
        return "SD 1.x/2.x"
    return type(model).__name__


def model_family(model) -> str:
    """'flux', 'sdxl', or a name for a model family Pakati's regions do not support yet."""
    base = model.model
    if isinstance(base, comfy.model_base.Flux):
        return "flux"
    if isinstance(base, comfy.model_base.SDXL):
        return "sdxl"
    config = getattr(base, "model_config", None)
    if config is not None and config.unet_config.get("context_dim") == 2048 and hasattr(base.diffusion_model, "input_blocks"):
        return "sdxl"  # an SDXL-shaped UNet under another model class
    names = {comfy.model_base.SD3: "SD3 (MMDiT)", comfy.model_base.SDXLRefiner: "SDXL refiner"}
    for cls, name in names.items():
        if isinstance(base, cls):
            return name
    return type(config).__name__ if config is not None else type(base).__name__


def unsupported(node: str, input_name: str, family: str) -> PakatiNodeError:
    return PakatiNodeError(
        node, input_name, f"the {family} model family is not supported by Pakati's regional prompting yet (supported: {SUPPORTED})"
    )


# -- encoding ------------------------------------------------------------------------------


def t5_real_tokens(clip, tokens: dict) -> int:
    """Real (non-padding) T5 tokens of a tokenised Flux prompt, end token included."""
    pad = clip.tokenizer.t5xxl.pad_token
    ids = [int(t[0]) for batch in tokens["t5xxl"] for t in batch]
    return real_token_count(ids, pad)


def encode_trimmed(clip, text: str) -> torch.Tensor:
    """A region prompt's T5 tokens, encoded exactly as the base prompt is and cut to their real length."""
    tokens = clip.tokenize(text)
    cond = clip.encode_from_tokens(tokens)
    return cond[:, : t5_real_tokens(clip, tokens)]


def encode_flux(node: str, clip, canvas: Canvas, base_prompt: str, base_negative: str):
    """(regions, positive, negative) for a Flux CLIP: base prompt in full, regions trimmed."""
    base_tokens = clip.tokenize(base_prompt)
    positive = clip.encode_from_tokens_scheduled(base_tokens)
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(base_negative))
    encoded = canvas_regions(node, canvas, lambda text: encode_trimmed(clip, text))
    regions = RegionSet(encoded.regions, family="flux", base_real_tokens=t5_real_tokens(clip, base_tokens))
    return regions, positive, negative


# -- patching ------------------------------------------------------------------------------


def apply_flux(
    node: str, model, regions: RegionSet, base_weight: float, auto_negative: float, start_percent: float, end_percent: float, depth: float
):
    """A clone of ``model`` whose sampler renders each region's prompt inside its mask."""
    patched = model.clone()
    context_dim = model.model.model_config.unet_config.get("context_in_dim")
    if regions.family != "flux" or (context_dim is not None and context_dim != regions.embed_dim):
        raise PakatiNodeError(
            node,
            "regions",
            f"the regions were encoded for {regions.family} (embedding size {regions.embed_dim}) but the model is Flux "
            f"(text embedding size {context_dim}); encode them with the Flux model's CLIP in Pakati Regional Conditioning",
        )
    options = RegionalOptions(base_weight=base_weight, auto_negative=auto_negative)
    core = checked(node, "regions", lambda: JointRegionalAttention(regions, options, depth=depth))
    patched.remove_wrappers_with_key("apply_model", WRAPPER_KEY)
    patched.remove_wrappers_with_key("outer_sample", WRAPPER_KEY)
    patched.add_wrapper_with_key("apply_model", WRAPPER_KEY, FluxRegionalWrapper(core, start_percent, end_percent))
    return patched


def attention_override(previous):
    """ComfyUI ``optimized_attention_override`` for masked blocks: mask-less fast paths go to PyTorch SDPA."""

    def override(func, *args, **kwargs):
        if kwargs.get("mask") is not None and getattr(func, "__name__", "") in MASKLESS_BACKENDS:
            if func.__name__ not in _fallback_logged:
                _fallback_logged.add(func.__name__)
                log.info(
                    "Pakati: %s cannot take the regional attention mask; Flux blocks with regions use PyTorch SDPA instead", func.__name__
                )
            func = comfy_attention.attention_pytorch
        return previous(func, *args, **kwargs) if previous is not None else func(*args, **kwargs)

    return override


def embed_mask(mask: torch.Tensor, base_tokens: int, extra: int, length: int, dtype: torch.dtype) -> torch.Tensor:
    """An attention mask the conditioning carried (over base text + image) laid out over the extended sequence."""
    if mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
    while mask.ndim < 3:
        mask = mask.unsqueeze(0)
    lead = mask.shape[:-2]
    old = mask.shape[-1]
    if old + extra != length:
        raise PakatiNodeError(
            "PakatiApplyRegions", "model", f"the conditioning's attention mask covers {old} tokens, the Flux sequence has {length - extra}"
        )
    out = torch.zeros((*lead, length, length), dtype=dtype, device=mask.device)
    t, e = base_tokens, base_tokens + extra
    m = mask.to(dtype)
    out[..., :t, :t] = m[..., :t, :t]
    out[..., :t, e:] = m[..., :t, t:]
    out[..., e:, :t] = m[..., t:, :t]
    out[..., e:, e:] = m[..., t:, t:]
    return out


class CallState:
    """What every block of one model call shares: row kinds, geometry, options with the override."""

    def __init__(self, core: JointRegionalAttention, kinds: tuple, base_tokens: int, latent_hw: tuple[int, int], options: dict):
        self.core, self.kinds, self.base_tokens, self.latent_hw = core, kinds, base_tokens, latent_hw
        self.grid = flux_grid(latent_hw)
        self.options = options

    def bias(self, total: int, regional: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        grid = self.grid[0] * self.grid[1]
        other = total - self.base_tokens - self.core.extra_tokens - grid
        if other < 0:
            raise PakatiNodeError(
                "PakatiApplyRegions",
                "model",
                f"the Flux sequence has {total} tokens, fewer than text plus a {self.grid[0]}x{self.grid[1]} image grid",
            )
        geometry = JointGeometry(self.base_tokens, self.latent_hw, self.grid, other)
        return self.core.bias(self.kinds, geometry, regional, device, dtype)


class JointBlock:
    """``patches_replace["dit"]`` entry of one Flux block for one model call."""

    def __init__(self, state: CallState, regional: bool, double: bool, inner=None):
        self.state, self.regional, self.double, self.inner = state, regional, double, inner

    def __call__(self, args: dict, extra: dict) -> dict:
        img = args["img"]
        total = img.shape[1] + (args["txt"].shape[1] if self.double else 0)
        bias = self.state.bias(total, self.regional, img.device, img.dtype)
        given = args.get("attn_mask")
        if given is not None:
            bias = bias + embed_mask(given.to(img.device), self.state.base_tokens, self.state.core.extra_tokens, total, img.dtype)
        args = dict(args, attn_mask=bias, transformer_options=self.state.options)
        if self.inner is not None:
            return self.inner(args, extra)
        return extra["original_block"](args)


class FluxRegionalWrapper:
    """APPLY_MODEL wrapper installed by PakatiApplyRegions on a Flux model (immutable; shared across clones)."""

    def __init__(self, core: JointRegionalAttention, start_percent: float, end_percent: float):
        self.core = core
        self.start_percent, self.end_percent = start_percent, end_percent

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
        transformer_options = transformer_options or {}
        model = executor.class_obj
        if c_crossattn is None or not in_schedule_range(model, t, self.start_percent, self.end_percent):
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        latent_hw = checked_call(int(self.core.extra.shape[-1]), c_crossattn, x, "Flux", self.core.core.reference_masks)
        chunks = transformer_options.get("cond_or_uncond") or [0]
        per = x.shape[0] // len(chunks)
        uncond = "uncond" if self.core.regionalises_uncond else None
        kinds = tuple(kind for c in chunks for kind in [("cond" if c == 0 else uncond)] * per)
        extra = self.core.extra_context(c_crossattn.device, c_crossattn.dtype).expand(c_crossattn.shape[0], -1, -1)
        context = torch.cat([c_crossattn, extra], dim=1)
        options = dict(transformer_options)
        options["optimized_attention_override"] = attention_override(transformer_options.get("optimized_attention_override"))
        net = model.diffusion_model
        n_double, n_single = len(net.double_blocks), len(net.single_blocks)
        masked = self.core.masked_blocks(n_double + n_single)
        state = CallState(self.core, kinds, int(c_crossattn.shape[1]), latent_hw, options)  # sees the patches set below
        keys = [("double_block", i) for i in range(n_double)] + [("single_block", i) for i in range(n_single)]
        position = {key: n for n, key in enumerate(keys)}
        options.update(
            with_replaced(
                options, "dit", keys, lambda key, inner: JointBlock(state, position[key] < masked, key[0] == "double_block", inner)
            )
        )
        return finite_prediction(executor(x, t, c_concat, context, control, options, **kwargs), t)
