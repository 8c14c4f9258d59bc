"""NaN/Inf from the host are errors, never results: through the real server with a tiny VAE whose
decoder overflows to NaN (as an SDXL VAE in fp16 does). Each node stops naming itself, the input
to blame and the fix, and nothing is stored."""

from __future__ import annotations

import pytest

import hardening_prompts as hp
from comfy_client import ExecutionFailed

pytestmark = pytest.mark.host

FIX = "--fp32-vae"


# The install's secret for hashing user ids (nodes/persistence.py, SECRET_FILE) is made on first use by
# whichever test runs first: it belongs to the install, not to any run, so it is not counted as stored.
INSTALL_SECRET = "user_hash.key"


def stored_files(server) -> list:
    root = server.base / "user"
    if not root.exists():
        return []
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and "pakati" in p.parts and p.name != INSTALL_SECRET)


def failure(server, prompt: dict) -> str:
    with pytest.raises(ExecutionFailed) as info:
        server.run(prompt, timeout=300)
    return hp.error_text(info.value.status)


@pytest.fixture(scope="module")
def server(comfy_server):
    hp.provide_photos(comfy_server.base / "input")
    return comfy_server


def test_learn_reference_with_a_nan_vae_fails_and_stores_nothing(server):
    before = stored_files(server)
    text = failure(server, hp.learn_prompt(nan_vae=True, seed=101))
    assert "PakatiLearnReference: input 'vae': the VAE-decoded reconstruction has" in text and "NaN" in text and FIX in text, text
    assert stored_files(server) == before, "nothing may be stored from a NaN run"


def test_refine_with_a_nan_vae_fails_and_stores_nothing(server):
    before = stored_files(server)
    text = failure(server, hp.refine_prompt(nan_vae=True, learn=True, seed=102))
    assert "PakatiRefine: input 'vae': the VAE-decoded region has" in text and FIX in text, text
    assert stored_files(server) == before


def test_delta_analysis_of_a_nan_image_fails(server):
    text = failure(server, hp.delta_of_decoded_prompt(nan_vae=True))
    assert "PakatiDeltaAnalysis: input 'image'" in text and "NaN" in text and FIX in text, text


def test_the_same_prompts_with_a_finite_vae_succeed(server):
    """The failures above come from the NaN VAE, not from the graphs."""
    entry = server.run(hp.refine_prompt(nan_vae=False, learn=False, seed=102), timeout=300)
    (img,) = server.images(entry, "9")
    assert img.shape == (hp.SIDE, hp.SIDE, 3)
    entry = server.run(hp.delta_of_decoded_prompt(nan_vae=False), timeout=300)
    assert 0.0 <= float(__import__("json").loads(entry["outputs"]["7"]["text"][0])["overall"]) <= 1.0
