"""``PakatiRepairRegions``: check an image against its plan and redraw only the regions that failed.

Thin: the inputs are validated here, the loop is the core's (``pakati_core.orchestration.repair``: which
regions, their reweighted prompts, crop → sample → stitch, every other pixel kept, re-check, best so
far, stop reasons), and the host's sampler comes through ``nodes/sampling.py``.
"""

from __future__ import annotations

import json

import comfy.model_management
import comfy.samplers
import comfy.utils
import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.errors import PakatiError
from ..pakati_core.orchestration import Plan, RepairSettings, check_alignment, crop_regenerator, repair_loop
from ..pakati_core.regenerate import TARGET_MODES
from .common import PakatiNodeError, checked, node_error
from .orchestration_nodes import CHECKERS, PlanType, checker_input, checker_judge, first_frame, unknown_checker
from .persistence import user_fingerprint
from .regional_patch import WRAPPER_KEY
from .sampling import PromptEncoder, append_tokens, sample_pixels

NODE = "PakatiRepairRegions"
CROP_SIZES = [m for m in TARGET_MODES if m != "explicit"]
SETTINGS_INPUTS = {"max_rounds", "grow", "feather", "context", "crop"}


def _blame(e: PakatiError) -> str | None:
    """A provider error blames the checker; NaN in a redrawn region the model."""
    return checker_input(e) or ("model" if (e.field or "") == "regenerated" else None)


def _interrupted() -> bool:
    comfy.model_management.throw_exception_if_processing_interrupted()  # raises: ComfyUI ends the run
    return False


class PakatiRepairRegions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Pakati Repair Regions",
            category="Pakati/orchestration",
            description="Checks the image against its plan and redraws only the regions whose questions failed (a wrong colour, "
            "a missing object): each is cropped, sampled with its prompt reweighted as the repair says (e.g. '(blue:1.4) cube') "
            "and stitched back, every other pixel unchanged; then checks again. At most max_rounds rounds; the best image wins.",
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="The diffusion model that redraws the regions: your checkpoint's (with your LoRAs), not the one "
                    "from Pakati Apply Regions (a repair samples a crop).",
                ),
                io.Clip.Input("clip", tooltip="The text encoder for each repaired region's (reweighted) prompt."),
                io.Vae.Input("vae", tooltip="The VAE that encodes each region's crop and decodes the result."),
                io.Image.Input("image", tooltip="The image to check and repair (one image)."),
                PlanType.Input("plan", tooltip="The plan from Pakati Plan: its questions are checked and its regions repaired."),
                io.Conditioning.Input(
                    "negative",
                    tooltip="Negative conditioning for the redrawn regions (each region's own negative prompt is appended to it).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Base seed; a region without its own seed is redrawn with one derived from its id and seed + round.",
                ),
                io.Int.Input("steps", default=20, min=1, max=200, tooltip="Sampling steps per redrawn region."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=30.0, step=0.1, tooltip="CFG scale for the redrawn regions."),
                io.Combo.Input(
                    "sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS), default="euler", tooltip="Sampler for the regions."
                ),
                io.Combo.Input(
                    "scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS), default="normal", tooltip="Scheduler for the regions."
                ),
                io.Float.Input(
                    "denoise",
                    default=1.0,
                    min=0.01,
                    max=1.0,
                    step=0.01,
                    tooltip="The most a region is denoised: each repair asks for its own (0.55 for a wrong colour, 0.9 for a "
                    "missing object) and gets the smaller of the two.",
                ),
                io.Combo.Input(
                    "checker",
                    options=CHECKERS,
                    default="offline",
                    tooltip="offline: colours and the plan's geometry only. anthropic/openai: a vision model answers what cannot "
                    "be measured (key from the environment or the 0600 key file). local: a vision model on an OpenAI-compatible "
                    "server on your machine (PAKATI_LOCAL_LLM_URL; no key).",
                ),
                io.Int.Input("max_rounds", default=3, min=1, max=16, tooltip="At most this many repair rounds (each: redraw, check)."),
                io.Int.Input(
                    "grow", default=8, min=0, max=512, tooltip="Grow each region by this many pixels before feathering its blend mask."
                ),
                io.Float.Input(
                    "feather",
                    default=16.0,
                    min=0.0,
                    max=512.0,
                    step=0.5,
                    tooltip="Width (pixels) of the soft band where redrawn and original pixels blend; nothing beyond it changes.",
                ),
                io.Int.Input(
                    "context", default=64, min=0, max=4096, step=8, tooltip="Pixels of surrounding image sampled with each region."
                ),
                io.Combo.Input(
                    "crop",
                    options=CROP_SIZES,
                    default="sdxl native",
                    tooltip="Sampling size of a region's crop: 'sdxl native' about 1024x1024 pixels keeping its aspect; 'keep' the "
                    "crop's own size.",
                ),
                io.String.Input(
                    "checker_model",
                    default="",
                    optional=True,
                    tooltip="Vision model name for the anthropic/openai/local checker (empty: the configured default, or "
                    "PAKATI_LOCAL_LLM_MODEL for local).",
                ),
                io.Conditioning.Input(
                    "positive",
                    optional=True,
                    tooltip="Optional positive conditioning (e.g. the whole-image prompt): each region's prompt is appended to it. "
                    "Without it, a region is drawn from its own prompt alone.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The best image: only repaired regions differ from the input."),
                io.String.Output(
                    display_name="report",
                    tooltip="JSON: stop_reason (target, no_repairs, max_rounds, no_improvement), the best round, and per round "
                    "its score, the regions repaired with their prompts, denoise and seeds, and the failed questions.",
                ),
                io.Float.Output(display_name="score", tooltip="The check score of the best image, in [0, 1]."),
            ],
        )

    @classmethod
    def validate_inputs(cls, checker: str | None = None, crop: str | None = None) -> bool | str:
        if message := unknown_checker(NODE, checker):
            return message
        if crop is not None and crop not in CROP_SIZES:
            return f"{NODE}: input 'crop': unknown crop size {crop!r}; expected one of {CROP_SIZES}"
        return True

    @classmethod
    def fingerprint_inputs(cls, **_) -> str:
        """The judge's answers are cached for whoever queued the graph."""
        return user_fingerprint()

    @classmethod
    def execute(
        cls,
        model,
        clip,
        vae,
        image: torch.Tensor,
        plan: Plan,
        negative,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        denoise: float,
        checker: str,
        max_rounds: int,
        grow: int,
        feather: float,
        context: int,
        crop: str,
        checker_model: str = "",
        positive=None,
    ) -> io.NodeOutput:
        frame = first_frame(NODE, image)
        if image.shape[0] != 1:
            raise PakatiNodeError(NODE, "image", f"one image at a time, got a batch of {image.shape[0]}")
        if plan is None or not hasattr(plan, "objects"):
            raise PakatiNodeError(NODE, "plan", "connect a plan from Pakati Plan")
        if WRAPPER_KEY in model.wrappers.get("apply_model", {}):
            raise PakatiNodeError(
                NODE,
                "model",
                "this model is patched by Pakati Apply Regions for the whole canvas; connect the checkpoint's model "
                "(a repair samples each region's crop with that region's own prompt)",
            )
        settings = checked(
            NODE,
            "max_rounds",
            lambda: RepairSettings(max_rounds=max_rounds, seed=seed, grow=grow, feather=feather, context=context, crop_mode=crop),
            SETTINGS_INPUTS,
        )
        notes: list[str] = []
        judge = checker_judge(NODE, checker, checker_model or "", notes)
        encode = PromptEncoder(clip)
        total = max_rounds * steps
        pbar = comfy.utils.ProgressBar(total)
        at = {"round": 1}

        def sample_crop(crop_image: np.ndarray, noise_mask: np.ndarray, repair) -> np.ndarray:
            pos = encode(repair.prompt) if positive is None else append_tokens(positive, encode(repair.prompt))
            neg = append_tokens(negative, encode(repair.negative)) if repair.negative.strip() else negative

            def on_step(step: int, total_steps: int) -> None:
                done = (at["round"] - 1) * steps + min(steps, (step + 1) * steps // max(1, total_steps))
                pbar.update_absolute(max(pbar.current, done), total)

            return sample_pixels(
                NODE,
                model,
                vae,
                crop_image,
                pos,
                neg,
                seed=repair.seed,
                steps=steps,
                cfg=cfg,
                sampler_name=sampler_name,
                scheduler=scheduler,
                denoise=min(float(denoise), repair.denoise),
                mask=noise_mask,
                on_step=on_step,
                what=("the region's crop", "the region"),
            )

        def on_round(rnd) -> None:
            at["round"] = rnd.round + 1
            if rnd.round:
                pbar.update_absolute(max(pbar.current, rnd.round * steps), total)

        def check(img: np.ndarray, p: Plan):
            return check_alignment(img, p, judge=judge)

        try:
            run = repair_loop(
                frame,
                plan,
                crop_regenerator(sample_crop, settings, check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted),
                settings,
                check=check,
                on_round=on_round,
                interrupted=_interrupted,
            )
        except PakatiError as e:
            raise node_error(NODE, e, "plan", ("image",), input_of=_blame) from e
        pbar.update_absolute(total, total)
        out = torch.from_numpy(np.ascontiguousarray(run.image, np.float32))[None]
        if not torch.isfinite(out).all():
            raise PakatiNodeError(NODE, "model", "the repaired image contains NaN or infinite values")
        report = {**run.to_dict(), "notes": notes, "goal": plan.goal}
        text = json.dumps(report, indent=2, allow_nan=False)
        summary = f"score {run.score:.2f} (round {run.best_round}), stop: {run.stop_reason}\n" + "\n".join(
            f"round {r.round}: {r.score:.2f} " + (", ".join(r.regions) or "checked") for r in run.rounds
        )
        return io.NodeOutput(out, text, float(run.score), ui={"text": (summary,)})


NODES = [PakatiRepairRegions]
