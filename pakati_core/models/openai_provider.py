"""OpenAI over the official SDK: Images (generate, masked edit) and chat models as judge and planner."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..images import decode_image, png_bytes, resize_image, shrink_to
from .base import ProviderModel
from .errors import MalformedResponseError, ProviderRefusedError
from .images import SizeFit, b64_png, fit_image, fit_mask, mask_png_bytes, nearest_size, plan_fit, restore
from .judging import ANSWERS_SCHEMA, JUDGE_SYSTEM, check_schema, judge_user_text, parse_answers
from .protocols import Answer


@dataclass
class ImageResult:
    """A provider image at the size the caller asked for, and what was done to sizes on the way."""

    image: np.ndarray
    model: str
    sent_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)


class OpenAIImages(ProviderModel):
    """``ImageBackend`` over ``images.generate`` / ``images.edit``; sizes the API cannot take are fitted and restored."""

    provider, kind = "openai", "image"

    def _size_arg(self, size: tuple[int, int]) -> str:
        return f"{size[0]}x{size[1]}"

    def _quality(self, quality: str | None, notes: list[str]) -> dict:
        spec = self.resolved.spec
        if not quality or quality == "auto" and "auto" not in spec.qualities:
            return {}
        if spec.qualities and quality not in spec.qualities:
            notes.append(f"quality '{quality}' is not offered by {spec.name} ({', '.join(spec.qualities)}); not sent")
            return {}
        return {"quality": quality}

    def _decode(self, response: Any, want: tuple[int, int], notes: list[str]) -> np.ndarray:
        data = getattr(response, "data", None) or []
        if not data:
            raise MalformedResponseError(f"provider openai returned no image (model '{self.model}')", "openai")
        item = data[0]
        b64 = getattr(item, "b64_json", None)
        if not b64:
            if getattr(item, "url", None):
                raise MalformedResponseError(
                    f"provider openai returned an image URL instead of image data (model '{self.model}')", "openai"
                )
            raise MalformedResponseError(f"provider openai returned an image entry without data (model '{self.model}')", "openai")
        try:
            image = decode_image(base64.b64decode(b64, validate=True))
        except (binascii.Error, ValueError, OSError) as e:
            raise MalformedResponseError(
                f"provider openai returned image data that is not a readable image ({type(e).__name__})", "openai"
            ) from None
        if not np.isfinite(image).all():
            raise MalformedResponseError("provider openai returned an image with non-finite values", "openai")
        h, w = image.shape[:2]
        if (w, h) != want:
            notes.append(f"the provider returned {w}x{h} instead of the {want[0]}x{want[1]} asked for; resized to {want[0]}x{want[1]}")
            image = resize_image(image, *want)
        return image

    def generate_detailed(self, prompt: str, size: tuple[int, int], seed: int | None = None, quality: str | None = None) -> ImageResult:
        spec, notes = self.resolved.spec, []
        width, height = size
        sent = nearest_size(width, height, spec.sizes) if spec.sizes else (width, height)
        if seed is not None and not spec.seed:
            notes.append(f"{spec.name} takes no seed; the seed only decides when ComfyUI re-runs the node")
        kwargs = dict(model=spec.name, prompt=prompt, size=self._size_arg(sent), n=1, **self._quality(quality, notes))
        response = self._call(
            "generate", lambda: self.client.images.generate(**kwargs), size=kwargs["size"], cost=spec.cost(quality), prompt=prompt
        )
        image = self._decode(response, sent, notes)
        if sent != (width, height):
            notes.append(
                f"{width}x{height} is not a size {spec.name} makes; generated at {sent[0]}x{sent[1]} and "
                f"centre-cropped/resized to {width}x{height}"
            )
            image = cover(image, width, height)
        return ImageResult(image, spec.name, sent, notes)

    def generate(self, prompt: str, size: tuple[int, int], seed: int | None = None) -> np.ndarray:
        return self.generate_detailed(prompt, size, seed).image

    def edit_detailed(self, image: np.ndarray, mask: np.ndarray, prompt: str, quality: str | None = None) -> ImageResult:
        """The provider's edit of ``image`` where ``mask > 0``, at the input's size (the provider treats the mask as guidance)."""
        spec, notes = self.resolved.spec, []
        h, w = image.shape[:2]
        fit = plan_fit(w, h, spec.sizes) if spec.sizes else SizeFit((w, h), (w, h), (0, 0), (w, h))
        if fit.changed:
            notes.append(fit.describe())
        sent_img, sent_mask = fit_image(image, fit), fit_mask(mask, fit)
        size = self._size_arg(fit.sent)
        files = dict(image=("image.png", png_bytes(sent_img), "image/png"), mask=("mask.png", mask_png_bytes(sent_mask), "image/png"))
        kwargs = dict(model=spec.name, prompt=prompt, size=size, n=1, **self._quality(quality, notes))
        response = self._call("edit", lambda: self.client.images.edit(**files, **kwargs), size=size, cost=spec.cost(quality), prompt=prompt)
        result = self._decode(response, fit.sent, notes)
        return ImageResult(restore(result, fit), spec.name, fit.sent, notes)

    def edit(self, image: np.ndarray, mask: np.ndarray, prompt: str) -> np.ndarray:
        return self.edit_detailed(image, mask, prompt).image


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to cover ``width x height`` and centre-crop it (no stretching)."""
    h, w = image.shape[:2]
    s = max(width / w, height / h)
    sw, sh = max(width, round(w * s)), max(height, round(h * s))
    big = resize_image(image, sw, sh)
    x, y = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(big[y : y + height, x : x + width])


class _OpenAIChat(ProviderModel):
    """Chat Completions with a ``json_schema`` response format. No ``max_tokens`` (deprecated, and not accepted by
    reasoning models; the model's own output limit applies) and no sampling parameters (reasoning models refuse them)."""

    provider = "openai"

    def _json(self, operation: str, system: str, content: list[dict], schema: dict, strict: bool, what: str, prompt: str) -> dict:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": content}]
        fmt = {"type": "json_schema", "json_schema": {"name": "pakati_output", "schema": schema, "strict": strict}}
        response = self._call(
            operation,
            lambda: self.client.chat.completions.create(model=self.model, messages=messages, response_format=fmt),
            cost=self.resolved.spec.cost(),
            prompt=prompt,
        )
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise MalformedResponseError(f"provider openai returned no choices (model '{self.model}')", "openai")
        message, finish = choices[0].message, choices[0].finish_reason
        if getattr(message, "refusal", None) or finish == "content_filter":
            raise ProviderRefusedError(f"provider openai refused to answer (model '{self.model}')", "openai")
        if finish == "length":  # reasoning and visible tokens share the completion limit
            raise MalformedResponseError(f"provider openai ran out of tokens before finishing {what} (model '{self.model}')", "openai")
        return self._json_answer(message.content or "", what, f"finish reason {finish!r}")


class OpenAIVisionJudge(_OpenAIChat):
    """``VisionJudge`` over chat completions with an image and a strict JSON schema."""

    kind = "vision"

    def ask(self, image: np.ndarray, questions: Sequence[str]) -> list[Answer]:
        questions = list(questions)
        url = "data:image/png;base64," + b64_png(shrink_to(image, self.resolved.spec.max_side))
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": judge_user_text(questions)}]
        data = self._json("ask", JUDGE_SYSTEM, content, ANSWERS_SCHEMA, True, "judge answers", judge_user_text(questions))
        return self._checked(lambda: parse_answers(data, questions, "openai"))


class OpenAIPlanner(_OpenAIChat):
    """``TextPlanner`` over chat completions with a JSON schema (validated again on our side)."""

    kind = "text"

    def complete_json(self, system: str, user: str, schema: dict) -> dict:
        data = self._json("complete_json", system, [{"type": "text", "text": user}], schema, False, "the plan", user)
        return self._checked(lambda: check_schema(data, schema, "openai", "the plan"))
