"""Reference-guided refinement nodes: references, delta analysis, and the multi-pass refine loop.

``PakatiRefine`` adapts the host to the core's small protocols: a regenerator that VAE-encodes
the masked region's box, samples it with a noise mask through ``comfy.sample.sample`` (the path
``KSampler`` takes), decodes and pastes it back through the mask; an interrupt check; a progress
bar across passes and sampling steps.
"""

from __future__ import annotations

import logging
import time

import comfy.model_management
import comfy.samplers
import comfy.utils
import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..pakati_core.canvas import Canvas, same_aspect
from ..pakati_core.delta import analyse
from ..pakati_core.fuzzy import MamdaniEngine, load_rulebase
from ..pakati_core.geometry import Box, mask_box, snapped_box
from ..pakati_core.images import resize_image
from ..pakati_core.jsonutil import strict_json
from ..pakati_core.masks import resize_mask
from ..pakati_core.prompts import weighted_terms
from ..pakati_core.references import ASPECTS, Reference
from ..pakati_core.refine import RefineInterrupted, RefineSettings, RegenParams, WhatWorkedStore, refine
from ..pakati_core.store import StoreError
from ..pakati_core.store.from_prompt import canvas_from_prompt, model_name
from .common import CanvasType, PakatiNodeError, checked, mask_to_numpy, node_name, require_finite_tensor, validation_result
from .persistence import pakati_store, record_history, user_fingerprint
from .regional_patch import WRAPPER_KEY
from .sampling import PromptEncoder, append_tokens, sample_pixels

ReferencesType = io.Custom("PAKATI_REFERENCES")
PROGRESS_UNITS = 100  # progress-bar units per pass
CROP_PADDING = 16
log = logging.getLogger("pakati")


def batch_images(node: str, image: torch.Tensor) -> list[np.ndarray]:
    """Every image of a ComfyUI IMAGE batch as float32 HxWx3; NaN/Inf stop here with the fix named."""
    require_finite_tensor(node, "image", image, "the image")
    frames = image if image.ndim == 4 else image[None]
    return [f[..., :3].detach().float().cpu().numpy().astype(np.float32) for f in frames]


def mask_count_error(node: str, masks: int, images: int) -> PakatiNodeError | None:
    if masks in (1, images):
        return None
    return PakatiNodeError(node, "mask", f"{masks} masks for {images} images: give one mask, or one per image")


def region_mask(
    node: str, shape: tuple[int, int], mask: torch.Tensor | None, canvas: Canvas | None, region: str, index: int = 0
) -> np.ndarray | None:
    """The mask of the region to measure/refine for image ``index`` of the batch: a MASK input (one
    for all images, or one per image), else a canvas region, else None (whole image)."""
    h, w = shape
    if mask is not None:
        masks = mask_to_numpy(mask)
        require_finite_tensor(node, "mask", masks, "the mask")
        m = masks[index if len(masks) > 1 else 0]
        if m.shape != (h, w):
            if not same_aspect(m.shape[1], m.shape[0], w, h):
                raise PakatiNodeError(
                    node,
                    "mask",
                    f"the mask is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h}; "
                    "their aspect ratios differ, so the mask cannot be placed on the image",
                )
            m = resize_mask(m, w, h)
        if not (m > 0).any():
            raise PakatiNodeError(node, "mask", "the mask is empty: there is no region to work on")
        return np.clip(m, 0.0, 1.0).astype(np.float32)
    if canvas is not None and region.strip():
        index = checked(node, "region", lambda: canvas.index_of(region.strip()))
        return canvas.rasterize(index, w, h).astype(np.float32)
    return None


# inputs a core error's field may name (RefineSettings' epsilon/patience are no inputs: they fall back)
REFINE_INPUTS = {"mask", "references", "image", "max_passes", "target", "strategy", "aspect", "weight", "model", "vae"}


class PakatiReference(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiReference",
            display_name="Pakati Reference",
            category="Pakati/refine",
            description="A reference image annotated with the aspect it stands for (colour, texture, composition, "
            "lighting, style or general). "
            "Chain several: each node adds one reference to the list it receives.",
            inputs=[
                io.Image.Input(
                    "image", tooltip="The reference image; a batch adds one reference per image (same aspect, description and weight)."
                ),
                io.Combo.Input(
                    "aspect",
                    options=list(ASPECTS),
                    default="general",
                    tooltip="What to match: color, texture, composition, lighting, style (colour+texture+lighting) or general (all).",
                ),
                io.String.Input(
                    "description", default="", multiline=False, tooltip="What this reference shows; kept in reports and history."
                ),
                io.Float.Input(
                    "weight", default=1.0, min=0.05, max=10.0, step=0.05, tooltip="Share of this reference in the overall score."
                ),
                io.Mask.Input("mask", optional=True, tooltip="Optional: the part of the reference image to match (white = use)."),
                ReferencesType.Input(
                    "references", optional=True, tooltip="Optional: references from another Pakati Reference node, to chain."
                ),
                CanvasType.Input(
                    "canvas",
                    optional=True,
                    tooltip="Optional: a canvas whose region (see 'region') selects the part of the reference to "
                    "match, when no mask is given.",
                ),
                io.String.Input("region", default="", optional=True, tooltip="With a canvas: the region's name, id or index."),
            ],
            outputs=[
                ReferencesType.Output(
                    display_name="references", tooltip="The incoming references plus this one (one per image of a batch)."
                )
            ],
        )

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        aspect: str,
        description: str,
        weight: float,
        mask: torch.Tensor | None = None,
        references: tuple | None = None,
        canvas: Canvas | None = None,
        region: str = "",
    ) -> io.NodeOutput:
        node = node_name(cls)
        images = batch_images(node, image)
        if mask is not None and (err := mask_count_error(node, mask_to_numpy(mask).shape[0], len(images))):
            raise err
        added = []
        for i, img in enumerate(images):
            m = region_mask(node, img.shape[:2], mask, canvas, region, i)
            added.append(checked(node, "image", lambda: Reference(img, description, aspect, m, weight), REFINE_INPUTS))
        return io.NodeOutput(tuple(references or ()) + tuple(added))


class PakatiDeltaAnalysis(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiDeltaAnalysis",
            display_name="Pakati Delta Analysis",
            category="Pakati/refine",
            description="Measures how a region differs from its references: named signed deltas ('+' = more than "
            "the reference) with units and a sentence each, "
            "aspect scores and an overall score in [0, 1] (1 = identical). The JSON report is shown on the node.",
            is_output_node=True,
            inputs=[
                io.Image.Input("image", tooltip="The image to measure; every image of a batch is measured (one report each)."),
                ReferencesType.Input("references", tooltip="References from Pakati Reference."),
                io.Mask.Input(
                    "mask", optional=True, tooltip="Optional: the region to measure (white = measured). Without it, the whole image."
                ),
                CanvasType.Input(
                    "canvas", optional=True, tooltip="Optional: a canvas whose region (see 'region') is measured when no mask is given."
                ),
                io.String.Input("region", default="", optional=True, tooltip="With a canvas: the region's name, id or index."),
            ],
            outputs=[
                io.String.Output(
                    display_name="report",
                    tooltip="The delta report as JSON; for a batch, a JSON list with one report per image, in batch order.",
                ),
                io.Float.Output(
                    display_name="overall",
                    tooltip="Overall similarity to the references in [0, 1]; for a batch, the lowest image's (each "
                    "image's is in its report).",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, image: torch.Tensor, references: tuple, mask: torch.Tensor | None = None, canvas: Canvas | None = None, region: str = ""
    ) -> io.NodeOutput:
        node = node_name(cls)
        images = batch_images(node, image)
        if mask is not None and (err := mask_count_error(node, mask_to_numpy(mask).shape[0], len(images))):
            raise err
        reports = []
        for i, img in enumerate(images):
            m = region_mask(node, img.shape[:2], mask, canvas, region, i)
            reports.append(checked(node, "references", lambda: analyse(img, list(references or ()), m), REFINE_INPUTS))
        # strict JSON: a NaN score raises instead of showing 'nan'
        text = checked(
            node,
            "image",
            lambda: (
                reports[0].to_json()
                if len(reports) == 1
                else strict_json([r.to_dict() for r in reports], "the delta reports", "image", indent=2)
            ),
        )
        return io.NodeOutput(text, min(r.overall for r in reports), ui=ui.PreviewText(text))


class HostRegenerator:
    """The core's Regenerator over ComfyUI's sampler: only the mask's box is encoded and sampled."""

    def __init__(
        self,
        model,
        clip,
        vae,
        positive,
        negative,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        pbar: comfy.utils.ProgressBar,
        max_passes: int,
        batch: int = 1,
    ):
        self.model, self.clip, self.vae = model, clip, vae
        self.positive, self.negative = positive, negative
        self.steps, self.cfg, self.sampler_name, self.scheduler = steps, cfg, sampler_name, scheduler
        self.pbar, self.max_passes = pbar, max_passes
        self.total_units, self.offset = batch * max_passes * PROGRESS_UNITS, 0  # offset: the batch image being refined
        self.encode = PromptEncoder(clip)
        self.node = "PakatiRefine"
        # A model patched by PakatiApplyRegions lays its region masks over the whole latent, so
        # it must see the whole image: a crop would shift every region.
        self.whole_image = WRAPPER_KEY in model.wrappers.get("apply_model", {})

    def box(self, mask: np.ndarray) -> Box:
        if self.whole_image:
            h, w = mask.shape
            return Box(0, 0, w // 8 * 8, h // 8 * 8)
        return self.crop_box(mask)

    @staticmethod
    def crop_box(mask: np.ndarray) -> Box:
        """The mask's bounding box plus padding, sides multiples of 8, inside the image."""
        h, w = mask.shape
        return snapped_box(mask_box(mask), CROP_PADDING, w, h)

    def conditioning(self, terms: tuple[tuple[str, float], ...]) -> list:
        """The positive prompt with the fuzzy rules' prompt terms appended (as ConditioningConcat does)."""
        if not terms:
            return self.positive
        return append_tokens(self.positive, self.encode(weighted_terms(terms)))

    def __call__(self, image: np.ndarray, mask: np.ndarray, params: RegenParams) -> np.ndarray:
        box = self.box(mask)
        steps = max(1, round(self.steps * params.steps_factor))
        cfg = max(1.0, self.cfg + params.cfg_delta)
        base = self.offset + (params.pass_index - 1) * PROGRESS_UNITS
        total = self.total_units

        def on_step(step: int, total_steps: int) -> None:
            # never backwards: a pass that samples twice (seed-spread check) stays where it got to
            value = max(self.pbar.current, base + min(PROGRESS_UNITS - 1, (step + 1) * PROGRESS_UNITS // max(1, total_steps)))
            self.pbar.update_absolute(value, total)

        try:
            decoded = sample_pixels(
                self.node,
                self.model,
                self.vae,
                image[box.slices],
                self.conditioning(params.prompt_terms),
                self.negative,
                seed=params.seed,
                steps=steps,
                cfg=cfg,
                sampler_name=self.sampler_name,
                scheduler=self.scheduler,
                denoise=params.denoise,
                mask=mask[box.slices],
                on_step=on_step,
                what=("the region", "the region"),
            )
        except comfy.model_management.InterruptProcessingException as e:
            raise RefineInterrupted() from e
        if decoded.shape[:2] != (box.height, box.width):
            decoded = resize_image(decoded, box.width, box.height, enlarge="linear")
        # raw pixels in the box; the core's loop pastes them through the mask, once
        out = image.copy()
        out[box.slices] = np.clip(decoded, 0.0, 1.0)
        return out


class BestEffortWhatWorked:
    """The what-worked store for the loop, where a database that cannot be read or written is
    logged and skipped: learning what worked is a bonus, the refined image is the result."""

    def __init__(self):
        self.store: WhatWorkedStore | None = None
        try:
            self.store = WhatWorkedStore(pakati_store())
        except StoreError as e:
            log.error("Pakati: PakatiRefine cannot open the what-worked store, refining without it: %s", e)

    def order(self, actions):
        try:
            return self.store.order(actions) if self.store else list(actions)
        except StoreError as e:
            log.error("Pakati: reading what worked failed, using the default order: %s", e)
            return list(actions)

    def revision(self) -> str:
        try:
            return self.store.revision() if self.store else "unavailable"
        except StoreError as e:
            log.error("Pakati: the what-worked store cannot be read: %s", e)
            return "unavailable"

    def append(self, records) -> int:
        try:
            return self.store.append(records) if self.store else 0
        except StoreError as e:
            log.error("Pakati: what worked in this PakatiRefine run was not recorded (the result is unaffected): %s", e)
            return 0


class PakatiRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiRefine",
            display_name="Pakati Refine",
            category="Pakati/refine",
            description="Refines a region towards its references over several passes: measure the deltas, ask the "
            "fuzzy rules for adjustments, "
            "apply cheap in-mask colour/tone corrections first, regenerate only the masked region with "
            "your sampler when it still misses, measure again. "
            "Stops at the target, on convergence, on oscillation or at max passes, and returns the "
            "best pass. Pixels outside the region are never changed.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model used to regenerate the region."),
                io.Clip.Input("clip", tooltip="The text encoder, used to add the rules' prompt terms (for example '(warm tones:1.2)')."),
                io.Vae.Input("vae", tooltip="The VAE that encodes the region and decodes the result."),
                io.Image.Input(
                    "image", tooltip="The image to refine; every image of a batch is refined on its own (same settings and seed)."
                ),
                io.Conditioning.Input("positive", tooltip="Positive conditioning for the region."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning for the region."),
                ReferencesType.Input("references", tooltip="References from Pakati Reference: what the region should match."),
                io.Int.Input("max_passes", default=4, min=1, max=16, tooltip="Most passes to run."),
                io.Float.Input("target", default=0.95, min=0.05, max=1.0, step=0.005, tooltip="Stop once the overall score reaches this."),
                io.Combo.Input(
                    "strategy",
                    options=["conservative", "adaptive", "aggressive"],
                    default="adaptive",
                    tooltip="Scales the rules' correction strengths and denoise (0.6x, 1x, 1.3x).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Base seed; pass p samples with seed + p. With learn off, the same seed and inputs give "
                    "the same result and history (with learn on, past runs reorder the corrections).",
                ),
                io.Int.Input("steps", default=20, min=1, max=200, tooltip="Sampling steps per regeneration (the rules may ask for more)."),
                io.Float.Input("cfg", default=7.0, min=1.0, max=30.0, step=0.1, tooltip="CFG scale (the rules may raise or lower it)."),
                io.Combo.Input(
                    "sampler_name",
                    options=list(comfy.samplers.KSampler.SAMPLERS),
                    default="euler",
                    tooltip="Sampler used for regeneration.",
                ),
                io.Combo.Input(
                    "scheduler",
                    options=list(comfy.samplers.KSampler.SCHEDULERS),
                    default="normal",
                    tooltip="Scheduler used for regeneration.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Optional: the region to refine (white = refined). Without mask or canvas region: the whole image.",
                ),
                CanvasType.Input(
                    "canvas", optional=True, tooltip="Optional: a canvas whose region (see 'region') is refined when no mask is given."
                ),
                io.String.Input("region", default="", optional=True, tooltip="With a canvas: the region's name, id or index."),
                io.String.Input(
                    "rules",
                    default="",
                    multiline=True,
                    optional=True,
                    tooltip="Optional JSON override of the fuzzy rules (same schema as pakati_core/fuzzy/rules/default.json; see README).",
                ),
                io.Boolean.Input(
                    "learn",
                    default=True,
                    optional=True,
                    tooltip="Record which adjustments helped in Pakati's database (see README, Persistence) and try "
                    "the ones that helped most first.",
                ),
            ],
            hidden=[io.Hidden.prompt],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The best pass (of each image of a batch)."),
                io.String.Output(
                    display_name="history",
                    tooltip="JSON: stop reason, best pass, and per pass its scores, deltas, adjustments, actions and "
                    "seed; for a batch, a JSON list with one history per image.",
                ),
                io.Float.Output(display_name="score", tooltip="Overall score of the best pass; for a batch, the lowest image's."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, learn: bool | None = True, **_) -> str:
        """With learn on, the run reads the what-worked store: a changed store must not be served
        from ComfyUI's cache. With learn off, the inputs alone decide (a constant fingerprint)."""
        return user_fingerprint(BestEffortWhatWorked().revision() if learn is not False else "inputs only")

    @classmethod
    def validate_inputs(cls, rules: str | None = None, **_) -> bool | str:
        if rules and rules.strip():
            return validation_result(node_name(cls), "rules", lambda: load_rulebase(rules))
        return True

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        image: torch.Tensor,
        positive,
        negative,
        references: tuple,
        max_passes: int,
        target: float,
        strategy: str,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        mask: torch.Tensor | None = None,
        canvas: Canvas | None = None,
        region: str = "",
        rules: str = "",
        learn: bool = True,
    ) -> io.NodeOutput:
        node = node_name(cls)
        images = batch_images(node, image)
        if mask is not None and (err := mask_count_error(node, mask_to_numpy(mask).shape[0], len(images))):
            raise err
        masks = [region_mask(node, img.shape[:2], mask, canvas, region, i) for i, img in enumerate(images)]
        if not references:
            raise PakatiNodeError(node, "references", "at least one reference is needed")
        engine = MamdaniEngine(checked(node, "rules", lambda: load_rulebase(rules or None)))
        settings = checked(
            node, "max_passes", lambda: RefineSettings(max_passes=max_passes, target=target, strategy=strategy, seed=seed), REFINE_INPUTS
        )
        units = len(images) * max_passes * PROGRESS_UNITS
        pbar = comfy.utils.ProgressBar(units)
        regen = HostRegenerator(model, clip, vae, positive, negative, steps, cfg, sampler_name, scheduler, pbar, max_passes, len(images))

        def check_interrupt() -> None:
            if comfy.model_management.processing_interrupted():
                raise RefineInterrupted()

        store = BestEffortWhatWorked() if learn else None
        out = image.clone()
        results = []
        for i, (img, m) in enumerate(zip(images, masks)):
            regen.offset = offset = i * max_passes * PROGRESS_UNITS
            started = time.perf_counter()
            result = checked(
                node,
                "references",
                lambda: refine(
                    img,
                    list(references),
                    m,
                    settings,
                    engine,
                    regen,
                    progress=lambda done, total: pbar.update_absolute(offset + done * PROGRESS_UNITS, units),
                    check_interrupt=check_interrupt,
                    store=store,
                ),
                REFINE_INPUTS,
            )
            if result.stop_reason == "interrupted":  # the store has what was learned; now honour the cancel
                comfy.model_management.throw_exception_if_processing_interrupted()  # clears the flag and raises
                raise comfy.model_management.InterruptProcessingException()
            out[i, ..., :3] = torch.from_numpy(result.image).to(out.dtype)
            results.append((result, time.perf_counter() - started))
        pbar.update_absolute(units, units)
        history = [r.to_dict() for r, _ in results]
        text = checked(node, "image", lambda: strict_json(history[0] if len(history) == 1 else history, "the refine history", "image"))
        hidden = getattr(cls, "hidden", None)
        prompt = hidden.prompt if hidden is not None else None
        for (result, seconds), h in zip(results, history):  # the history is kept after the results exist, best effort
            record_history(
                "PakatiRefine",
                image=result.image,
                canvas=canvas.to_dict() if canvas is not None else canvas_from_prompt(prompt),
                prompts={
                    "region": region,
                    "references": [{"aspect": r.aspect, "description": r.description, "weight": r.weight} for r in references],
                },
                seeds=sorted({int(p["seed"]) for p in h.get("passes", []) if isinstance(p, dict) and p.get("seed") is not None}) or [seed],
                params={
                    "max_passes": max_passes,
                    "target": target,
                    "strategy": strategy,
                    "steps": steps,
                    "cfg": cfg,
                    "sampler_name": sampler_name,
                    "scheduler": scheduler,
                    "learn": learn,
                },
                model_name=model_name(prompt),
                scores={"overall": float(result.score), "best_pass": h.get("best_pass"), "stop_reason": h.get("stop_reason")},
                timings={"total_s": round(seconds, 3)},
            )
        return io.NodeOutput(out, text, min(r.score for r, _ in results))


NODES = [PakatiReference, PakatiDeltaAnalysis, PakatiRefine]
