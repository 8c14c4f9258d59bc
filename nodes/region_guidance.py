"""Per-region CFG inside ComfyUI's sampler: a ``sampler_cfg_function`` with a spatial scale map.

Installed by PakatiApplyRegions when a region of its canvas has a ``cfg``; with none, nothing is
installed and the sampler's CFG runs untouched (bit for bit). An existing
``sampler_cfg_function`` (RescaleCFG and the like) is chained, not overwritten: it is called
with the scale map as ``cond_scale`` (a ``[1, 1, h, w]`` tensor, which the arithmetic of such
functions broadcasts).
"""

from __future__ import annotations

from ..pakati_core.regional.guidance import GuidanceMap, guide
from ..pakati_core.regional.regions import RegionSet
from .common import checked


class RegionCfg:
    """``sampler_cfg_function``: uncond + cfg(x) · (cond − uncond) with the regions' CFG map."""

    def __init__(self, guidance: GuidanceMap, regions: RegionSet, inner=None):
        self.guidance, self.regions, self.inner = guidance, regions, inner

    def __deepcopy__(self, memo):
        return self

    def __call__(self, args: dict):
        x, cond, uncond = args["input"], args["cond_denoised"], args["uncond_denoised"]
        hw = (int(x.shape[-2]), int(x.shape[-1]))
        checked("PakatiApplyRegions", "regions", lambda: self.regions.check_aspect(hw[1] * 8, hw[0] * 8))
        scale = self.guidance.scale_map(float(args["cond_scale"]), hw, x.device, x.dtype)
        if self.inner is not None:
            return self.inner(dict(args, cond_scale=scale))
        return x - guide(uncond, cond, scale)


def region_cfgs(regions: RegionSet) -> list[float | None]:
    """Each region's ``cfg`` from its canvas (None for regions made from a mask, or without one)."""
    return [r.canvas.regions[r.canvas_index].cfg if r.canvas is not None and r.canvas_index >= 0 else None for r in regions.regions]


def install_region_cfg(patched, regions: RegionSet) -> None:
    """Put the regions' CFG map on ``patched`` (a clone), chaining any sampler_cfg_function already there."""
    cfgs = region_cfgs(regions)
    existing = patched.model_options.get("sampler_cfg_function")
    if isinstance(existing, RegionCfg):  # PakatiApplyRegions applied again: its regions replace the first set's
        existing = existing.inner
        if existing is None:
            patched.model_options.pop("sampler_cfg_function", None)
    if not any(c is not None for c in cfgs):
        if existing is not None:
            patched.model_options["sampler_cfg_function"] = existing
        return
    guidance = checked("PakatiApplyRegions", "regions", lambda: GuidanceMap(regions.exclusive_masks, cfgs))
    patched.set_model_sampler_cfg_function(RegionCfg(guidance, regions, existing), disable_cfg1_optimization=True)
