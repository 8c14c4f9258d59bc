"""The same regional attention in diffusers' StableDiffusionXLPipeline (tiny components from configs)."""
from __future__ import annotations

import json
import string

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers", reason="diffusers is optional (pip install diffusers)")
transformers = pytest.importorskip("transformers")

from pakati_core import Canvas  # noqa: E402
from pakati_core.regional import RegionalOptions, RegionPrompt, RegionSet  # noqa: E402
from pakati_core.regional.diffusers_backend import RegionalSDXL  # noqa: E402

SIZE = 64  # image pixels; the tiny VAE downsamples by 2, so the latent is 32x32


def tiny_tokenizer(tmp_path):
    """A real CLIPTokenizer over a character-level vocabulary written here (no hub download)."""
    chars = list(string.ascii_lowercase)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    return transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), pad_token="<|endoftext|>", model_max_length=77)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=1,
    )
    scheduler = diffusers.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading")
    vae = diffusers.AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                                  up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, sample_size=32, norm_num_groups=1)
    cfg = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
               num_attention_heads=4, num_hidden_layers=3, vocab_size=60, hidden_act="gelu", projection_dim=32)
    te1 = transformers.CLIPTextModel(transformers.CLIPTextConfig(**cfg))
    te2 = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**cfg))
    tok = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    return diffusers.StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=scheduler)


def halves(**b):
    return Canvas.from_json(json.dumps({"version": 1, "width": SIZE, "height": SIZE, "regions": [
        {"id": "a", "shape": "rect", "points": [[0, 0], [32, 64]], "prompt": "a red apple"},
        {"id": "b", "shape": "rect", "points": [[32, 0], [64, 64]], "prompt": "a blue sea", **b},
    ]}))


def run(pipe, canvas, prompt="a photo", seed=0, **kw):
    return RegionalSDXL(pipe, RegionalOptions(base_weight=kw.pop("base_weight", 0.3)))(
        canvas, prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(seed), output_type="np", **kw).images


def test_renders_a_canvas_deterministically(pipe):
    a, b = run(pipe, halves()), run(pipe, halves())
    assert a.shape == (1, SIZE, SIZE, 3) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    # the processors are removed again after the call
    assert not any(type(p).__name__ == "PakatiAttnProcessor" for p in pipe.unet.attn_processors.values())


def test_identity_full_canvas_region_with_the_base_prompt(pipe):
    full = Canvas.from_json(json.dumps({"version": 1, "width": SIZE, "height": SIZE, "regions": [
        {"id": "all", "shape": "rect", "points": [[0, 0], [SIZE, SIZE]], "prompt": "a photo"}]}))
    ours = run(pipe, full)
    plain = pipe("a photo", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np", width=SIZE, height=SIZE).images
    assert np.abs(ours - plain).max() <= 1e-3


def test_locality_in_the_first_cross_attention(pipe):
    attn = next(m for n, m in pipe.unet.named_modules() if n.endswith("attn2"))
    outputs = []
    hook = attn.register_forward_hook(lambda mod, args, kwargs, out: outputs.append(out.detach().clone()), with_kwargs=True)
    try:
        run(pipe, halves(prompt="a blue sea"))
        first = outputs[0]
        outputs.clear()
        run(pipe, halves(prompt="volcano at night"))
        second = outputs[0]
    finally:
        hook.remove()
    cond1, cond2 = first[1].view(16, 16, -1), second[1].view(16, 16, -1)  # [uncond, cond]; 32x32 latent, grid 16x16
    assert (cond2[:, :8] - cond1[:, :8]).norm() / cond1[:, :8].norm() <= 1e-4
    assert (cond2[:, 8:] - cond1[:, 8:]).norm() / cond1[:, 8:].norm() > 1e-3
    assert torch.allclose(first[0], second[0]), "unconditional rows untouched"


def test_embeddings_api_and_errors(pipe):
    g = torch.Generator().manual_seed(3)
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[:, :32] = 1
    regions = RegionSet((RegionPrompt(name="left", cond=torch.randn(1, 77, 64, generator=g), mask=mask),))
    pos, neg = torch.randn(1, 77, 64, generator=g), torch.zeros(1, 77, 64)
    pooled = torch.randn(1, 32, generator=g)
    out = RegionalSDXL(pipe).generate(regions, pos, pooled, neg, torch.zeros(1, 32), width=SIZE, height=SIZE,
                                      num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)).images
    assert np.isfinite(out).all()
    with pytest.raises(ValueError, match="mask: region 'left' is defined on a 64x64 mask"):
        RegionalSDXL(pipe).generate(regions, pos, pooled, neg, torch.zeros(1, 32), width=SIZE, height=32, num_inference_steps=1)
    with pytest.raises(ValueError, match="region 'b' has an empty prompt"):
        run(pipe, halves(prompt=" "))
