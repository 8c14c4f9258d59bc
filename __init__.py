"""Pakati: region-level control over SDXL generation in ComfyUI.

ComfyUI imports this package under its file path, so everything below uses relative imports.
The nodes use the V3 schema (``comfy_entrypoint``); see README, "For developers".
"""

from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./web/js"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
