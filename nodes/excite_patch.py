"""Adapts ``pakati_core.attention_maps.excite`` (region-aware Attend-and-Excite) to ComfyUI's sampling.

A keyed ``PREDICT_NOISE`` wrapper runs at every model evaluation the sampler asks for, with
the sampler's own latent ``x``. At the first evaluation of each of the first N steps it runs
extra model passes on the positive conditioning alone, with gradients on (ComfyUI samples
under ``torch.inference_mode``: the passes switch it off and read inference tensors through
normal clones), and moves ``x`` *in place* down the gradient of the excite loss, so the
model call that follows and the sampler's step use the nudged latent, as Attend-and-Excite
updates ``z_t`` before predicting noise from it. (With a denoise mask, KSampler hands the
model a blended copy, so the nudge then reaches that step's prediction only.)

In those passes an ``ExciteAttn2`` on each selected cross-attention layer hands the queries
and keys to ``ExciteMaps``; after the last selected layer it stops the pass (the rest of the
UNet is not run). The passes go through the model's ``APPLY_MODEL`` wrappers, so Pakati
Apply Regions renders regions in them exactly as in sampling (it wraps ``ExciteAttn2`` like
any other attn2 replace); the attention capture skips them (the option
``EXCITE_PASS_OPTION`` marks them), so a capture records only the sampler's own calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import comfy.ldm.modules.attention as comfy_attention
import comfy.model_management
import comfy.samplers
import comfy.utils
import torch

from ..pakati_core.attention_maps import ExciteMaps, ExciteSettings, ExciteTarget, PassComplete, excite_latent
from ..pakati_core.regional import RegionalAttention
from .attention_patch import BLOCK_CHOICES, EXCITE_PASS_OPTION
from .common import PakatiNodeError, checked
from .unet import attn2_blocks, block_levels, call_grid, with_attn2_replaced

log = logging.getLogger("pakati")

WRAPPER_KEY = "pakati_excite"
LOWEST = "lowest resolution"
EXCITE_BLOCKS = (LOWEST, *BLOCK_CHOICES)
NODE = "PakatiAttendExcite"


@dataclass(frozen=True)
class Subject:
    """A target and the context its token sits in: a region's prompt (``context``) or the sampler's base prompt (None)."""

    target: ExciteTarget
    context: torch.Tensor | None = None


def selected_blocks(unet: torch.nn.Module, blocks: str) -> list[tuple[tuple[str, int, int], torch.nn.Module]]:
    """The (key, attn2 module) pairs of the chosen blocks, in forward order."""
    found = attn2_blocks(unet)
    if blocks == LOWEST:
        levels = block_levels(unet)
        deepest = max(levels.values(), default=0)
        return [(key, layer) for key, layer in found if levels[key] == deepest]
    return [(key, layer) for key, layer in found if key[0] in BLOCK_CHOICES[blocks]]


class ExcitePass:
    """One gradient pass: the maps being filled, the layers still to come, region keys per layer (run-scoped cache)."""

    def __init__(self, subjects: list[Subject], needed: set, latent_hw: tuple[int, int], key_cache: dict):
        self.subjects, self.needed, self.latent_hw, self.key_cache = subjects, needed, latent_hw, key_cache
        self.maps = ExciteMaps([s.target for s in subjects])
        self.seen: set = set()

    def keys(self, layer: torch.nn.Module, k: torch.Tensor) -> list[torch.Tensor]:
        """Per subject, the keys of its context at ``layer``: the sampler's (``k``) or the region prompt's."""
        out = []
        for i, s in enumerate(self.subjects):
            if s.context is None:
                out.append(k)
                continue
            key = (id(layer), i, str(k.device), k.dtype)
            if key not in self.key_cache:
                with torch.no_grad():
                    self.key_cache[key] = layer.to_k(s.context.to(device=k.device, dtype=k.dtype))
            out.append(self.key_cache[key])
        return out


class ExciteAttn2:
    """attn2 replace inside an excite pass: hands q and the subjects' keys to the maps, then attends as before."""

    def __init__(self, state: ExcitePass, key: tuple, layer: torch.nn.Module, inner=None):
        self.state, self.key, self.layer, self.inner = state, key, layer, inner

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict) -> torch.Tensor:
        st = self.state
        chunks = len(extra_options.get("cond_or_uncond") or [0])
        grid = call_grid(extra_options, q.shape[1], st.latent_hw)
        st.maps.add(self.key, grid, q, st.keys(self.layer, k), extra_options["n_heads"], chunks)
        st.seen.add(self.key)
        if st.needed <= st.seen:
            raise PassComplete  # every selected layer is in: the rest of the UNet is not needed
        if self.inner is not None:
            return self.inner(q, k, v, extra_options)
        return comfy_attention.optimized_attention(
            q, k, v, extra_options["n_heads"], attn_precision=extra_options.get("attn_precision"), transformer_options=extra_options
        )


@dataclass
class RunState:
    done: set = field(default_factory=set)
    key_cache: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # (step, [targets, B] values before each update), for tests and logs


class ExciteWrapper:
    """PREDICT_NOISE wrapper installed by PakatiAttendExcite (shared across clones)."""

    def __init__(self, subjects: list[Subject], settings: ExciteSettings, blocks: str, regions: RegionalAttention | None):
        self.subjects, self.settings, self.blocks, self.regions = subjects, settings, blocks, regions
        self.run = RunState()

    def __deepcopy__(self, memo):
        return self

    def coverage(self, latent_hw: tuple[int, int]):
        def at(region: int, grid: tuple[int, int]) -> torch.Tensor:
            return self.regions.grid_masks(*latent_hw, *grid)[region]

        return at

    def step_of(self, model_options: dict, timestep: torch.Tensor) -> tuple[int | None, int]:
        sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        if sigmas is None:
            return None, 0
        hits = torch.isclose(sigmas.to(timestep.device, torch.float32), timestep.flatten()[0].float(), rtol=1e-4, atol=0.0).nonzero()
        return (int(hits[0]) if len(hits) else None), len(sigmas) - 1

    def __call__(self, executor, x, timestep, model_options={}, seed=None):
        step, total = self.step_of(model_options, timestep)
        guider = executor.class_obj
        positive = getattr(guider, "conds", {}).get("positive")
        if (
            step is None
            or step >= self.settings.steps
            or step in self.run.done
            or positive is None
            or x.ndim != 4
            or self.settings.scale == 0
        ):
            return executor(x, timestep, model_options, seed)
        self.run.done.add(step)
        model = guider.inner_model
        unet = model.diffusion_model
        chosen = self.run.blocks.get(id(unet))
        if chosen is None:
            chosen = self.run.blocks[id(unet)] = selected_blocks(unet, self.blocks)
        if not chosen:
            raise PakatiNodeError(NODE, "blocks", f"the model has no cross-attention layer in blocks '{self.blocks}'")
        latent_hw = (int(x.shape[-2]), int(x.shape[-1]))
        if self.regions is not None:
            checked(NODE, "regions", lambda: self.regions.reference_masks(*latent_hw))
        coverage = self.coverage(latent_hw)

        def run_pass(x_in: torch.Tensor) -> torch.Tensor:
            state = ExcitePass(self.subjects, {key for key, _ in chosen}, latent_hw, self.run.key_cache)
            options = dict(model_options)
            layers = dict(chosen)
            topts = with_attn2_replaced(
                options.get("transformer_options", {}), layers, lambda key, inner: ExciteAttn2(state, key, layers[key], inner)
            )
            topts[EXCITE_PASS_OPTION] = True
            options["transformer_options"] = topts
            try:
                comfy.samplers.calc_cond_batch(model, [positive], x_in, timestep, options)
            except PassComplete:
                pass
            return checked(NODE, "subjects", lambda: state.maps.values(self.settings, coverage))

        bar = comfy.utils.ProgressBar(self.settings.iterations)
        c_in = model.model_sampling.calculate_input(timestep, torch.ones_like(x))
        result = checked(
            NODE,
            "scale",
            lambda: excite_latent(
                x,
                c_in,
                run_pass,
                self.settings,
                step,
                total,
                check=comfy.model_management.throw_exception_if_processing_interrupted,
                progress=lambda done, of: bar.update_absolute(done, of),
            ),
        )
        self.run.history.append((step, result.values))
        if result.updates:
            with torch.no_grad():
                x.copy_(result.x)  # the sampler's own latent: its step continues from the nudged one
        first, last = result.values[0].amin(0), result.values[-1].amin(0)
        log.info(
            "Pakati Attend-and-Excite step %d/%d: %d update(s), weakest subject %s -> %s",
            step + 1,
            total,
            result.updates,
            [round(float(v), 3) for v in first],
            [round(float(v), 3) for v in last],
        )
        return executor(x, timestep, model_options, seed)


class ExciteRun:
    """OUTER_SAMPLE wrapper: each sampler run excites its own first steps again."""

    def __init__(self, wrapper: ExciteWrapper):
        self.wrapper = wrapper

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, *args, **kwargs):
        self.wrapper.run = RunState()
        denoise_mask = args[4] if len(args) > 4 else kwargs.get("denoise_mask")
        if denoise_mask is not None:
            log.warning(
                "Pakati Attend-and-Excite: the latent has a noise mask; KSampler then hands the model a blended copy, "
                "so each nudge reaches that step's prediction but not the sampler's latent"
            )
        return executor(*args, **kwargs)


def install(model, subjects: list[Subject], settings: ExciteSettings, blocks: str, regions: RegionalAttention | None):
    """A clone of ``model`` that excites ``subjects`` during the first ``settings.steps`` steps of every run."""
    patched = model.clone()
    wrapper = ExciteWrapper(subjects, settings, blocks, regions)
    for kind, fn in (("predict_noise", wrapper), ("outer_sample", ExciteRun(wrapper))):
        patched.remove_wrappers_with_key(kind, WRAPPER_KEY)
        patched.add_wrapper_with_key(kind, WRAPPER_KEY, fn)
    return patched
