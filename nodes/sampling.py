"""The host's sampler as the core's loops need it: encode pixels, sample (with a noise mask or at a
denoise), decode; the path ``KSampler`` takes (``comfy.sample.sample``). Refinement's regenerator and
understanding's reconstructor both sample through :func:`sample_pixels`."""

from __future__ import annotations

from collections.abc import Callable

import comfy.model_management
import comfy.sample
import numpy as np
import torch

from .common import require_finite_tensor


class PromptEncoder:
    """A CLIP's conditioning for prompt texts, each text encoded once."""

    def __init__(self, clip):
        self.clip = clip
        self._cache: dict[str, list] = {}

    def __call__(self, text: str) -> list:
        if text not in self._cache:
            self._cache[text] = self.clip.encode_from_tokens_scheduled(self.clip.tokenize(text))
        return self._cache[text]


def append_tokens(conditioning: list, extra: list) -> list:
    """``conditioning`` with the first entry of ``extra``'s tokens appended to each of its entries, as
    ConditioningConcat does (the pooled output and other options stay the original's)."""
    tokens = extra[0][0]
    return [[torch.cat((c, tokens.to(c.device, c.dtype)), 1), dict(d)] for c, d in conditioning]


@torch.no_grad()
def sample_pixels(
    node: str,
    model,
    vae,
    image: np.ndarray,
    positive,
    negative,
    *,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    denoise: float = 1.0,
    mask: np.ndarray | None = None,
    on_step: Callable[[int, int], None] | None = None,
    what: tuple[str, str] = ("the image", "the result"),
) -> np.ndarray:
    """``image`` (float ``H x W x 3``) VAE-encoded, sampled with ``mask`` as the noise mask (SetLatentNoiseMask
    semantics) or at ``denoise``, and decoded: float32 ``H' x W' x 3`` (the VAE's size). NaN/Inf at any stage
    stop with an error naming ``node`` and the input to blame; ComfyUI's interrupt is honoured at every step.
    ``what`` names the encoded input and the decoded output in those errors."""
    pixels = torch.from_numpy(np.ascontiguousarray(image[..., :3], np.float32))[None]
    latent = vae.encode(pixels)
    require_finite_tensor(node, "vae", latent, f"the VAE-encoded {what[0].removeprefix('the ')}")
    latent = comfy.sample.fix_empty_latent_channels(model, latent)
    noise = comfy.sample.prepare_noise(latent, seed)
    noise_mask = None if mask is None else torch.from_numpy(np.ascontiguousarray(mask, np.float32)).reshape((-1, 1) + mask.shape[-2:])

    def callback(step, x0_pred, x, total_steps):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if on_step is not None:
            on_step(step, total_steps)

    samples = comfy.sample.sample(
        model,
        noise,
        steps,
        cfg,
        sampler_name,
        scheduler,
        positive,
        negative,
        latent,
        denoise=denoise,
        noise_mask=noise_mask,
        callback=callback,
        disable_pbar=True,
        seed=seed,
    )
    require_finite_tensor(node, "model", samples, "the sampled latent")
    out = vae.decode(samples)
    require_finite_tensor(node, "vae", out, f"the VAE-decoded {what[1].removeprefix('the ')}")
    return out.reshape((-1,) + tuple(out.shape[-3:]))[0, ..., :3].detach().float().cpu().numpy()
