"""Attention capture and (region-aware) Attend-and-Excite for diffusers' ``StableDiffusionXLPipeline``.

The same ``AttentionRecorder`` and ``ExciteMaps`` as the ComfyUI nodes, as attention
processors that wrap whatever processor each cross-attention layer (``attn2``) has (diffusers'
own, IP-Adapter's, Pakati's regional one), for the duration of a block:

    rec = AttentionRecorder(["cat"], [word_positions_in(pipe, prompt, "cat")])
    with capture_attention(pipe.unet, rec, latent_hw=(128, 128)):
        pipe(prompt, num_inference_steps=30)
    rec.word_map("cat")                      # [B, 128, 128]

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

import contextvars
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator, Mapping, Sequence

import torch

from ..errors import AttentionMapError
from ..regional.attention import grid_shape
from .excite import ExciteMaps, ExciteSettings, ExciteTarget, PassComplete, excite_latent
from .recorder import AttentionRecorder
from .tokens import word_positions

BLOCKS = {"lowest resolution": None, "all": ("input", "middle", "output"), "input": ("input",), "middle": ("middle",),
          "output": ("output",), "middle+output": ("middle", "output")}
_IN_EXCITE_PASS: contextvars.ContextVar[bool] = contextvars.ContextVar("pakati_excite_pass", default=False)


# -- tokens ---------------------------------------------------------------------------------------


def _tokenizers(pipe) -> dict[str, Any]:
    return {name: tok for name, tok in (("l", getattr(pipe, "tokenizer", None)), ("g", getattr(pipe, "tokenizer_2", None))) if tok is not None}


def prompt_token_ids(pipe, text: str) -> dict[str, list[list[int]]]:
    """Per tokenizer, the ids of the prompt as ``encode_prompt`` tokenises it (one padded chunk)."""
    return {name: [list(tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids)]
            for name, tok in _tokenizers(pipe).items()}


def word_positions_in(pipe, text: str, word: str, field: str = "words") -> list[int]:
    """Context positions of ``word``'s sub-tokens in ``text`` (both tokenizers)."""
    words = {name: list(tok(word, add_special_tokens=False).input_ids) for name, tok in _tokenizers(pipe).items()}
    return word_positions(prompt_token_ids(pipe, text), words, field)


def text_positions_in(pipe, text: str) -> list[int]:
    """Context positions of the prompt's word tokens (no start, end or padding)."""
    found: set[int] = set()
    for name, tok in _tokenizers(pipe).items():
        n = len(tok(text, add_special_tokens=False, truncation=True, max_length=tok.model_max_length - 2).input_ids)
        found.update(range(1, 1 + n))
    return sorted(found)


def excite_target(pipe, text: str, word: str, region: int | None = None, name: str | None = None) -> ExciteTarget:
    """The target for ``word`` of ``text`` (a region's prompt with ``region``, else the base prompt)."""
    positions = word_positions_in(pipe, text, word, "subjects")
    return ExciteTarget(name or word, tuple(positions), tuple(text_positions_in(pipe, text)), region)


# -- layers ---------------------------------------------------------------------------------------


def _block_of(name: str) -> tuple[str, int]:
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
        kind, i = _block_of(name)
        return depth if kind == "middle" else (i if kind == "input" else depth - i)

    if BLOCKS[blocks] is None:
        deepest = max((level(n) for n in names), default=0)
        return [n for n in names if level(n) == deepest]
    return [n for n in names if _block_of(n)[0] in BLOCKS[blocks]]


def _qk(attn, hidden_states: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if attn.norm_cross:
        text = attn.norm_encoder_hidden_states(text)
    return attn.to_q(hidden_states), attn.to_k(text)


def _text(encoder_hidden_states: Any) -> torch.Tensor | None:
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


# -- capture --------------------------------------------------------------------------------------


class CaptureProcessor:
    """Records the conditional rows' cross-attention of the watched words, then runs the wrapped processor unchanged."""

    def __init__(self, recorder: AttentionRecorder, name: str, inner, latent_hw: tuple[int, int], cfg: bool):
        self.recorder, self.name, self.inner, self.latent_hw, self.cfg = recorder, name, inner, latent_hw, cfg

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: Any = None, attention_mask=None, **kwargs: Any):
        text = _text(encoder_hidden_states)
        if text is not None and not _IN_EXCITE_PASS.get() and hidden_states.ndim == 3:
            b = hidden_states.shape[0]
            rows = slice(b // 2, b) if self.cfg else slice(0, b)  # diffusers batches [uncond, cond]
            with torch.no_grad():
                q, k = _qk(attn, hidden_states[rows], text[rows])
            self.recorder.record(self.name, q, k, attn.heads, 1, grid_shape(self.latent_hw, q.shape[1]), self.latent_hw)
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, **kwargs)


@contextmanager
def capture_attention(unet: torch.nn.Module, recorder: AttentionRecorder, latent_hw: tuple[int, int], cfg: bool = True,
                      blocks: str = "all") -> Iterator[AttentionRecorder]:
    """Record into ``recorder`` (a fresh run) during the block; ``cfg``: the pipeline batches [uncond, cond] (guidance > 1)."""
    recorder.begin_run()
    try:
        with wrapped_processors(unet, cross_attention_names(unet, blocks), lambda n, p: CaptureProcessor(recorder, n, p, latent_hw, cfg)):
            yield recorder
    finally:
        recorder.end_run()


# -- Attend-and-Excite ----------------------------------------------------------------------------


class _Pass:
    def __init__(self, targets: Sequence[ExciteTarget], needed: set[str]):
        self.maps = ExciteMaps(targets)
        self.needed, self.seen = needed, set()


class ExciteProcessor:
    """Inside a gradient pass: hands q and the subjects' keys to the maps, stops after the last selected layer; otherwise only the wrapped processor."""

    def __init__(self, exciter: "Exciter", name: str, inner):
        self.exciter, self.name, self.inner = exciter, name, inner

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: Any = None, attention_mask=None, **kwargs: Any):
        state = self.exciter.current
        text = _text(encoder_hidden_states)
        if state is not None and text is not None:
            q, k = _qk(attn, hidden_states, text)
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

    def __init__(self, pipe, targets: Sequence[ExciteTarget], contexts: Sequence[torch.Tensor | None], settings: ExciteSettings,
                 prompt_embeds: torch.Tensor, pooled: torch.Tensor, time_ids: torch.Tensor, latent_hw: tuple[int, int],
                 coverage: Callable[[int, tuple[int, int]], torch.Tensor] | None = None, blocks: str = "lowest resolution",
                 pass_context: Callable[[], ContextManager] = nullcontext):
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
    def installed(self) -> Iterator["Exciter"]:
        """The excite processors around the UNet's current ones, for one pipeline call."""
        with wrapped_processors(self.pipe.unet, self.names, lambda n, p: ExciteProcessor(self, n, p)):
            yield self

    def _values(self, latents: torch.Tensor, t) -> torch.Tensor:
        unet = self.pipe.unet
        b = latents.shape[0]
        x_in = self.pipe.scheduler.scale_model_input(latents, t)
        cond = {"text_embeds": self.pooled.to(x_in.device, x_in.dtype).expand(b, -1), "time_ids": self.time_ids.to(x_in.device, x_in.dtype).expand(b, -1)}
        self.current = _Pass(self.targets, set(self.names))
        token = _IN_EXCITE_PASS.set(True)
        try:
            with self.pass_context():
                unet(x_in, t, encoder_hidden_states=self.prompt_embeds.to(x_in.device, x_in.dtype).expand(b, -1, -1),
                     added_cond_kwargs=cond, return_dict=False)
        except PassComplete:
            pass
        finally:
            _IN_EXCITE_PASS.reset(token)
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


def run_excited(pipe, exciter: Exciter, width: int, height: int, num_inference_steps: int = 50, generator=None,
                num_images_per_prompt: int = 1, **pipe_kwargs: Any):
    """Run ``pipe`` with Attend-and-Excite: the initial latents excited for step 0, the rest in the step callback.

    ``pipe_kwargs`` go to the pipeline (embeddings, guidance scale...); a ``callback_on_step_end``
    of the caller's own runs after the excite one.
    """
    from diffusers.utils.torch_utils import randn_tensor

    if "latents" in pipe_kwargs or "timesteps" in pipe_kwargs or "sigmas" in pipe_kwargs or "denoising_end" in pipe_kwargs:
        raise AttentionMapError("Attend-and-Excite makes the initial latents and follows the default schedule: "
                                "leave out latents, timesteps, sigmas and denoising_end", "pipe_kwargs")
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
        return pipe(width=width, height=height, num_inference_steps=num_inference_steps, generator=generator, latents=latents,
                    num_images_per_prompt=num_images_per_prompt, callback_on_step_end=callback,
                    callback_on_step_end_tensor_inputs=inputs, **pipe_kwargs)


def attend_and_excite(pipe, prompt: str, words: Sequence[str], settings: ExciteSettings = ExciteSettings(), negative_prompt: str = "",
                      width: int | None = None, height: int | None = None, blocks: str = "lowest resolution", **pipe_kwargs: Any):
    """Plain Attend-and-Excite: ``words`` of ``prompt`` excited over the whole image."""
    if not words:
        raise AttentionMapError("give at least one word of the prompt to excite", "words")
    size = pipe.default_sample_size * pipe.vae_scale_factor
    width, height = width or size, height or size
    device = getattr(pipe, "_execution_device", None) or pipe.device
    pos, neg, pooled, neg_pooled = pipe.encode_prompt(prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True,
                                                      negative_prompt=negative_prompt or None)
    targets = [excite_target(pipe, prompt, w) for w in words]
    exciter = Exciter(pipe, targets, [None] * len(targets), settings, pos, pooled, time_ids(pipe, width, height, pipe_kwargs),
                      (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor), blocks=blocks)
    return run_excited(pipe, exciter, width, height, prompt_embeds=pos, negative_prompt_embeds=neg, pooled_prompt_embeds=pooled,
                       negative_pooled_prompt_embeds=neg_pooled, **pipe_kwargs)
