"""Model nodes: OpenAI image generation, OpenAI region edits pasted back through Pakati's mask, vision judging.

Keys never pass through a node: each node takes a credential *name* resolved from the
environment or the 0600 key file (``pakati_core.models.credentials``). The SDKs are imported
only when a node runs, so the pack loads without them and these nodes say so at queue time.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Callable, TypeVar

import comfy.model_management
import comfy.utils
import folder_paths
import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..pakati_core.canvas import Canvas
from ..pakati_core.errors import PakatiError
from ..pakati_core.models import CachedJudge, default_registry, make_image_backend, make_judge, set_user_dir
from ..pakati_core.models.base import import_sdk
from ..pakati_core.models.credentials import resolve_key
from ..pakati_core.models.errors import (
    KeyMissingError,
    KeyRejectedError,
    ModelConfigError,
    ModelRetiredError,
    OptionalPackageMissingError,
    ProviderError,
    ProviderRefusedError,
)
from ..pakati_core.models.judging import questions_from
from ..pakati_core.regenerate import regeneration_mask
from ..pakati_core.regenerate.provider_edit import edit_region
from .common import CanvasType, PakatiNodeError, mask_to_numpy, node_error, node_name
from .persistence import BestEffortRecorder, user_cache, user_fingerprint

set_user_dir(folder_paths.get_user_directory())

T = TypeVar("T")
QUALITIES = ["auto", "low", "medium", "high"]
PROVIDERS = ["anthropic", "openai"]
MODEL_TIP = (
    "Model name; empty = the configured default (defaults.<provider>.<kind> in <ComfyUI user dir>/pakati/models.json or "
    "$PAKATI_MODELS_FILE). Providers retire names: change it here or in that file when told to."
)
CREDENTIAL_TIP = (
    "Name of the credential, never the key itself. 'default' reads OPENAI_API_KEY / ANTHROPIC_API_KEY "
    "(or PAKATI_API_KEY_<PROVIDER>); another name N reads PAKATI_API_KEY_<PROVIDER>_<N> or the entry N in "
    "<ComfyUI user dir>/pakati/keys.json (chmod 600)."
)


def _interrupt() -> None:
    comfy.model_management.throw_exception_if_processing_interrupted()


def _input_of(e: PakatiError) -> str | None:
    """The node input a model-layer error type blames, whatever its field."""
    if isinstance(e, (KeyMissingError, KeyRejectedError)):
        return "credential"
    if isinstance(e, (ModelRetiredError, ModelConfigError)):
        return "model"
    if isinstance(e, ProviderRefusedError):
        return "prompt"
    return None


def _describe(e: PakatiError) -> str:
    """The error's message, with the provider named where the message does not already name it."""
    return e.message + (f" [provider {e.provider}]" if isinstance(e, ProviderError) and e.provider not in e.message else "")


def _run(node: str, default_input: str, fn: Callable[[], T]) -> T:
    """Call the model layer; its typed error becomes one message naming node, input and provider (never chained)."""
    try:
        return fn()
    except PakatiError as e:
        err = node_error(node, e, default_input, input_of=_input_of, describe=_describe)
    raise err


def queue_check(node: str, provider: str, kind: str, model: str, credential: str) -> bool | str:
    """Queue-time check: the SDK is installed, a key is configured under the credential name, the model is not retired."""
    try:
        import_sdk(provider)
        resolve_key(provider, credential)
        default_registry().resolve(provider, kind, model, f"{node} input 'model'")
    except OptionalPackageMissingError as e:
        return f"{node}: {e.message}"
    except PakatiError as e:
        return str(node_error(node, e, "model", input_of=_input_of, describe=lambda err: err.message))
    return True


def _options(node: str, model: str) -> dict:
    return {
        "check_interrupt": _interrupt,
        "model_setting": f"{node} input 'model'" if model.strip() else None,
        "recorder": BestEffortRecorder(),
    }


def _tensor(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    if not torch.isfinite(t).all():
        raise ValueError("the model returned non-finite pixel values")
    return t


class PakatiOpenAIGenerate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiOpenAIGenerate",
            display_name="Pakati OpenAI Generate",
            category="Pakati/models",
            description="Generate an image with the OpenAI Images API. Sizes the model cannot make are generated at the nearest "
            "allowed aspect and centre-cropped/resized; the info output says what was done.",
            inputs=[
                io.String.Input("prompt", multiline=True, default="", tooltip="What to draw."),
                io.Int.Input(
                    "width",
                    default=1024,
                    min=64,
                    max=4096,
                    step=8,
                    tooltip="Output width; sizes the model cannot make are fitted and said in info.",
                ),
                io.Int.Input("height", default=1024, min=64, max=4096, step=8, tooltip="Output height."),
                io.String.Input("model", default="", tooltip=MODEL_TIP),
                io.Combo.Input(
                    "quality", options=QUALITIES, default="auto", tooltip="Rendering quality (and cost) where the model offers it."
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Sent where the model supports a seed; otherwise it only decides when ComfyUI runs the node again.",
                ),
                io.String.Input("credential", default="default", tooltip=CREDENTIAL_TIP),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The generated image at width x height."),
                io.String.Output(display_name="info", tooltip="JSON: model, size sent, and any size or option handling."),
            ],
        )

    @classmethod
    def validate_inputs(cls, model: str | None = None, credential: str | None = None, prompt: str | None = None) -> bool | str:
        if prompt is not None and not prompt.strip():
            return f"{node_name(cls)}: input 'prompt': empty; say what to draw"
        return queue_check(node_name(cls), "openai", "image", model or "", credential or "default")

    @classmethod
    def execute(cls, prompt: str, width: int, height: int, model: str, quality: str, seed: int, credential: str) -> io.NodeOutput:
        name = node_name(cls)
        bar = comfy.utils.ProgressBar(2)
        backend = _run(name, "model", lambda: make_image_backend("openai", model or None, credential, **_options(name, model)))
        bar.update(1)
        _interrupt()
        res = _run(name, "model", lambda: backend.generate_detailed(prompt, (width, height), seed=seed, quality=quality))
        bar.update(1)
        info = {"model": res.model, "size": [width, height], "sent_size": list(res.sent_size), "notes": res.notes}
        return io.NodeOutput(_tensor(res.image)[None], json.dumps(info, allow_nan=False))


class PakatiOpenAIEditRegion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiOpenAIEditRegion",
            display_name="Pakati OpenAI Edit Region",
            category="Pakati/models",
            description="Edit one region with the OpenAI Images API. The provider treats the mask as guidance, so Pakati pastes its "
            "result back through its own feathered mask: every pixel outside the region and its feather band is unchanged.",
            inputs=[
                io.Image.Input("image", tooltip="The image (or batch) to edit; one API call per frame."),
                io.String.Input("prompt", multiline=True, default="", tooltip="What the region should become."),
                io.String.Input("model", default="", tooltip=MODEL_TIP),
                io.Combo.Input(
                    "quality", options=QUALITIES, default="auto", tooltip="Rendering quality (and cost) where the model offers it."
                ),
                io.Int.Input("grow", default=8, min=0, max=512, tooltip="Grow the region by this many pixels before feathering."),
                io.Float.Input(
                    "feather",
                    default=16.0,
                    min=0.0,
                    max=512.0,
                    step=0.5,
                    tooltip="Width (pixels) of the soft band where edited and original pixels blend; nothing beyond it changes.",
                ),
                io.Int.Input(
                    "context",
                    default=64,
                    min=0,
                    max=4096,
                    step=8,
                    tooltip="Pixels of surrounding image sent with the region so the edit fits in.",
                ),
                io.String.Input("credential", default="default", tooltip=CREDENTIAL_TIP),
                io.Mask.Input("mask", optional=True, tooltip="The region as a mask (1 = edit). Takes precedence over canvas + region."),
                CanvasType.Input(
                    "canvas",
                    optional=True,
                    tooltip="A canvas laid over the image: gives the region by name; its locked regions keep their pixels.",
                ),
                io.String.Input(
                    "region", default="0", optional=True, tooltip="With a canvas and no mask: the region's name, id or 0-based index."
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The image with only the region (and its feather band) changed."),
                io.Mask.Output(
                    display_name="blend", tooltip="Where the provider's pixels entered: the region grown and feathered, 0 beyond its band."
                ),
                io.String.Output(display_name="info", tooltip="JSON per frame: crop box, size sent, size handling (pad/resize), model."),
            ],
        )

    @classmethod
    def validate_inputs(cls, model: str | None = None, credential: str | None = None, prompt: str | None = None) -> bool | str:
        if prompt is not None and not prompt.strip():
            return f"{node_name(cls)}: input 'prompt': empty; say what the region should become"
        return queue_check(node_name(cls), "openai", "image", model or "", credential or "default")

    @classmethod
    def execute(
        cls,
        image: torch.Tensor,
        prompt: str,
        model: str,
        quality: str,
        grow: int,
        feather: float,
        context: int,
        credential: str,
        mask: torch.Tensor | None = None,
        canvas: Canvas | None = None,
        region: str = "0",
    ) -> io.NodeOutput:
        name = node_name(cls)
        frames = image.detach().float().cpu().numpy()
        b, h, w = frames.shape[:3]
        keep = None
        if mask is not None:
            masks = mask_to_numpy(mask)
            if masks.shape[1:] != (h, w):
                raise PakatiNodeError(name, "mask", f"the mask is {masks.shape[2]}x{masks.shape[1]} but the image is {w}x{h}")
            if masks.shape[0] not in (1, b):
                raise PakatiNodeError(name, "mask", f"{masks.shape[0]} masks for {b} images; give one mask or one per image")
        elif canvas is not None:
            m, keep = _run(name, "region", lambda: regeneration_mask(canvas, region, w, h))
            masks = m[None]
        else:
            raise PakatiNodeError(name, "mask", "connect a mask, or a canvas and a region name, to say which region to edit")
        if not (masks > 0).any():
            raise PakatiNodeError(name, "mask", "the mask is empty (every pixel is 0), so there is no region to edit")
        bar = comfy.utils.ProgressBar(b + 1)
        backend = _run(name, "model", lambda: make_image_backend("openai", model or None, credential, **_options(name, model)))
        bar.update(1)
        outs, blends, infos = [], [], []
        for i in range(b):
            _interrupt()
            m = masks[i if masks.shape[0] > 1 else 0]
            res = _run(
                name,
                "model",
                lambda: edit_region(
                    backend,
                    frames[i],
                    m,
                    prompt,
                    grow=grow,
                    feather=feather,
                    context=context,
                    quality=quality,
                    check_interrupt=_interrupt,
                    keep=keep,
                ),
            )
            outs.append(res.image)
            blends.append(res.blend)
            infos.append(res.info)
            bar.update(1)
        return io.NodeOutput(_tensor(np.stack(outs)), _tensor(np.stack(blends)), json.dumps(infos if b > 1 else infos[0], allow_nan=False))


class PakatiAskVision(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiAskVision",
            display_name="Pakati Ask Vision",
            category="Pakati/models",
            description="Ask a vision model (Claude or an OpenAI model) yes/no questions about an image; each answer has a verdict, "
            "a score in [0, 1] and a reason. The score output is the mean over questions and frames.",
            inputs=[
                io.Image.Input("image", tooltip="The image (or batch) to judge; one call per frame."),
                io.String.Input(
                    "questions", multiline=True, default="", tooltip="One question per line. Empty = one question made from the goal."
                ),
                io.String.Input(
                    "goal", multiline=True, default="", tooltip="What the image should show; used as a question when 'questions' is empty."
                ),
                io.Combo.Input("provider", options=PROVIDERS, default="anthropic", tooltip="Which provider's vision model judges."),
                io.String.Input("model", default="", tooltip=MODEL_TIP),
                io.String.Input("credential", default="default", tooltip=CREDENTIAL_TIP),
            ],
            outputs=[
                io.String.Output(
                    display_name="answers",
                    tooltip="JSON: provider, model, and per frame the answers (question, verdict, score, reason) and score.",
                ),
                io.Float.Output(display_name="score", tooltip="Mean score over every answer, in [0, 1]."),
            ],
        )

    @classmethod
    def validate_inputs(
        cls,
        questions: str | None = None,
        goal: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        credential: str | None = None,
    ) -> bool | str:
        if questions is not None and goal is not None and not questions_from(questions, goal):
            return f"{node_name(cls)}: input 'questions': give at least one question (one per line) or a goal"
        return queue_check(node_name(cls), provider or "anthropic", "vision", model or "", credential or "default")

    @classmethod
    def fingerprint_inputs(cls, **_) -> str:
        """Answers come from the user's own judge cache: never from another user's run."""
        return user_fingerprint()

    @classmethod
    def execute(cls, image: torch.Tensor, questions: str, goal: str, provider: str, model: str, credential: str) -> io.NodeOutput:
        name = node_name(cls)
        qs = questions_from(questions, goal)
        if not qs:
            raise PakatiNodeError(name, "questions", "give at least one question (one per line) or a goal")
        frames = image.detach().float().cpu().numpy()
        bar = comfy.utils.ProgressBar(len(frames) + 1)
        judge = _run(
            name,
            "model",
            lambda: CachedJudge(make_judge(provider, model or None, credential, **_options(name, model)), user_cache("judging")),
        )
        bar.update(1)
        per_frame, scores = [], []
        for frame in frames:
            _interrupt()
            answers = _run(name, "model", lambda: judge.ask(frame[..., :3], qs))
            frame_scores = [a.score for a in answers]
            scores += frame_scores
            per_frame.append({"answers": [asdict(a) for a in answers], "score": float(np.mean(frame_scores))})
            bar.update(1)
        score = float(np.mean(scores))
        out = {"provider": provider, "model": judge.model, "frames": per_frame, "score": score}
        return io.NodeOutput(json.dumps(out, allow_nan=False), score)


NODES = [PakatiOpenAIGenerate, PakatiOpenAIEditRegion, PakatiAskVision]
