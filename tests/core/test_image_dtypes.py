"""No silent wrong answers from dtype: every public core function that takes an image gives the
same answer for an 8-bit image (0..255) as for its float twin (the same pixels / 255), or refuses
what it cannot read (booleans, 16-bit values, other dtypes, NaN) with a typed error. Hypothesis draws the images;
each function gets both."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pakati_core.canvas import Canvas
from pakati_core.delta import analyse
from pakati_core.errors import ImageInputError, NonFiniteError
from pakati_core.images import as_rgb, fit_to_grid, image_hash, png_bytes, resize_image, shrink_to, to_uint8, unit_float
from pakati_core.models.images import b64_png
from pakati_core.orchestration import check_alignment, plan
from pakati_core.preview import draw_overlay
from pakati_core.references import Reference
from pakati_core.refine.correct import correct_region, tone_colour_deltas
from pakati_core.regenerate import crop_region, stitch_region
from pakati_core.understanding.masking import check_image
from pakati_core.understanding.scores import score

FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def images(min_side: int = 8, max_side: int = 24, multiple: int = 1):
    """uint8 H x W x 3 images (sides a multiple of ``multiple``)."""
    side = st.integers(min_side // multiple, max_side // multiple).map(lambda v: v * multiple)
    return st.tuples(side, side).flatmap(lambda hw: arrays(np.uint8, (hw[0], hw[1], 3)))


def twin(u8: np.ndarray) -> np.ndarray:
    return u8.astype(np.float32) / np.float32(255.0)


def same(a, b, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=atol, rtol=0)


@FEW
@given(images(1, 24))
def test_base_image_functions_read_uint8_and_float_alike(u8):
    f = twin(u8)
    same(as_rgb(u8), as_rgb(f))
    assert as_rgb(u8).dtype == np.float32 and float(as_rgb(u8).max()) <= 1.0
    assert np.array_equal(to_uint8(u8), to_uint8(f)) and np.array_equal(to_uint8(f), u8)
    assert image_hash(u8) == image_hash(f)
    assert png_bytes(u8) == png_bytes(f)
    assert b64_png(u8) == b64_png(f)
    h, w = u8.shape[:2]
    same(resize_image(u8, w * 2, h + 3), resize_image(f, w * 2, h + 3))
    same(shrink_to(u8, 8), shrink_to(f, 8))
    same(unit_float(u8), f)


@FEW
@given(images(32, 48, multiple=16))
def test_understanding_inputs_read_uint8_and_float_alike(u8):
    f = twin(u8)
    same(fit_to_grid(u8, 32), fit_to_grid(f, 32))
    same(check_image(u8), check_image(f))
    hidden = np.zeros(u8.shape[:2], bool)
    hidden[8:24, 8:24] = True
    rec = np.ascontiguousarray(u8[::-1])
    a, b = score(u8, rec, hidden), score(f, twin(rec), hidden)
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] is None) == (b[k] is None) and (a[k] is None or abs(a[k] - b[k]) < 1e-6), k


@FEW
@given(images(16, 32), images(16, 32))
def test_delta_refine_and_references_read_uint8_and_float_alike(u8, ref8):
    f, rf = twin(u8), twin(ref8)
    ra, rb = Reference(ref8, "", "color"), Reference(rf, "", "color")
    same(ra.image, rb.image)
    assert ra.content_hash == rb.content_hash
    ea, eb = analyse(u8, [ra]), analyse(f, [rb])
    assert abs(ea.overall - eb.overall) < 1e-5
    mask = np.zeros(u8.shape[:2], np.float32)
    mask[4:12, 4:12] = 1.0
    da, db = tone_colour_deltas(u8, mask, ref8), tone_colour_deltas(f, mask, rf)
    assert da.keys() == db.keys() and all(abs(da[k] - db[k]) < 1e-4 for k in da)
    same(correct_region(u8, mask, da, {k: 0.5 for k in da}), correct_region(f, mask, db, {k: 0.5 for k in db}), atol=1e-4)


@FEW
@given(images(24, 40))
def test_regeneration_and_preview_read_uint8_and_float_alike(u8):
    f = twin(u8)
    h, w = u8.shape[:2]
    mask = np.zeros((1, h, w), np.float32)
    mask[0, 6:18, 6:18] = 1.0
    ca, cb = crop_region(u8, mask, context=4, mode="keep"), crop_region(f, mask, context=4, mode="keep")
    same(ca.images, cb.images)
    crop8 = (np.clip(ca.images, 0, 1) * 255).round().astype(np.uint8)
    same(stitch_region(ca.stitch, crop8, u8, colour_match=False), stitch_region(cb.stitch, twin(crop8), f, colour_match=False))
    canvas = Canvas.from_dict(
        {"version": 1, "width": 64, "height": 64, "regions": [{"id": "r1", "shape": "rect", "points": [[0, 0], [32, 32]], "prompt": "x"}]}
    )
    same(draw_overlay(u8, canvas), draw_overlay(f, canvas))


def _painted_scene(p, size: int = 128) -> np.ndarray:
    """A grey board with each planned object's box painted its planned colour (a flat red car, a flat blue house)."""
    img = np.full((size, size, 3), 0.55, np.float32)
    paint = {"red": (0.85, 0.12, 0.1), "blue": (0.12, 0.3, 0.9)}
    s = size / p.width
    for o in p.objects:
        colour = next(a.value for a in o.attributes if a.value in paint)
        x0, y0, x1, y1 = (round(v * s) for v in p.box(o.id))
        img[y0:y1, x0:x1] = paint[colour]
    return img


def test_check_alignment_gives_uint8_the_verdicts_of_its_float_twin():
    """Issue #26 item 4: a painted red car and blue house scored 0.3 ('car red? no') as uint8, 0.7 as float."""
    p = plan("a red car on the left of a blue house", 512, 512)
    f = _painted_scene(p)
    u8 = (f * 255).round().astype(np.uint8)
    a, b = check_alignment(u8, p), check_alignment(twin(u8), p)
    va = [(v.question.id, v.verdict, round(v.score, 6)) for v in a.verdicts]
    vb = [(v.question.id, v.verdict, round(v.score, 6)) for v in b.verdicts]
    assert va == vb and abs(a.score - b.score) < 1e-9
    colours = [v for v in a.verdicts if v.question.kind == "attribute"]
    assert colours and all(v.verdict == "yes" for v in colours), [(v.question.text, v.verdict, v.reason) for v in colours]


@FEW
@given(st.integers(8, 16).flatmap(lambda s: arrays(np.float32, (s, s, 3), elements=st.floats(-1e6, 1e6, width=32))))
def test_float_images_are_read_as_0_to_1_and_clipped(a):
    """Float pixels are 0..1 by contract (documented): values outside are clipped, never NaN, never rescaled."""
    rgb = as_rgb(a)
    assert rgb.dtype == np.float32 and np.isfinite(rgb).all()
    same(rgb, np.clip(a, 0, 1))
    assert np.array_equal(to_uint8(a), (np.clip(a, 0, 1) * 255).round().astype(np.uint8))


def test_other_dtypes_are_typed_errors():
    with pytest.raises(ImageInputError, match="boolean"):
        as_rgb(np.ones((8, 8, 3), bool))
    with pytest.raises(ImageInputError, match="outside 0..255"):
        as_rgb(np.full((8, 8, 3), 4000, np.uint16))
    with pytest.raises(ImageInputError, match="dtype"):
        as_rgb(np.full((8, 8, 3), 1 + 1j))
    with pytest.raises(NonFiniteError):
        as_rgb(np.full((8, 8, 3), np.nan, np.float32))
    # an integer array in 0..255 (np.array of Python ints) is read as 8-bit
    same(as_rgb(np.full((8, 8, 3), 255, np.int64)), np.ones((8, 8, 3)))
