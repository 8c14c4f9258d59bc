"""A canvas cut to a crop box and scaled to the sampling size, so regions apply inside the crop.

Pure geometry: polygons are shifted, scaled and clipped to the crop (Sutherland-Hodgman
against the crop rectangle); mask regions are cut and resampled. Regions that miss the crop
are dropped.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..canvas import Canvas, Region
from ..geometry import Box, clip_polygon, polygon_area
from ..masks import resize_mask


def crop_canvas(canvas: Canvas, image_size: tuple[int, int], box: Box, target: tuple[int, int]) -> Canvas:
    """``canvas`` (laid over an image of ``image_size``) as seen in ``box``, resized to ``target``."""
    img_w, img_h = image_size
    tw, th = target
    sx = img_w / canvas.width * tw / box.width
    sy = img_h / canvas.height * th / box.height
    ox, oy = box.x0 * tw / box.width, box.y0 * th / box.height
    regions: list[Region] = []
    for i, r in enumerate(canvas.regions):
        feather = r.feather * math.sqrt(sx * sy)
        if r.shape == "mask":
            full = canvas.rasterize(i, img_w, img_h, feather=0)
            cut = resize_mask(full[box.slices], tw, th)
            if cut.max() > 0:
                regions.append(replace(r, mask=cut, feather=feather))
            continue
        pts = r.polygon() * np.array([sx, sy]) - np.array([ox, oy])
        clipped = clip_polygon(pts, tw, th)
        if len(clipped) < 3 or polygon_area(clipped) < 1e-6:
            continue
        if r.shape == "rect":
            x0, y0 = clipped.min(0)
            x1, y1 = clipped.max(0)
            regions.append(replace(r, points=((float(x0), float(y0)), (float(x1), float(y1))), feather=feather))
        else:
            regions.append(replace(r, points=tuple((float(x), float(y)) for x, y in clipped), feather=feather))
    return Canvas(tw, th, regions)
