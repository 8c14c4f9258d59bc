"""Delta analysis on real photographs: named signed deltas, scores, masks, the report."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import skimage.data
from scipy.ndimage import gaussian_filter

from pakati_core.delta import DELTA_SPECS, analyse, compare, image_view, region_features
from pakati_core.delta.view import DeltaInputError
from pakati_core.geometry import Box
from pakati_core.references import Reference, ReferenceInputError

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera"]


def photo(name: str) -> np.ndarray:
    a = getattr(skimage.data, name)().astype(np.float32) / 255.0
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]


def brighter(a, k):
    return np.clip(a + k, 0, 1)


def darker(a, k):
    return np.clip(a - k, 0, 1)


def warmer(a, k):
    return np.clip(a * np.array([1 + k, 1.0, 1 - k], np.float32), 0, 1)


def cooler(a, k):
    return np.clip(a * np.array([1 - k, 1.0, 1 + k], np.float32), 0, 1)


def blurred(a, s):
    return gaussian_filter(a, (s, s, 0))


def sharpened(a, k):
    return np.clip(a + k * (a - gaussian_filter(a, (1.0, 1.0, 0))), 0, 1)


def lower_contrast(a, f):
    return (a.mean(axis=(0, 1)) + (a - a.mean(axis=(0, 1))) * f).astype(np.float32)


def shifted(a, frac):
    h, w = a.shape[:2]
    m = np.float32([[1, 0, frac * w], [0, 1, 0]])
    return cv2.warpAffine(a, m, (w, h), borderMode=cv2.BORDER_REFLECT)


# perturbation -> (function, (weak, strong), the delta it must move, its sign)
PERTURBATIONS = {
    "brighter": (brighter, (0.04, 0.10), "brightness", +1),
    "darker": (darker, (0.04, 0.10), "brightness", -1),
    "warmer": (warmer, (0.06, 0.15), "warmth", +1),
    "cooler": (cooler, (0.06, 0.15), "warmth", -1),
    "blurred": (blurred, (1.0, 2.5), "sharpness", -1),
    "sharpened": (sharpened, (0.6, 1.5), "sharpness", +1),
    "lower_contrast": (lower_contrast, (0.8, 0.55), "contrast", -1),
    "shifted": (shifted, (0.03, 0.07), "shift_x", +1),
}


@pytest.mark.parametrize("name", PHOTOS)
def test_every_perturbation_moves_the_right_delta_with_the_right_sign(name):
    ref_img = photo(name)
    ref = Reference(ref_img, "the original photograph", "general")
    identical = analyse(ref_img.copy(), [ref])
    assert identical.overall == 1.0
    assert all(d.value == 0.0 and d.similarity == 1.0 for d in identical.results[0].deltas)
    for label, (fn, strengths, delta_name, sign) in PERTURBATIONS.items():
        weak, strong = (analyse(fn(ref_img, s), [ref]) for s in strengths)
        for rep, s in ((weak, strengths[0]), (strong, strengths[1])):
            d = rep.delta(delta_name)
            assert np.sign(d.value) == sign, f"{name} {label}({s}): {delta_name} = {d.value}"
            assert d.magnitude >= DELTA_SPECS[delta_name].jnd * 0.25, f"{name} {label}({s}): {d.value} is below notice"
            assert d.direction == ("more" if sign > 0 else "less")
        assert weak.delta(delta_name).magnitude < strong.delta(delta_name).magnitude, f"{name} {label}"
        assert 1.0 > weak.overall > strong.overall, f"{name} {label}: {weak.overall} vs {strong.overall}"


def test_colour_deltas_read_in_their_own_units():
    a = photo("astronaut")
    rep = analyse(warmer(a, 0.15), [Reference(a, aspect="color")])
    d = rep.delta("warmth")
    assert d.unit == "b*" and d.aspect == "color"
    assert d.sentence.startswith("The region is warmer (more yellow) than the reference by")
    assert rep.results[0].score == pytest.approx(rep.results[0].aspects["color"])


@pytest.mark.parametrize("name", PHOTOS[:3])
def test_a_perturbation_outside_the_mask_changes_no_in_mask_delta(name):
    a = photo(name)
    h, w = a.shape[:2]
    mask = np.zeros((h, w), np.float32)
    mask[h // 4 : 3 * h // 4, w // 5 : 3 * w // 5] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), 4.0)  # soft edge, still exactly 0 far outside
    mask[mask < 1e-3] = 0.0
    ref = Reference(warmer(blurred(a, 1.0), 0.1), aspect="general")
    outside = mask == 0
    vandalised = a.copy()
    vandalised[outside] = np.clip(sharpened(brighter(a, 0.3), 2.0)[outside][:, ::-1], 0, 1)
    base = analyse(a, [ref], mask)
    after = analyse(vandalised, [ref], mask)
    assert [d.to_dict() for d in after.results[0].deltas] == [d.to_dict() for d in base.results[0].deltas]
    assert after.overall == base.overall
    whole = analyse(vandalised, [ref])  # without the mask the damage is seen
    assert whole.overall < base.overall


def test_report_json_lists_every_named_delta_with_unit_direction_and_sentence():
    a = photo("coffee")
    refs = [Reference(a, "same", "lighting", weight=2.0), Reference(cooler(a, 0.1), "cool", "color")]
    rep = analyse(brighter(a, 0.08), refs)
    data = json.loads(rep.to_json())
    assert data["version"] == 1 and 0 < data["overall"] < 1
    first = data["references"][0]
    assert first["aspect"] == "lighting" and first["weight"] == 2.0
    names = {d["name"] for d in first["deltas"]}
    required = {
        "brightness",
        "contrast",
        "warmth",
        "tint",
        "saturation",
        "palette_distance",
        "sharpness",
        "glcm_contrast",
        "glcm_homogeneity",
        "glcm_energy",
        "glcm_correlation",
        "lbp_chi2",
        "shift_x",
        "shift_y",
        "energy_balance",
        "ssim_loss",
    }
    assert required <= names
    for d in first["deltas"]:
        assert set(d) == {"name", "value", "unit", "aspect", "magnitude", "direction", "similarity", "sentence"}
        assert 0.0 <= d["similarity"] <= 1.0 and d["magnitude"] == abs(d["value"])
    assert data["summary"], "the worst deltas are summarised in words"
    # overall = weighted geometric mean of reference scores
    s1, s2 = (r["score"] for r in data["references"])
    assert data["overall"] == pytest.approx((s1**2 * s2) ** (1 / 3), abs=1e-5)


def test_reference_of_another_size_and_masked_reference():
    a = photo("chelsea")
    small = cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA)
    rep = analyse(a, [Reference(small)])
    assert rep.overall > 0.8 and abs(rep.delta("brightness").value) < 1.0
    m = np.zeros(a.shape[:2], np.float32)
    m[50:200, 100:300] = 1
    patch = Reference(darker(a, 0.1), aspect="lighting", mask=m)
    assert analyse(a, [patch], m).delta("brightness").value > 5


def test_similarity_is_exactly_one_at_zero_and_095_at_one_jnd():
    from pakati_core.delta.measure import Delta

    for name, spec in DELTA_SPECS.items():
        assert Delta(name, 0.0).similarity == 1.0
        assert Delta(name, spec.jnd).similarity == pytest.approx(0.95)


def test_features_are_deterministic_and_views_weight_the_mask():
    a = photo("rocket")
    v1, box = image_view(a)
    v2, _ = image_view(a.copy())
    assert box == Box(0, 0, a.shape[1], a.shape[0])  # pakati_core.geometry: the one (x0, y0, x1, y1) convention
    f1, f2 = region_features(v1), region_features(v2)
    assert all(d.value == 0.0 for d in compare(f1, f2))


def test_bad_inputs_are_typed_errors_naming_the_field():
    a = photo("astronaut")
    with pytest.raises(ReferenceInputError, match="aspect"):
        Reference(a, aspect="smell")
    with pytest.raises(ReferenceInputError, match="weight"):
        Reference(a, weight=0)
    with pytest.raises(DeltaInputError, match="mask: the mask is empty"):
        analyse(a, [Reference(a)], np.zeros(a.shape[:2], np.float32))
    with pytest.raises(DeltaInputError, match="references"):
        analyse(a, [])


def test_reference_hash_is_content_based():
    a = photo("astronaut")
    r1, r2 = Reference(a, "x", "color"), Reference(a.copy(), "x", "color")
    assert r1 == r2 and hash(r1) == hash(r2) and len(r1.content_hash) == 64
    assert Reference(a, "x", "texture") != r1
    assert Reference(brighter(a, 0.01), "x", "color") != r1
