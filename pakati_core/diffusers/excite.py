"""(Region-aware) Attend-and-Excite for diffusers' ``StableDiffusionXLPipeline``.

    images = attend_and_excite(pipe, "a cat and a dog", ["cat", "dog"], ExciteSettings()).images
    RegionalSDXL(pipe)(canvas, "a living room", excite=ExciteSettings())   # each region's last noun, in its mask

Attend-and-Excite updates the latent before the UNet call of each excited step: step 0 on
the initial latents (passed to the pipeline as ``latents``), later steps in
``callback_on_step_end`` after the previous step (the latents it returns are the next step's).
A gradient pass runs the UNet on the conditional rows only, with the ``ExciteProcessor``
handing queries and keys to ``ExciteMaps`` and stopping the pass after the last selected
layer. Needs the optional ``diffusers`` package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch

from ..attention_maps.excite import ExciteMaps, ExciteSettings, ExciteTarget, PassComplete, excite_latent
from ..errors import AttentionMapError
from ..regional.attention import grid_shape
from .processors import IN_EXCITE_PASS, cross_attention_names, query_key, text_of, wrapped_processors
from .tokens import excite_target

DEFAULT_SETTINGS = ExciteSettings()


class _Pass:
    def __init__(self, targets: Sequence[ExciteTarget], needed: set[str]):
        self.maps = ExciteMaps(targets)
        self.needed, self.seen = needed, set()


class ExciteProcessor:
    """Inside a gradient pass: hands q and the subjects' keys to the maps, stops after the last
    selected layer; otherwise only the wrapped processor."""

    def __init__(self, exciter: Exciter, name: str, inner):
        self.exciter, self.name, self.inner = exciter, name, inner

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: Any = None, attention_mask=None, **kwargs: Any):
        state = self.exciter.current
        text = text_of(encoder_hidden_states)
        if state is not None and text is not None:
            q, k = query_key(attn, hidden_states, text)
            keys = [k if ctx is None else self.exciter.region_keys(attn, i, ctx, k) for i, ctx in enumerate(self.exciter.contexts)]
            state.maps.add(self.name, grid_shape(self.exciter.latent_hw, q.shape[1]), q, keys, attn.heads)
            state.seen.add(self.name)
            if state.needed <= state.seen:
                raise PassComplete
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, **kwargs)


class Exciter:
    """Attend-and-Excite over one pipeline run: targets, their contexts (a region's embeddings or None for the
    prompt's), how to reach the UNet, and the update. ``pass_context`` is entered around every gradient pass
    (the regional backend uses it to treat the pass's batch as conditional rows only)."""

    def __init__(
        self,
        pipe,
        targets: Sequence[ExciteTarget],
        contexts: Sequence[torch.Tensor | None],
        settings: ExciteSettings,
        prompt_embeds: torch.Tensor,
        pooled: torch.Tensor,
        time_ids: torch.Tensor,
        latent_hw: tuple[int, int],
        coverage: Callable[[int, tuple[int, int]], torch.Tensor] | None = None,
        blocks: str = "lowest resolution",
        pass_context: Callable[[], AbstractContextManager] = nullcontext,
    ):
        if len(targets) != len(contexts):
            raise AttentionMapError("one context per target", "subjects")
        if any(t.region is not None for t in targets) and coverage is None:
            raise AttentionMapError("region targets need the regions' coverage", "regions")
        self.pipe, self.targets, self.contexts, self.settings = pipe, list(targets), list(contexts), settings
        self.prompt_embeds, self.pooled, self.time_ids = prompt_embeds, pooled, time_ids
        self.latent_hw, self.coverage, self.pass_context = latent_hw, coverage, pass_context
        self.names = cross_attention_names(pipe.unet, blocks)
        if not self.names:
            raise AttentionMapError(f"the UNet has no cross-attention layer in blocks '{blocks}'", "blocks")
        self.current: _Pass | None = None
        self._keys: dict[tuple, torch.Tensor] = {}
        self.history: list[tuple[int, list[torch.Tensor]]] = []

    def region_keys(self, attn, index: int, context: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        key = (id(attn), index, str(k.device), k.dtype)
        if key not in self._keys:
            with torch.no_grad():
                ctx = context.to(device=k.device, dtype=k.dtype)
                self._keys[key] = attn.to_k(attn.norm_encoder_hidden_states(ctx) if attn.norm_cross else ctx)
        return self._keys[key]

    @contextmanager
    def installed(self) -> Iterator[Exciter]:
        """The excite processors around the UNet's current ones, for one pipeline call."""
        with wrapped_processors(self.pipe.unet, self.names, lambda n, p: ExciteProcessor(self, n, p)):
            yield self

    def _values(self, latents: torch.Tensor, t) -> torch.Tensor:
        unet = self.pipe.unet
        b = latents.shape[0]
        x_in = self.pipe.scheduler.scale_model_input(latents, t)
        cond = {
            "text_embeds": self.pooled.to(x_in.device, x_in.dtype).expand(b, -1),
            "time_ids": self.time_ids.to(x_in.device, x_in.dtype).expand(b, -1),
        }
        self.current = _Pass(self.targets, set(self.names))
        token = IN_EXCITE_PASS.set(True)
        try:
            with self.pass_context():
                unet(
                    x_in,
                    t,
                    encoder_hidden_states=self.prompt_embeds.to(x_in.device, x_in.dtype).expand(b, -1, -1),
                    added_cond_kwargs=cond,
                    return_dict=False,
                )
        except PassComplete:
            pass
        finally:
            IN_EXCITE_PASS.reset(token)
            state, self.current = self.current, None
        coverage = self.coverage or (lambda region, grid: None)
        return state.maps.values(self.settings, coverage)

    def excite(self, latents: torch.Tensor, t, step: int, total: int) -> torch.Tensor:
        """The latents of ``step`` (timestep ``t``) after Attend-and-Excite's updates (the same tensor when none was made)."""
        if step >= self.settings.steps or self.settings.scale == 0:
            return latents
        scheduler = self.pipe.scheduler
        c_in = scheduler.scale_model_input(torch.ones_like(latents[:1]), t)  # the UNet input is c_in * latents
        result = excite_latent(latents, c_in, lambda x: self._values(x, t), self.settings, step, total)
        self.history.append((step, result.values))
        return result.x

    def callback(self, pipe, i: int, t, callback_kwargs: dict) -> dict:
        """``callback_on_step_end``: excite the latents the next step starts from."""
        timesteps = pipe.scheduler.timesteps
        nxt = i + 1
        if nxt < len(timesteps) and nxt < self.settings.steps:
            callback_kwargs["latents"] = self.excite(callback_kwargs["latents"], timesteps[nxt], nxt, len(timesteps))
        return callback_kwargs


def time_ids(pipe, width: int, height: int, pipe_kwargs: Mapping[str, Any]) -> torch.Tensor:
    """SDXL's micro-conditioning ids as the pipeline builds them for the conditional rows: ``[1, 6]``."""
    original = tuple(pipe_kwargs.get("original_size") or (height, width))
    crop = tuple(pipe_kwargs.get("crops_coords_top_left") or (0, 0))
    target = tuple(pipe_kwargs.get("target_size") or (height, width))
    return torch.tensor([list(original + crop + target)], dtype=torch.float32)


def run_excited(
    pipe,
    exciter: Exciter,
    width: int,
    height: int,
    num_inference_steps: int = 50,
    generator=None,
    num_images_per_prompt: int = 1,
    **pipe_kwargs: Any,
):
    """Run ``pipe`` with Attend-and-Excite: the initial latents excited for step 0, the rest in the step callback.

    ``pipe_kwargs`` go to the pipeline (embeddings, guidance scale...); a ``callback_on_step_end``
    of the caller's own runs after the excite one.
    """
    from diffusers.utils.torch_utils import randn_tensor

    if "latents" in pipe_kwargs or "timesteps" in pipe_kwargs or "sigmas" in pipe_kwargs or "denoising_end" in pipe_kwargs:
        raise AttentionMapError(
            "Attend-and-Excite makes the initial latents and follows the default schedule: "
            "leave out latents, timesteps, sigmas and denoising_end",
            "pipe_kwargs",
        )
    unet = pipe.unet
    device = getattr(pipe, "_execution_device", None) or pipe.device
    batch = exciter.prompt_embeds.shape[0] * num_images_per_prompt
    shape = (batch, unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    noise = randn_tensor(shape, generator=generator, device=device, dtype=exciter.prompt_embeds.dtype)  # as prepare_latents draws it
    scheduler = pipe.scheduler
    scheduler.set_timesteps(num_inference_steps, device=device)
    sigma0 = scheduler.init_noise_sigma
    user = pipe_kwargs.pop("callback_on_step_end", None)
    inputs = list(dict.fromkeys(["latents", *pipe_kwargs.pop("callback_on_step_end_tensor_inputs", ["latents"])]))

    def callback(p, i, t, kwargs):
        kwargs = exciter.callback(p, i, t, kwargs)
        return user(p, i, t, kwargs) if user is not None else kwargs

    with exciter.installed():
        start = noise * sigma0
        first = exciter.excite(start, scheduler.timesteps[0], 0, len(scheduler.timesteps))
        latents = noise if first is start else first / sigma0  # the pipeline multiplies by init_noise_sigma again
        return pipe(
            width=width,
            height=height,
            num_inference_steps=num_inference_steps,
            generator=generator,
            latents=latents,
            num_images_per_prompt=num_images_per_prompt,
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=inputs,
            **pipe_kwargs,
        )


def attend_and_excite(
    pipe,
    prompt: str,
    words: Sequence[str],
    settings: ExciteSettings = DEFAULT_SETTINGS,
    negative_prompt: str = "",
    width: int | None = None,
    height: int | None = None,
    blocks: str = "lowest resolution",
    **pipe_kwargs: Any,
):
    """Plain Attend-and-Excite: ``words`` of ``prompt`` excited over the whole image."""
    if not words:
        raise AttentionMapError("give at least one word of the prompt to excite", "words")
    size = pipe.default_sample_size * pipe.vae_scale_factor
    width, height = width or size, height or size
    device = getattr(pipe, "_execution_device", None) or pipe.device
    pos, neg, pooled, neg_pooled = pipe.encode_prompt(
        prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True, negative_prompt=negative_prompt or None
    )
    targets = [excite_target(pipe, prompt, w) for w in words]
    exciter = Exciter(
        pipe,
        targets,
        [None] * len(targets),
        settings,
        pos,
        pooled,
        time_ids(pipe, width, height, pipe_kwargs),
        (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor),
        blocks=blocks,
    )
    return run_excited(
        pipe,
        exciter,
        width,
        height,
        prompt_embeds=pos,
        negative_prompt_embeds=neg,
        pooled_prompt_embeds=pooled,
        negative_pooled_prompt_embeds=neg_pooled,
        **pipe_kwargs,
    )
