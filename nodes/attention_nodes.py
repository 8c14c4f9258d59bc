"""Attention-map nodes: capture where the model puts chosen words, and masks made from that."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.attention_maps import AttentionRecorder, ExciteSettings, ExciteTarget, mask_from_map, normalised_map, word_positions
from ..pakati_core.attention_maps.excite import REDUCES
from ..pakati_core.attention_maps.masks import MODES
from ..pakati_core.attention_maps.subjects import SubjectRegion, region_subjects
from ..pakati_core.attention_maps.tokens import parse_subject_lines
from ..pakati_core.errors import PakatiError
from ..pakati_core.regional import RegionalAttention, RegionSet
from . import excite_patch
from .attention_patch import BLOCK_CHOICES, CaptureHandle, install
from .common import PakatiNodeError, RegionsType, checked, node_error, node_name, validation_result

AttentionCaptureType = io.Custom("PAKATI_ATTENTION")


def split_words(words: str) -> list[str]:
    return [w.strip() for w in words.split(",") if w.strip()]


def token_ids(clip, text: str, real_only: bool) -> dict[str, list[list[int]]]:
    """Per encoder, the token ids of each chunk; ``real_only`` drops start/end/padding (word id 0)."""
    out: dict[str, list[list[int]]] = {}
    for enc, chunks in clip.tokenize(text, return_word_ids=True).items():
        ids = []
        for chunk in chunks:
            ids.append([int(t[0]) if isinstance(t[0], int) else -1 for t in chunk if not real_only or t[2] != 0])
        out[enc] = ids
    return out


def word_token_positions(clip, text: str) -> list[int]:
    """Context positions of the prompt's real tokens (no start, end or padding), over every encoder and chunk."""
    found: set[int] = set()
    for chunks in clip.tokenize(text, return_word_ids=True).values():
        offset = 0
        for chunk in chunks:
            found.update(offset + j for j, t in enumerate(chunk) if t[2] != 0)
            offset += len(chunk)
    return sorted(found)


def word_target(node: str, input_name: str, clip, prompt: str, word: str, region: int | None, name: str) -> ExciteTarget:
    """The target for ``word`` of ``prompt`` (as the CLIP tokenises both)."""
    ids = token_ids(clip, prompt, real_only=False)
    positions = checked(
        node,
        input_name,
        lambda: word_positions(ids, {e: c[0] if c else [] for e, c in token_ids(clip, word, real_only=True).items()}, input_name),
    )
    return checked(node, input_name, lambda: ExciteTarget(name, tuple(positions), tuple(word_token_positions(clip, prompt)), region))


def latent_downscale(model) -> int:
    fmt = getattr(model.model, "latent_format", None)
    return int(getattr(fmt, "spacial_downscale_ratio", 8) or 8)


class PakatiCaptureAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiCaptureAttention",
            display_name="Pakati Capture Attention",
            category="Pakati/attention",
            description="Patch the model so the next sampler run records where chosen words of the prompt are attended "
            "(cross-attention probability of all their sub-tokens, averaged over heads, layers and steps).",
            inputs=[
                io.Model.Input(
                    "model", tooltip="The SDXL model; Pakati Apply Regions and other attention patches may be applied before or after."
                ),
                io.Clip.Input("clip", tooltip="The CLIP that encoded the sampler's positive prompt (used only to find the words' tokens)."),
                io.String.Input(
                    "text",
                    multiline=True,
                    default="",
                    tooltip="The positive prompt exactly as encoded for the sampler (the base prompt with regions).",
                ),
                io.String.Input(
                    "words", default="", tooltip="Comma-separated words or phrases of the prompt to watch, e.g. 'shirt, red hat'."
                ),
                io.Combo.Input(
                    "blocks",
                    options=list(BLOCK_CHOICES),
                    default="all",
                    tooltip="Which UNet blocks' cross-attention layers to average over.",
                ),
                io.Float.Input(
                    "start_percent", default=0.0, min=0.0, max=1.0, step=0.01, tooltip="Fraction of the schedule where recording starts."
                ),
                io.Float.Input(
                    "end_percent", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="Fraction of the schedule where recording stops."
                ),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The recording model (a clone); sample with it."),
                AttentionCaptureType.Output(display_name="capture", tooltip="The recording, for Pakati Attention Mask."),
            ],
        )

    @classmethod
    def validate_inputs(cls, words: str | None = None, start_percent: float | None = None, end_percent: float | None = None) -> bool | str:
        if words is not None and not split_words(words):
            return "PakatiCaptureAttention: input 'words': give at least one word of the prompt to watch"
        if start_percent is not None and end_percent is not None and start_percent > end_percent:
            return f"PakatiCaptureAttention: input 'start_percent': {start_percent} is after end_percent {end_percent}"
        return True

    @classmethod
    def execute(cls, model, clip, text: str, words: str, blocks: str, start_percent: float, end_percent: float) -> io.NodeOutput:
        node = node_name(cls)
        if clip is None:
            raise PakatiNodeError(node, "clip", "no CLIP given (the checkpoint has no text encoder)")
        names = split_words(words)
        if not names:
            raise PakatiNodeError(node, "words", "give at least one word of the prompt to watch")
        if blocks not in BLOCK_CHOICES:
            raise PakatiNodeError(node, "blocks", f"unknown choice {blocks!r}; use one of {', '.join(BLOCK_CHOICES)}")
        if start_percent > end_percent:
            raise PakatiNodeError(node, "start_percent", f"{start_percent} is after end_percent {end_percent}")
        prompt = token_ids(clip, text, real_only=False)
        positions = []
        for w in names:
            pos = checked(
                node,
                "words",
                lambda w=w: word_positions(prompt, {e: c[0] if c else [] for e, c in token_ids(clip, w, real_only=True).items()}),
            )
            positions.append(pos)
        recorder = AttentionRecorder(names, positions)
        patched = install(model, recorder, BLOCK_CHOICES[blocks], start_percent, end_percent)
        return io.NodeOutput(patched, CaptureHandle(recorder, latent_downscale(model), text))


class PakatiAttentionMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiAttentionMask",
            display_name="Pakati Attention Mask",
            category="Pakati/attention",
            description="A MASK at image size from where the model attended a captured word in the last run of the captured model.",
            inputs=[
                AttentionCaptureType.Input("capture", tooltip="From Pakati Capture Attention."),
                io.Latent.Input("latent", tooltip="The sampler's output LATENT (orders this node after the run; gives the image size)."),
                io.String.Input("word", default="", tooltip="One of the captured words."),
                io.Combo.Input(
                    "mode",
                    options=list(MODES),
                    default="threshold",
                    tooltip="'threshold': keep where the normalised map is at least 'value'; 'top fraction': keep the "
                    "'value' share of pixels attended most.",
                ),
                io.Float.Input(
                    "value",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="The threshold (0-1 of the normalised map) or the fraction of the image to keep.",
                ),
                io.Float.Input("blur", default=0.0, min=0.0, max=256.0, step=0.5, tooltip="Feather the mask's edge over this many pixels."),
                io.Int.Input("dilate", default=0, min=0, max=512, tooltip="Grow the mask by this many pixels before blurring."),
                io.Combo.Input(
                    "output",
                    options=["binary", "soft"],
                    default="binary",
                    tooltip="'binary': 0/1 mask; 'soft': ramps from 0 at the cut to 1 where the word is attended most.",
                ),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="One mask per image of the batch, at image size."),
                io.Image.Output(display_name="map", tooltip="The normalised attention map at image size, for previewing."),
            ],
        )

    @classmethod
    def execute(
        cls, capture: CaptureHandle, latent: dict, word: str, mode: str, value: float, blur: float, dilate: int, output: str
    ) -> io.NodeOutput:
        node = node_name(cls)
        if not isinstance(capture, CaptureHandle):
            raise PakatiNodeError(node, "capture", "not a capture from Pakati Capture Attention")
        rec = capture.recorder
        index = checked(node, "word", lambda: rec.word_index(word))
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not isinstance(samples, torch.Tensor) or samples.ndim < 4:
            raise PakatiNodeError(node, "latent", "not a LATENT (expected a dict with 'samples' [B, C, H, W])")
        if rec.latent_hw is None:
            raise PakatiNodeError(
                node,
                "capture",
                "nothing was recorded: sample with the model from Pakati Capture Attention and connect that sampler's LATENT output here",
            )
        hw = (int(samples.shape[-2]), int(samples.shape[-1]))
        if hw != rec.latent_hw:
            raise PakatiNodeError(
                node,
                "latent",
                f"the capture recorded a {rec.latent_hw[1]}x{rec.latent_hw[0]} latent but this one is {hw[1]}x{hw[0]}: "
                "connect the output of the sampler that used the captured model",
            )
        maps = checked(node, "capture", lambda: rec.maps())[index].numpy()
        height, width = hw[0] * capture.downscale, hw[1] * capture.downscale
        masks, previews = [], []
        for m in maps:
            masks.append(
                checked(
                    node,
                    "value",
                    lambda m=m: mask_from_map(m, width, height, mode, value, blur, dilate, soft=output == "soft"),
                    ("mode", "value"),
                )
            )
            previews.append(normalised_map(m, width, height))
        mask = torch.from_numpy(np.stack(masks))
        preview = torch.from_numpy(np.stack(previews))[..., None].repeat(1, 1, 1, 3)
        if not (torch.isfinite(mask).all() and torch.isfinite(preview).all()):
            raise PakatiNodeError(node, "capture", "the attention map has NaN or infinite values (the sampler diverged)")
        return io.NodeOutput(mask, preview)


class PakatiAttendExcite(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiAttendExcite",
            display_name="Pakati Attend and Excite",
            category="Pakati/attention",
            description="Patch the model so that, during the first steps, the latent is nudged by gradient until every region's "
            "subject word is attended inside its region (and named words of the base prompt anywhere): Attend-and-Excite, region-aware.",
            inputs=[
                io.Model.Input("model", tooltip="The SDXL model; Pakati Apply Regions may be applied before or after."),
                io.Clip.Input("clip", tooltip="The CLIP that encoded the prompts (used only to find the subject words' tokens)."),
                io.String.Input(
                    "text", multiline=True, default="", tooltip="The sampler's positive prompt exactly as encoded; needed for 'words'."
                ),
                io.String.Input(
                    "words",
                    default="",
                    tooltip="Comma-separated words of that prompt to excite over the whole image (plain "
                    "Attend-and-Excite); may be empty when regions are given.",
                ),
                io.String.Input(
                    "subjects",
                    multiline=True,
                    default="",
                    tooltip="One 'region: word' line per region to name its subject (region name or number); "
                    "regions not listed use the last noun of their prompt. A region made from CONDITIONING "
                    "needs 'region: word | its prompt'.",
                ),
                io.Combo.Input(
                    "blocks",
                    options=list(excite_patch.EXCITE_BLOCKS),
                    default=excite_patch.LOWEST,
                    tooltip="Which cross-attention layers' maps to use: 'lowest resolution' is Attend-and-Excite's "
                    "choice (SDXL's 32x32 grid at 1024 px).",
                ),
                io.Int.Input("steps", default=10, min=1, max=1000, tooltip="Excite during this many first sampler steps."),
                io.Int.Input(
                    "iterations",
                    default=3,
                    min=1,
                    max=50,
                    tooltip="Gradient updates at most per excited step (fewer once every subject reaches the threshold).",
                ),
                io.Float.Input(
                    "scale",
                    default=20.0,
                    min=0.0,
                    max=1000.0,
                    step=0.5,
                    tooltip="Step size of each update (Attend-and-Excite: 20, decaying to 14 over the run).",
                ),
                io.Float.Input(
                    "threshold",
                    default=0.8,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Stop updating an image once every subject's attention (renormalised over the prompt's words) reaches this.",
                ),
                io.Combo.Input(
                    "reduce",
                    options=list(REDUCES),
                    default="max",
                    tooltip="A subject's attention inside its mask: the maximum (Attend-and-Excite) or the mean.",
                ),
                RegionsType.Input(
                    "regions",
                    optional=True,
                    tooltip="The regions given to Pakati Apply Regions: each region's subject is excited inside its mask.",
                ),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The exciting model (a clone); sample with it.")],
        )

    @classmethod
    def validate_inputs(cls, subjects: str | None = None, blocks: str | None = None) -> bool | str:
        if subjects is not None:
            valid = validation_result("PakatiAttendExcite", "subjects", lambda: parse_subject_lines(subjects))
            if valid is not True:
                return valid
        if blocks is not None and blocks not in excite_patch.EXCITE_BLOCKS:
            return f"PakatiAttendExcite: input 'blocks': unknown choice {blocks!r}"
        return True

    @classmethod
    def execute(
        cls,
        model,
        clip,
        text: str,
        words: str,
        subjects: str,
        blocks: str,
        steps: int,
        iterations: int,
        scale: float,
        threshold: float,
        reduce: str,
        regions: RegionSet | None = None,
    ) -> io.NodeOutput:
        node = node_name(cls)
        if clip is None:
            raise PakatiNodeError(node, "clip", "no CLIP given (the checkpoint has no text encoder)")
        if blocks not in excite_patch.EXCITE_BLOCKS:
            raise PakatiNodeError(node, "blocks", f"unknown choice {blocks!r}; use one of {', '.join(excite_patch.EXCITE_BLOCKS)}")
        settings = checked(
            node,
            "scale",
            lambda: ExciteSettings(scale=scale, steps=steps, iterations=iterations, threshold=threshold, reduce=reduce),
            ("scale", "steps", "iterations", "threshold", "reduce"),
        )
        found: list[excite_patch.Subject] = []
        for w in split_words(words):
            if not text.strip():
                raise PakatiNodeError(node, "text", "give the sampler's positive prompt to find the words in")
            found.append(excite_patch.Subject(word_target(node, "words", clip, text, w, None, w)))
        lines = checked(node, "subjects", lambda: parse_subject_lines(subjects))
        sources = [
            SubjectRegion(r.name, None, r.canvas.regions[r.canvas_index].prompt if r.canvas is not None else None)
            for r in (regions.regions if regions is not None else ())
        ]
        try:
            chosen = region_subjects(sources, lines)
        except PakatiError as e:
            raise node_error(node, e, "subjects", describe=lambda err: err.message) from e
        for s in chosen:
            r = regions.regions[s.index]
            target = word_target(node, "subjects", clip, s.prompt, s.word, s.index, f"{r.name}: {s.word}")
            if max(target.text_positions) >= r.cond.shape[1]:
                raise PakatiNodeError(
                    node,
                    "subjects",
                    f"region '{r.name}': the prompt has more tokens than its conditioning ({r.cond.shape[1]}): "
                    "give the prompt the region was encoded from",
                )
            found.append(excite_patch.Subject(target, r.cond.reshape(1, r.cond.shape[-2], r.cond.shape[-1])))
        if not found:
            raise PakatiNodeError(node, "words", "nothing to excite: name words of the prompt or connect regions")
        core = checked(node, "regions", lambda: RegionalAttention(regions)) if regions is not None and len(regions) else None
        return io.NodeOutput(excite_patch.install(model, found, settings, blocks, core))


NODES = [PakatiCaptureAttention, PakatiAttentionMask, PakatiAttendExcite]
