"""Pakati's ComfyUI nodes (V3 schema through the pinned ``comfy_api.v0_0_2``).

Node modules are imported one by one: a module whose optional dependency is missing is
skipped with a log line naming the package to install, and the rest of the pack loads.
"""

from __future__ import annotations

import importlib
import logging

from comfy_api.v0_0_2 import ComfyExtension, io

log = logging.getLogger("pakati")

# (node module, optional packages it imports: {import name: pip name})
NODE_MODULES: list[tuple[str, dict[str, str]]] = [
    (".canvas_nodes", {}),
    (".regenerate_nodes", {}),
    (".understanding_nodes", {}),
    (".regional_nodes", {}),
    (".region_controlnet_nodes", {}),
    (".region_reference_nodes", {}),
    (".region_lora_nodes", {}),
    (".region_denoise_nodes", {}),
    (".refine_nodes", {}),
    (".attention_nodes", {}),
    (".model_nodes", {"openai": "openai", "anthropic": "anthropic"}),
    (".orchestration_nodes", {}),
    (".repair_nodes", {}),
    (".template_nodes", {}),
    (".history_nodes", {}),
]


def load_node_classes(modules: list[tuple[str, dict[str, str]]] | None = None) -> list[type[io.ComfyNode]]:
    """Import each node module; one whose optional package is missing is skipped with a hint."""
    classes: list[type[io.ComfyNode]] = []
    for module_name, optional in modules if modules is not None else NODE_MODULES:
        try:
            module = importlib.import_module(module_name, __name__)
        except ModuleNotFoundError as e:
            missing = (e.name or "").split(".")[0]
            if missing not in optional:
                raise
            log.warning(
                "Pakati: the nodes in %s are unavailable because the optional package '%s' is missing; "
                "install it with: pip install %s (the rest of Pakati is loaded)",
                module_name.lstrip("."),
                missing,
                optional[missing],
            )
            continue
        classes.extend(module.NODES)
    return classes


class PakatiExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return load_node_classes()


async def comfy_entrypoint() -> PakatiExtension:
    try:  # history and template routes on a running server; a failure here never costs the nodes
        from .routes import install_if_server

        install_if_server()
    except Exception:
        log.exception("Pakati: the history/template routes could not be installed; the nodes are loaded")
    return PakatiExtension()
