"""Reference understanding nodes: learn a reference by reconstructing it with the host model, reuse it."""

from __future__ import annotations

import logging

import comfy.model_management
import comfy.samplers
import comfy.utils
import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..pakati_core.images import fit_to_grid
from ..pakati_core.jsonutil import strict_json
from ..pakati_core.store import StoreError
from ..pakati_core.understanding import LearnSettings, UnderstandingStore, get_strategy, learn, parse_strategies
from ..pakati_core.understanding.recall import recall_or_learn
from ..pakati_core.understanding.transfer import Understanding, parse_aspects, transfer
from .common import PakatiNodeError, checked, require_finite_tensor, validation_result
from .persistence import pakati_store, user_fingerprint
from .sampling import PromptEncoder, sample_pixels

log = logging.getLogger("pakati")
NODE = "PakatiLearnReference"
UnderstandingType = io.Custom("PAKATI_UNDERSTANDING")
ReferencesType = io.Custom("PAKATI_REFERENCES")


class HostReconstructor:
    """The core's Reconstructor over the host: VAE encode, sample with a noise mask
    (SetLatentNoiseMask semantics) or at a denoise (img2img), VAE decode."""

    def __init__(
        self,
        model,
        clip,
        vae,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        negative: str,
        bar: comfy.utils.ProgressBar | None = None,
        attempts_total: int = 1,
    ):
        self.model, self.clip, self.vae = model, clip, vae
        self.steps, self.cfg, self.sampler_name, self.scheduler = steps, cfg, sampler_name, scheduler
        self.negative = negative
        self.encode = PromptEncoder(clip)
        # progress in sampler steps across every attempt, so a long learn shows it is moving
        self.bar, self.units, self.done = bar, attempts_total * steps, 0

    def attempts_done(self, done: int, total: int) -> None:
        self.done = done
        if self.bar is not None:
            self.bar.update_absolute(done * self.steps, self.units)

    def _run(self, image: np.ndarray, prompt: str, seed: int, denoise: float, mask: np.ndarray | None) -> np.ndarray:
        def on_step(i: int, _total: int) -> None:
            if self.bar is not None:
                self.bar.update_absolute(self.done * self.steps + min(i + 1, self.steps), self.units)

        return sample_pixels(
            NODE,
            self.model,
            self.vae,
            image,
            self.encode(prompt),
            self.encode(self.negative),
            seed=seed,
            steps=self.steps,
            cfg=self.cfg,
            sampler_name=self.sampler_name,
            scheduler=self.scheduler,
            denoise=denoise,
            mask=mask,
            on_step=on_step,
            what=("the reference", "the reconstruction"),
        )

    def inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        return self._run(image, prompt, seed, 1.0, mask)

    def img2img(self, image: np.ndarray, denoise: float, prompt: str, seed: int) -> np.ndarray:
        return self._run(image, prompt, seed, denoise, None)


def short_report(record: dict, source: str, path: str) -> str:
    lines = [f"Pakati understanding ({source}; {path})", record["summary"]]
    for name, e in record["strategies"].items():
        lines.append(
            f"- {name}: best {e['best_composite']:.3f} vs classical {e['best_baseline_composite']:.3f}"
            + (" MASTERED" if e["mastered"] else "")
        )
    for name, why in record["shortfalls"].items():
        lines += [f"  {name}: {w}" for w in why]
    return "\n".join(lines)


class PakatiLearnReference(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiLearnReference",
            display_name="Pakati Learn Reference",
            category="Pakati/understanding",
            description="Hide parts of a reference with masking strategies, reconstruct them with your model (inpainting; "
            "img2img for frequency bands), score the hidden pixels against OpenCV Telea and scikit-image biharmonic "
            "inpainting on the same masks, and keep what was learned under ComfyUI's user directory.",
            is_output_node=True,
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="The model that should prove it understands the reference (an inpainting-capable SDXL checkpoint works best).",
                ),
                io.Clip.Input("clip", tooltip="Text encoder for the description."),
                io.Vae.Input("vae", tooltip="VAE used to encode the masked reference and decode the reconstruction."),
                io.Image.Input(
                    "image",
                    tooltip="The reference (first image of the batch). Resized so the long side is at most max_side "
                    "and sides are multiples of 16.",
                ),
                io.String.Input(
                    "description", default="", multiline=True, tooltip="What the reference shows; the reconstruction is conditioned on it."
                ),
                io.String.Input(
                    "strategies",
                    default="all",
                    tooltip="'all' or a comma list of: random_patches, progressive_reveal, center_out, edge_in, "
                    "quadrant_reveal, frequency_bands, semantic_regions.",
                ),
                io.Int.Input("levels", default=2, min=1, max=5, tooltip="How many difficulty levels per strategy, easiest first."),
                io.Int.Input(
                    "attempts",
                    default=2,
                    min=1,
                    max=8,
                    tooltip="Reconstructions per view, each with its own seed; mastery needs at least two seeds.",
                ),
                io.Int.Input(
                    "seed", default=0, min=0, max=2**31 - 1, tooltip="Seed of the masks and first attempt (attempt k uses seed + k)."
                ),
                io.Int.Input("steps", default=20, min=1, max=200, tooltip="Sampler steps per reconstruction."),
                io.Float.Input("cfg", default=6.0, min=0.0, max=30.0, step=0.1, tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler", tooltip="Sampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal", tooltip="Noise schedule."),
                io.String.Input("negative", default="", tooltip="Negative prompt for every reconstruction."),
                io.Int.Input("max_side", default=512, min=32, max=2048, step=16, tooltip="Longest side the reference is learned at."),
                io.Boolean.Input("force", default=False, tooltip="Learn again even if this image was learned with these settings before."),
            ],
            outputs=[
                UnderstandingType.Output(display_name="understanding", tooltip="What was learned, for Pakati Use Understanding."),
                io.String.Output(display_name="report", tooltip="The full report as JSON."),
                io.Image.Output(display_name="preview", tooltip="Masked views and best reconstructions, side by side."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, **_) -> str:
        """The output depends on the understanding store (learned now, or served from it): a store
        changed since the last run must not be answered from ComfyUI's cache."""
        try:
            return user_fingerprint(UnderstandingStore(pakati_store()).revision())
        except StoreError as e:
            log.error("Pakati: the understanding store cannot be read: %s", e)
            return user_fingerprint("unavailable")

    @classmethod
    def validate_inputs(cls, strategies: str | None = None) -> bool | str:
        if strategies is None:
            return True  # a linked input is checked in execute
        return validation_result("PakatiLearnReference", "strategies", lambda: parse_strategies(strategies))

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        image: torch.Tensor,
        description: str,
        strategies: str,
        levels: int,
        attempts: int,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        negative: str,
        max_side: int,
        force: bool,
    ) -> io.NodeOutput:
        names = checked("PakatiLearnReference", "strategies", lambda: parse_strategies(strategies))
        if image.shape[0] != 1:
            raise PakatiNodeError(
                NODE,
                "image",
                f"got a batch of {image.shape[0]} images; one understanding is learned from one "
                "reference: split the batch (ImageFromBatch) and learn each image with its own node",
            )
        require_finite_tensor(NODE, "image", image, "the reference image")
        ref = fit_to_grid(image[0, ..., :3].float().cpu().numpy(), max_side)
        params = {"steps": steps, "cfg": cfg, "sampler": sampler_name, "scheduler": scheduler, "negative": negative, "max_side": max_side}
        settings = LearnSettings(description, names, levels, attempts, seed, params=params)

        def run(on_view) -> dict:
            total = sum(min(levels, len(get_strategy(n).levels)) for n in names) * attempts
            bar = comfy.utils.ProgressBar(total * steps)
            recon = HostReconstructor(model, clip, vae, steps, cfg, sampler_name, scheduler, negative, bar, total)
            return checked(
                NODE,
                "image",
                lambda: learn(
                    ref,
                    recon,
                    settings,
                    progress=recon.attempts_done,
                    check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
                    on_view=on_view,
                ),
            )

        found = recall_or_learn(ref, settings, lambda: UnderstandingStore(pakati_store()), run, force)
        record, grid, source, path = found.record, found.preview, found.source, found.location
        report = dict(record, source=source, store_path=path)
        text = strict_json(report, "the understanding report", indent=1)
        preview = torch.from_numpy(np.ascontiguousarray(grid, np.float32))[None]
        ui_out = {**ui.PreviewText(short_report(record, source, path)).as_dict(), **ui.PreviewImage(preview, cls=cls).as_dict()}
        return io.NodeOutput(Understanding(record, ref), text, preview, ui=ui_out)


class PakatiUseUnderstanding(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiUseUnderstanding",
            display_name="Pakati Use Understanding",
            category="Pakati/understanding",
            description="Turn a learned reference into references whose targets are the learned statistics (the "
            "whole reference, whatever region is measured; for Pakati Delta Analysis and Pakati "
            "Refine), prompt terms, and an init image for img2img.",
            inputs=[
                UnderstandingType.Input("understanding", tooltip="From Pakati Learn Reference."),
                io.String.Input(
                    "target_prompt", default="", multiline=True, tooltip="What you want to generate; the learned terms are appended."
                ),
                io.String.Input(
                    "aspects",
                    default="color,texture,composition",
                    tooltip="'all' or a comma list of color, texture, composition, lighting, style, general: one reference per aspect.",
                ),
            ],
            outputs=[
                ReferencesType.Output(
                    display_name="references",
                    tooltip="One reference per aspect (the same PAKATI_REFERENCES as Pakati Reference), masked to the "
                    "whole learned image: its learned statistics are the targets of Pakati Delta Analysis and "
                    "Pakati Refine for any region.",
                ),
                io.String.Output(
                    display_name="prompt",
                    tooltip="target_prompt plus the description (weighted by how well it reconstructed the reference) "
                    "and terms naming the learned statistics.",
                ),
                io.Image.Output(display_name="init_image", tooltip="The reference as learned, for img2img."),
                io.String.Output(display_name="info", tooltip="What was transferred and why, as JSON."),
            ],
        )

    @classmethod
    def validate_inputs(cls, aspects: str | None = None) -> bool | str:
        if aspects is None:
            return True
        return validation_result("PakatiUseUnderstanding", "aspects", lambda: parse_aspects(aspects))

    @classmethod
    def execute(cls, understanding: Understanding, target_prompt: str, aspects: str) -> io.NodeOutput:
        names = checked("PakatiUseUnderstanding", "aspects", lambda: parse_aspects(aspects))
        refs, prompt, info = checked("PakatiUseUnderstanding", "understanding", lambda: transfer(understanding, target_prompt, names))
        init = torch.from_numpy(np.ascontiguousarray(understanding.image, np.float32))[None]
        return io.NodeOutput(tuple(refs), prompt, init, strict_json(info, "the transfer info", indent=1), ui=ui.PreviewText(prompt))


NODES = [PakatiLearnReference, PakatiUseUnderstanding]
