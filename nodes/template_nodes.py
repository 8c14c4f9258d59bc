"""Template nodes: save a configuration that worked (canvas, references, refinement settings) and start from it again."""

from __future__ import annotations

import json
import os

import folder_paths
import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..pakati_core.canvas import Canvas
from ..pakati_core.references import Reference
from ..pakati_core.store import StoreError, TemplateNotFoundError, validate_template_name
from .common import CanvasType, PakatiNodeError, checked, node_error, validation_result
from .persistence import SCHEMA_WAIT_S, UNKNOWN_USER, current_user, pakati_store, user_fingerprint

ReferencesType = io.Custom("PAKATI_REFERENCES")
NO_TEMPLATES = "(no templates saved yet)"


def export_directory(user: str) -> str:
    """Where exported templates go: the user's own ComfyUI user-data folder (beside their workflows)."""
    return os.path.join(folder_paths.get_user_directory(), user, "pakati", "templates")


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON (only finite numbers are)")


def parse_settings(node: str, settings: str) -> dict:
    if not settings.strip():
        return {}
    try:
        value = json.loads(settings, parse_constant=_no_constants)
    except ValueError as e:
        raise PakatiNodeError(node, "settings", f"not strict JSON: {e}") from e
    if not isinstance(value, dict):
        raise PakatiNodeError(node, "settings", f"must be a JSON object, got {type(value).__name__}")
    return value


class PakatiSaveTemplate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PakatiSaveTemplate",
            display_name="Pakati Save Template",
            category="Pakati/templates",
            description="Keep a configuration that worked (the canvas, optional references and refinement settings, a thumbnail) "
            "under a name in Pakati's database, for Pakati Load Template. Each user of a --multi-user server has their own templates.",
            is_output_node=True,
            inputs=[
                CanvasType.Input("canvas", tooltip="The canvas of regions to keep."),
                io.String.Input(
                    "name",
                    default="my template",
                    tooltip="The template's name: 1-128 letters or digits of any script, spaces and - _ . ( ) , (not "
                    "starting with '.'). Saving under an existing name replaces it.",
                ),
                io.String.Input("description", default="", multiline=True, tooltip="What the template is for."),
                io.String.Input(
                    "settings",
                    default="",
                    multiline=True,
                    optional=True,
                    tooltip='Optional JSON object of settings to keep with it, for example {"refine": {"target": 0.9, '
                    '"strategy": "adaptive"}}.',
                ),
                ReferencesType.Input(
                    "references",
                    optional=True,
                    tooltip="Optional references (from Pakati Reference) to keep with the template; their images are "
                    "stored, their masks are not.",
                ),
                io.Image.Input("image", optional=True, tooltip="Optional image whose first frame becomes the template's thumbnail."),
                io.Boolean.Input(
                    "export_json",
                    default=False,
                    optional=True,
                    tooltip="Also write the template as a JSON file to share, under <ComfyUI user "
                    "dir>/<user>/pakati/templates/<name>.json.",
                ),
            ],
            outputs=[io.String.Output(display_name="template", tooltip="The saved template as a shareable JSON document.")],
        )

    @classmethod
    def validate_inputs(cls, name: str | None = None, settings: str | None = None, **_) -> bool | str:
        if current_user() is None:
            return f"PakatiSaveTemplate: input 'name': {UNKNOWN_USER}"
        if name is not None:
            valid = validation_result("PakatiSaveTemplate", "name", lambda: validate_template_name(name))
            if valid is not True:
                return valid
        if settings is not None:
            return validation_result("PakatiSaveTemplate", "settings", lambda: parse_settings("PakatiSaveTemplate", settings))
        return True

    @classmethod
    def fingerprint_inputs(cls, **_) -> str:
        """The template is saved for whoever queued the graph: another user queueing the same graph saves their own."""
        return user_fingerprint()

    @classmethod
    def execute(
        cls,
        canvas: Canvas,
        name: str,
        description: str,
        settings: str = "",
        references: tuple | None = None,
        image: torch.Tensor | None = None,
        export_json: bool = False,
    ) -> io.NodeOutput:
        node = "PakatiSaveTemplate"
        checked(node, "name", lambda: validate_template_name(name))
        values = parse_settings(node, settings)
        thumb = image[0, ..., :3].detach().float().cpu().numpy() if image is not None else None
        if thumb is not None and not np.isfinite(thumb).all():
            raise PakatiNodeError(node, "image", "the image holds NaN or infinite values")
        user = current_user()
        try:
            store = pakati_store(user)
            if references:
                values = dict(
                    values,
                    references=[
                        {
                            "image_hash": store.references.put(r.image, r.aspect, r.description, r.weight),
                            "aspect": r.aspect,
                            "description": r.description,
                            "weight": r.weight,
                        }
                        for r in references
                    ],
                )
            saved = store.templates.save(name, canvas.to_dict(), values, description, thumb)
            doc = store.templates.export(saved["name"])
            where = ""
            if export_json:
                where = str(store.templates.export_file(saved["name"], export_directory(user)))
        except StoreError as e:
            raise node_error(node, e, "canvas", input_of=lambda err: "name" if err.field in ("name", "user") else None) from e
        text = (
            f"Saved template '{saved['name']}' ({len(canvas.regions)} regions"
            + (f", {len(references)} references" if references else "")
            + ")"
        )
        if where:
            text += f"; exported to {where}"
        return io.NodeOutput(json.dumps(doc, allow_nan=False), ui=ui.PreviewText(text))


class PakatiLoadTemplate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        try:  # /object_info runs this on the server's event loop: a locked database lists nothing rather than wait
            names = pakati_store(wait_s=SCHEMA_WAIT_S).templates.names()
        except StoreError:  # an unknown user under --multi-user included: they see no one's templates
            names = []
        return io.Schema(
            node_id="PakatiLoadTemplate",
            display_name="Pakati Load Template",
            category="Pakati/templates",
            description="Start from a saved template: its canvas, its settings (JSON) and its references. The list shows your templates "
            "(press R in the front end to refresh it after saving one).",
            inputs=[
                io.Combo.Input(
                    "name", options=names or [NO_TEMPLATES], tooltip="A template saved with Pakati Save Template (or imported)."
                ),
            ],
            outputs=[
                CanvasType.Output(display_name="canvas", tooltip="The template's canvas."),
                io.String.Output(display_name="settings", tooltip="The template's settings as a JSON object."),
                ReferencesType.Output(
                    display_name="references", tooltip="The template's references (without masks); empty when it has none."
                ),
                io.String.Output(display_name="description", tooltip="The template's description."),
            ],
        )

    @classmethod
    def validate_inputs(cls, name: str | None = None) -> bool | str:
        if name is None:
            return True
        if name == NO_TEMPLATES:
            return "PakatiLoadTemplate: input 'name': no template is saved yet (save one with Pakati Save Template)"
        if current_user() is None:
            return f"PakatiLoadTemplate: input 'name': {UNKNOWN_USER}"
        return validation_result("PakatiLoadTemplate", "name", lambda: pakati_store().templates.load(name))

    @classmethod
    def fingerprint_inputs(cls, name: str) -> str:
        """A template saved again under the same name is loaded again; each user loads their own."""
        try:
            return user_fingerprint(pakati_store().templates.load(name)["updated_at"] or "")
        except StoreError:
            return user_fingerprint("")

    @classmethod
    def execute(cls, name: str) -> io.NodeOutput:
        node = "PakatiLoadTemplate"
        try:
            store = pakati_store()
            t = store.templates.load(name)
        except TemplateNotFoundError as e:
            raise node_error(node, e, "name", describe=lambda err: f"{err} (for user '{store.owner}')") from e
        except StoreError as e:
            raise node_error(node, e, "name") from e
        canvas = checked(node, "name", lambda: Canvas.from_dict(t["canvas"]))
        refs = []
        for r in t["settings"].get("references", []):
            img = store.references.image(r["image_hash"])
            if img is None:
                raise PakatiNodeError(
                    node, "name", f"template '{name}' names a reference image {r['image_hash'][:12]}… that is not in the store"
                )
            refs.append(Reference(img, r.get("description", ""), r.get("aspect", "general"), None, r.get("weight", 1.0)))
        settings = {k: v for k, v in t["settings"].items() if k != "references"}
        return io.NodeOutput(canvas, json.dumps(settings, allow_nan=False), tuple(refs), t["description"])


NODES = [PakatiSaveTemplate, PakatiLoadTemplate]
